"""Maps beyond one item (format 3): segments sharded across items, cold loads, the head's bound, the cost of a
write on a large map, and reads that never see a torn map."""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_persistence_lite._records import MANIFEST, PARTITION, decode_table, encode_table

from tests.conftest import Calls, all_keys, enter_container, stored_item

KB = 1024
MB = 1024 * KB
#: FORMAT.md: the head never exceeds 4,000 bytes; no commit of a single-key change exceeds 900 WCU (1,000 here).
HEAD_BUDGET = 4_000
COMMIT_WCU_MAX = 1_000


@functools.cache
def json_like(size: int, seed: int = 0) -> dict[str, Any]:
    """Compressible, JSON-shaped data of about ``size`` bytes (as JSON). Cached: tests only read it."""
    rng = random.Random(seed)
    records: dict[str, Any] = {}
    total = 0
    while total < size:
        record = {
            "id": rng.randrange(10**9),
            "name": f"user-{rng.randrange(10**6)}",
            "active": rng.random() > 0.5,
            "score": round(rng.random() * 100, 3),
            "tags": [rng.choice("abcdefgh") * 3 for _ in range(4)],
        }
        records[f"r{len(records)}"] = record
        total += len(json.dumps(record)) + 10
    return records


def incompressible(size: int, seed: int = 0) -> dict[str, Any]:
    return {"blob": random.Random(seed).randbytes(size)}


def chunks(data: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``data`` in ``count`` dicts of consecutive keys (insertion order kept across them)."""
    items = list(data.items())
    step = -(-len(items) // count)
    return [dict(items[i : i + step]) for i in range(0, len(items), step)]


SIZES = [100 * KB, 400 * KB, 1 * MB, 3 * MB]
SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {"json": json_like, "random": incompressible}


def segment_keys(client: Any, table_key: str) -> set[str]:
    return {k for k in all_keys(client) if k.startswith(f"{table_key}#alp#")}


def head_size(client: Any, table_key: str) -> int:
    from aws_lambda_persistence_lite._meter import item_size

    head = stored_item(client, table_key)
    assert head is not None
    return item_size(head)


@pytest.fixture
def local(dynamodb_local: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """DynamoDB Local, which enforces the transaction limits (4 MB, 100 actions) that moto does not."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local)
    return boto3.client("dynamodb", endpoint_url=dynamodb_local)


@pytest.fixture
def sized(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The backend of a size test: DynamoDB Local (``local``), the one that enforces the limits large maps approach
    (400 KB items, 4 MB and 100 items per transaction); moto in-process where it is not installed. The backend adds
    nothing else to a size test (tests/engine/test_races.py and the DynamoDB suite's passes compare backends)."""
    try:
        client = request.getfixturevalue("local")
    except pytest.skip.Exception:
        client = None
    if client is not None:
        yield client
        return
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("dynamodb")


def single_key_changes(data: Any, keys: list[str], count: int, *, size: int = 100, seed: int = 0) -> None:
    """``count`` single-key writes of values about ``size`` bytes: sets of existing and new keys, deletes and
    increments, each one commit."""
    rng = random.Random(seed)
    for i in range(count):
        choice = rng.random()
        if choice < 0.5:
            data[rng.choice(keys)] = {"i": i, "pad": "v" * size}
        elif choice < 0.7:
            data[f"new-{i}"] = "n" * size
        elif choice < 0.85:
            data.pop(rng.choice(keys), None)
        else:
            data.increment("counter")


class TestRoundTrips:
    @pytest.mark.parametrize("size", SIZES, ids=[f"{s // KB}KB" for s in SIZES])
    @pytest.mark.parametrize("shape", list(SHAPES))
    def test_cold_load(self, sized: Any, pkg: Any, table_key: str, size: int, shape: str) -> None:
        """Any size up to one transaction round-trips through a cold load."""
        value = SHAPES[shape](size)
        pkg.PersistentMap(value)
        assert pkg.PersistentMap().to_dict() == value

    @pytest.mark.slow
    def test_cold_load_16mb(self, sized: Any, pkg: Any, table_key: str) -> None:
        """16 MB of JSON-like data (~3.3 MB compressed): one transaction, read back in two round trips."""
        value = json_like(16 * MB)
        data = pkg.PersistentMap(value)
        loaded = pkg.PersistentMap()
        assert loaded.to_dict() == value
        assert loaded.last_load.calls == 2 and loaded.last_load.items == data.last_commit.items

    @pytest.mark.slow
    def test_cold_load_64mb(self, local: Any, pkg: Any, table_key: str) -> None:
        """64 MB of JSON-like data, built by four update() calls of 16 MB (each under 4 MB compressed: one
        transaction each), on DynamoDB Local (the backend adds nothing to a size test)."""
        value = json_like(64 * MB)
        first, *rest = chunks(value, 4)
        data = pkg.PersistentMap(first)
        for part in rest:
            data.update(part)
            assert data.last_commit.calls == 1
        assert head_size(local, table_key) <= HEAD_BUDGET
        loaded = pkg.PersistentMap()
        assert loaded.to_dict() == value
        assert list(loaded) == list(value)  # insertion order across the four runs

    def test_value_larger_than_an_item(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A 1 MB value (3 shards) as the map's first write: its partition, split from x's (1 shard)."""
        blob = os.urandom(1 * MB)
        pkg.PersistentMap(blob=blob, x=1)
        assert len(segment_keys(aws, table_key)) == 4
        assert pkg.PersistentMap().to_dict() == {"blob": blob, "x": 1}

    def test_value_larger_than_an_item_after_small_writes(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A large write onto a map whose log holds records: the record numbers stay exact for a cold reader."""
        data = pkg.PersistentMap(x=1)
        data["blob"] = os.urandom(1 * MB)
        data["y"] = 2
        assert pkg.PersistentMap().to_dict() == data.to_dict() == {"x": 1, "blob": data["blob"], "y": 2}


class TestOverOneTransaction:
    """A change whose compressed run exceeds one TransactWriteItems (4 MB or 100 items). DynamoDB Local enforces
    both limits (moto accepts larger transactions)."""

    def test_change_is_written_in_steps(self, local: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """On an existing head: claim in alp_garbage (UpdateItem), BatchWriteItem the shards, then the head update
        that names the run and drops the claim."""
        data = pkg.PersistentMap(x=1)
        value = incompressible(6 * MB)
        calls.clear()
        data.update(value)
        assert calls.names[0] == "UpdateItem" and "BatchWriteItem" in calls.names, calls.names
        assert "TransactWriteItems" not in calls.names[: calls.names.index("BatchWriteItem")]
        head = stored_item(local, table_key)
        assert head is not None and "alp_garbage" not in head
        assert pkg.PersistentMap().to_dict() == {"x": 1, **value}

    def test_first_write_over_one_transaction(self, local: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A first write whose partitions exceed one transaction: an empty head first (PutItem), then a large write
        in steps; nothing is left to merge (every segment is a partition at watermark 1) or to collect."""
        value = incompressible(6 * MB)
        calls.clear()
        pkg.PersistentMap(value)
        assert "TransactWriteItems" not in calls.names, calls.names
        assert calls.names.index("PutItem") < calls.names.index("BatchWriteItem"), calls.names
        head = stored_item(local, table_key)
        assert head is not None and "alp_garbage" not in head and head["alp_ver"] == {"N": "1"}
        segments = decode_table(head["alp_seg"]["B"])
        assert segments and all(s.kind == PARTITION and s.c == 1 for s in segments)
        assert pkg.PersistentMap().to_dict() == value


class TestHead:
    def test_head_stays_under_budget(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Whatever the writes (tiny, up to nearly the log's record limit), with flushes and partition merges, the
        head never exceeds 4,000 bytes."""
        data = pkg.PersistentMap(json_like(200 * KB))
        rng = random.Random(1)
        for i in range(120):
            size = rng.choice([1, 50, 500, 1_000, 1_900])
            data[f"k{rng.randrange(40)}"] = "x" * size
            assert head_size(aws, table_key) <= HEAD_BUDGET, (i, size)
        assert pkg.PersistentMap().to_dict() == data.to_dict()

    @pytest.mark.slow  # (TestManifest checks the same, faster; this one is the stress case)
    def test_many_partitions_keep_the_map_writable(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from aws_lambda_persistence_lite import _maintenance

        monkeypatch.setattr(_maintenance, "PARTITION_MAX", 3_000)  # many partitions out of a small map
        value = json_like(1 * MB)
        data = pkg.PersistentMap(value)
        rng = random.Random(0)
        for i in range(150):
            data[f"r{rng.randrange(len(value))}"] = "v" * 1_500 + str(i)  # a flush (and a merge) every 2 sets
            assert head_size(aws, table_key) <= HEAD_BUDGET
        assert pkg.PersistentMap().to_dict() == data.to_dict()


def small_partitions(monkeypatch: pytest.MonkeyPatch, table_max: int = 200) -> None:
    """Many partitions out of a small map, and a low cap on the head's segment list: a table in a manifest."""
    from aws_lambda_persistence_lite import _maintenance, _room

    monkeypatch.setattr(_maintenance, "PARTITION_MAX", 3_000)
    monkeypatch.setattr(_room, "TABLE_MAX", table_max)  # (the one cap of the head's list, for every commit)


def listed(client: Any, table_key: str) -> list[Any]:
    head = stored_item(client, table_key)
    assert head is not None
    return decode_table(head["alp_seg"]["B"]) if "alp_seg" in head else []


def live_keys(pkg: Any, table_key: str) -> set[str]:
    """Shard keys a cold reader's head refers to: its manifest and every segment (the map's whole storage, besides
    shards ``alp_garbage`` lists for a later flush to delete)."""
    from aws_lambda_persistence_lite._state import segment_key

    head = pkg.PersistentMap()._replica.head
    segments = {s.sid: s for s in (*head.listed, *head.table)}.values()
    garbage = {entry.split(":")[0] for entry in head.garbage}
    return {segment_key(table_key, s.sid, i) for s in segments for i in range(s.shards) if s.sid not in garbage}


class TestColdLoadCalls:
    def test_many_shards_are_read_in_one_batch_call(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
    ) -> None:
        """A map of more than 40 small segments (a 16 MB map's, once its runs are counted): the cold load asks
        for every shard in one BatchGetItem, packed by the sizes the table gives (not 40 keys at a time, which
        assumed every shard full): two round trips."""
        small_partitions(monkeypatch, table_max=100_000)
        value = json_like(600 * KB)
        pkg.PersistentMap(value)
        assert 40 < len(listed(aws, table_key)) <= 100
        calls.clear()
        assert pkg.PersistentMap().to_dict() == value
        assert calls.names == ["GetItem", "BatchGetItem"]


class TestManifest:
    """FORMAT.md, "Manifest": a table too large for the head lives in a segment of its own."""

    def test_table_moves_into_a_manifest_and_stays_exact(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
    ) -> None:
        """A first write of many partitions puts a manifest; flushes with merges keep the head's list under its cap
        and replace the manifest as needed; a cold reader reads head, manifest, segments (three round trips), sees
        the writer's map, and no stored item is left that nothing refers to."""
        small_partitions(monkeypatch)
        value = json_like(200 * KB)
        data = pkg.PersistentMap(value)
        assert [chr(s.kind) for s in listed(aws, table_key)] == ["M"]
        manifests = set()
        rng = random.Random(0)
        for i in range(80):
            data[f"r{rng.randrange(len(value))}"] = "v" * 300 + str(i)  # a flush (and a merge) every few sets
            segments = listed(aws, table_key)
            assert len(encode_table(segments)) <= 200 and head_size(aws, table_key) <= HEAD_BUDGET
            manifests |= {s.sid for s in segments if s.kind == MANIFEST}
        assert len(manifests) > 2  # (merges replaced the manifest)
        calls.clear()
        loaded = pkg.PersistentMap()
        assert calls.names == ["GetItem", "BatchGetItem", "BatchGetItem"]
        assert loaded.to_dict() == data.to_dict() and list(loaded) == list(data)
        assert segment_keys(aws, table_key) - live_keys(pkg, table_key) == set()

    def test_large_writes_make_room_in_the_head_list(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each large write adds a run to the head's list; when it would not fit, a flush first lays the table
        out (into a manifest), so the list never outgrows its cap by more than the write's own runs."""
        small_partitions(monkeypatch, table_max=300)
        data = pkg.PersistentMap(json_like(100 * KB))
        for i in range(12):
            data.update({f"big{i}": random.Random(i).randbytes(3_000).hex()})  # a record over 2,000 bytes
            assert len(encode_table(listed(aws, table_key))) <= 300 + 2 * 40
        assert any(s.kind == MANIFEST for s in listed(aws, table_key))
        assert pkg.PersistentMap().to_dict() == data.to_dict()
        assert segment_keys(aws, table_key) - live_keys(pkg, table_key) == set()

    def test_warm_refresh_reads_the_new_manifest(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
    ) -> None:
        """A warm container catches up on another's flushes (a new manifest among them) and has its map exactly;
        with one more change appended, its refresh is one GetItem again."""
        small_partitions(monkeypatch)
        value = json_like(200 * KB)
        warm, other = pkg.PersistentMap(value), pkg.PersistentMap()
        for i in range(30):
            other[f"r{i * 7}"] = "w" * 300 + str(i)
        warm.refresh()
        assert warm.to_dict() == other.to_dict() and list(warm) == list(other)
        for attempt in range(3):  # (a change that finds the log full flushes it: then one more)
            epoch = other._replica.head.epoch
            other["r1"] = f"one more {attempt}"
            if other._replica.head.epoch == epoch:
                break
            warm.refresh()
        calls.clear()
        warm.refresh()
        assert calls.names == ["GetItem"] and warm["r1"] == other["r1"]

    def test_rewriting_a_map_deletes_its_manifest_and_segments(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Replacing a map whole (the command line's migrate) deletes the old manifest and what it lists."""
        from aws_lambda_persistence_lite._config import Settings
        from aws_lambda_persistence_lite._stored import replace_map

        small_partitions(monkeypatch)
        data = pkg.PersistentMap(json_like(200 * KB))
        codec, head = data._replica.codec, data._replica.head
        entries = [codec.encode_entry(k, v) for k, v in data.items()]
        assert replace_map(aws, Settings.resolve({}), codec, head, entries) is not None
        assert segment_keys(aws, table_key) == live_keys(pkg, table_key)
        assert pkg.PersistentMap().to_dict() == data.to_dict()


class TestLargeMapWrites:
    @pytest.mark.slow
    def test_single_key_sets_then_cold_load(self, aws: Any, pkg: Any, table_key: str) -> None:
        """After 300 single-key writes on a 16 MB map (log flushes, partition merges), a cold reader sees
        exactly the writer's map, in the same order."""
        value = json_like(16 * MB)
        data = pkg.PersistentMap(value)
        single_key_changes(data, list(value)[:1000], 300)
        loaded = pkg.PersistentMap()
        assert loaded.to_dict() == data.to_dict() and list(loaded) == list(data)
        assert head_size(aws, table_key) <= HEAD_BUDGET

    @pytest.mark.slow
    def test_set_on_a_warm_large_map_costs_what_it_changes(self, local: Any, pkg: Any, table_key: str) -> None:
        """A single-key set on a warm 16 MB map is one append (at most 4 WCU); the set that meets a full log
        also flushes it with one maintenance step, bounded too. Not the map's size (~3.3 MB: ~6,400 WCU). On
        DynamoDB Local: moto's in-process TransactWriteItems hits a RecursionError on the first write's
        transaction of 16 partitions (a moto limit, not DynamoDB's)."""
        value = json_like(16 * MB)
        data = pkg.PersistentMap(value)
        costs = []
        for i in range(150):
            data[f"r{i}"] = {"i": i}
            costs.append(data.last_commit.capacity_units)
        appends = [c for c in costs if c <= 4]
        assert len(appends) >= 140
        assert max(costs) <= COMMIT_WCU_MAX
        assert sum(costs) / len(costs) <= 10

    def test_refresh_after_one_change_is_one_getitem(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Another container changed one key of a 4 MB map: a warm container's refresh reads the head only."""
        value = json_like(4 * MB)
        data = pkg.PersistentMap(value)
        other = pkg.PersistentMap()
        other["r7"] = "changed"
        calls.clear()
        data.refresh()
        assert calls.names == ["GetItem"]
        assert data.last_load.calls == 1 and data.last_load.capacity_units <= 1
        assert data["r7"] == "changed" and data.to_dict() == other.to_dict()

    def test_no_single_key_commit_over_1000_wcu(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A 4 MB update() onto a stored map is a large write (a run); the single-key sets after it merge it into
        the partitions and then delete it, and no set's commit costs over 1,000 WCU on the way."""
        value = json_like(4 * MB)
        data = pkg.PersistentMap(seed=1)
        data.update(value)
        rng = random.Random(0)
        costs = []
        for i in range(40):  # values of 1.5 KB: a flush every 2 sets, until the update's run is absorbed
            data[f"r{rng.randrange(len(value))}"] = "v" * 1_500 + str(i)
            costs.append(data.last_commit.capacity_units)
        assert max(costs) <= COMMIT_WCU_MAX, sorted(costs)[-3:]


def _state(data: dict[str, Any]) -> str:
    """A digest of a whole map, order included (repr: canonical for these JSON-like values, unlike a pickle,
    which depends on which equal objects are shared)."""
    return hashlib.sha256(repr(list(data.items())).encode()).hexdigest()


def _initial() -> dict[str, Any]:
    return dict(json_like(1 * MB, seed=3))


def _writer_step(data: Any, rng: random.Random, step: int) -> None:
    """One commit: a set (about 1.5 KB: the log is full every 2 or 3, so flushes and partition merges happen
    all along), a delete, an increment or a small update()."""
    choice = rng.random()
    keys = list(data)
    if choice < 0.55:
        data[rng.choice(keys)] = {"step": step, "pad": "p" * rng.randrange(100, 1_500)}
    elif choice < 0.7:
        data.pop(rng.choice(keys), None)
    elif choice < 0.85:
        data.increment("counter")
    else:
        data.update({f"u{step}-{j}": step for j in range(5)})


def _container(package: str, endpoint: str, table_key: str, role: str, stop: Any, results: Any) -> None:
    """One container in its own process: the writer changes the map one commit at a time and records the
    digest of each state it committed; a reader cold-loads the map until stopped and records what it saw."""
    enter_container(endpoint, table_key)
    module = __import__(package)
    seen: list[str] = []
    try:
        if role == "writer":
            data = module.PersistentMap()
            rng = random.Random(7)
            for step in range(80):
                _writer_step(data, rng, step)
                seen.append(_state(data.to_dict()))
            stop.set()
        else:
            deadline = time.monotonic() + 240
            while True:  # at least one load, even when the writer is done before this process is up
                seen.append(_state(module.PersistentMap().to_dict()))
                if stop.is_set() or time.monotonic() > deadline:
                    break
        results.put((role, seen, None))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put((role, seen, repr(exc)))


class TestTearFreeReads:
    @pytest.mark.slow
    @pytest.mark.parametrize("server", ["moto_server", "dynamodb_local"])
    @pytest.mark.parametrize("pkg", ["lite"], indirect=True)  # (the engine's reads, as in test_concurrency.py)
    def test_readers_never_see_a_mix(
        self, request: pytest.FixtureRequest, pkg: Any, table_key: str, server: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One process appends, flushes and merges partitions while two others cold-load the map (segments
        replaced under their reads): every load is a state the writer committed."""
        endpoint = request.getfixturevalue(server)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        initial = pkg.PersistentMap(_initial())
        context = multiprocessing.get_context("spawn")
        stop, results = context.Event(), context.Queue()
        roles = ["reader-1", "reader-2", "writer"]
        processes = [
            context.Process(target=_container, args=(pkg.__name__, endpoint, table_key, role, stop, results))
            for role in roles
        ]
        for process in processes:
            process.start()
        reports = {role: (seen, error) for role, seen, error in (results.get(timeout=300) for _ in roles)}
        for process in processes:
            process.join(timeout=30)
        assert all(error is None for _, error in reports.values()), reports
        committed = {_state(initial.to_dict()), *reports["writer"][0]}
        loads = [state for role, (seen, _) in reports.items() if role != "writer" for state in seen]
        assert len(loads) >= 2
        assert [s for s in loads if s not in committed] == [], "a load saw a state the writer never committed"
        assert _state(pkg.PersistentMap().to_dict()) == reports["writer"][0][-1]
