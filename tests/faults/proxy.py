"""A fault-injecting HTTP proxy in front of a local DynamoDB server (DynamoDB Local, or moto's), on 127.0.0.1.

Each request is forwarded unchanged (stdlib ``http.client``) unless a rule of the plan matches it. A rule names
an operation (the suffix of ``X-Amz-Target``, e.g. ``PutItem``) or a protocol step of format 3 (``STEPS``: the
proxy reads each request and says which step it is, e.g. ``append`` or ``merge``; None for any), which
occurrences it hits (the ``nth`` matching request and the ``times - 1`` after it) and what to do instead:

- ``error(status, code, ...)``: answer with a DynamoDB JSON error, the request never reaches the server;
- ``DROP``: close the connection without answering, the request never reaches the server;
- ``LOSE``: forward to the server (the write is applied), then close the connection instead of answering;
- ``slow(seconds)``: forward to the server, then answer only after ``seconds`` (past the client's read timeout);
- ``KILL_BEFORE`` / ``KILL_AFTER``: kill -9 the process ``victim`` (a container in a child process) before the
  request is forwarded (it never reaches DynamoDB) or after (it is applied, nobody sees the answer).

Every request is recorded in ``log`` as (operation, step, what was done), so a test can check that its fault
fired.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: Upper bound of any injected delay: a test can never make the proxy sleep for long.
MAX_DELAY = 5.0
#: Headers that describe one hop's connection, not the request: never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass(frozen=True)
class Fault:
    kind: str  # "error", "drop", "lose", "slow", "kill before" or "kill after"
    status: int = 400
    code: str = ""
    message: str = "injected"
    extra: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}" if self.kind == "error" else self.kind


DROP = Fault("drop")
LOSE = Fault("lose")
KILL_BEFORE = Fault("kill before")
KILL_AFTER = Fault("kill after")

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


def error(status: int, code: str, message: str = "injected", **extra: Any) -> Fault:
    """A DynamoDB error response (``extra`` adds fields to its body, e.g. CancellationReasons)."""
    return Fault("error", status=status, code=code, message=message, extra=extra)


def slow(seconds: float) -> Fault:
    """Apply the request, then answer after ``seconds`` (bounded by MAX_DELAY)."""
    return Fault("slow", delay=min(seconds, MAX_DELAY))


@dataclass
class Rule:
    operation: str | None
    fault: Fault
    nth: int = 1
    times: int = 1
    seen: int = 0

    def hit(self, operation: str, step: str | None) -> bool:
        if self.operation is not None and self.operation not in (operation, step):
            return False
        self.seen += 1
        return self.nth <= self.seen < self.nth + self.times


class FaultProxy:
    """The proxy server: ``with FaultProxy(upstream_url) as proxy: ... proxy.url ...``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname == "127.0.0.1", "the proxy only forwards to a local server"
        self.upstream = (parts.hostname, parts.port or 80)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str | None, str]] = []
        #: The process KILL_BEFORE / KILL_AFTER kill (a container started by the test).
        self.victim: int | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- the plan -------------------------------------------------------------------------------------------

    def on(self, operation: str | None, fault: Fault, *, nth: int = 1, times: int = 1) -> None:
        """From the ``nth`` request for ``operation`` (an operation or a step; None: any) on, ``times`` requests
        get ``fault``."""
        with self._lock:
            self.rules.append(Rule(operation, fault, nth, times))

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()
            self.victim = None

    def fired(self, operation: str | None = None) -> list[str]:
        """What was done to the requests for ``operation`` (an operation or a step; None: all), in order, other
        than forwarding."""
        with self._lock:
            return [done for op, step, done in self.log if done != "forward" and operation in (None, op, step)]

    def operations(self) -> list[str]:
        """Every request so far, as its step (or its operation when it is no step)."""
        with self._lock:
            return [step or op for op, step, _ in self.log]

    def _decide(self, operation: str, body: bytes) -> Fault | None:
        step = classify(operation, body)
        with self._lock:
            chosen = None
            for rule in self.rules:
                if rule.hit(operation, step) and chosen is None:
                    chosen = rule.fault
            self.log.append((operation, step, str(chosen) if chosen else "forward"))
            return chosen

    def _kill(self) -> None:
        if self.victim is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.victim, signal.SIGKILL)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[Any], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # no access log
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
            fault = proxy._decide(operation, body)
            if fault is not None and fault.kind == "kill before":
                proxy._kill()
                self._hang_up()
                return
            if fault is not None and fault.kind == "drop":
                self._hang_up()
                return
            if fault is not None and fault.kind == "error":
                fields = {"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}", "message": fault.message}
                payload = json.dumps({**fields, **fault.extra}).encode()
                self._answer(fault.status, [("Content-Type", "application/x-amz-json-1.0")], payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            status, response_headers, payload = proxy._forward(self.command, self.path, headers, body)
            if fault is not None and fault.kind == "kill after":
                proxy._kill()
            if fault is not None and fault.kind in ("lose", "kill after"):
                self._hang_up()
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            self._answer(status, response_headers, payload)

        def _answer(self, status: int, headers: list[Any], payload: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() not in ("content-length", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
            except OSError:  # the client gave up (read timeout): nothing more to do
                self.close_connection = True

        def _hang_up(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
