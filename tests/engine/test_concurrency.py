"""No lost updates: containers (processes) writing one map at once, on moto's server and DynamoDB Local."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import uuid
from typing import Any

import boto3
import pytest

from tests.conftest import Calls, create_table, enter_container
from tests.faults.injection import Faults, cancelled

WORKERS, ROUNDS = 4, 50


def _worker(package: str, endpoint: str, table_key: str, kind: str, worker: int, results: Any) -> None:
    """One container: its own process, client and map, doing ROUNDS writes as fast as it can."""
    enter_container(endpoint, table_key, max_attempts="60")
    module = __import__(package)
    data = module.PersistentMap()
    values = []
    for i in range(ROUNDS):
        if kind == "increment":
            values.append(data.increment("n"))
        elif kind == "mutate":

            def add(d: dict[str, Any]) -> int:
                d["n"] = d.get("n", 0) + 1
                return int(d["n"])

            values.append(data.mutate(add))
        else:
            data[f"w{worker}-{i}"] = i
    results.put(values)


def run_workers(pkg: Any, endpoint: str, table_key: str, kind: str) -> list[int]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(pkg.__name__, endpoint, table_key, kind, w, results))
        for w in range(WORKERS)
    ]
    for p in processes:
        p.start()
    values = [v for _ in processes for v in results.get(timeout=240)]
    for p in processes:
        p.join(timeout=30)
        assert p.exitcode == 0
    return values


@pytest.fixture(params=["moto-server", "dynamodb-local"])
def endpoint(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("moto_server" if request.param == "moto-server" else "dynamodb_local")
    return url


@pytest.fixture
def shared(endpoint: str, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The map the workers share, created (with its table) before they start."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    return pkg.PersistentMap(seed=True)


def race_conditional_puts(endpoint: str, rounds: int = 100, writers: int = 4) -> list[int]:
    """Rounds in which other than exactly one of ``writers`` concurrent PutItems conditional on the same version
    succeeded. DynamoDB guarantees exactly one; the tests below are only meaningful on a server that does too."""
    table = f"race-{uuid.uuid4().hex[:8]}"
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    create_table(client, table, key="k")
    clients = [boto3.client("dynamodb", endpoint_url=endpoint) for _ in range(writers)]
    bad: list[int] = []
    try:
        for version in range(rounds):
            wins: list[int] = []
            start = threading.Barrier(writers)

            def put(writer: int, version: int = version, wins: list[int] = wins, start: Any = start) -> None:
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(k)"}
                if version:
                    condition = {
                        "ConditionExpression": "v = :v",
                        "ExpressionAttributeValues": {":v": {"N": f"{version}"}},
                    }
                item = {"k": {"S": "item"}, "v": {"N": f"{version + 1}"}}
                start.wait()
                try:
                    clients[writer].put_item(TableName=table, Item=item, **condition)
                    wins.append(writer)
                except clients[writer].exceptions.ConditionalCheckFailedException:
                    pass

            threads = [threading.Thread(target=put, args=(w,)) for w in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len(wins) != 1:
                bad.append(version)
    finally:
        client.delete_table(TableName=table)
    return bad


@pytest.mark.slow
class TestConcurrentContainers:
    @pytest.fixture
    def pkg(self, lite: Any) -> Any:
        """The lite package alone: what is raced is the engine's commit protocol, which both packages share (the
        full one only sets another default codec); TestConflicts, and test_races.py's threads, run both."""
        return lite

    def test_server_lets_one_conditional_write_win(self, endpoint: str) -> None:
        """The premise of the tests below. moto's own threaded server fails it (1 round in 15 to 20 had two
        winners: it checks, then writes, with no lock between), so tools/servers.py serialises its requests."""
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)  # switch threads often: the in-process server's check-then-write gap is tiny
        try:
            assert race_conditional_puts(endpoint) == []
        finally:
            sys.setswitchinterval(switch)

    def test_increments_are_never_lost(self, endpoint: str, pkg: Any, table_key: str, shared: Any) -> None:
        """4 processes x 50 increment(): the counter ends at exactly 200; each value was returned once."""
        values = run_workers(pkg, endpoint, table_key, "increment")
        assert sorted(values) == list(range(1, WORKERS * ROUNDS + 1))
        shared.refresh()
        assert shared["n"] == WORKERS * ROUNDS

    def test_mutate_is_atomic(self, endpoint: str, pkg: Any, table_key: str, shared: Any) -> None:
        """The same with a read-modify-write function: d['n'] = d.get('n', 0) + 1."""
        values = run_workers(pkg, endpoint, table_key, "mutate")
        assert sorted(values) == list(range(1, WORKERS * ROUNDS + 1))
        assert pkg.PersistentMap()["n"] == WORKERS * ROUNDS

    def test_plain_sets_of_distinct_keys_all_survive(
        self, endpoint: str, pkg: Any, table_key: str, shared: Any
    ) -> None:
        """4 processes each setting their own 50 keys with data[k] = v: all 200 keys are stored."""
        run_workers(pkg, endpoint, table_key, "set")
        stored = pkg.PersistentMap().to_dict()
        assert {k for k in stored if k != "seed"} == {f"w{w}-{i}" for w in range(WORKERS) for i in range(ROUNDS)}


class TestConflicts:
    """Two containers in one process (two maps on one key): what the loser of a race sees."""

    def test_other_containers_changes_survive(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(x=0), pkg.PersistentMap()
        a["from_a"] = 1
        b["from_b"] = 2  # b's view is stale: its commit conflicts, reloads, re-applies only its own change
        assert b.to_dict() == {"x": 0, "from_a": 1, "from_b": 2} == pkg.PersistentMap().to_dict()

    def test_blind_write_on_a_stale_view_is_one_call(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A set never conflicts: on a view another container made stale it is still one UpdateItem, whose answer
        brings the other container's change along."""
        a, b = pkg.PersistentMap(x=0), pkg.PersistentMap()
        a["x"] = 1
        calls.clear()
        b["y"] = 2
        assert calls.names == ["UpdateItem"]
        assert b.last_commit.calls == 1
        assert b.to_dict() == {"x": 1, "y": 2}

    def test_last_commit_counts_every_attempt(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A conditional write (mutate) that lost a race once: its cost includes the failed append, and no extra
        read was needed (the winner's head came back with the failure)."""
        a, b = pkg.PersistentMap(x=0), pkg.PersistentMap()
        a["x"] = 1
        calls.clear()
        b.mutate(lambda d: d.__setitem__("x", d["x"] + 1))
        assert calls.names == ["UpdateItem", "UpdateItem"]
        assert b.last_commit.calls == 2 and b.last_commit.capacity_units == 2
        assert pkg.PersistentMap()["x"] == 2

    def test_delete_and_clear_replay(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(x=0, y=1), pkg.PersistentMap()
        a["z"] = 2
        del b["x"]
        assert pkg.PersistentMap().to_dict() == {"y": 1, "z": 2}
        a["w"] = 3
        b.clear()  # clear() means: nothing left, including what others added meanwhile
        assert pkg.PersistentMap().to_dict() == {}

    def test_unsaved_nested_edit_is_not_written_by_other_writes(self, aws: Any, pkg: Any, table_key: str) -> None:
        """An in-place edit is this container's until save(): another key's write does not carry it along."""
        a, b = pkg.PersistentMap(l=[1], n=0), pkg.PersistentMap()
        a["n"] = 5
        b["l"].append(2)
        b["m"] = 1
        assert pkg.PersistentMap().to_dict() == {"l": [1], "n": 5, "m": 1}
        b.save()
        assert pkg.PersistentMap().to_dict() == {"l": [1, 2], "n": 5, "m": 1}

    def test_increment_on_stale_view(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(n=1), pkg.PersistentMap()
        assert a.increment("n") == 2
        assert b.increment("n", 10) == 12
        assert pkg.PersistentMap()["n"] == 12

    def test_mutate_reruns_on_fresh_state(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(queue=["j1", "j2", "j3"]), pkg.PersistentMap()
        assert a.mutate(lambda d: d["queue"].pop(0)) == "j1"
        assert b.mutate(lambda d: d["queue"].pop(0)) == "j2"  # not j1 again
        assert pkg.PersistentMap()["queue"] == ["j3"]

    def test_conflict_exhaustion(self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """When others win every attempt of a conditional write: ConflictError, nothing written, memory equals the
        stored state."""
        a = pkg.PersistentMap.open({"x": 0}, max_attempts=3)
        other = pkg.PersistentMap()
        from aws_lambda_persistence_lite._replica import Replica

        real_commit = Replica.commit
        bumps = {"n": 0}

        def racing_commit(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self is a._replica:
                bumps["n"] += 1
                other["x"] = bumps["n"]  # another container commits just before us, every time
            return real_commit(self, *args, **kwargs)

        monkeypatch.setattr(Replica, "commit", racing_commit)
        with pytest.raises(pkg.ConflictError):
            a.mutate(lambda d: d.__setitem__("mine", d["x"]))
        monkeypatch.setattr(Replica, "commit", real_commit)
        stored = pkg.PersistentMap().to_dict()
        assert stored == {"x": 3} and a.to_dict() == stored

    def test_transaction_conflict_is_retried(self, aws: Any, pkg: Any, table_key: str, faults: Faults) -> None:
        """DynamoDB's own TransactionConflict cancellation is a conflict like any other: reload and retry."""
        data = pkg.PersistentMap({"blob": os.urandom(600_000)})
        faults.on("TransactWriteItems", cancelled("TransactionConflict"))
        data["blob"] = os.urandom(600_000)
        assert pkg.PersistentMap()["blob"] == data["blob"]


class TestFreshReads:
    def test_default_never_rereads(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(x=1), pkg.PersistentMap()
        a["x"] = 2
        assert b["x"] == 1  # 1.0.0's behaviour: the warm container keeps its copy

    def test_refresh(self, aws: Any, pkg: Any, table_key: str) -> None:
        a, b = pkg.PersistentMap(x=1), pkg.PersistentMap()
        a["x"] = 2
        b.refresh()
        assert b["x"] == 2

    def test_max_age(self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PERSISTENCE_MAX_AGE", "0")
        a, b = pkg.PersistentMap(x=1), pkg.PersistentMap()
        assert b.settings.max_age == 0
        a["x"] = 2
        assert b["x"] == 2
