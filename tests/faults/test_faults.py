"""DynamoDB misbehaving on the wire, and containers killed, at every step of format 3's protocols (FORMAT.md,
"Commits"): throttling, 5xx, dropped connections, lost responses, slow responses, AccessDenied, transaction
conflicts and kill -9, injected by a proxy in front of a local DynamoDB server (tests/faults/proxy.py), which
recognises each step on the wire (injection.STEPS).

A scenario is a fixed sequence of writes whose every intermediate map is known. The fault is armed on the first
request of the chosen step, and the scenario runs until it fires. For every fault: the call succeeds, or raises
a documented error with the map in memory unchanged; every reader (a cold PersistentMap reading the server
directly) sees exactly the old or the new map; the writer's memory equals what is stored; and the rest of the
scenario (more appends, flushes and maintenance) works on top, leaving no segment the head does not list.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import all_keys, create_table, enter_container, stored_item
from tests.faults.conftest import current_table, short_timeout_client
from tests.faults.injection import (
    ALWAYS,
    DROP,
    KILL_AFTER,
    KILL_BEFORE,
    LOSE,
    SERVER_ERROR,
    STEPS,
    Fault,
    cancelled,
    denied,
    slow,
    throttled,
)
from tests.faults.proxy import FaultProxy

# -- scenarios ----------------------------------------------------------------------------------------------

#: A write of a scenario: ("set", key, value), ("update", mapping), ("increment", key) or ("pop job",) (a
#: mutate() that pops the first job of the queue).
Write = tuple[Any, ...]


def text(seed: int, size: int) -> str:
    return random.Random(seed).randbytes(size // 2).hex()


@cache
def scenario(name: str) -> tuple[Write, ...]:
    """``small``: a first write (PutItem), a conditional append, an increment, then sets of values of ~1.2 KB
    (about a third of the log each): the log fills every few writes, and flushes merge the partition.

    ``big``: a first large write (100 keys, ~250 KB), a large write (update() of 50 keys with 100-byte values,
    a record > 2 KB) while the log is empty, then sets of ~1.2 KB values to 5 keys: the first flush merges the
    runs into a partition, the next ones only flush (their changes weigh too little against the partition), and
    the fifth compacts four runs."""
    if name == "small":
        sets = [("set", f"k{i % 4}", text(i, 1200)) for i in range(12)]
        return (("set", "queue", [f"j{i}" for i in range(8)]), ("pop job",), ("increment", "n"), *sets)
    first = {f"b{i}": text(-i, 2500) for i in range(100)}
    large = {f"u{i}": text(1000 + i, 100) for i in range(50)}
    return (("update", first), ("update", large), *[("set", f"s{i % 5}", text(i, 1200)) for i in range(30)])


SCENARIO_OF = {
    "first write": "small",
    "conditional append": "small",
    "append": "small",
    "merge": "small",
    "first large write": "big",
    "large write": "big",
    "flush": "big",
    "compaction": "big",
}
#: Steps that do not change the map's contents (the change that met the full log is appended after them).
FLUSHES = {"flush", "merge", "compaction"}
TRANSACTIONS = FLUSHES | {"first large write", "large write"}
OPERATION_OF = dict.fromkeys(TRANSACTIONS, "TransactWriteItems") | {
    "first write": "PutItem",
    "append": "UpdateItem",
    "conditional append": "UpdateItem",
}
assert set(SCENARIO_OF) == set(STEPS)


def model(state: dict[str, Any], write: Write) -> tuple[dict[str, Any], Any]:
    """The map after ``write``, and what the call returns."""
    new = dict(state)
    if write[0] == "set":
        new[write[1]] = write[2]
        return new, None
    if write[0] == "update":
        new.update(write[1])
        return new, None
    if write[0] == "increment":
        new[write[1]] = new.get(write[1], 0) + 1
        return new, new[write[1]]
    job, *rest = new["queue"]
    new["queue"] = rest
    return new, job


def perform(data: Any, write: Write) -> Any:
    if write[0] == "set":
        data[write[1]] = write[2]
        return None
    if write[0] == "update":
        data.update(write[1])
        return None
    if write[0] == "increment":
        return data.increment(write[1])
    return data.mutate(lambda d: d["queue"].pop(0))


def states(writes: tuple[Write, ...]) -> list[dict[str, Any]]:
    """The map after each prefix of ``writes`` (``[0]``: nothing written)."""
    out: list[dict[str, Any]] = [{}]
    for write in writes:
        out.append(model(out[-1], write)[0])
    return out


# -- faults -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fault: what the proxy does, how often, and what the user must see: "ok" (the call succeeds, the new
    map is stored and in memory), or the error type raised (the old map stored and in memory)."""

    fault: Callable[[str], Fault]
    times: int
    expect: str | type[BaseException]


MISSING_PERMISSION = "MissingAWSIAMPermissions"

CASES: dict[str, Case] = {
    "throttled once": Case(throttled, 1, "ok"),
    "throttled always": Case(throttled, ALWAYS, ClientError),
    "5xx once": Case(lambda _: SERVER_ERROR, 1, "ok"),
    "dropped once": Case(lambda _: DROP, 1, "ok"),
    "dropped always": Case(lambda _: DROP, ALWAYS, BotoCoreError),
    # applied, the response lost: botocore's retry is recognised (alp_ids, or the transaction's token)
    "response lost once": Case(lambda _: LOSE, 1, "ok"),
    # applied, every response lost: one strongly consistent read of the head decides (FORMAT.md, lost responses)
    "response lost always": Case(lambda _: LOSE, ALWAYS, "ok"),
    "slow once": Case(lambda _: slow(2.5), 1, "ok"),
    "access denied": Case(denied, 1, MISSING_PERMISSION),
    # another container's transaction holds the head (TransactWriteItems only): the writer tries again
    "transaction conflict": Case(lambda _: cancelled("TransactionConflict"), 1, "ok"),
}

#: Engine bugs this suite found (see the final report of the format-3 rewrite): strict xfails, by (step, case).
ENGINE_BUGS: dict[tuple[str, str], str] = {}


def fault_params() -> list[Any]:
    params = []
    for step in STEPS:
        for name in CASES:
            if name == "transaction conflict" and step not in TRANSACTIONS:
                continue
            if name in ("slow once", "dropped once", "5xx once") and step not in ("append", "flush", "large write"):
                # botocore resends a request that DynamoDB never applied (a 5xx, a dropped connection) or gives up
                # on a slow one: the engine sees either nothing or a lost response, whatever the step; one step of
                # each request kind (UpdateItem, a flush's and a large write's TransactWriteItems) keeps them
                continue
            reason = ENGINE_BUGS.get((step, name))
            marks = [pytest.mark.xfail(strict=True, reason=f"engine: {reason}")] if reason else []
            params.append(pytest.param(step, name, id=f"{step}-{name}", marks=marks))
    return params


# -- checks -------------------------------------------------------------------------------------------------


def stored_map(pkg: Any, direct: Any) -> dict[str, Any]:
    """The map every reader sees: a cold PersistentMap reading the server itself (never through the proxy)."""
    return dict(pkg.PersistentMap.open(client=direct).to_dict())


def check_segments(pkg: Any, direct: Any, table_key: str) -> None:
    """Every segment item of the map is one its head lists (no stray run or partition left behind)."""
    from aws_lambda_persistence_lite._records import decode_table

    head = stored_item(direct, table_key, current_table())
    assert head is not None and "alp_garbage" not in head
    listed = {s.sid for s in decode_table(bytes(head["alp_seg"]["B"]))} if "alp_seg" in head else set()
    stored = {k.split("#")[-2] for k in all_keys(direct, current_table()) if k.startswith(f"{table_key}#alp#")}
    assert stored <= listed, f"stray segments: {sorted(stored - listed)}"


def finish(pkg: Any, data: Any, direct: Any, table_key: str, state: dict[str, Any], rest: tuple[Write, ...]) -> None:
    """No later write is blocked: the rest of the scenario commits and returns what it must, and every reader
    sees the result."""
    for write in rest:
        state, want = model(state, write)
        assert perform(data, write) == want, write[0]
        assert data.to_dict() == state
    assert stored_map(pkg, direct) == state == data.to_dict()
    assert pkg.PersistentMap().to_dict() == state
    check_segments(pkg, direct, table_key)


def open_map(pkg: Any, proxy: FaultProxy, case: Case | None) -> Any:
    if case is not None and case.fault("x").kind == "slow":
        return pkg.PersistentMap.open(client=short_timeout_client(proxy.url, read_timeout=1.0))
    return pkg.PersistentMap()


class TestFaultAtEachStep:
    """A fault on the first request of each protocol step, in the middle of a scenario."""

    @pytest.mark.parametrize(("step", "name"), fault_params())
    def test_fault(self, proxy: FaultProxy, direct: Any, lite: Any, table_key: str, step: str, name: str) -> None:
        """(The protocols are the engine's, shared by both packages: run with the lite package's codec.)"""
        pkg, case = lite, CASES[name]
        writes = scenario(SCENARIO_OF[step])
        create_table(direct, current_table())  # up front: the first write is then one request
        data = open_map(pkg, proxy, case)
        proxy.on(step, case.fault(OPERATION_OF[step]), times=case.times)
        state: dict[str, Any] = {}
        for index, write in enumerate(writes):
            new, want = model(state, write)
            try:
                got, raised = perform(data, write), None
            except Exception as exc:
                got, raised = None, exc
            if not proxy.fired(step):
                assert raised is None, repr(raised)
                assert got == want and data.to_dict() == new
                state = new
                continue
            proxy.reset()
            stored = stored_map(pkg, direct)
            if case.expect == "ok":
                assert raised is None, f"{type(raised).__name__}: {raised}"
                assert got == want, "the call returned another value than its own change produced"
                assert stored == new, "DynamoDB does not hold the new map (or holds the change twice)"
                assert data.to_dict() == new, "memory differs from what is stored"
            else:
                expected = getattr(pkg, case.expect) if isinstance(case.expect, str) else case.expect
                assert isinstance(raised, expected), f"expected {expected.__name__}, got {raised!r}"
                assert data.to_dict() == state, "a failed write changed the map in memory"
                assert stored == state, "a write that failed changed what DynamoDB holds"
            # no later write is blocked: the failed write itself commits when tried again
            finish(pkg, data, direct, table_key, stored, writes[index + (stored == new and stored != state) :])
            return
        pytest.fail(f"the step {step!r} never happened: {proxy.operations()}")


def _container(package: str, endpoint: str, table: str, table_key: str, name: str, progress: str) -> None:
    """A Lambda container in a child process: the scenario's writes, each announced in ``progress`` (one
    unbuffered write() per line, which survives kill -9) before it starts."""
    enter_container(endpoint, table_key, table_name=table)
    module = __import__(package)
    data = module.PersistentMap()
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for index, write in enumerate(scenario(name)):
        os.write(fd, f"{index}\n".encode())
        perform(data, write)
    os.write(fd, b"done\n")


class TestKillAtEachStep:
    """kill -9 of a container at each protocol step, just before its request reaches DynamoDB or just after
    DynamoDB applied it: every reader sees exactly the map before the interrupted change, or after it (only when
    the killed request was that change's own commit), and other containers go on writing as if nothing happened.
    """

    @pytest.mark.parametrize("when", ["before", "after"])
    @pytest.mark.parametrize("step", list(STEPS))
    def test_kill(
        self, proxy: FaultProxy, direct: Any, lite: Any, table_key: str, step: str, when: str, tmp_path: Path
    ) -> None:
        pkg, name = lite, SCENARIO_OF[step]
        writes = scenario(name)
        create_table(direct, current_table())
        progress = tmp_path / "progress"
        proxy.on(step, KILL_BEFORE if when == "before" else KILL_AFTER)
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=_container, args=(pkg.__name__, proxy.url, current_table(), table_key, name, str(progress))
        )
        process.start()
        proxy.victim = process.pid
        process.join(timeout=180)
        if process.exitcode is None:
            process.kill()
        assert process.exitcode == -signal.SIGKILL, f"not killed ({process.exitcode}): {proxy.operations()}"
        assert proxy.fired(step) == [f"kill {when}"]
        proxy.reset()
        index = int(progress.read_text().split()[-1])
        applied = when == "after" and step not in FLUSHES
        expected = states(writes)[index + 1 if applied else index]
        assert stored_map(pkg, direct) == expected, "a killed container left a map that is neither old nor new"
        # the interrupted write, when it was not applied, and the rest of the scenario, by another container
        finish(pkg, pkg.PersistentMap(), direct, table_key, expected, writes[index + applied :])


# -- reads and permissions ----------------------------------------------------------------------------------


def content(shape: str, version: int) -> dict[str, Any]:
    """Version ``version`` of a map: ``small`` (all in the head's log) or ``segments`` (~40 KB, a large write:
    a run that a cold load reads with BatchGetItem)."""
    if shape == "small":
        return {"a": version, "text": "x" * 100, "nested": {"v": [version, (version,)]}}
    return {f"k{i}": text(version * 1000 + i, 400) for i in range(100)}


READ_CASES = ["throttled once", "5xx once", "dropped always", "slow once", "access denied"]


class TestReads:
    @pytest.mark.parametrize("name", READ_CASES)
    @pytest.mark.parametrize(("shape", "operation"), [("small", "GetItem"), ("segments", "BatchGetItem")])
    def test_fault_on_load(
        self, proxy: FaultProxy, direct: Any, lite: Any, table_key: str, shape: str, operation: str, name: str
    ) -> None:
        """A cold load and a refresh under a fault: the stored map, or a documented error with memory intact. (The
        reads are the engine's, shared by both packages, as TestFaultAtEachStep's writes: run with the lite
        package's codec.)"""
        pkg, case = lite, CASES[name]
        old, new = content(shape, 1), content(shape, 2)
        pkg.PersistentMap(old)
        before = stored_item(direct, table_key, current_table())
        proxy.reset()
        proxy.on(operation, case.fault(operation), times=case.times)
        try:
            loaded = open_map(pkg, proxy, case)
            raised = None
        except Exception as exc:
            raised = exc
        assert proxy.fired(operation)
        if case.expect == "ok":
            assert raised is None, repr(raised)
            assert loaded.to_dict() == old
        else:
            expected = getattr(pkg, case.expect) if isinstance(case.expect, str) else case.expect
            assert isinstance(raised, expected), repr(raised)
        assert stored_item(direct, table_key, current_table()) == before, "a read changed what is stored"
        # a warm map whose refresh fails keeps its copy; the next refresh sees the new version
        proxy.reset()
        data = open_map(pkg, proxy, case)
        pkg.PersistentMap.open(client=direct).update(new)
        proxy.on(operation, case.fault(operation), times=case.times)
        try:
            data.refresh()
            refresh_error = None
        except Exception as exc:
            refresh_error = exc
        assert proxy.fired(operation)
        assert data.to_dict() == (new if refresh_error is None else old)
        assert refresh_error is None or case.expect != "ok", repr(refresh_error)
        proxy.reset()
        data.refresh()
        assert data.to_dict() == new == pkg.PersistentMap().to_dict()


class TestAccessDeniedOnEachAction:
    """MissingAWSIAMPermissions names the denied action; nothing is written; granting it makes things work."""

    @pytest.mark.parametrize(
        ("action", "shape"),
        [
            ("GetItem", "small"),
            ("BatchGetItem", "segments"),
            ("PutItem", "small"),
            ("UpdateItem", "small"),
            ("TransactWriteItems", "segments"),
        ],
    )
    def test_item_actions(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, action: str, shape: str
    ) -> None:
        old = content(shape, 1)
        if action == "PutItem":  # the first write of a map
            old = {}
            create_table(direct, current_table())
        else:
            pkg.PersistentMap(old)
        proxy.on(action, denied(action))
        reading = action in ("GetItem", "BatchGetItem")
        data = None if reading else pkg.PersistentMap()
        with pytest.raises(pkg.MissingAWSIAMPermissions) as raised:
            pkg.PersistentMap() if data is None else data.update(content(shape, 2))
        assert raised.value.action == f"dynamodb:{action}" and f"dynamodb:{action}" in str(raised.value)
        assert stored_map(pkg, direct) == old
        assert data is None or data.to_dict() == old
        proxy.reset()
        assert pkg.PersistentMap().to_dict() == old

    @pytest.mark.parametrize("action", ["CreateTable", "DescribeTable"])
    def test_table_actions(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, action: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        table = current_table()
        monkeypatch.setenv("PERSISTENCE_TABLE_NAME", table + "-new")  # a table that does not exist yet
        proxy.on(action, denied(action), times=ALWAYS)
        data = pkg.PersistentMap()
        with pytest.raises(pkg.MissingAWSIAMPermissions) as raised:
            data["a"] = 1
        assert raised.value.action == f"dynamodb:{action}"
        assert data.to_dict() == {}
        proxy.reset()
        data["a"] = 1
        assert pkg.PersistentMap().to_dict() == {"a": 1}
        direct.delete_table(TableName=table + "-new")
