"""The test command's report: each pytest session writes its totals (tests/totals.py), and tools/dev.py prints one
summary line for all of its passes and fails when any pass failed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import dev

ROOT = Path(__file__).resolve().parents[2]

TESTS = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

def test_passes(): pass
def test_passes_too(): pass
def test_fails(): assert False
def test_skips(): pytest.skip("no reason")
def test_errors(broken): pass
@pytest.mark.xfail(strict=True)
def test_xfails(): assert False
"""


def test_session_totals(tmp_path: Path) -> None:
    """Counted as pytest counts them, once (by xdist's controller: a worker's file would hold only its share), with
    pytest's exit status."""
    (tmp_path / "test_tiny.py").write_text(TESTS)
    out = tmp_path / "totals.json"
    env = {**os.environ, "ALP_TEST_SUMMARY": str(out)}
    command = [sys.executable, "-m", "pytest", "-p", "tests.totals", "-p", "no:cacheprovider", "-n", "2"]
    proc = subprocess.run(
        [*command, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    totals = json.loads(out.read_text())
    assert totals.pop("seconds") >= 0
    expected = {"passed": 2, "failed": 1, "skipped": 1, "error": 1, "xfailed": 1, "xpassed": 0, "exitstatus": 1}
    assert totals == expected


def fake_hatch(tmp_path: Path, outcomes: dict[str, tuple[int, dict[str, int] | None]]) -> Path:
    """A stand-in for hatch: ``hatch run SCRIPT`` writes that script's totals (if any) and exits with its code."""
    exe = tmp_path / "hatch"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"returncode, totals = {outcomes!r}[sys.argv[2]]\n"
        "if totals is not None:\n"
        "    open(os.environ['ALP_TEST_SUMMARY'], 'w').write(json.dumps(totals))\n"
        "sys.exit(returncode)\n"
    )
    exe.chmod(0o755)
    return exe


def totals(passed: int, failed: int = 0, skipped: int = 0, error: int = 0) -> dict[str, int]:
    counts = {"passed": passed, "failed": failed, "skipped": skipped, "error": error, "xfailed": 0, "xpassed": 0}
    return {**counts, "exitstatus": int(bool(failed or error))}


def test_summary_of_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A header per pass, and one last line with the totals of all passes and each one's wall time."""
    exe = fake_hatch(tmp_path, {"test-slow": (0, totals(10, skipped=2)), "lite:test": (0, totals(5, skipped=1))})
    assert dev.run_passes(exe, ["test-slow", "lite:test"], []) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "==== pass 1 of 2: hatch run test-slow ====" in lines
    assert f"     {dev.PASSES['lite:test']}" in lines
    summary = r"summary: 15 passed, 0 failed, 3 skipped, 0 errors in 0:\d\d \(test-slow 0:\d\d, lite:test 0:\d\d\)"
    assert re.fullmatch(summary, lines[-1]), lines[-1]


@pytest.mark.parametrize(
    ("outcome", "shown"),
    [
        ((1, totals(3, failed=1)), "10 passed, 1 failed, 0 skipped, 0 errors"),
        ((1, totals(3, error=2)), "10 passed, 0 failed, 0 skipped, 2 errors"),
        ((4, None), "7 passed, 0 failed, 0 skipped, 0 errors"),
    ],
    ids=["a test failed", "a test errored", "pytest stopped early"],
)
def test_any_failed_pass_fails_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], outcome: tuple[int, dict[str, int] | None], shown: str
) -> None:
    """Every pass runs, and the command exits non-zero: the last line says which pass failed."""
    exe = fake_hatch(tmp_path, {"test-dynamodb-local": outcome, "test-shared-table": (0, totals(7))})
    assert dev.run_passes(exe, ["test-dynamodb-local", "test-shared-table"], []) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"summary: {shown} in "), last
    early = " (exit 4 before pytest's end)" if outcome[1] is None else ""
    assert re.search(rf"\(test-dynamodb-local 0:\d\d FAILED{re.escape(early)}, test-shared-table 0:\d\d\)$", last)
