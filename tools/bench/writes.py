"""What single-key writes, refreshes, cold loads and contended increments cost, in DynamoDB's own capacity units:
the "Must show" figures of issue 10.

Why: stored format 2 rewrites the whole map on every write, so a write's cost grows with the map; the format that
replaces it is meant to cost what changed. This file measures both through the public API only
(``PersistentMap.open(table_key=..., client=...)``, item assignment, ``update()``, ``batch()``, ``refresh()``,
``increment()``), so that it measures the new format without a change.

How: against DynamoDB Local only (moto's server does not bill by item size), on 127.0.0.1. Each map object gets a
boto3 client of its own (one container each); botocore hooks on that client set ``ReturnConsumedCapacity="TOTAL"``
on every call, count calls per operation, time them and sum the units DynamoDB returned. DynamoDB Local bills
PutItem, UpdateItem, DeleteItem and BatchWriteItem as DynamoDB does (the larger of the item before and after;
checked), but its figure for TransactWriteItems is not the sum over the actions, so for that operation the units
are computed by DynamoDB's rules: 2 WCU per started KB per action, of the larger of the item before and after
(Put, Update), of the item before (Delete, ConditionCheck); the items' sizes are read by a separate, unmetered
client before and after the call, and that time is left out of every timing. A refused conditional write comes
back without ConsumedCapacity on DynamoDB Local, so it counts 0 units here (DynamoDB bills it): such calls are
listed as errors.

Per map size (JSON-like maps from storage.py; sizes are of ``json.dumps(map)``, 1 MB = 1 MiB) and package:

1. writes: N sets of a ~100-byte value to random existing keys of a warm map (the same keys and values for every
   package), then a few ``update()`` and ``batch()`` of 10 keys; the same N sets as plain PutItems of one item per
   key (the floor), and with 1.0.0 (from PyPI, in versus_1_0_0.py's venv; it stores the pickled map in one item,
   so it fails above 400 KB);
2. refreshes: a cold load of the freshly written map, ``refresh()`` after another container set one key,
   ``refresh()`` with nothing changed, a read after ``max_age`` expiry, and a cold load after all the sets;
3. increments: P processes x K ``increment('n')`` on one map, with one warm map per process and with a new map per
   call, next to P processes doing plain ``UpdateItem ADD`` on one item, in the same run.

    python tools/bench/writes.py [--quick] [--sizes 20K,1M,16M,64M] [--sets 1000] [--sets-per-size 16M=20]
                                 [--processes 8] [--increments 100] [--increment-runs 1] [--parts maps,increments]

``--quick`` (20 KB and 1 MB, 100 sets) takes about 3 minutes; the format 2 baseline in RESULTS.md used
``--sizes 20K,1M,16M --sets 200 --sets-per-size 16M=20`` (5-10 minutes; the full run took hours on format 2).
On format 3, run_all.py's ``--sizes 20K,1M,16M,64M --sets 1000`` takes about 25 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.metadata
import json
import logging
import math
import multiprocessing
import os
import pickle
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import PACKAGES, ROOT, CallMeter, log, size, table, use_endpoint
from run_all import cpu_model, java_version
from storage import EVENTS, json_like
from versus_1_0_0 import TABLE, Impl, create_table, ensure_venv

from tools.servers import ServerUnavailable, dynamodb_local  # on sys.path through common

KB, MB = 1024, 1 << 20
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
BARRIER_TIMEOUT = 300.0
#: TransactWriteItems over the whole run: DynamoDB Local's figure against the one computed from item sizes.
METERS: list[Meter] = []  # every meter of this process: the TransactWriteItems summary adds them up
QUICK = {"sizes": "20K,1M", "sets": 100, "batches": 3, "refreshes": 3}
FULL = {"sizes": "20K,1M,16M,64M", "sets": 1000, "batches": 5, "refreshes": 5}
STARTED = time.monotonic()


def progress(message: str) -> None:
    log(f"writes [{time.monotonic() - STARTED:.0f} s]: {message}")


# -- metering ----------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a stretch of calls cost."""

    ops: dict[str, int] = field(default_factory=dict)
    rcu: float = 0.0
    wcu: float = 0.0
    received: int = 0
    item_bytes: int = 0
    round_trips: int = 0  # sequential waves: calls that overlap in time count once
    call_seconds: float = 0.0  # time with a DynamoDB call in flight (the rest is the library and the client)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(self.ops.values())


@dataclass
class Sample:
    tally: Tally
    seconds: float  # wall time, minus the time the hooks spent sizing items

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        return cls(Tally(**data["tally"]), data["seconds"])


class Meter(CallMeter):
    """The library's meter (aws_lambda_persistence_lite._meter.CallMeter: one meter for the library, its command
    line and the benchmarks) on the clients it is attached to, with this benchmark's tallies. ``sizer`` is an
    unmetered client with which it bills a TransactWriteItems by DynamoDB's rules; without one, DynamoDB Local's
    own figure is kept."""

    def __init__(self, sizer: Any = None) -> None:
        super().__init__(sizer=sizer)
        METERS.append(self)

    def tally(self, since: int = 0) -> Tally:
        calls = self.calls[since:]
        result = Tally(
            ops=dict(Counter(c.op for c in calls)),
            rcu=sum(c.units for c in calls if c.op in READS),
            wcu=sum(c.units for c in calls if c.op not in READS),
            received=sum(c.received for c in calls),
            item_bytes=sum(c.item_bytes for c in calls),
            errors=dict(Counter(c.error for c in calls if c.error)),
        )
        began, horizon = 0.0, -math.inf
        for c in sorted(calls, key=lambda c: c.started):
            if c.started >= horizon:
                result.call_seconds += max(0.0, horizon - began)
                result.round_trips += 1
                began, horizon = c.started, c.ended
            else:
                horizon = max(horizon, c.ended)
        result.call_seconds += max(0.0, horizon - began)
        return result

    @contextlib.contextmanager
    def sample(self, into: list[Sample]) -> Iterator[None]:
        """Meter and time the block; append its Sample to ``into``."""
        mark, excluded, started = self.mark(), self.excluded, time.perf_counter()
        yield
        seconds = time.perf_counter() - started - (self.excluded - excluded)
        into.append(Sample(self.tally(mark), seconds))


def make_client(endpoint: str | None = None) -> Any:
    """A client configured like the library's default one (botocore's standard retries), in a botocore session of
    its own: what one container has. Endpoint and fake credentials come from the environment (use_endpoint)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=120, tcp_keepalive=True
    )
    return boto3.session.Session().client("dynamodb", endpoint_url=endpoint, config=config)


@dataclass
class Container:
    client: Any
    meter: Meter


def container(endpoint: str, sizer: Any = None) -> Container:
    meter = Meter(sizer)
    return Container(meter.attach(make_client(endpoint)), meter)


def quiet_library() -> None:
    # Commits above the free tier's 25 WCU log a warning; the large maps here do that on purpose.
    logging.getLogger("aws_lambda_persistence").setLevel(logging.ERROR)


# -- the workload ------------------------------------------------------------------------------------------------


def small_value(rng: random.Random, seq: int) -> dict[str, Any]:
    """About 100 bytes as JSON, shaped like the map's records; ``seq`` makes it differ from every earlier value."""
    return {
        "user": f"user-{rng.randrange(5000):05d}",
        "event": rng.choice(EVENTS),
        "ts": f"2025-12-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
        "score": round(rng.random() * 100, 2),
        "seq": seq,
    }


def plan(keys: list[str], count: int, seed: str) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (existing key, new value) pairs; the same for every package and for 1.0.0, given the seed."""
    rng = random.Random(seed)
    return [(rng.choice(keys), small_value(rng, i)) for i in range(count)]


def seed_for(args_seed: int, target: int) -> str:
    return f"{args_seed}-{target}"


@dataclass
class MapRun:
    package: str
    target: int
    stored: int = 0  # DynamoDB size of the items the first cold load read: the stored (compressed) map
    sets: list[Sample] = field(default_factory=list)
    sets_total: Tally | None = None  # every call from the first set to the end of the last, spread or not
    updates: list[Sample] = field(default_factory=list)
    batches: list[Sample] = field(default_factory=list)
    cold: list[Sample] = field(default_factory=list)
    cold_after: list[Sample] = field(default_factory=list)
    refreshes: list[Sample] = field(default_factory=list)
    unchanged: list[Sample] = field(default_factory=list)
    expired: list[Sample] = field(default_factory=list)


def measure_map(
    label: str, endpoint: str, sizer: Any, data: dict[str, Any], target: int, sets: int, args: argparse.Namespace
) -> MapRun:
    """Store ``data``, then meter a cold load, ``sets`` single-key sets, multi-key commits and refreshes on it."""
    pm = importlib.import_module(PACKAGES[label]).PersistentMap
    key = f"bench-writes-{label}-{target}-{time.time_ns()}"
    run = MapRun(label, target)

    def open_map(c: Container, **settings: Any) -> Any:
        return pm.open(table_key=key, client=c.client, table_name=TABLE, **settings)

    progress(f"{label}, {size(target)}: storing the map")
    open_map(container(endpoint)).update(data)
    a = container(endpoint, sizer)  # the warm container that writes
    with a.meter.sample(run.cold):
        writer = open_map(a)
    run.stored = run.cold[0].tally.item_bytes
    assert writer == data, f"{key}: the cold load differs from what was stored"

    expected = dict(data)
    rng = random.Random(seed_for(args.seed, target) + "-more")
    keys = list(data)
    progress(f"{label}, {size(target)}: {sets} sets")
    mark = a.meter.mark()
    for i, (k, v) in enumerate(plan(keys, sets, seed_for(args.seed, target))):
        with a.meter.sample(run.sets):
            writer[k] = v
        expected[k] = v
        if (i + 1) % max(1, min(100, sets // 10)) == 0:
            progress(f"{label}, {size(target)}: {i + 1} of {sets} sets")
    run.sets_total = a.meter.tally(mark)

    progress(f"{label}, {size(target)}: update() and batch() of {args.batch_keys} keys")
    for _ in range(args.batches):
        changes = {rng.choice(keys): small_value(rng, -1) for _ in range(args.batch_keys)}
        with a.meter.sample(run.updates):
            writer.update(changes)
        expected.update(changes)
        changes = {rng.choice(keys): small_value(rng, -2) for _ in range(args.batch_keys)}
        with a.meter.sample(run.batches), writer.batch():
            for k, v in changes.items():
                writer[k] = v
        expected.update(changes)

    progress(f"{label}, {size(target)}: refreshes")
    other = open_map(container(endpoint))  # another container, warm
    for _ in range(args.refreshes):
        k, v = rng.choice(keys), small_value(rng, -3)
        other[k] = v
        expected[k] = v
        with a.meter.sample(run.refreshes):
            writer.refresh()
        assert writer[k] == v, f"{key}: refresh() missed another container's set"
    with a.meter.sample(run.unchanged):
        writer.refresh()
    c = container(endpoint, sizer)
    reader = open_map(c, max_age=0)
    k, v = rng.choice(keys), small_value(rng, -4)
    other[k] = v
    expected[k] = v
    with c.meter.sample(run.expired):
        seen = reader[k]
    assert seen == v, f"{key}: a read after max_age expiry missed another container's set"

    d = container(endpoint, sizer)
    with d.meter.sample(run.cold_after):
        fresh = open_map(d)
    assert fresh == expected, f"{key}: the cold load after the sets differs from what was written"
    return run


def floor_run(endpoint: str, data: dict[str, Any], target: int, sets: int, args: argparse.Namespace) -> list[Sample]:
    """The same sets as plain PutItems of one item per map key (each key's item written once beforehand)."""
    c = container(endpoint)
    prefix = f"bench-floor-{target}-{time.time_ns()}"
    pairs = plan(list(data), sets, seed_for(args.seed, target))

    def item(k: str, v: Any) -> dict[str, Any]:
        return {"key": {"S": f"{prefix}#{k}"}, "value": {"S": json.dumps(v)}}

    for k in dict.fromkeys(k for k, _ in pairs):
        c.client.put_item(TableName=TABLE, Item=item(k, data[k]))
    samples: list[Sample] = []
    for k, v in pairs:
        with c.meter.sample(samples):
            c.client.put_item(TableName=TABLE, Item=item(k, v))
    return samples


# -- 1.0.0 -------------------------------------------------------------------------------------------------------


def error_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = response["Error"].get("Message") or f"HTTP {status}, no message (request body too large?)"
        return f"{response['Error'].get('Code')}: {message}"[:120]
    return f"{type(exc).__name__}: {exc}"[:120]


def worker_1_0_0(spec: dict[str, Any]) -> dict[str, Any]:
    """In the 1.0.0 venv: per size, store the map, then the same sets as the 2.0 packages, metered.

    1.0.0 creates a boto3 resource (and client) for every write, so the meter is attached to every DynamoDB client
    any botocore session of this process creates.
    """
    meter = Meter()
    meter.attach_everywhere()
    pkg = importlib.import_module("aws_lambda_persistence")
    version = importlib.metadata.version("aws-lambda-persistence")
    assert version == "1.0.0", f"the 1.0.0 venv runs aws-lambda-persistence {version}"
    rows = []
    for target, sets in spec["sizes"]:
        data = json_like(target)
        key = f"{spec['prefix']}-{target}"
        try:
            pkg.PersistentMap(table_key=key).update(data)
        except Exception as exc:
            rows.append({"target": target, "error": error_text(exc)})
            continue
        m = pkg.PersistentMap(table_key=key)
        samples: list[Sample] = []
        for k, v in plan(list(data), sets, seed_for(spec["seed"], target)):
            with meter.sample(samples):
                m[k] = v
        rows.append({"target": target, "sets": [dataclasses.asdict(s) for s in samples]})
    return {"rows": rows}


def run_1_0_0(endpoint: str, sizes: list[tuple[int, int]], args: argparse.Namespace) -> tuple[str, dict[int, Any]]:
    """1.0.0's sets, by 1.0.0 itself in versus_1_0_0.py's venv; where that venv cannot be made, simulated here as
    what 1.0.0 does on every set: one PutItem of the whole pickled dict."""
    pythonpath = os.environ.pop("PYTHONPATH", None)  # the venv's interpreter must not see 2.0's packages
    try:
        python = ensure_venv()
    except (OSError, subprocess.CalledProcessError) as exc:
        progress(f"1.0.0 venv unavailable ({exc}): simulating 1.0.0")
        return "simulated: one PutItem of the whole pickled map per set", simulate_1_0_0(endpoint, sizes, args)
    finally:
        if pythonpath is not None:
            os.environ["PYTHONPATH"] = pythonpath
    spec = {"sizes": sizes, "seed": args.seed, "prefix": f"bench-writes-1.0.0-{time.time_ns()}"}
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker-1-0-0", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=Impl("1.0.0", python, "aws_lambda_persistence").env(endpoint),
        cwd=ROOT,
        check=True,
    )
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["rows"]
    return "aws-lambda-persistence 1.0.0 from PyPI", {r["target"]: r for r in rows}


def simulate_1_0_0(endpoint: str, sizes: list[tuple[int, int]], args: argparse.Namespace) -> dict[int, Any]:
    c = container(endpoint)
    found: dict[int, Any] = {}
    for target, sets in sizes:
        store = json_like(target)
        key = {"key": {"S": f"bench-writes-simulated-1.0.0-{target}-{time.time_ns()}"}}
        try:
            c.client.put_item(TableName=TABLE, Item={**key, "value": {"B": pickle.dumps(store)}})
        except Exception as exc:
            found[target] = {"target": target, "error": error_text(exc)}
            continue
        samples: list[Sample] = []
        for k, v in plan(list(store), sets, seed_for(args.seed, target)):
            with c.meter.sample(samples):
                store[k] = v
                c.client.put_item(TableName=TABLE, Item={**key, "value": {"B": pickle.dumps(store)}})
        found[target] = {"target": target, "sets": [dataclasses.asdict(s) for s in samples]}
    return found


# -- increments --------------------------------------------------------------------------------------------------


def increment_worker(
    module: str | None, mode: str, endpoint: str, table_key: str, count: int, barrier: Any, results: Any
) -> None:
    """One container: ``count`` increments of ``n`` after the barrier. ``mode``: "warm" (one map), "fresh" (a new
    map per increment), "lazy" (a new map per increment, opened with ``lazy=True``) or "add" (plain UpdateItem ADD,
    no library)."""
    use_endpoint(endpoint)
    quiet_library()
    # (operations and errors only: sizing responses would charge the meter's CPU to the library on 2 cores)
    client, calls = make_client(endpoint), CallMeter(sizes=False)
    calls.attach(client)
    conflict: type[BaseException] | tuple[()] = ()
    m: Any = None
    if module is not None:
        pkg = importlib.import_module(module)
        conflict = pkg.ConflictError

        def open_map() -> Any:
            return pkg.PersistentMap.open(table_key=table_key, client=client, table_name=TABLE, lazy=mode == "lazy")

        if mode == "warm":
            m = open_map()
    values: list[Any] = []
    conflict_errors = 0
    since = calls.mark()
    barrier.wait(BARRIER_TIMEOUT)
    start, cpu = time.monotonic(), time.process_time()  # (CLOCK_MONOTONIC: comparable across processes)

    def invocation() -> Any:
        """A handler's body: in "fresh" and "lazy" modes the map is its local, dropped when it returns."""
        data = open_map() if mode in ("fresh", "lazy") else m
        return data.increment("n")

    for _ in range(count):
        while True:
            try:
                if mode == "add":
                    response = client.update_item(
                        TableName=TABLE,
                        Key={"key": {"S": table_key}},
                        UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "1"}},
                        ReturnValues="UPDATED_NEW",
                    )
                    values.append(int(response["Attributes"]["n"]["N"]))
                else:
                    values.append(invocation())
                break
            except conflict:  # every attempt lost: nothing was written, so trying again is safe
                conflict_errors += 1
    end, cpu = time.monotonic(), time.process_time() - cpu
    results.put(
        {
            "start": start,
            "end": end,
            "cpu": cpu,
            "values": values,
            "conflict_errors": conflict_errors,
            "ops": dict(Counter(c.op for c in calls.calls[since:])),
            "errors": dict(Counter(c.error for c in calls.calls[since:] if c.error)),
        }
    )


@dataclass
class IncrementRun:
    package: str
    mode: str
    processes: int
    count: int
    wall: float
    final: int
    distinct: int
    conflict_errors: int
    ops: Counter[str]
    errors: Counter[str]

    @property
    def total(self) -> int:
        return self.processes * self.count

    @property
    def rate(self) -> float:
        return self.total / self.wall


def increments_run(label: str, mode: str, endpoint: str, processes: int, count: int) -> IncrementRun:
    """``processes`` workers of ``mode``; with the package ``label`` unless ``mode`` is "add"."""
    module = None if mode == "add" else PACKAGES[label]
    table_key = f"bench-writes-increments-{label}-{mode}-{time.time_ns()}"
    client = make_client(endpoint)
    if module is None:
        client.put_item(TableName=TABLE, Item={"key": {"S": table_key}, "n": {"N": "0"}})
    else:
        pm = importlib.import_module(module).PersistentMap
        pm.open({"n": 0}, table_key=table_key, client=client, table_name=TABLE)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, like containers
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=increment_worker, args=(module, mode, endpoint, table_key, count, barrier, results))
        for _ in range(processes)
    ]
    for p in workers:
        p.start()
    reports = [results.get(timeout=BARRIER_TIMEOUT + 1800) for _ in workers]
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0, f"an increments worker exited with code {p.exitcode}"
    if module is None:
        item = client.get_item(TableName=TABLE, Key={"key": {"S": table_key}}, ConsistentRead=True)["Item"]
        final = int(item["n"]["N"])
    else:
        final = pm.open(table_key=table_key, client=client, table_name=TABLE)["n"]
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in reports:
        ops.update(r["ops"])
        errors.update(r["errors"])
    return IncrementRun(
        package=label,
        mode=mode,
        processes=processes,
        count=count,
        wall=max(r["end"] for r in reports) - min(r["start"] for r in reports),
        final=final,
        distinct=len({v for r in reports for v in r["values"]}),
        conflict_errors=sum(r["conflict_errors"] for r in reports),
        ops=ops,
        errors=errors,
    )


# -- reporting ---------------------------------------------------------------------------------------------------


def num(x: float) -> str:
    return f"{x:,.1f}".removesuffix(".0")


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def ops_per(ops: dict[str, int], n: int) -> str:
    return ", ".join(f"{op} {num(count / n) if count % n else count // n}" for op, count in sorted(ops.items()))


def merged(samples: list[Sample]) -> Tally:
    total = Tally()
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for s in samples:
        ops.update(s.tally.ops)
        errors.update(s.tally.errors)
        total.rcu += s.tally.rcu
        total.wcu += s.tally.wcu
        total.received += s.tally.received
        total.item_bytes += s.tally.item_bytes
        total.round_trips += s.tally.round_trips
        total.call_seconds += s.tally.call_seconds
    total.ops, total.errors = dict(ops), dict(errors)
    return total


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def set_row(name: str, target: int, stored: str, samples: list[Sample], total: Tally | None) -> list[object]:
    wcu = [s.tally.wcu for s in samples]
    seconds = [s.seconds for s in samples]
    total = total or merged(samples)
    n = len(samples)
    return [
        size(target),
        name,
        stored,
        n,
        num(total.wcu / n),
        num(statistics.median(wcu)),
        num(p90(wcu)),
        num(max(wcu)),
        num(total.rcu / n),
        ms(statistics.median(seconds)),
        ms(sum(seconds) / n),
        ms(statistics.median(s.tally.call_seconds for s in samples)),
        ops_per(total.ops, n) + (f"; errors: {ops_per(total.errors, 1)}" if total.errors else ""),
    ]


def old_sets(old: tuple[str, dict[int, Any]], target: int) -> list[Sample] | str:
    """1.0.0's sets on a map of ``target`` bytes, or why there are none."""
    found = old[1].get(target)
    if found is None:
        return "not run"
    if "error" in found:
        return str(found["error"])
    return [Sample.from_json(s) for s in found["sets"]]


def spread(values: list[float], text: Any = num) -> str:
    """The median, and the max in brackets when it differs."""
    middle, top = statistics.median(values), max(values)
    return text(middle) if top == middle else f"{text(middle)} ({text(top)})"


def report_writes(
    maps: list[MapRun], floors: dict[int, list[Sample]], old: tuple[str, dict[int, Any]] | None, batch_keys: int
) -> None:
    print("### Single-key sets on a warm map\n")
    print(
        "Sets of a ~100-byte value to random existing keys of a JSON-like map, one after another from one warm "
        "container (the same keys and values for every row of a size). WCU and RCU are DynamoDB Local's "
        "ConsumedCapacity, requested by the benchmark (TransactWriteItems: computed from item sizes, see below). "
        "*Amortized* = all units from the first set to the end of the last / sets; *p50, p90, max* = of single "
        "sets. *Stored* = DynamoDB size of the items a cold load read. Time excludes the benchmark's item sizing; *in "
        "calls* = the part with a DynamoDB call in flight (the rest is the library, botocore and the machine). "
        "*1.0.0* stores the pickled map in one item (fails above 400 KB); *floor* = plain boto3 PutItem of one "
        "item per key. 1 MB = 1 MiB.\n"
    )
    targets = list(dict.fromkeys(m.target for m in maps))
    rows = []
    for target in targets:
        rows += [set_row(m.package, target, size(m.stored), m.sets, m.sets_total) for m in maps if m.target == target]
        if old is not None:
            sets = old_sets(old, target)
            if isinstance(sets, str):
                rows.append([size(target), "1.0.0", "—", "fails", *["—"] * 8, sets])
            else:
                rows.append(set_row("1.0.0", target, "—", sets, None))
        if target in floors:
            rows.append(set_row("floor (PutItem per key)", target, "—", floors[target], None))
    headers = ["map (raw)", "package", "stored", "sets", "WCU per set, amortized", "p50", "p90", "max"]
    headers += ["RCU per set", "time per set, median", "mean", "in calls, median", "calls per set"]
    print(table(headers, rows, left=2))
    print()

    print("Amortized WCU per set, side by side:\n")
    labels = list(dict.fromkeys(m.package for m in maps))
    summary = []
    for target in targets:
        row: list[object] = [size(target)]
        for label in labels:
            m = next(x for x in maps if x.target == target and x.package == label)
            row.append(num(m.sets_total.wcu / len(m.sets)) if m.sets_total else "—")
        if old is not None:
            sets = old_sets(old, target)
            row.append("fails" if isinstance(sets, str) else num(merged(sets).wcu / len(sets)))
        row.append(num(merged(floors[target]).wcu / len(floors[target])))
        summary.append(row)
    print(table(["map (raw)", *labels, *(["1.0.0"] if old else []), "floor"], summary))
    print()
    if old is not None:
        print(f"1.0.0: {old[0]}.\n")

    print(f"### Multi-key commits: `update()` and `batch()` of {batch_keys} random existing keys\n")
    rows = []
    for m in maps:
        for what, samples in (("update()", m.updates), ("batch()", m.batches)):
            if samples:
                wcu = [s.tally.wcu for s in samples]
                rows.append(
                    [
                        size(m.target),
                        m.package,
                        what,
                        len(samples),
                        num(statistics.median(wcu)),
                        num(max(wcu)),
                        ops_per(merged(samples).ops, len(samples)),
                        ms(statistics.median(s.seconds for s in samples)),
                    ]
                )
    headers = ["map (raw)", "package", "commit", "commits", "WCU per commit, median", "max", "calls per commit"]
    print(table([*headers, "time, median"], rows, left=3))
    print()


def report_reads(maps: list[MapRun], refreshes: int) -> None:
    print("### Cold loads and refreshes\n")
    print(
        "*Cold load* = `PersistentMap.open()` by a new container: of the freshly stored map, and again after all "
        "the sets above. *Refresh, one key changed* = the writer's `refresh()` after another container set one "
        f"key (median of {refreshes}, max in brackets); *nothing changed* = `refresh()` right after; *max_age "
        "expiry* = a read of a map opened with `max_age=0` after another container set one key. *Round trips* = "
        "sequential DynamoDB calls (calls overlapping in time count once). *Item bytes* = DynamoDB size of the "
        "items read; *received* = HTTP response bodies; *in calls* = time with a DynamoDB call in flight.\n"
    )
    rows = []
    for m in maps:
        for what, samples in (
            ("cold load, freshly stored", m.cold),
            ("cold load, after the sets", m.cold_after),
            ("refresh, one key changed", m.refreshes),
            ("refresh, nothing changed", m.unchanged),
            ("read after max_age expiry, one key changed", m.expired),
        ):
            if not samples:
                continue
            t = [s.tally for s in samples]
            rows.append(
                [
                    size(m.target),
                    m.package,
                    what,
                    spread([x.calls for x in t]),
                    ops_per(merged(samples).ops, len(samples)),
                    spread([x.round_trips for x in t]),
                    spread([x.rcu for x in t]),
                    spread([x.item_bytes for x in t], size),
                    spread([x.received for x in t], size),
                    spread([s.seconds for s in samples], ms),
                    spread([x.call_seconds for x in t], ms),
                ]
            )
    headers = ["map (raw)", "package", "operation", "calls", "operations", "round trips", "RCU"]
    print(table([*headers, "item bytes", "received", "time", "in calls"], rows, left=3))
    print()
    billed = [c for m in METERS if m.sizer for c in m.calls if c.op == "TransactWriteItems" and not c.error]
    if billed:
        print(
            f"TransactWriteItems: {len(billed)} calls, {num(sum(c.units for c in billed))} WCU by DynamoDB's rules "
            f"(counted above), {num(sum(c.reported or 0 for c in billed))} WCU as DynamoDB Local reported them.\n"
        )
    else:
        print("No TransactWriteItems calls were made.\n")


def report_increments(rounds: list[list[IncrementRun]]) -> None:
    """One table per round; the READMEs show the median and range of each mode's share of plain ADD over them
    (tools/figures.py), since one round on a shared host varies from the next."""
    p, k = rounds[0][0].processes, rounds[0][0].count
    print(f"### Increments under contention: {p} processes x {k} on one map\n")
    print(
        f"Each process (a fresh interpreter with its own client) waits at a barrier, then increments `n` {k} times: "
        "*warm* = `increment('n')` on one map per process; *fresh* = a new `PersistentMap.open()` then "
        "`increment('n')`, every time, as a handler's local; *fresh, lazy* = the same with `open(lazy=True)` (no read"
        " before the increment, whose append returns the map); *plain ADD* = boto3 `UpdateItem ADD n :one` on one "
        "item, no library. Wall time from the barrier to the last process's end. *Distinct* = distinct values "
        "returned (every one must be); *ConflictError* = increments whose every attempt lost (retried by the "
        "benchmark); *conditional failures* = refused conditional writes the library redid. *vs plain ADD* = "
        "throughput / the mean of the two plain ADD runs right before and right after it (DynamoDB Local's JVM keeps "
        "getting faster for minutes, so a baseline measured apart from a run drifts; it is warmed up by discarded "
        "plain ADD and warm runs first).\n"
    )

    def neighbour(increments: list[IncrementRun], index: int, step: int) -> float | None:
        """The rate of the nearest plain ADD run of the same package before (step -1) or after (step 1)."""
        index += step
        while 0 <= index < len(increments) and increments[index].package == increments[index - step].package:
            if increments[index].mode == "add":
                return increments[index].rate
            index += step
        return None

    for number, increments in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f"Run {number} of {len(rounds)}:\n")
        rows = []
        for i, run in enumerate(increments):
            around = [rate for rate in (neighbour(increments, i, -1), neighbour(increments, i, 1)) if rate is not None]
            baseline = statistics.mean(around) if around else None
            failures = sum(n for code, n in run.errors.items() if code.startswith(("ConditionalCheck", "Transaction")))
            rows.append(
                [
                    run.package,
                    {"add": "plain ADD", "warm": "warm", "fresh": "fresh", "lazy": "fresh, lazy"}[run.mode],
                    f"{run.final} of {run.total}" + ("" if run.final == run.total else " **lost**"),
                    f"{run.distinct}" + ("" if run.distinct == run.total else " **duplicates**"),
                    run.conflict_errors,
                    failures,
                    ops_per(dict(run.ops), run.total),
                    ms(run.wall),
                    f"{run.rate:,.0f}",
                    "—" if run.mode == "add" or baseline is None else f"{run.rate / baseline:.0%}",
                ]
            )
        headers = ["package", "mode", "final", "distinct", "ConflictError", "conditional failures"]
        print(table([*headers, "calls per increment", "wall time", "increments/s", "vs plain ADD"], rows, left=2))
        print()


# -- main --------------------------------------------------------------------------------------------------------


def library_source() -> str:
    """Where the packages measured were imported from, and a fingerprint of their source: the working tree may
    be edited while this runs (point PYTHONPATH at an exported commit to measure that commit)."""
    import hashlib

    dirs = [Path(importlib.import_module(module).__file__ or "").parent for module in PACKAGES.values()]
    files = sorted(f for d in dirs for f in d.glob("*.py"))
    fingerprint = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    return f"{', '.join(str(d) for d in dirs)} ({len(files)} files, sha256 {fingerprint})"


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    factor = {"K": KB, "M": MB}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a run of a few minutes: {QUICK}")
    parser.add_argument("--sizes", help=f"map sizes, comma-separated, K/M suffixes (default: {FULL['sizes']})")
    parser.add_argument("--sets", type=int, help=f"single-key sets per map (default: {FULL['sets']})")
    parser.add_argument("--sets-per-size", default="", help="per-size overrides of --sets, e.g. 16M=20,64M=5")
    parser.add_argument("--batches", type=int, help="update() and batch() commits per map")
    parser.add_argument("--batch-keys", type=int, default=10, help="keys per update() / batch() (default: 10)")
    parser.add_argument("--refreshes", type=int, help="refresh() after another container's set, per map")
    parser.add_argument("--packages", default="core,lite", help="core, lite or both (default: core,lite)")
    parser.add_argument("--processes", type=int, default=8, help="concurrent processes incrementing (default: 8)")
    parser.add_argument("--increments", type=int, default=100, help="increments per process (default: 100)")
    parser.add_argument("--increment-runs", type=int, default=1, help="rounds of every increments mode (default: 1)")
    parser.add_argument("--parts", default="maps,increments", help="maps (writes, refreshes), increments")
    parser.add_argument("--no-1-0-0", action="store_true", help="skip 1.0.0 (which needs PyPI once for its venv)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the keys and values set (default: 7)")
    parser.add_argument("--no-local", action="store_true", help="skip: this benchmark needs DynamoDB Local")
    parser.add_argument("--worker-1-0-0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_1_0_0:
        quiet_library()
        print(json.dumps(worker_1_0_0(json.loads(args.worker_1_0_0))), flush=True)
        return
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    targets = [parse_size(s) for s in args.sizes.split(",")]
    overrides = {parse_size(k): int(v) for k, v in (o.split("=") for o in args.sets_per_size.split(",") if o)}
    sizes = [(t, overrides.get(t, args.sets)) for t in targets]
    labels = [s.strip() for s in args.packages.split(",")]
    parts = {s.strip() for s in args.parts.split(",")}
    quiet_library()

    if args.no_local:
        print("Skipped (`--no-local`): this benchmark runs on DynamoDB Local only.")
        return
    started, load, source = time.time(), os.getloadavg(), library_source()
    maps: list[MapRun] = []
    floors: dict[int, list[Sample]] = {}
    old: tuple[str, dict[int, Any]] | None = None
    rounds: list[list[IncrementRun]] = []
    with contextlib.ExitStack() as stack:
        try:
            endpoint = stack.enter_context(dynamodb_local())
        except ServerUnavailable as unavailable:
            print(f"Skipped: {unavailable}. moto's server does not bill by item size: nothing to measure there.")
            return
        progress(f"DynamoDB Local at {endpoint}")
        use_endpoint(endpoint)
        create_table(endpoint)
        sizer = make_client(endpoint)
        if "maps" in parts:
            for target, sets in sizes:
                progress(f"generating a {size(target)} JSON-like map")
                data = json_like(target)
                floors[target] = floor_run(endpoint, data, target, sets, args)
                for label in labels:
                    maps.append(measure_map(label, endpoint, sizer, data, target, sets, args))
                del data
            if not args.no_1_0_0:
                progress("1.0.0")
                old = run_1_0_0(endpoint, sizes, args)
        if "increments" in parts:
            # (discarded: DynamoDB Local's JVM compiles the paths of both kinds of call as they run; measured before
            # it has, the first runs are the slowest, whichever they are)
            progress(f"increments: warming DynamoDB Local up, {args.processes} x {args.increments} ADD and warm")
            for mode in ("add", "warm", "add"):
                increments_run(labels[0], mode, endpoint, args.processes, args.increments)
            for number in range(args.increment_runs):
                rounds.append([])
                for label in labels:
                    for mode in ("add", "warm", "add", "fresh", "add", "lazy", "add"):
                        progress(f"increments {number + 1}/{args.increment_runs}: {label}, {mode}")
                        rounds[-1].append(increments_run(label, mode, endpoint, args.processes, args.increments))

    command = shlex.join(["python", "tools/bench/writes.py", *sys.argv[1:]])
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("aws-lambda-persistence", "aws-lambda-persistence-lite", "boto3")
    )
    print(
        f"Produced by `{command}` (from the repository root) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, in {time.time() - started:.0f} s, on "
        f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {versions}, DynamoDB Local "
        f"on {java_version()}. Load average (1 min) {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
        "end. Sets per map size: " + ", ".join(f"{size(t)} {n}" for t, n in sizes) + f". Library: {source}.\n"
    )
    if library_source() != source:
        print(f"**Warning: the library's source changed during the run**: now {library_source()}.\n")
    if maps:
        report_writes(maps, floors, old, args.batch_keys)
        report_reads(maps, args.refreshes)
    if rounds:
        report_increments(rounds)


if __name__ == "__main__":
    main()
