"""What storing a map costs in DynamoDB: items, bytes, capacity units, commit and cold-load time, and calls per
single-key write.

Why: a map is stored as one compressed blob, inline in one item up to ~400 KB and split over shard items above
that. Its size therefore decides how many items every commit writes, how many capacity units it is billed and
how long a cold start waits for it. Both packages are measured (msgpack + zstandard for ``core``, pickle + zlib
for ``lite`` on Python < 3.14) against moto's server and, where installed, DynamoDB Local, with two kinds of data:

* ``json-like``: one top-level key per record (user, event, timestamp, score, tags...), compressible; its size
  is the length of ``json.dumps(map)``;
* ``random``: 64 KB values of ``os.urandom`` bytes, incompressible; its size is the sum of the values.

For each, the first commit of the whole map (``update``) and a cold load by a new map object are measured, with
the library's own accounting (``last_commit`` / ``last_load``: calls, items, bytes, capacity units computed from
item sizes, and those DynamoDB reported). Then the DynamoDB calls of one uncontended single-key write
(``data[k] = v``) are counted with a botocore hook, on a 20 KB map (the target is exactly 1) and on the larger
maps: the whole blob is rewritten on every commit, so what one small write costs grows with the map.

    python tools/bench/storage.py [--no-local] [--sizes 1,16]
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import PACKAGES, CallMeter, log, median, ms, servers, size, table, units, use_endpoint

MB = 1 << 20
EVENTS = ["login", "logout", "purchase", "view", "search", "refund", "signup", "share"]
TAGS = ["mobile", "web", "eu", "us", "beta", "premium", "trial", "returning", "new", "promo"]


def json_like(target: int, seed: int = 42) -> dict[str, Any]:
    """Records keyed by id, about ``target`` bytes as JSON: repetitive text, so it compresses well."""
    rng = random.Random(seed)

    def record(i: int) -> dict[str, Any]:
        user = rng.randrange(5000)
        return {
            "id": i,
            "user": f"user-{user:05d}",
            "email": f"user{user}@example.com",
            "event": rng.choice(EVENTS),
            "ts": f"2025-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
            "score": round(rng.random() * 100, 2),
            "tags": rng.sample(TAGS, 3),
            "active": rng.random() < 0.5,
        }

    # json.dumps(map) is "{" + entries joined by ", " + "}", each entry being key + ": " + value: count as we go.
    data: dict[str, Any] = {}
    length = 2
    while length < target:
        key = f"record-{len(data):07d}"
        data[key] = record(len(data))
        length += len(json.dumps(key)) + 2 + len(json.dumps(data[key])) + (2 if len(data) > 1 else 0)
    return data


def random_bytes(target: int) -> dict[str, bytes]:
    """64 KB values of random bytes: nothing to compress."""
    chunk = 64 * 1024
    return {f"blob-{i:04d}": os.urandom(min(chunk, target - i * chunk)) for i in range(-(-target // chunk))}


def data_size(data: dict[str, Any]) -> int:
    if all(type(v) is bytes for v in data.values()):
        return sum(len(v) for v in data.values())
    return len(json.dumps(data))


@dataclass
class Stored:
    backend: str
    package: str
    kind: str
    size: int
    commit: Any  # Usage of the first commit
    commit_s: float
    load: Any  # Usage of the cold load
    load_s: float


@dataclass
class SingleWrites:
    backend: str
    package: str
    kind: str
    size: int
    hook_calls: list[int]  # DynamoDB calls per write, counted by botocore
    last_commit: Any  # the library's Usage of the last write
    seconds: list[float]


class CallCounter:
    """DynamoDB calls on a boto3 client, counted by the library's meter (operations only)."""

    def __init__(self, client: Any) -> None:
        self.meter = CallMeter(sizes=False)
        self.meter.attach(client)

    @property
    def count(self) -> int:
        return len(self.meter.calls)


def single_writes(
    backend: str, label: str, kind: str, nbytes: int, data: Any, counter: CallCounter, writes: int
) -> SingleWrites:
    """Set one small key ``writes`` times on a synced map, counting each write's DynamoDB calls."""
    result = SingleWrites(backend, label, kind, nbytes, [], None, [])
    for i in range(writes):
        before = counter.count
        started = time.perf_counter()
        data["last-request"] = f"request-{i}"
        result.seconds.append(time.perf_counter() - started)
        result.hook_calls.append(counter.count - before)
    result.last_commit = data.last_commit
    return result


def measure(
    backend: str, datasets: dict[tuple[str, int], dict[str, Any]], counter: CallCounter
) -> tuple[list[Stored], list[SingleWrites]]:
    """Commit and cold-load every dataset with both packages, then time single-key writes on the loaded maps."""
    stored, writes = [], []
    for label, module in PACKAGES.items():
        pm = importlib.import_module(module).PersistentMap
        small = pm.open(json_like(20 * 1024), table_key=f"bench-20k-{label}-{time.time_ns()}")
        writes.append(single_writes(backend, label, "json-like", 20 * 1024, small, counter, 5))
        for (kind, nbytes), data in datasets.items():
            log(f"storage: {backend}, {label}, {kind}, {size(nbytes)}")
            key = f"bench-{label}-{kind}-{nbytes}-{time.time_ns()}"
            writer = pm.open(table_key=key)
            started = time.perf_counter()
            writer.update(data)
            commit_s = time.perf_counter() - started
            started = time.perf_counter()
            reader = pm.open(table_key=key)
            load_s = time.perf_counter() - started
            assert reader == data, f"{key}: the cold load differs from what was committed"
            stored.append(Stored(backend, label, kind, nbytes, writer.last_commit, commit_s, reader.last_load, load_s))
            writes.append(single_writes(backend, label, kind, nbytes, reader, counter, 5 if nbytes <= 2 * MB else 2))
    return stored, writes


def warm_up(pm: Callable[..., Any], data: dict[str, Any]) -> None:
    """Create the table and warm the connection (and DynamoDB Local's JIT) outside the timings."""
    key = f"bench-warm-up-{time.time_ns()}"
    for i in range(3):
        pm(table_key=key).update({**data, "round": i})


def report(stored: list[Stored], writes: list[SingleWrites]) -> None:
    print("### Storage: first commit of a whole map, then a cold load by a new map object\n")
    print(
        "Sizes are of the data (`json.dumps` length, or raw bytes), 1 MB = 1 MiB. *calc* = capacity units "
        "computed by the library from item sizes (a transactional write counts double); *reported* = what the "
        "server returned in ConsumedCapacity (moto's numbers are not size-based).\n"
    )
    for backend in dict.fromkeys(s.backend for s in stored):
        print(f"#### {backend}\n")
        print(
            table(
                [
                    "package",
                    "data",
                    "size",
                    "commit calls",
                    "items written",
                    "bytes sent",
                    "WCU calc",
                    "WCU reported",
                    "commit time",
                    "load calls",
                    "items read",
                    "RCU calc",
                    "RCU reported",
                    "cold-load time",
                ],
                [
                    [
                        s.package,
                        s.kind,
                        size(s.size),
                        s.commit.calls,
                        s.commit.items,
                        size(s.commit.bytes),
                        units(s.commit.capacity_units),
                        units(s.commit.reported_units),
                        ms(s.commit_s),
                        s.load.calls,
                        s.load.items,
                        units(s.load.capacity_units),
                        units(s.load.reported_units),
                        ms(s.load_s),
                    ]
                    for s in stored
                    if s.backend == backend
                ],
                left=2,
            )
        )
        print()
    print("### DynamoDB calls per uncontended single-key write (`data[k] = v` on a synced map)\n")
    print(
        "Calls are counted by a botocore `before-call` hook (max over the writes); items, bytes and WCU are the "
        "library's `last_commit` of the last write; time is the median.\n"
    )
    print(
        table(
            [
                "backend",
                "package",
                "data",
                "map size",
                "writes",
                "calls per write",
                "items written",
                "bytes sent",
                "WCU calc",
                "WCU reported",
                "time per write",
            ],
            [
                [
                    w.backend,
                    w.package,
                    w.kind,
                    size(w.size),
                    len(w.hook_calls),
                    max(w.hook_calls),
                    w.last_commit.items,
                    size(w.last_commit.bytes),
                    units(w.last_commit.capacity_units),
                    units(w.last_commit.reported_units),
                    ms(median(w.seconds)),
                ]
                for w in writes
            ],
            left=3,
        )
    )
    small = [w for w in writes if w.size <= 20 * 1024]
    verdict = "met" if all(max(w.hook_calls) == 1 for w in small) else "NOT met"
    print(f"\nTarget of exactly 1 DynamoDB call per single-key write on a 20 KB map: **{verdict}**.")
    print(
        "\nReading the capacity columns: DynamoDB bills a delete by the size of the deleted item and an overwrite by "
        "the larger of the old and new item, while *calc* counts each deleted shard as 1 WCU (2 in a transaction), "
        "so for sharded maps the real cost of a rewrite is higher than *calc* (see DynamoDB Local's *reported* "
        "for the 16 MB random rows, written with BatchWriteItem). DynamoDB Local's figure for a TransactWriteItems "
        "call is not the sum over its items, so *reported* understates the rows committed in one transaction "
        "(more than one item written in one call)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-local", action="store_true", help="skip DynamoDB Local even if it is installed")
    parser.add_argument("--sizes", default="1,16", help="map sizes in MB, comma-separated (default: 1,16)")
    args = parser.parse_args()
    # Commits above 25 WCU log a warning about the free tier; every large map here does, on purpose.
    logging.getLogger("aws_lambda_persistence").setLevel(logging.ERROR)

    datasets: dict[tuple[str, int], dict[str, Any]] = {}
    for mb in (int(s) for s in args.sizes.split(",")):
        log(f"storage: generating {mb} MB maps")
        for kind, build in (("json-like", json_like), ("random", random_bytes)):
            data = build(mb * MB)
            datasets[(kind, data_size(data))] = data

    stored: list[Stored] = []
    writes: list[SingleWrites] = []
    with servers(local=not args.no_local) as found:
        from aws_lambda_persistence_lite._client import default_client

        for backend, endpoint in found:
            log(f"storage: {backend} at {endpoint}")
            use_endpoint(endpoint)
            counter = CallCounter(default_client())  # the client every map of this endpoint shares
            for module in PACKAGES.values():
                warm_up(importlib.import_module(module).PersistentMap.open, random_bytes(MB))
            s, w = measure(backend, datasets, counter)
            stored += s
            writes += w
    report(stored, writes)


if __name__ == "__main__":
    main()
