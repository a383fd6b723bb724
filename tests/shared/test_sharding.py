"""Maps beyond 400 KB: sharded across items, committed atomically, never read torn."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import random
import time
from typing import Any

import pytest

from tests.conftest import TABLE, Backend, Calls, Faults, all_keys, enter_container, stored_item

KB = 1024
MB = 1024 * KB


@functools.cache
def json_like(size: int, seed: int = 0) -> dict[str, Any]:
    """Compressible, JSON-shaped data of about ``size`` bytes (as JSON). Cached: tests only read it."""
    rng = random.Random(seed)
    records, total = {}, 0
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


SIZES = [100 * KB, 400 * KB, 1 * MB, 4 * MB]
SHAPES = {"json": json_like, "random": incompressible}


def shard_keys(client: Any, table_key: str) -> set[str]:
    return {k for k in all_keys(client) if k.startswith(f"{table_key}#alp-shard#")}


class TestRoundTrips:
    @pytest.mark.parametrize("size", SIZES, ids=[f"{s // KB}KB" for s in SIZES])
    @pytest.mark.parametrize("shape", list(SHAPES))
    def test_cold_load(self, backend: Backend, pkg: Any, table_key: str, size: int, shape: str) -> None:
        """Any size round-trips through a cold load, on every backend."""
        value = SHAPES[shape](size)
        pkg.PersistentMap(value)
        assert pkg.PersistentMap().to_dict() == value

    @pytest.mark.slow
    @pytest.mark.parametrize("size", [16 * MB, 64 * MB], ids=["16MB", "64MB"])
    @pytest.mark.parametrize("shape", list(SHAPES))
    def test_cold_load_large(self, backend: Backend, pkg: Any, table_key: str, size: int, shape: str) -> None:
        value = SHAPES[shape](size)
        data = pkg.PersistentMap(value)
        loaded = pkg.PersistentMap()
        assert loaded.to_dict() == value
        assert loaded.last_load.items == data.last_commit.items
        del value


class TestLayout:
    def test_items_respect_dynamodb_item_limit(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Every item, head or shard, is under 400 KB counted DynamoDB's way (names + values, key included)."""
        from aws_lambda_persistence_lite._format import item_size
        from aws_lambda_persistence_lite._limits import DYNAMODB_ITEM_LIMIT, ITEM_BUDGET

        pkg.PersistentMap(incompressible(3 * MB))
        pages = aws.get_paginator("scan").paginate(TableName=TABLE)
        items = [item for page in pages for item in page["Items"] if item["key"]["S"].startswith(table_key)]
        assert len(items) == 1 + 8
        assert all(item_size(i) <= ITEM_BUDGET < DYNAMODB_ITEM_LIMIT for i in items)

    def test_head_describes_shards(self, aws: Any, pkg: Any, table_key: str) -> None:
        pkg.PersistentMap(incompressible(1 * MB))
        head = stored_item(aws, table_key)
        assert head is not None and "value" not in head
        assert len(head["alp_shards"]["L"]) == 3 == len(shard_keys(aws, table_key))
        assert all(k.startswith(f"{table_key}#alp-shard#{head['alp_gen']['S']}#") for k in shard_keys(aws, table_key))

    def test_small_map_needs_one_transaction(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Up to ~4 MB a commit is one TransactWriteItems: shards and head together."""
        data = pkg.PersistentMap(x=1)
        calls.clear()
        data.update(incompressible(3 * MB))
        assert calls.names == ["TransactWriteItems"]

    def test_huge_map_commits_in_steps(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Beyond one transaction: claim, shards by BatchWriteItem, flip the head, then delete the old."""
        data = pkg.PersistentMap(x=1)
        calls.clear()
        data.update(incompressible(6 * MB))
        assert calls.names[0] == "UpdateItem" and calls.names[-1] == "PutItem"
        assert set(calls.names[1:-1]) == {"BatchWriteItem"}
        assert pkg.PersistentMap()["blob"] == data["blob"]

    def test_shrinking_removes_shards(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap(incompressible(6 * MB))
        data["blob"] = os.urandom(1 * MB)
        assert len(shard_keys(aws, table_key)) == 3
        data["blob"] = b"small"
        assert shard_keys(aws, table_key) == set()
        assert pkg.PersistentMap().to_dict() == {"blob": b"small"}

    def test_refresh_rereads_shards_only_when_changed(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        data = pkg.PersistentMap(incompressible(1 * MB))
        calls.clear()
        data.refresh()
        assert calls.names == ["GetItem"]
        pkg.PersistentMap()["other"] = 1
        calls.clear()
        data.refresh()
        assert calls.names == ["GetItem", "BatchGetItem"] and data["other"] == 1

    def test_large_map_reads_in_few_calls(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """44 shards: as many per BatchGetItem as one 16 MB response holds (40), so 2 calls, no retries."""
        pkg.PersistentMap(incompressible(17 * MB))
        calls.clear()
        pkg.PersistentMap()
        assert calls.names == ["GetItem", "BatchGetItem", "BatchGetItem"]

    def test_usage_is_reported(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Bytes and capacity units of the last commit and load, by DynamoDB's rules (2 WCU/KB in a transaction)."""
        data = pkg.PersistentMap(incompressible(1 * MB))
        commit = data.last_commit
        assert commit.items == 4 and 1 * MB < commit.bytes < 1.1 * MB
        assert 2 * 1024 <= commit.capacity_units <= 2 * 1100
        load = pkg.PersistentMap().last_load
        assert load.calls == 2 and 256 <= load.capacity_units <= 280
        data["blob"] = b"small"  # deleting the 3 old shards in the transaction is billed by their size, doubled
        assert data.last_commit.capacity_units >= 3 * 2 * 390


class TestSizeGuards:
    """moto allows bigger transactions than DynamoDB: the planning rules are checked on their own."""

    def test_split_fits_item_budget(self, lite: Any) -> None:
        from aws_lambda_persistence_lite._config import Settings
        from aws_lambda_persistence_lite._format import item_size, shard_item, shard_key
        from aws_lambda_persistence_lite._limits import ITEM_BUDGET
        from aws_lambda_persistence_lite._store import Store

        settings = Settings.resolve({"table_key": "k" * 200})
        store = Store(None, settings)
        chunks = store._split(b"x" * (5 * MB))
        sizes = [
            item_size(shard_item(settings, shard_key(settings.table_key, "a" * 12, i), c)) for i, c in enumerate(chunks)
        ]
        assert max(sizes) <= ITEM_BUDGET and b"".join(chunks) == b"x" * (5 * MB)

    def test_transaction_limits(
        self, aws: Any, pkg: Any, table_key: str, calls: Calls, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A commit over 100 actions or 4 MB never goes into one TransactWriteItems."""
        from aws_lambda_persistence_lite import _store

        monkeypatch.setattr(_store, "TRANSACT_MAX_ACTIONS", 3)
        data = pkg.PersistentMap(x=1)
        calls.clear()
        data.update(incompressible(1 * MB))  # 3 shards + head = 4 actions > 3
        assert "TransactWriteItems" not in calls.names
        assert pkg.PersistentMap()["blob"] == data["blob"]


class TestCrashedCommits:
    """A commit killed after any of its steps leaves the old map intact; the next commit cleans up."""

    @pytest.mark.parametrize("step", range(1, 12))
    def test_fail_nth_call_of_large_commit(self, aws: Any, pkg: Any, table_key: str, faults: Faults, step: int) -> None:
        old = incompressible(5 * MB, seed=1)
        new = incompressible(5 * MB, seed=2)
        data = pkg.PersistentMap(old)
        faults.seen = 0
        faults.error(None, "ValidationException", nth=step, message="killed")
        try:
            data.update(new)
            failed = False
        except Exception:
            failed = True
        faults.plan.clear()
        loaded = pkg.PersistentMap().to_dict()
        assert loaded in (old, new), "a torn map was loaded"
        if failed:
            assert data.to_dict() == old  # memory did not move
        final = incompressible(2 * MB, seed=3)
        data.update(final)
        assert pkg.PersistentMap().to_dict() == final
        head = stored_item(aws, table_key)
        assert head is not None and "alp_garbage" not in head
        assert len(shard_keys(aws, table_key)) == len(head["alp_shards"]["L"]), "leftover shards"

    def test_failed_transaction(self, aws: Any, pkg: Any, table_key: str, faults: Faults) -> None:
        old = incompressible(1 * MB, seed=1)
        data = pkg.PersistentMap(old)
        faults.error("TransactWriteItems", "ValidationException")
        with pytest.raises(Exception, match="injected"):
            data.update(incompressible(2 * MB, seed=2))
        assert pkg.PersistentMap().to_dict() == old == data.to_dict()


def _version(version: int) -> dict[str, Any]:
    """Version ``version`` of the map: three shards whose contents follow from the version."""
    return {"version": version, "blob": random.Random(version).randbytes(900 * KB)}


def _container(package: str, endpoint: str, table_key: str, role: str, stop: Any, results: Any) -> None:
    """One container in its own process: the writer rewrites the map; a reader cold-loads it until stopped."""
    enter_container(endpoint, table_key)
    module = __import__(package)
    seen: list[int] = []
    try:
        if role == "writer":
            data = module.PersistentMap()
            for version in range(1, 11):
                data.update(_version(version))
            stop.set()
        else:
            deadline = time.monotonic() + 120
            while True:  # at least one load, even when the writer is done before this process is up
                loaded = module.PersistentMap().to_dict()
                if loaded != _version(loaded["version"]):
                    results.put((role, seen, f"torn map at version {loaded['version']}"))
                    return
                seen.append(loaded["version"])
                if stop.is_set() or time.monotonic() > deadline:
                    break
        results.put((role, seen, None))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put((role, seen, repr(exc)))


class TestTearFreeReads:
    @pytest.mark.slow
    @pytest.mark.parametrize("server", ["moto_server", "dynamodb_local"])
    def test_readers_never_see_a_mix(
        self, request: pytest.FixtureRequest, pkg: Any, table_key: str, server: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One process rewrites a multi-shard map while two others cold-load it: each load is one whole version."""
        endpoint = request.getfixturevalue(server)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        pkg.PersistentMap(_version(0))
        context = multiprocessing.get_context("spawn")
        stop, results = context.Event(), context.Queue()
        roles = ["reader-1", "reader-2", "writer"]
        processes = [
            context.Process(target=_container, args=(pkg.__name__, endpoint, table_key, role, stop, results))
            for role in roles
        ]
        for process in processes:
            process.start()
        reports = {role: (seen, error) for role, seen, error in (results.get(timeout=180) for _ in roles)}
        for process in processes:
            process.join(timeout=30)
        assert all(error is None for _, error in reports.values()), reports
        loads = [v for role, (seen, _) in reports.items() if role != "writer" for v in seen]
        assert len(loads) >= 2 and set(loads) <= set(range(11))
        assert pkg.PersistentMap().to_dict() == _version(10)
