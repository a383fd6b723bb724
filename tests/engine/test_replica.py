"""Format 3's protocols (``_replica.Replica``) against DynamoDB (moto in-process, also under ALP_TEST_BACKEND):
what every reader folds equals what the writers did, blind writes never conflict, and every write and refresh
costs what it changed."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from aws_lambda_persistence_lite._config import Settings
from aws_lambda_persistence_lite._dynamodb import Conflict, Table
from aws_lambda_persistence_lite._errors import CorruptDataError
from aws_lambda_persistence_lite._head import HEAD_BUDGET, Head, parse
from aws_lambda_persistence_lite._meter import item_size
from aws_lambda_persistence_lite._pickle import PickleCodec
from aws_lambda_persistence_lite._records import ADD, CLEAR, DEL, PARTITION, RUN, SET, Op
from aws_lambda_persistence_lite._replica import FLUSH_AHEAD, Replica
from aws_lambda_persistence_lite._room import RECORD_MIN_CHARGE

from tests.conftest import apply_ops, stored_item

pytestmark = pytest.mark.moto_only

CODEC = PickleCodec()


def replica(aws: Any) -> Replica:
    settings = Settings.resolve({})
    r = Replica(Table(aws, settings), settings, CODEC)
    r.load()
    return r


def setop(key: Any, value: Any) -> Op:
    return Op(SET, CODEC.encode_entry(key, value))


class TestReplica:
    def test_first_write_and_cold_load(self, aws: Any, table_key: str) -> None:
        """Nothing stored reads as empty; the first commit creates a head that a cold reader folds."""
        a = replica(aws)
        assert a.view.values == {} and a.head is None
        a.commit([setop("k", "v"), setop("n", 1)])
        b = replica(aws)
        assert b.view.values == {"k": "v", "n": 1}
        assert b.last_load.calls == 1  # a small map is its head: one GetItem

    def test_blind_writes_never_conflict(self, aws: Any, table_key: str) -> None:
        """Two containers writing on stale views both land; each refresh folds the other's change."""
        a, b = replica(aws), replica(aws)
        a.commit([setop("a", 1)])
        b.commit([setop("b", 2)])  # b never saw a's write
        assert b.view.values == {"a": 1, "b": 2}  # ALL_NEW brought a's record along
        assert a.refresh()
        assert a.view.values == {"a": 1, "b": 2}
        assert a.last_load.calls == 1 and a.last_load.capacity_units == 1
        assert not a.refresh()
        assert a.last_load.calls == 1 and a.last_load.capacity_units == 1

    def test_increments_interleaved_return_distinct_values(self, aws: Any, table_key: str) -> None:
        """Each writer computes its increment's result at its own record: distinct, and the total exact."""
        replicas = [replica(aws) for _ in range(3)]
        seen = []
        for i in range(30):
            (outcome,) = replicas[i % 3].commit([Op(ADD, CODEC.encode_entry("n", 1))])
            seen.append(outcome)
        assert sorted(seen) == list(range(1, 31))
        assert replica(aws).view.values == {"n": 30}

    def test_conditional_commit_on_a_stale_view_conflicts(self, aws: Any, table_key: str) -> None:
        """A commit computed on version v fails once the map moved on, and leaves the replica caught up."""
        a, b = replica(aws), replica(aws)
        a.commit([setop("q", [1, 2])])
        b.commit([setop("x", 1)])
        assert a.head is not None
        with pytest.raises(Conflict):
            a.commit([setop("q", [2])], expected=a.head.version)
        assert a.view.values == {"q": [1, 2], "x": 1}
        assert a.head is not None
        a.commit([setop("q", [2])], expected=a.head.version)
        assert replica(aws).view.values == {"q": [2], "x": 1}

    @pytest.mark.slow  # (30 s each on 2 cores: test-more runs it)
    @pytest.mark.parametrize("seed", [1, 2])
    def test_many_writers_fold_to_the_model(self, aws: Any, table_key: str, seed: int) -> None:
        """Hundreds of changes from three containers go through flushes, compactions and merges; a cold reader
        and every writer fold exactly what a dict given the same changes in commit order holds, in its order, and
        the head never outgrows its budget."""
        rng = random.Random(seed)
        writers = [replica(aws) for _ in range(3)]
        model: dict[Any, Any] = {}
        keys = [f"key-{i}" for i in range(120)]
        for step in range(700):
            w = writers[rng.randrange(3)]
            roll = rng.random()
            if roll < 0.75:
                ops = [setop(rng.choice(keys), "x" * rng.randrange(60, 140))]
            elif roll < 0.85:
                ops = [Op(DEL, CODEC.encode_entry(rng.choice(keys), None))]
            elif roll < 0.97:
                ops = [Op(ADD, CODEC.encode_entry(rng.choice(["c1", "c2"]), rng.randrange(1, 5)))]
            elif step > 600:
                ops = [Op(CLEAR)]
            else:
                ops = [setop(k, step) for k in rng.sample(keys, 5)]
            w.commit(ops)
            apply_ops(model, ops, CODEC)
            head = stored_item(aws, table_key)
            assert head is not None and item_size(head) <= HEAD_BUDGET
        reader = replica(aws)
        assert list(reader.view.values.items()) == list(model.items())
        for w in writers:
            w.refresh()
            assert list(w.view.values.items()) == list(model.items())
        assert reader.head is not None
        kinds = {s.kind for s in reader.head.table}
        assert PARTITION in kinds or RUN in kinds  # the log was flushed and maintained

    def test_a_large_map_is_partitioned_and_a_set_costs_little(self, aws: Any, table_key: str) -> None:
        """A map of ~1 MB arrives in large writes; later single-key sets cost a few write units each."""
        a = replica(aws)
        value = "v" * 1000
        for start in range(0, 1000, 100):
            a.commit([setop(f"k{i}", value + str(i)) for i in range(start, start + 100)])
        costs = []
        for i in range(200):
            a.commit([setop(f"k{i * 5 % 1000}", "changed" + str(i))])
            costs.append(a.last_commit.capacity_units)
        assert sum(costs) / len(costs) <= 6
        reader = replica(aws)
        assert reader.view.values == a.view.values
        assert len(reader.view.values) == 1000


def stored_head(aws: Any, r: Replica) -> Head:
    item = stored_item(aws, r.settings.table_key)
    assert item is not None
    return parse(item, r.settings)


def tiny(n: int) -> Op:
    return Op(ADD, CODEC.encode_entry("n", n))


class TestAppends:
    def test_a_pinned_append_returns_what_it_changed_only(self, aws: Any, table_key: str) -> None:
        """UPDATED_NEW: the log, alp_ver and alp_room come back, and the head the writer then holds is the stored
        one, through other containers' appends and flushes."""
        a, b = replica(aws), replica(aws)
        returned: list[set[str]] = []
        aws.meta.events.register(
            "after-call.dynamodb.UpdateItem", lambda parsed, **_: returned.append(set(parsed.get("Attributes", {})))
        )
        for i in range(80):  # (several flushes, by both)
            (a if i % 3 else b).commit([setop(f"k{i % 7}", "v" * 90 + str(i))])
            if i % 3:
                stored = stored_head(aws, a)
                assert a.head is not None and a.head._replace(stored_size=0) == stored._replace(stored_size=0)
                # (after a flush, its own size is estimated: within the 64 bytes the head's room keeps spare)
                assert abs(a.head.stored_size - stored.stored_size) <= 64
        assert {"alp_log", "alp_ver", "alp_room"} in returned
        assert all(r <= {"alp_log", "alp_ver", "alp_room"} for r in returned if r)

    def test_a_damaged_append_answer_is_refused_and_changes_nothing(self, aws: Any, table_key: str) -> None:
        a = replica(aws)
        a.commit([setop("a", 1)])
        a.commit([setop("b", 2)])
        before = (a.head, dict(a.view.values))
        call = a.table.call

        def damaging(usage: Any, operation: str, **arguments: Any) -> dict[str, Any]:
            response = call(usage, operation, **arguments)
            if operation == "update_item":
                response["Attributes"]["alp_log"]["L"][0] = {"S": "not a record"}
            return response

        a.table.call = damaging  # type: ignore[method-assign]  # (a fault, in this replica's table alone)
        with pytest.raises(CorruptDataError, match=r"alp_log\[0\]"):
            a.commit([setop("c", 3)])
        assert (a.head, a.view.values) == before

    def test_one_flush_empties_a_counters_log(self, aws: Any, table_key: str) -> None:
        """Each record takes at least 34 bytes of room: a log of a counter's records stays at most 117 long,
        and the flush that finds it full empties it."""
        a = replica(aws)
        lengths, rooms = [], []
        for _ in range(130):
            a.commit([tiny(1)])
            head = stored_head(aws, a)
            lengths.append(len(head.log))
            rooms.append(head.room)
        assert max(lengths) <= 4_000 // RECORD_MIN_CHARGE
        assert min(rooms) < RECORD_MIN_CHARGE  # (alone, it never flushes ahead: the log fills)
        flushed = [n for before, n in itertools.pairwise(lengths) if n < before]
        assert flushed and set(flushed) == {1}  # (the log emptied, then this commit's record appended)
        assert replica(aws).view.values == {"n": 130}

    def test_with_other_writers_the_append_crossing_the_mark_flushes_ahead(self, aws: Any, table_key: str) -> None:
        """Two containers alternating: the append that takes the room below FLUSH_AHEAD flushes right away, so
        no append ever finds the log full (none races another to flush)."""
        a, b = replica(aws), replica(aws)
        lowest, epochs = [], set()
        for i in range(200):
            (a if i % 2 else b).commit([tiny(1)])
            head = stored_head(aws, a)
            lowest.append(head.room)
            epochs.add(head.epoch)
        assert min(lowest) >= FLUSH_AHEAD and len(epochs) >= 3
        assert replica(aws).view.values == {"n": 200}

    def test_a_failed_flush_ahead_leaves_the_change_committed(self, aws: Any, table_key: str) -> None:
        """The flush ahead comes after the change is stored: its failure is not the change's (the next append
        that finds no room flushes instead)."""
        from botocore.exceptions import ClientError

        a, b = replica(aws), replica(aws)
        transact = a.table.transact
        failed: list[bool] = []

        def refused(*args: Any, **kwargs: Any) -> bool:
            if not failed:
                failed.append(True)
                raise ClientError({"Error": {"Code": "ThrottlingException"}}, "TransactWriteItems")
            return transact(*args, **kwargs)

        a.table.transact = refused  # type: ignore[method-assign]  # (a fault, in this replica's table alone)
        values = [(a if i % 2 else b).commit([tiny(1)])[0] for i in range(200)]
        assert failed and values == list(range(1, 201))
        assert replica(aws).view.values == {"n": 200}
