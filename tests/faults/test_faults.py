"""DynamoDB misbehaving on the wire: throttling, 5xx, dropped connections, lost responses, slow responses and
AccessDenied, injected by a proxy in front of moto's server (tests/faults/proxy.py).

For every fault: the operation succeeds or raises a documented error; DynamoDB (read directly from moto, not
through the proxy) holds the old or the new map, never a mix; the map in memory matches what is stored; later
operations work and leave no stray shard behind.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import all_keys, stored_item
from tests.faults.conftest import current_table, short_timeout_client
from tests.faults.proxy import DROP, LOSE, Fault, FaultProxy, error, slow

KB = 1024
MB = 1024 * KB
ALWAYS = 99  # more than botocore's attempts: the fault hits every retry

#: How big each kind of map is, and the call that commits it.
SHAPES = {"small": 0, "sharded": 1 * MB, "huge": 5 * MB}
COMMIT_CALL = {"small": "PutItem", "sharded": "TransactWriteItems"}


def content(shape: str, version: int) -> dict[str, Any]:
    """Version ``version`` of a map of ``shape``: inline, ~1 MB of random bytes (shards) or ~5 MB (steps)."""
    if shape == "small":
        return {"a": version, "text": "x" * 100, "nested": {"v": [version, (version,)]}}
    return {"blob": random.Random(version).randbytes(SHAPES[shape]), "v": version}


def denied(action: str) -> Fault:
    return error(
        400,
        "AccessDeniedException",
        f"User: arn:aws:sts::123456789012:assumed-role/fn/fn is not authorized to perform: dynamodb:{action} on "
        "resource: arn:aws:dynamodb:us-east-1:123456789012:table/AWSLambdaPersistence because no identity-based "
        f"policy allows the dynamodb:{action} action",
    )


def throttled(action: str) -> Fault:
    """Throttling as DynamoDB reports it: inside a transaction, a cancellation with a ThrottlingError reason."""
    if action == "TransactWriteItems":
        reasons = [{"Code": "None"}] * 3 + [{"Code": "ThrottlingError", "Message": "Throughput exceeds the limit"}]
        return error(
            400,
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons "
            "[None, None, None, ThrottlingError]",
            CancellationReasons=reasons,
        )
    return error(400, "ProvisionedThroughputExceededException", "The level of configured provisioned throughput")


SERVER_ERROR = error(500, "InternalServerError", "Internal server error")


@dataclass(frozen=True)
class Case:
    """One fault: what the proxy does, how often, and what the user must see.

    ``expect``: "ok" (succeeds, new map stored), or the error type raised (old map stored in memory). ``applied``:
    the write may have reached DynamoDB although the call failed (the response was lost), so either map may be
    stored, and memory can only be resynchronised by the next operation.
    """

    fault: Callable[[str], Fault]
    times: int
    expect: str | type[BaseException]
    applied: bool = False


MISSING_PERMISSION = "MissingAWSIAMPermissions"

CASES: dict[str, Case] = {
    "throttled once": Case(throttled, 1, "ok"),
    "throttled always": Case(throttled, ALWAYS, ClientError),
    "5xx once": Case(lambda _: SERVER_ERROR, 1, "ok"),
    "5xx always": Case(lambda _: SERVER_ERROR, ALWAYS, ClientError),
    "dropped once": Case(lambda _: DROP, 1, "ok"),
    "dropped always": Case(lambda _: DROP, ALWAYS, BotoCoreError),
    "response lost once": Case(lambda _: LOSE, 1, "ok"),
    # every response lost, but the write applied: one read of the head finds this commit's alp_cid stored
    "response lost always": Case(lambda _: LOSE, ALWAYS, "ok"),
    "slow once": Case(lambda _: slow(2.5), 1, "ok"),
    "slow always": Case(lambda _: slow(2.5), ALWAYS, "ok"),
    "access denied": Case(denied, 1, MISSING_PERMISSION),
}


def open_map(pkg: Any, proxy: FaultProxy, case: Case | None) -> Any:
    if case is not None and case.fault("x").kind == "slow":
        return pkg.PersistentMap.open(client=short_timeout_client(proxy.url, read_timeout=1.0))
    return pkg.PersistentMap()


def shard_keys(client: Any, table_key: str) -> set[str]:
    return {k for k in all_keys(client, current_table()) if k.startswith(f"{table_key}#alp-shard#")}


def stored_map(pkg: Any, direct: Any) -> dict[str, Any]:
    """The map DynamoDB holds, read from moto itself (never through the proxy)."""
    return dict(pkg.PersistentMap.open(client=direct).to_dict())


def run_write(data: Any, new: dict[str, Any]) -> BaseException | None:
    try:
        data.update(new)
    except Exception as exc:
        return exc
    return None


def check_outcome(
    pkg: Any,
    data: Any,
    direct: Any,
    proxy: FaultProxy,
    table_key: str,
    old: dict[str, Any],
    new: dict[str, Any],
    case: Case,
    raised: BaseException | None,
) -> None:
    """The invariants of the fault suite, then a later write and the absence of stray shards."""
    stored = stored_map(pkg, direct)
    assert stored in (old, new), "DynamoDB holds a mix of the old and the new map"
    if case.expect == "ok":
        assert raised is None, f"{type(raised).__name__}: {raised}"
        assert stored == new and data.to_dict() == new
    else:
        expected = getattr(pkg, case.expect) if isinstance(case.expect, str) else case.expect
        assert isinstance(raised, expected), f"expected {expected.__name__}, got {raised!r}"
        assert data.to_dict() == old, "a failed write changed the map in memory"
        if not case.applied:
            assert stored == old, "a write that never reached DynamoDB changed it"
    proxy.reset()
    data["after"] = 1  # later operations work (and resynchronise after an ambiguous failure)
    final = {**stored, "after": 1}
    assert data.to_dict() == final
    assert stored_map(pkg, direct) == final
    assert pkg.PersistentMap().to_dict() == final
    head = stored_item(direct, table_key, current_table())
    assert head is not None and "alp_garbage" not in head
    assert len(shard_keys(direct, table_key)) == len(head.get("alp_shards", {}).get("L", [])), "stray shards"


def write_params() -> list[Any]:
    params = []
    for shape in ("small", "sharded"):
        for name, _case in CASES.items():
            marks: list[Any] = []
            if shape == "sharded" and name == "slow always":
                continue  # the same as for small maps, 10 s slower
            params.append(pytest.param(shape, name, id=f"{shape}-{name}", marks=marks))
    return params


class TestWrites:
    @pytest.mark.parametrize(("shape", "name"), write_params())
    def test_fault_on_commit(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, shape: str, name: str
    ) -> None:
        case = CASES[name]
        old, new = content(shape, 1), content(shape, 2)
        data = open_map(pkg, proxy, case)
        data.update(old)
        operation = COMMIT_CALL[shape]
        proxy.reset()
        proxy.on(operation, case.fault(operation), times=case.times)
        raised = run_write(data, new)
        assert proxy.fired(operation), f"the fault never fired: {proxy.operations()}"
        check_outcome(pkg, data, direct, proxy, table_key, old, new, case, raised)

    @pytest.mark.parametrize("shape", ["small", "sharded"])
    def test_lost_responses_are_confirmed(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, shape: str
    ) -> None:
        """Every response of a commit lost, the write applied: one read of the head recognises this commit's id,
        so the call succeeds and memory equals what is stored."""
        data = pkg.PersistentMap(content(shape, 1))
        proxy.on(COMMIT_CALL[shape], LOSE, times=ALWAYS)
        data.update(content(shape, 2))
        proxy.reset()
        assert data.to_dict() == stored_map(pkg, direct) == content(shape, 2)

    def test_increment_once_when_transaction_response_lost(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str
    ) -> None:
        data = pkg.PersistentMap(content("sharded", 1))
        data["n"] = 0
        proxy.on("TransactWriteItems", LOSE)
        assert data.increment("n") == 1
        assert stored_map(pkg, direct)["n"] == 1

    def test_increment_once_when_put_response_lost(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str
    ) -> None:
        """The inline counterpart: the retried PutItem finds its own commit stored, and counts once."""
        data = pkg.PersistentMap(n=0)
        proxy.on("PutItem", LOSE)
        assert data.increment("n") == 1
        assert proxy.fired("PutItem") == ["lose"]
        assert stored_map(pkg, direct)["n"] == 1 == data["n"]


#: The calls of a commit in steps (FORMAT.md, protocol 3), in order, as (operation, nth occurrence).
STEPS = {
    "claim": ("UpdateItem", 1),
    "shards": ("BatchWriteItem", 1),
    "flip": ("PutItem", 1),
    "delete stale": ("BatchWriteItem", 2),
    "unlist garbage": ("UpdateItem", 2),
}


def steps_params(huge: bool) -> list[Any]:
    if huge:
        chosen = [("claim", "response lost once"), ("flip", "response lost once"), ("delete stale", "access denied")]
    else:
        chosen = [(step, "access denied") for step in STEPS]
        chosen += [(step, "response lost once") for step in STEPS]
        chosen += [("claim", "throttled always"), ("shards", "5xx always"), ("flip", "dropped always")]
        chosen += [("delete stale", "throttled always"), ("unlist garbage", "5xx always")]
    params = []
    for step, name in chosen:
        params.append(pytest.param(step, name, id=f"{step}-{name}"))
    return params


class TestCommitInSteps:
    """Faults at each call of a commit too large for one transaction. Either a real ~5 MB map, or a 1 MB map
    with the transaction limit lowered to 3 actions (the same protocol, 5 times less data)."""

    def run(self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, shape: str, step: str, name: str) -> None:
        case = CASES[name]
        if step in ("delete stale", "unlist garbage") and case.expect != "ok":
            case = Case(case.fault, case.times, "ok")  # the new map is switched in: the commit has succeeded
        old, new = content(shape, 1), content(shape, 2)
        data = pkg.PersistentMap(old)
        operation, nth = STEPS[step]
        proxy.reset()
        proxy.on(operation, case.fault(operation), nth=nth, times=case.times)
        raised = run_write(data, new)
        assert proxy.fired(operation), f"the fault never fired: {proxy.operations()}"
        assert "TransactWriteItems" not in proxy.operations()
        check_outcome(pkg, data, direct, proxy, table_key, old, new, case, raised)

    @pytest.mark.parametrize(("step", "name"), steps_params(huge=False))
    def test_fault_in_step(
        self,
        proxy: FaultProxy,
        direct: Any,
        pkg: Any,
        table_key: str,
        step: str,
        name: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from aws_lambda_persistence_lite import _store

        monkeypatch.setattr(_store, "TRANSACT_MAX_ACTIONS", 3)
        self.run(proxy, direct, pkg, table_key, "sharded", step, name)

    @pytest.mark.parametrize(("step", "name"), steps_params(huge=True))
    def test_fault_in_step_5mb(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, step: str, name: str
    ) -> None:
        self.run(proxy, direct, pkg, table_key, "huge", step, name)


READ_CASES = ["throttled once", "5xx always", "dropped always", "slow once", "access denied"]


class TestReads:
    @pytest.mark.parametrize("name", READ_CASES)
    @pytest.mark.parametrize(("shape", "operation"), [("small", "GetItem"), ("sharded", "BatchGetItem")])
    def test_fault_on_load(
        self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, shape: str, operation: str, name: str
    ) -> None:
        """A cold load and a refresh under a fault: the stored map, or a documented error with memory intact."""
        case = CASES[name]
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
        assert data.to_dict() == (new if refresh_error is None else old)
        assert refresh_error is None or case.expect != "ok", repr(refresh_error)
        proxy.reset()
        data.refresh()
        assert data.to_dict() == new == pkg.PersistentMap().to_dict()


class TestAccessDeniedOnEachAction:
    """MissingAWSIAMPermissions names the denied action; nothing is written; granting it makes things work."""

    @pytest.mark.parametrize("action", ["GetItem", "BatchGetItem", "PutItem", "TransactWriteItems"])
    def test_item_actions(self, proxy: FaultProxy, direct: Any, pkg: Any, table_key: str, action: str) -> None:
        shape = "small" if action == "PutItem" else "sharded"
        old = content(shape, 1)
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
