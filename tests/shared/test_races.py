"""Interleavings and faults at the exact moment that matters: a response lost after DynamoDB applied the write
while another container commits on top, a refresh inside a batch, atomic pop, read-modify-write that changes
nothing, a large map shrinking to one item, and the error codes DynamoDB uses for throttled and contended
transactions. Each test fails on the engine as it was before the fix it guards."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.conftest import Faults


def retry_after_applied(client: Any, operation: str, meanwhile: Callable[[], None]) -> dict[str, bool]:
    """Make botocore retry the first successful ``operation`` as if its response had been lost (as after a read
    timeout): the write is applied, ``meanwhile`` runs (another container commits), then the retry is sent."""
    state = {"fired": False}

    def needs_retry(response: Any, operation: Any, **_: Any) -> int | None:
        if operation.name == operation_name and not state["fired"] and response and response[0].status_code == 200:
            state["fired"] = True
            meanwhile()
            return 0  # retry now
        return None

    operation_name = operation
    client.meta.events.register_first(f"needs-retry.dynamodb.{operation}", needs_retry)
    return state


def two_containers(pkg: Any, initial: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Container A (with a client of its own, to inject faults into) and container B, on one map."""
    client = boto3.client("dynamodb")
    a = pkg.PersistentMap.open(initial, client=client)
    b = pkg.PersistentMap.open(client=boto3.client("dynamodb"))
    return a, b, client


def stored(pkg: Any) -> dict[Any, Any]:
    return dict(pkg.PersistentMap.open(client=boto3.client("dynamodb")).to_dict())


class TestLostResponseWithCommitsOnTop:
    """The head remembers the ids of its last commits (alp_prev), so a writer whose retry fails its condition on
    a newer head still sees that its own commit was applied, and does not apply it a second time."""

    def test_increment_is_applied_once(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b, client = two_containers(pkg, {"n": 0})
        state = retry_after_applied(client, "PutItem", lambda: b.increment("other"))
        assert a.increment("n") == 1
        assert state["fired"]
        assert stored(pkg) == {"n": 1, "other": 1}

    def test_popped_job_is_the_one_removed(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b, client = two_containers(pkg, {"queue": ["j1", "j2", "j3"]})
        state = retry_after_applied(client, "PutItem", lambda: b.__setitem__("seen", True))
        assert a.mutate(lambda d: d["queue"].pop(0)) == "j1"
        assert state["fired"]
        assert stored(pkg)["queue"] == ["j2", "j3"]

    def test_retry_refused_without_the_stored_item(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The retry fails with an error that carries no item (here another container's transaction holding the
        head): one read of the head decides, and finds this commit in its history."""
        a, b, client = two_containers(pkg, {"n": 0})
        injector = Faults()
        client.meta.events.register_first("before-send.dynamodb", injector)

        def meanwhile() -> None:
            b.increment("other")
            injector.error("PutItem", "TransactionConflictException", message="ongoing transaction for the item")

        state = retry_after_applied(client, "PutItem", meanwhile)
        assert a.increment("n") == 1
        assert state["fired"] and injector.plan
        assert stored(pkg) == {"n": 1, "other": 1}

    def test_transaction_where_the_token_is_ignored(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Real DynamoDB answers a retried TransactWriteItems by its ClientRequestToken; moto ignores the token,
        so the history is what tells."""
        a, b, client = two_containers(pkg, {"blob": os.urandom(600_000), "n": 0})
        state = retry_after_applied(client, "TransactWriteItems", lambda: b.__setitem__("x", 1))
        a.increment("n")
        assert state["fired"]
        assert stored(pkg)["n"] == 1

    @pytest.mark.slow
    def test_large_map_flip(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The same on the head flip of a commit too large for one transaction."""
        a, b, client = two_containers(pkg, {**{f"k{i}": os.urandom(400_000) for i in range(12)}, "n": 0})
        state = retry_after_applied(client, "PutItem", lambda: b.__setitem__("x", 1))
        a.increment("n")
        assert state["fired"]
        assert stored(pkg)["n"] == 1

    def test_write_confirmed_after_botocore_gives_up(self, aws: Any, pkg: Any, table_key: str) -> None:
        """When every attempt's response is lost, one read of the head decides; a commit on top of ours since
        then no longer makes an applied write look failed."""
        a, b, client = two_containers(pkg, {"n": 0})
        fired = []

        def lose(model: Any, **_: Any) -> None:
            if not fired:
                fired.append(True)
                b["other"] = 1
                raise ConnectionResetError("response lost after the write was applied")

        client.meta.events.register("after-call.dynamodb.PutItem", lose)
        assert a.increment("n") == 1
        assert stored(pkg) == {"n": 1, "other": 1}
        a["after"] = True  # a's next write finds b's commit, reloads and keeps it
        assert stored(pkg) == {"n": 1, "other": 1, "after": True}

    def test_flip_retry_without_the_stored_item(self, aws: Any, pkg: Any, table_key: str) -> None:
        """An endpoint that returns no item with a failed condition: the writer reads the head before it deletes
        the shards it just wrote, which the applied flip made live."""
        client = boto3.client("dynamodb")
        a = pkg.PersistentMap.open({f"k{i}": os.urandom(400_000) for i in range(12)}, client=client)
        state = retry_after_applied(client, "PutItem", lambda: None)

        def strip_item(parsed: Any, model: Any, **_: Any) -> None:
            parsed.pop("Item", None)

        client.meta.events.register("after-call.dynamodb.PutItem", strip_item)
        a["n"] = 1
        assert state["fired"]
        assert stored(pkg)["n"] == 1  # every shard is still there


class TestBatch:
    def test_refresh_inside_a_batch_keeps_other_containers_writes(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(x=1), pkg.PersistentMap()
        b["y"] = 2
        with a.batch():
            a.refresh()
            assert a.to_dict() == {"x": 1, "y": 2}
            a["z"] = 3
            a.refresh()  # the block's own changes survive a refresh too
            assert a["z"] == 3
        assert stored(pkg) == {"x": 1, "y": 2, "z": 3} == a.to_dict()

    def test_refresh_inside_a_failed_batch(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(x=1), pkg.PersistentMap()
        b["y"] = 2

        def failing_block() -> None:
            with a.batch():
                a["z"] = 3
                a.refresh()
                raise RuntimeError("the block fails: nothing of it is written")

        with pytest.raises(RuntimeError):
            failing_block()
        assert a.to_dict() == {"x": 1, "y": 2}
        a["w"] = 4
        assert stored(pkg) == {"x": 1, "y": 2, "w": 4}

    def test_worker_threads_can_read_inside_a_batch(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Reads take no lock: a block may hand the map to worker threads (they see its uncommitted changes)."""
        from concurrent.futures import ThreadPoolExecutor

        data = pkg.PersistentMap(x=1)
        with data.batch(), ThreadPoolExecutor(2) as pool:
            data["x"] = 2
            assert pool.submit(data.get, "x").result(timeout=10) == 2
        assert stored(pkg) == {"x": 2}


class TestReadModifyWrite:
    def test_pop_returns_what_it_removed(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(token="old", keep=1), pkg.PersistentMap()
        b["token"] = "new"
        assert a.pop("token") == "new"
        assert stored(pkg) == {"keep": 1}
        assert a.pop("token", "gone") == "gone"
        with pytest.raises(KeyError):
            a.pop("token")

    def test_pop_of_a_key_only_the_stored_map_has(self, aws: Any, pkg: Any, table_key: str, calls: Any) -> None:
        a, b = pkg.PersistentMap(keep=1), pkg.PersistentMap()
        b["job"] = "j1"
        assert a.pop("job", None) == "j1"
        assert stored(pkg) == {"keep": 1}
        calls.clear()
        assert a.pop("job", None) is None  # missing here and there: one read confirms it
        assert calls.names == ["GetItem"]

    def test_popitem_on_an_empty_copy_of_a_filled_map(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(), pkg.PersistentMap()
        b["job"] = "j1"
        assert a.popitem() == ("job", "j1")
        with pytest.raises(KeyError):
            a.popitem()
        assert stored(pkg) == {}

    def test_popitem_takes_the_newest_entry_of_the_stored_map(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(first=1), pkg.PersistentMap()
        b["second"] = 2
        assert a.popitem() == ("second", 2)
        assert stored(pkg) == {"first": 1}

    def test_mutate_that_changes_nothing_decides_on_the_stored_state(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A compare-and-set whose stale view says 'already mine' must not report success without checking."""
        a, b = pkg.PersistentMap(holder="A"), pkg.PersistentMap()
        b["holder"] = "B"  # the lease moved on

        def take(d: dict[str, Any]) -> bool:
            if d.get("holder") in (None, "A"):
                d["holder"] = "A"
                return True
            return False

        assert a.mutate(take) is False
        assert a["holder"] == "B" and stored(pkg) == {"holder": "B"}

    def test_mutate_that_changes_nothing_on_a_fresh_map_costs_one_read(
        self, aws: Any, pkg: Any, table_key: str, calls: Any
    ) -> None:
        data = pkg.PersistentMap(n=1)
        calls.clear()
        assert data.mutate(lambda d: d["n"]) == 1
        assert calls.names == ["GetItem"]


class TestLargeMapShrinks:
    def test_to_one_item_when_the_old_shards_exceed_a_transaction(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An inline head that must delete more old shards than one transaction holds commits in steps with no
        new generation (the limit is lowered to 3 actions here; 100 on DynamoDB, i.e. a map of ~40 MB)."""
        from aws_lambda_persistence_lite import _store

        data = pkg.PersistentMap({"a": os.urandom(1_000_000)})
        monkeypatch.setattr(_store, "TRANSACT_MAX_ACTIONS", 3)
        data["a"] = b"small"
        assert stored(pkg) == {"a": b"small"}
        data.clear()
        assert stored(pkg) == {}


class TestErrorCodes:
    def test_transaction_throttled_on_a_provisioned_table_is_retried(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        data = pkg.PersistentMap({"blob": os.urandom(600_000)})
        faults.cancelled_transaction("ProvisionedThroughputExceeded")
        new = os.urandom(600_000)
        data["blob"] = new
        assert stored(pkg)["blob"] == new

    def test_put_during_another_containers_transaction_is_a_conflict(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        data = pkg.PersistentMap(a=1)
        faults.error("PutItem", "TransactionConflictException", message="ongoing transaction for the item")
        data["a"] = 2
        assert stored(pkg) == {"a": 2}

    def test_invalid_credentials_are_not_a_missing_permission(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        faults.error("GetItem", "UnrecognizedClientException", message="The security token is invalid.")
        with pytest.raises(Exception, match="security token") as raised:
            pkg.PersistentMap()
        assert not isinstance(raised.value, pkg.MissingAWSIAMPermissions)
