"""A fault-injecting HTTP proxy in front of a local DynamoDB server (DynamoDB Local, or moto's), on 127.0.0.1.

Its plan and its faults are tests/faults/injection.py's, the same as ``Faults`` applies inside a botocore client:
each request is forwarded unchanged (stdlib ``http.client``) unless a rule of the plan matches it, and every
request is logged, so a test can check that its fault fired.

It stays a layer of its own, beside ``Faults``, because it reaches what a client of the test process cannot: the
requests of containers in child processes (the only way to kill -9 one at a chosen request: KILL_BEFORE,
KILL_AFTER, with ``victim`` its pid), and the real socket, whose hang-ups and slow answers (``slow``, past the
client's read timeout) run urllib3's and botocore's own handling of them. It needs a server process, so it cannot
serve the tests on moto in-process, the default backend, which ``Faults`` does.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.faults.injection import APPLIED, FORWARD, Plan

#: Headers that describe one hop's connection, not the request: never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class FaultProxy(Plan):
    """The proxy server: ``with FaultProxy(upstream_url) as proxy: ... proxy.url ...``; ``proxy.on(...)`` plans."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        assert parts.hostname == "127.0.0.1", "the proxy only forwards to a local server"
        self.upstream = (parts.hostname, parts.port or 80)
        #: The process KILL_BEFORE / KILL_AFTER kill (a container started by the test).
        self.victim: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def reset(self) -> None:
        super().reset()
        self.victim = None

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
        # TCP_NODELAY: else a response's headers and body, two writes, meet the client's delayed ACK (Nagle's
        # algorithm): 40 ms more per request, which made most of the fault suite's time
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # no access log
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
            fault = proxy.decide(operation, body) or FORWARD
            if fault.kind not in APPLIED:  # nothing reached DynamoDB yet
                fault.act()
            if fault.kind == "kill before":
                proxy._kill()
                self._hang_up()
                return
            if fault.kind == "drop":
                self._hang_up()
                return
            if fault.kind == "error":
                self._answer(fault.status, [("Content-Type", "application/x-amz-json-1.0")], fault.body())
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            status, response_headers, payload = proxy._forward(self.command, self.path, headers, body)
            if fault.kind in APPLIED:
                fault.act()
            if fault.kind == "kill after":
                proxy._kill()
            if fault.kind in ("lose", "kill after"):
                self._hang_up()
                return
            if fault.kind == "slow":
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
