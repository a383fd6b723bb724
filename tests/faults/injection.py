"""One vocabulary of DynamoDB faults, and one plan of which requests get them, applied at two layers.

A ``Fault`` is what happens to a request instead of DynamoDB's answer:

- ``error(code, message, status=400, **extra)``: DynamoDB answers with this error; the request never reaches it.
  DynamoDB's own: ``denied(action)``, ``throttled(operation)``, ``cancelled(reason)``, ``TRANSACTION_CONFLICT``,
  ``SERVER_ERROR``;
- ``DROP``: the connection fails; the request never reaches DynamoDB;
- ``LOSE``: DynamoDB applies the request, and the connection fails instead of answering;
- ``slow(seconds)``: DynamoDB applies the request, answered only after ``seconds`` (past the client's read timeout);
- ``KILL_BEFORE`` / ``KILL_AFTER``: kill -9 the process ``victim`` (a container in a child process) before the
  request reaches DynamoDB, or after it was applied;
- ``FORWARD``: nothing; with an action (below), a moment for another container to act.

``fault.meanwhile(action)`` runs ``action`` while the request is in flight (another container commits at the
moment that matters): before the request reaches DynamoDB, or, for the faults that let it through (LOSE, slow,
KILL_AFTER), once DynamoDB applied it. It runs each time the fault is made.

A plan (``Plan.on(target, fault, nth=1, times=1)``) gives ``fault`` to ``times`` requests from the ``nth`` request
for ``target`` on (``ALWAYS``: every one): an operation (the suffix of ``X-Amz-Target``, e.g. ``PutItem``), a
protocol step of format 3 (``STEPS``: each request is read to say which step it is, e.g. ``append`` or
``merge``), or None for any. Every request is logged as (operation, step, what was done); ``fired(target)`` says
what was done to a target's requests, so that a test can check that its fault happened.

Two layers apply a plan:

- ``Faults(client)``, inside one botocore client (the ``faults`` fixture: the library's shared client). It works
  on every backend, moto in-process included, at no cost, and botocore parses each fault and applies its retry
  policy to it exactly as to a real one. Most tests use it.
- ``proxy.FaultProxy``, an HTTP proxy in front of a server process (tests/faults/test_faults.py). It stays a layer
  of its own because it reaches what no client of the test process sees: requests of containers in child
  processes (which KILL_BEFORE and KILL_AFTER kill), and the real socket, whose hang-ups and slow answers run
  urllib3's and botocore's own handling of them. It cannot stand in front of moto in-process, the default backend.
  ``slow`` and the kills are the proxy's alone.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: More requests than botocore ever attempts for one call: the fault hits every retry.
ALWAYS = 99
#: Upper bound of any injected delay: a test can never make the proxy sleep for long.
MAX_DELAY = 5.0
#: Faults whose request reaches DynamoDB and is applied (their action runs after it was).
APPLIED = {"lose", "slow", "kill after"}


@dataclass(frozen=True)
class Fault:
    kind: str  # "error", "drop", "lose", "slow", "kill before", "kill after" or "forward"
    status: int = 400
    code: str = ""
    message: str = "injected"
    extra: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    action: Callable[[], object] | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}" if self.kind == "error" else self.kind

    def meanwhile(self, action: Callable[[], object]) -> Fault:
        """This fault, with ``action`` run while the request is in flight (see the module's docstring)."""
        return dataclasses.replace(self, action=action)

    def act(self) -> None:
        if self.action is not None:
            self.action()

    def body(self) -> bytes:
        """An error's response body, as DynamoDB's JSON protocol has it."""
        fields = {"__type": f"com.amazonaws.dynamodb.v20120810#{self.code}", "message": self.message}
        return json.dumps({**fields, **self.extra}).encode()


DROP = Fault("drop")
LOSE = Fault("lose")
KILL_BEFORE = Fault("kill before")
KILL_AFTER = Fault("kill after")
FORWARD = Fault("forward")


def error(code: str, message: str = "injected", *, status: int = 400, **extra: Any) -> Fault:
    """A DynamoDB error response (``extra`` adds fields to its body, e.g. CancellationReasons)."""
    return Fault("error", status=status, code=code, message=message, extra=extra)


def slow(seconds: float) -> Fault:
    """Apply the request, then answer after ``seconds`` (bounded by MAX_DELAY)."""
    return Fault("slow", delay=min(seconds, MAX_DELAY))


def denied(action: str) -> Fault:
    """AccessDenied as IAM words it for ``action`` (e.g. ``GetItem``)."""
    return error(
        "AccessDeniedException",
        f"User: arn:aws:sts::123456789012:assumed-role/fn/fn is not authorized to perform: dynamodb:{action} on "
        "resource: arn:aws:dynamodb:us-east-1:123456789012:table/AWSLambdaPersistence because no identity-based "
        f"policy allows the dynamodb:{action} action",
    )


def cancelled(reason: str, actions: int = 2) -> Fault:
    """A TransactWriteItems cancelled as DynamoDB reports it: one reason per action, ``reason`` on the last (the
    head's; the others None), e.g. ThrottlingError, ProvisionedThroughputExceeded, TransactionConflict."""
    codes = ["None"] * (actions - 1) + [reason]
    return error(
        "TransactionCanceledException",
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(codes)}]",
        CancellationReasons=[{"Code": code} if code == "None" else {"Code": code, "Message": code} for code in codes],
    )


def throttled(operation: str) -> Fault:
    """Throttling as DynamoDB reports it: inside a transaction, a cancellation with a ThrottlingError reason."""
    if operation == "TransactWriteItems":
        return cancelled("ThrottlingError")
    return error("ProvisionedThroughputExceededException", "The level of configured provisioned throughput")


#: Another container's transaction holds the item (a single-item write meeting a transaction in progress).
TRANSACTION_CONFLICT = error("TransactionConflictException", "Transaction is ongoing for the item")
SERVER_ERROR = error("InternalServerError", "Internal server error", status=500)

#: Format 3's protocol steps (FORMAT.md, "Commits"), as ``classify`` names the request that carries each.
STEPS = {
    "first write": "PutItem of a new head holding the first record",
    "first large write": "TransactWriteItems: a run holding the first record, and the new head",
    "append": "UpdateItem list_append of a blind change (set, delete, update, clear, increment)",
    "conditional append": "UpdateItem list_append conditional on the version (mutate, pop, popitem)",
    "flush": "TransactWriteItems: the log into a run, and the head update (dead runs deleted)",
    "compaction": "a flush that also merges four runs of one level into one run of the next",
    "merge": "a flush that also writes a partition anew (and deletes the one it replaces)",
    "large write": "TransactWriteItems: a record too large for the log as a run, and the head update",
}


def classify(operation: str, body: bytes) -> str | None:
    """The protocol step (a key of STEPS) a request is, or None for reads and table calls."""
    if operation not in ("PutItem", "UpdateItem", "TransactWriteItems"):
        return None
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if operation == "PutItem":
        return "first write" if "alp_fmt" in request.get("Item", {}) else None
    if operation == "UpdateItem":
        if "list_append" not in request.get("UpdateExpression", ""):
            return None
        return "conditional append" if ":v" in request.get("ConditionExpression", "") else "append"
    actions = request.get("TransactItems", [])
    if any("alp_fmt" in a.get("Put", {}).get("Item", {}) for a in actions):
        return "first large write"
    updates = [a["Update"] for a in actions if "Update" in a]
    if not updates:
        return None
    if "REMOVE" not in updates[0]["UpdateExpression"]:
        return "large write"
    # A flush: what maintenance did is in the kinds of the segments it puts, as its new segment table lists them.
    from aws_lambda_persistence_lite._records import PARTITION, RUN, decode_table

    table = updates[0]["ExpressionAttributeValues"].get(":seg")
    segments = {s.sid: s for s in decode_table(base64.b64decode(table["B"]))} if table else {}
    keys = [a["Put"]["Item"].get("key", {}).get("S", "") for a in actions if "Put" in a]  # (default key field)
    put = {key.split("#")[-2] for key in keys if "#alp#" in key} & segments.keys()
    if any(segments[sid].kind == PARTITION for sid in put):
        return "merge"
    if any(segments[sid].kind == RUN and segments[sid].level >= 1 for sid in put):
        return "compaction"
    return "flush"


@dataclass
class Rule:
    target: str | None
    fault: Fault
    nth: int = 1
    times: int = 1
    seen: int = 0

    def hit(self, operation: str, step: str | None) -> bool:
        if self.target is not None and self.target not in (operation, step):
            return False
        self.seen += 1
        return self.nth <= self.seen < self.nth + self.times


class Plan:
    """Which requests get which fault, and what was done to every request (thread-safe)."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str | None, str | None]] = []
        self._lock = threading.Lock()

    def on(self, target: str | None, fault: Fault, *, nth: int = 1, times: int = 1) -> None:
        """From the ``nth`` request for ``target`` (an operation or a step; None: any) on, ``times`` requests get
        ``fault``. Every rule counts every request it matches; the first rule to hit one decides."""
        with self._lock:
            self.rules.append(Rule(target, fault, nth, times))

    def reset(self) -> None:
        """No more faults, and an empty log."""
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def fired(self, target: str | None = None) -> list[str]:
        """What was done to the requests for ``target`` (an operation or a step; None: all), in order."""
        with self._lock:
            return [done for op, step, done in self.log if done is not None and target in (None, op, step)]

    def operations(self) -> list[str]:
        """Every request so far, as its step (or its operation when it is no step)."""
        with self._lock:
            return [step or op for op, step, _ in self.log]

    def decide(self, operation: str, body: bytes) -> Fault | None:
        """The fault for this request (None: forward it unchanged), logged."""
        step = classify(operation, body)
        with self._lock:
            chosen = None
            for rule in self.rules:
                if rule.hit(operation, step) and chosen is None:
                    chosen = rule.fault
            self.log.append((operation, step, str(chosen) if chosen else None))
            return chosen


class Faults(Plan):
    """A plan applied inside one botocore client, at its events: ``Faults(client).on(...)``.

    At before-send, an error becomes botocore's response and DROP botocore's ConnectionClosedError, with the
    request kept from DynamoDB. LOSE lets the request through; at needs-retry, botocore is told that its answer
    never came: it retries at once while it has attempts left, as after a read timeout, and after the last one the
    call raises ConnectionClosedError, as botocore does when a server hangs up.
    """

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client
        #: botocore's attempts per call (standard mode: 3 unless the client's config says otherwise).
        self.attempts: int = (client.meta.config.retries or {}).get("total_max_attempts", 3)
        self._lost = threading.local()  # the LOSE of the attempt in flight on this thread
        client.meta.events.register_first("before-send.dynamodb", self._before_send)
        client.meta.events.register_first("needs-retry.dynamodb", self._needs_retry)

    def _before_send(self, request: Any, **_: Any) -> Any:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        fault = self.decide(operation, request.body or b"")
        if fault is None:
            return None
        if fault.kind == "forward":
            fault.act()
            return None
        if fault.kind == "lose":
            self._lost.fault = fault
            return None
        if fault.kind not in ("error", "drop"):
            raise NotImplementedError(f"{fault}: only the proxy (tests/faults/proxy.py) makes it")
        # botocore calls every before-send handler; moto's in-process backend is one of them and would still apply
        # the request unless it no longer looks like an AWS endpoint.
        request.url = "http://fault.injected/"
        fault.act()
        if fault.kind == "drop":
            from botocore.exceptions import ConnectionClosedError

            raise ConnectionClosedError(endpoint_url=request.url)
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        headers = HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"})
        return AWSResponse(request.url, fault.status, headers, _Raw(fault.body()))

    def _needs_retry(self, attempts: int, **_: Any) -> int | None:
        fault: Fault | None = getattr(self._lost, "fault", None)
        if fault is None:
            return None
        self._lost.fault = None
        fault.act()
        if attempts < self.attempts:
            return 0  # retry now
        from botocore.exceptions import ConnectionClosedError

        raise ConnectionClosedError(endpoint_url="http://fault.injected/")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def quick_retries(monkeypatch: Any, retries: int) -> None:
    """The library's shared client made anew with ``retries`` botocore retries, and short sleeps between them:
    botocore's backoff (up to 1 s, 2 s... per retry) would make each exhausted retry cost seconds; the retry
    decisions stay botocore's own."""
    from aws_lambda_persistence_lite import _client
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.02)
    monkeypatch.setattr(_client, "MAX_ATTEMPTS", retries)
    _client._clients.clear()
