"""Interleavings and faults at the exact moment that matters, on format 3 (FORMAT.md): an append or a flush
applied whose response is lost while other containers commit on top, flushes that lose to another container's
flush or are cancelled, throttled transactions, concurrent increments across flushes, a refresh inside a batch,
atomic pop, read-modify-write that changes nothing, large writes, and the error codes DynamoDB uses for throttled
and contended calls. Each test fails on an engine that breaks the promise its docstring names."""

from __future__ import annotations

import random
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError

from tests.conftest import Backend, Calls
from tests.faults.injection import (
    ALWAYS,
    FORWARD,
    LOSE,
    SERVER_ERROR,
    TRANSACTION_CONFLICT,
    Faults,
    cancelled,
    error,
)

#: A value of ~1.2 KB: three fill the head's log (4,000 bytes), the fourth change flushes it.
FILLER = 1200


def text(seed: int, size: int = FILLER) -> str:
    return random.Random(seed).randbytes(size // 2).hex()


def two_containers(pkg: Any, initial: dict[str, Any]) -> tuple[Any, Any, Faults]:
    """Container A and container B on one map, and the faults of A's client (a client of its own)."""
    client = boto3.client("dynamodb")
    a = pkg.PersistentMap.open(initial, client=client)
    b = pkg.PersistentMap.open(client=boto3.client("dynamodb"))
    return a, b, Faults(client)


def stored(pkg: Any) -> dict[Any, Any]:
    """What every reader sees: a cold map with a client of its own."""
    return dict(pkg.PersistentMap.open(client=boto3.client("dynamodb")).to_dict())


def filler(prefix: str, i: int, size: int = FILLER) -> str:
    return text(sum(map(ord, prefix)) * 1000 + i, size)


def sets(data: Any, prefix: str, count: int) -> dict[str, str]:
    """``count`` sets of ~1.2 KB values (three fill the head's log: the fourth flushes it). Returns them."""
    values = {f"{prefix}{i}": filler(prefix, i) for i in range(count)}
    for key, value in values.items():
        data[key] = value
    return values


def record_size(data: Any, key: str, value: Any) -> int:
    """What appending a set of ``key`` takes from the head's ``alp_room`` (the record and its overhead)."""
    from aws_lambda_persistence_lite._records import SET, Op, encode_record
    from aws_lambda_persistence_lite._room import RECORD_OVERHEAD

    return len(encode_record(bytes(8), [Op(SET, data._codec.encode_entry(key, value))])) + RECORD_OVERHEAD


def fill_log(data: Any, prefix: str) -> dict[str, str]:
    """Sets that leave the head's log with room for no record at all (less than 20 bytes), so that the next
    change flushes it; sized from the head's ``alp_room`` as the writer last saw it. Returns them."""
    values: dict[str, str] = {}
    for i in range(20):
        head = data._replica.head
        room = head.room if head is not None else 4000
        if room < 20:
            return values
        key = f"{prefix}{i}"
        value = filler(prefix, i)
        if record_size(data, key, value) > room - 200:  # the last one: the largest value that still fits
            value = next(
                (v for n in range(FILLER, 0, -2) if record_size(data, key, v := filler(prefix, i, n)) <= room),
                "",
            )
        values[key] = data[key] = value
    raise AssertionError("the log never filled up")


class TestLostAppendResponse:
    """An append applied whose response is lost is retried by botocore; the retry fails ``NOT contains(alp_log,
    :record)``, so the change is recognised as this container's own and is applied once, whatever other containers
    committed in between."""

    def test_increment_is_applied_once(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b, faults = two_containers(pkg, {"n": 0})
        faults.on("UpdateItem", LOSE.meanwhile(lambda: b.increment("other")))
        assert a.increment("n") == 1
        assert faults.fired("UpdateItem") == ["lose"]
        assert faults.operations() == ["append", "append"]  # the lost one, and botocore's retry
        assert stored(pkg) == {"n": 1, "other": 1} == a.to_dict()

    def test_popped_job_is_the_one_removed(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A conditional append (mutate) applied and retried: the retry also fails the version condition, and the
        job is still popped once and returned."""
        a, b, faults = two_containers(pkg, {"queue": ["j1", "j2", "j3"]})
        faults.on("conditional append", LOSE.meanwhile(lambda: b.__setitem__("seen", True)))
        assert a.mutate(lambda d: d["queue"].pop(0)) == "j1"
        assert faults.fired("UpdateItem") == ["lose"]
        assert stored(pkg) == {"queue": ["j2", "j3"], "seen": True} == a.to_dict()
        assert a.mutate(lambda d: d["queue"].pop(0)) == "j2"

    @pytest.mark.parametrize(("records", "flushes"), [(4, 1), (7, 2)], ids=["one flush", "several flushes"])
    def test_recognised_after_the_record_was_flushed(
        self, aws: Any, pkg: Any, table_key: str, records: int, flushes: int
    ) -> None:
        """Other containers flush the log before the retry (once; or seven records, a flush every two or three):
        the record is in a run by then, and its id is still among the flushed ids the head remembers (FORMAT.md
        promises recognition for the 16 newest flushed records, whichever flushes wrote them)."""
        a, b, faults = two_containers(pkg, {"n": 0})
        calls = Calls.of(b._replica.table.client)
        written: dict[str, str] = {}
        faults.on("UpdateItem", LOSE.meanwhile(lambda: written.update(sets(b, "b", records))))
        assert a.increment("n") == 1
        assert faults.fired("UpdateItem") == ["lose"] and calls.count("TransactWriteItems") >= flushes
        assert stored(pkg) == {"n": 1, **written} == a.to_dict()
        assert a.increment("n") == 2

    def test_retry_refused_without_the_stored_item(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The retry fails with an error that carries no item (another container's transaction holding the head):
        one read of the head decides, and finds this record's id."""
        a, b, faults = two_containers(pkg, {"n": 0})
        faults.on("UpdateItem", LOSE.meanwhile(lambda: b.increment("other")))
        faults.on("UpdateItem", TRANSACTION_CONFLICT, nth=2)
        assert a.increment("n") == 1
        assert faults.fired("UpdateItem") == ["lose", "error:TransactionConflictException"]
        assert stored(pkg) == {"n": 1, "other": 1} == a.to_dict()

    def test_write_confirmed_after_botocore_gives_up(self, aws: Any, pkg: Any, table_key: str) -> None:
        """When the call fails after the append was applied (every response lost), one strongly consistent read
        of the head decides: the id is there, so the call succeeds, even with another commit on top."""
        a, b, faults = two_containers(pkg, {"n": 0})
        faults.on("UpdateItem", LOSE.meanwhile(lambda: b.__setitem__("other", 1)))
        faults.on("UpdateItem", LOSE, nth=2, times=ALWAYS)
        assert a.increment("n") == 1
        assert faults.fired("UpdateItem") == ["lose"] * faults.attempts
        assert stored(pkg) == {"n": 1, "other": 1} == a.to_dict()
        a["after"] = True
        assert stored(pkg) == {"n": 1, "other": 1, "after": True} == a.to_dict()

    def test_unknown_outcome_when_the_confirming_read_fails_too(self, aws: Any, pkg: Any, table_key: str) -> None:
        """When the confirming read fails too, the call's error is raised and nothing is undone: the applied
        increment stays stored (once), memory is unchanged, and the next call catches up."""
        a, _, faults = two_containers(pkg, {"n": 0})
        faults.on("UpdateItem", LOSE, times=ALWAYS)
        faults.on("GetItem", SERVER_ERROR, times=ALWAYS)
        with pytest.raises(ConnectionClosedError):
            a.increment("n")
        assert faults.fired("GetItem")
        assert a.to_dict() == {"n": 0}, "a failed call changed memory"
        assert stored(pkg) == {"n": 1}, "the applied increment was undone or applied twice"
        faults.reset()
        assert a.increment("n") == 2
        assert stored(pkg) == {"n": 2} == a.to_dict()


class TestLostTransactionResponse:
    """A transaction applied whose response is lost: DynamoDB answers the retry by its ClientRequestToken; where
    the token is ignored (moto), the retry fails its condition and the head says the commit was applied."""

    def test_flush_applied_then_retried(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A's flush is applied, B appends before A's retry: A appends its change once after the flush, and the
        increments each container made are all there, once."""
        a, b, faults = two_containers(pkg, {"n": 0})
        filled = fill_log(a, "a")
        faults.on("TransactWriteItems", LOSE.meanwhile(lambda: b.increment("n")))
        assert a.increment("n") == 2  # after B's increment, which landed between the flush and A's append
        assert faults.fired("TransactWriteItems") == ["lose"]
        assert stored(pkg) == {"n": 2, **filled} == a.to_dict()
        assert b.increment("n") == 3

    def test_large_write_applied_then_retried(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A large write (a record > 2 KB, its own run) applied, B appends before the retry: the retry is
        recognised by the record's id, and the record is stored once."""
        big = {f"u{i}": text(i, 100) for i in range(50)}
        a, b, faults = two_containers(pkg, {f"b{i}": text(-i, 100) for i in range(50)})  # a first large write
        faults.on("large write", LOSE.meanwhile(lambda: b.increment("n")))
        a.update(big)
        assert faults.fired("TransactWriteItems") == ["lose"]
        expected = {**{f"b{i}": text(-i, 100) for i in range(50)}, **big, "n": 1}
        assert stored(pkg) == expected == a.to_dict()
        assert a.increment("n") == 2


class TestFlushContention:
    """A writer whose flush is refused (another container flushed first, or holds the head) appends again: its
    change lands once, and nothing another container committed is lost."""

    def test_flush_loses_to_another_containers_flush(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b, faults = two_containers(pkg, {})
        filled = fill_log(a, "a")
        b.refresh()  # both see the full log
        # B finds the log full too: it flushes, then appends, just before A's flush reaches DynamoDB
        faults.on("TransactWriteItems", FORWARD.meanwhile(lambda: b.__setitem__("b", text(7))))
        calls = Calls.of(faults.client)
        assert a.increment("n") == 1
        assert faults.fired("TransactWriteItems") == ["forward"]
        assert calls.count("TransactWriteItems") == 1 and calls.count("UpdateItem") >= 2
        assert stored(pkg) == {**filled, "b": text(7), "n": 1} == a.to_dict()

    @pytest.mark.parametrize("how", ["cancellation reason", "exception"])
    def test_flush_refused_by_a_transaction_conflict(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, calls: Any, how: str
    ) -> None:
        data = pkg.PersistentMap()
        fill_log(data, "a")
        conflict = cancelled("TransactionConflict") if how == "cancellation reason" else TRANSACTION_CONFLICT
        faults.on("TransactWriteItems", conflict)
        calls.clear()
        assert data.increment("n") == 1
        assert calls.count("TransactWriteItems") == 2, calls.names  # refused, then flushed
        assert stored(pkg) == data.to_dict() and stored(pkg)["n"] == 1

    @pytest.mark.parametrize("reason", ["ThrottlingError", "ProvisionedThroughputExceeded"])
    def test_throttled_flush_is_retried(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, calls: Any, reason: str
    ) -> None:
        """DynamoDB cancels a transaction for throttling (on-demand, provisioned); botocore does not retry it, the
        library does."""
        data = pkg.PersistentMap()
        fill_log(data, "a")
        faults.on("TransactWriteItems", cancelled(reason))
        calls.clear()
        data["b"] = 1
        assert calls.count("TransactWriteItems") == 2
        assert stored(pkg) == data.to_dict() and stored(pkg)["b"] == 1

    def test_throttled_always_raises_with_nothing_changed(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        from botocore.exceptions import ClientError

        data = pkg.PersistentMap()
        fill_log(data, "a")
        before = data.to_dict()
        faults.on("TransactWriteItems", cancelled("ThrottlingError"), times=ALWAYS)
        with pytest.raises(ClientError, match="TransactionCanceled"):
            data["b"] = 1
        assert data.to_dict() == before == stored(pkg)
        faults.reset()
        data["b"] = 1
        assert stored(pkg) == {**before, "b": 1} == data.to_dict()


class TestConcurrentIncrements:
    """increment() from several containers is exact across flushes: every addition counted once, and each
    caller gets the value its own addition produced (all distinct)."""

    def test_interleaved_instances_across_flushes(self, aws: Any, pkg: Any, table_key: str, calls: Any) -> None:
        """Four maps in one process, taking turns, each on a stale copy; sets of large values between them
        fill the log, so that flushes (and their maintenance) happen between the increments."""
        maps = [pkg.PersistentMap() for _ in range(4)]
        values = []
        for i in range(120):
            m = maps[i % 4]
            values.append(m.increment("n"))
            if i % 5 == 0:
                m[f"s{i % 7}"] = text(i)
        assert calls.count("TransactWriteItems") >= 10
        assert sorted(values) == list(range(1, 121))
        for m in maps:
            m.refresh()
            assert m["n"] == 120 and m.to_dict() == stored(pkg)

    def test_segments_replaced_while_a_writer_catches_up(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A's append returns a head listing B's partition and run, which A lacks; before A reads them, B's next
        flush merges the partition anew and deletes both. A's change is committed: the call must succeed."""
        a, b, faults = two_containers(pkg, {"n": 0})
        sets(b, "b", 4)  # B's flush: a run and a partition A has not read
        # B's next flush merges the partition anew: the old one and the run are deleted
        faults.on("BatchGetItem", FORWARD.meanwhile(lambda: sets(b, "c", 4)))
        assert a.increment("n") == 1
        assert faults.fired("BatchGetItem") == ["forward"]
        assert stored(pkg) == a.to_dict() and a["n"] == 1

    @pytest.mark.parametrize(
        "backend", [pytest.param("moto-server", marks=pytest.mark.slow), "dynamodb-local"], indirect=True
    )
    def test_threads_across_flushes(self, backend: Backend, pkg: Any, table_key: str) -> None:
        """Four maps (each with a client of its own) incrementing at once from four threads, with flushes."""
        results: list[list[int]] = [[] for _ in range(4)]

        def worker(w: int) -> None:
            m = pkg.PersistentMap.open(client=backend.client(), max_attempts=60)
            for i in range(30):
                results[w].append(m.increment("n"))
                if i % 4 == 0:
                    m[f"w{w}"] = text(w * 100 + i)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        values = [v for r in results for v in r]
        assert sorted(values) == list(range(1, 121))
        assert all(r == sorted(r) for r in results), "a container saw its counter go backwards"
        final = pkg.PersistentMap.open(client=backend.client())
        assert final["n"] == 120


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

    def test_pop_across_a_flush(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A conditional append whose version moved on by another container's flush and append: computed again
        on the newest state, the key popped is removed once."""
        a, b = pkg.PersistentMap(queue=["j1", "j2"]), pkg.PersistentMap()
        sets(b, "b", 4)  # flushes
        assert a.mutate(lambda d: d["queue"].pop(0)) == "j1"
        assert stored(pkg)["queue"] == ["j2"] == a["queue"]

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


class TestLargeWrites:
    """Records too large for the log (update() of 50 keys with 100-byte values, > 2 KB) are written as a run of
    their own with the head update, in one transaction (FORMAT.md, commit 4). (Format 2's test of a map that
    shrinks to one item when its old shards exceed a transaction has no format-3 counterpart: no commit rewrites
    the whole map; its closest step is a large write and what later flushes do with it.)"""

    def test_large_write_after_appends_is_seen_by_every_reader(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The log's records keep their sequence numbers when a large write takes the next one (they move into a
        run in the same commit): no record is lost or folded twice."""
        data = pkg.PersistentMap(a=1)
        data["b"] = 2
        big = {f"u{i}": text(i, 100) for i in range(50)}
        data.update(big)
        assert stored(pkg) == {"a": 1, "b": 2, **big} == data.to_dict()

    def test_large_map_shrinks_and_grows_again(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A map made by a large write, cleared and written again across flushes and merges: every reader sees
        each state, and no segment the head does not list remains."""
        big = {f"u{i}": text(i, 100) for i in range(50)}
        data = pkg.PersistentMap(big)
        assert stored(pkg) == big
        data.clear()
        assert stored(pkg) == {} == data.to_dict()
        expected = sets(data, "c", 8)  # two flushes: the first merges (the cleared run is folded and dropped)
        assert stored(pkg) == expected == data.to_dict()


class TestErrorCodes:
    def test_large_write_throttled_on_a_provisioned_table_is_retried(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        data = pkg.PersistentMap({f"b{i}": text(-i, 100) for i in range(50)})
        faults.on("TransactWriteItems", cancelled("ProvisionedThroughputExceeded"))
        new = {f"u{i}": text(i, 100) for i in range(50)}
        data.update(new)
        assert stored(pkg) == data.to_dict() and all(stored(pkg)[k] == v for k, v in new.items())

    def test_append_during_another_containers_transaction_is_retried(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        data = pkg.PersistentMap(a=1)
        faults.on("UpdateItem", TRANSACTION_CONFLICT)
        assert data.increment("a") == 2
        assert stored(pkg) == {"a": 2}

    def test_invalid_credentials_are_not_a_missing_permission(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults
    ) -> None:
        faults.on("GetItem", error("UnrecognizedClientException", "The security token is invalid."))
        with pytest.raises(Exception, match="security token") as raised:
            pkg.PersistentMap()
        assert not isinstance(raised.value, pkg.MissingAWSIAMPermissions)
