"""A fault-injecting HTTP proxy in front of moto's DynamoDB server, on 127.0.0.1.

Each request is forwarded unchanged (stdlib ``http.client``) unless a rule of the plan matches it. A rule names
an operation (the suffix of ``X-Amz-Target``, e.g. ``PutItem``; None for any), which occurrences it hits (the
``nth`` matching request and the ``times - 1`` after it) and what to do instead:

- ``error(status, code, ...)``: answer with a DynamoDB JSON error, the request never reaches moto;
- ``DROP``: close the connection without answering, the request never reaches moto;
- ``LOSE``: forward to moto (the write is applied), then close the connection instead of answering;
- ``slow(seconds)``: forward to moto, then answer only after ``seconds`` (past the client's read timeout).

Every request is recorded in ``log`` as (operation, what was done), so a test can check that its fault fired.
"""

from __future__ import annotations

import contextlib
import http.client
import json
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
    kind: str  # "error", "drop", "lose" or "slow"
    status: int = 400
    code: str = ""
    message: str = "injected"
    extra: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}" if self.kind == "error" else self.kind


DROP = Fault("drop")
LOSE = Fault("lose")


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

    def hit(self, operation: str) -> bool:
        if self.operation is not None and operation != self.operation:
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
        self.log: list[tuple[str, str]] = []
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
        """From the ``nth`` request for ``operation`` (None: any) on, ``times`` requests get ``fault``."""
        with self._lock:
            self.rules.append(Rule(operation, fault, nth, times))

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def fired(self, operation: str | None = None) -> list[str]:
        """What was done to the requests for ``operation`` (None: all), in order, other than forwarding."""
        with self._lock:
            return [done for op, done in self.log if done != "forward" and operation in (None, op)]

    def operations(self) -> list[str]:
        with self._lock:
            return [op for op, _ in self.log]

    def _decide(self, operation: str) -> Fault | None:
        with self._lock:
            chosen = None
            for rule in self.rules:
                if rule.hit(operation) and chosen is None:
                    chosen = rule.fault
            self.log.append((operation, str(chosen) if chosen else "forward"))
            return chosen

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
            fault = proxy._decide(operation)
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
            if fault is not None and fault.kind == "lose":
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
