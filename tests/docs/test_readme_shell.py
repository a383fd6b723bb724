"""The README's shell commands for trying the library, run as a new user runs them, word for word: ``python3
tools/dev.py local`` in one shell, its printed lines and the hatch commands of "Trying it locally" in another, the
demo pointed at that server, and the install of both package folders into a fresh virtual environment.

Slow (test-more): it goes through ``tools/dev.py`` and hatch's demo environment, and the install downloads the
packages' dependencies from the package index.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.test_docs import documented_commands, readme_handler
from tests.docs.test_local import read_exports
from tools import servers

ROOT = Path(__file__).resolve().parents[2]
HATCH = ROOT / ".bootstrap" / "bin" / "hatch"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HATCH.exists(), reason="run `python3 tools/dev.py test` once first (it installs hatch)"),
]


def documented(prefix: str) -> list[str]:
    """The README's commands starting with ``prefix``, exactly as documented."""
    found = sorted(command for command in documented_commands() if command.startswith(prefix))
    assert found, f"the README shows no command starting with {prefix!r}"
    return found


def clean_environment() -> dict[str, str]:
    """A new shell's: none of this test run's AWS, hatch or virtual environment variables."""
    keep = ("AWS_", "HATCH_", "VIRTUAL_ENV", "PYTHONPATH", "ALP_")
    return {name: value for name, value in os.environ.items() if not name.startswith(keep)}


@pytest.fixture(scope="module")
def shell() -> Iterator[dict[str, str]]:
    """``python3 tools/dev.py local`` running in a first shell; the environment of a second shell that pasted the
    lines it printed."""
    (command,) = documented("python3 tools/dev.py local")
    port = servers.free_port()
    argv = [sys.executable, *shlex.split(command)[1:], "--port", str(port)]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # (a terminal's process group, which Ctrl-C signals whole)
    )
    env = {**clean_environment(), **read_exports(process)}
    assert env.get("AWS_ENDPOINT_URL_DYNAMODB") == f"http://127.0.0.1:{port}", process.stderr
    try:
        yield env
    finally:
        os.killpg(process.pid, signal.SIGINT)  # (Ctrl-C)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0 and "Traceback" not in err, err


def run(command: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    """A documented command through a shell, as pasted; its output."""
    done = subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_printed_lines_are_the_readme_lines(shell: dict[str, str]) -> None:
    """The README shows what the server prints, PORT aside."""
    for line in documented("export "):
        name, _, value = line.removeprefix("export ").partition("=")
        assert shell[name] == value.replace("PORT", shell["AWS_ENDPOINT_URL_DYNAMODB"].rpartition(":")[2]), name


def test_the_readme_handler_runs_unchanged_in_the_second_shell(shell: dict[str, str], tmp_path: Path) -> None:
    """Saved as handler.py (here on PYTHONPATH rather than at the clone's root), the handler runs with the hatch
    commands the README gives, each run a cold start finding what the previous one stored."""
    (tmp_path / "handler.py").write_text(readme_handler())
    env = {**shell, "PYTHONPATH": str(tmp_path)}
    (invoke,) = documented(".bootstrap/bin/hatch run demo:python")
    (show,) = documented(".bootstrap/bin/hatch run demo:aws-lambda-persistence show")
    first, second = run(invoke, env), run(invoke, env)
    assert first.endswith("{'invocations': 1}\n") and second.endswith("{'invocations': 2}\n"), (first, second)
    assert "'invocations': 2" in run(show, env)


def test_the_demo_runs_against_that_server_with_no_credentials(shell: dict[str, str]) -> None:
    (command,) = documented("python3 tools/dev.py demo --endpoint")
    endpoint = shell["AWS_ENDPOINT_URL_DYNAMODB"]
    out = run(command.replace("http://127.0.0.1:PORT", endpoint), clean_environment())
    assert "ok: the counter reached 6" in out, out


@pytest.mark.parametrize(
    "command",
    [
        "pip install ./packages/aws-lambda-persistence-lite ./packages/aws-lambda-persistence",
        "pip install ./packages/aws-lambda-persistence-lite",
    ],
)
def test_the_install_from_a_clone(command: str, tmp_path: Path) -> None:
    """The Install section's commands, in a fresh virtual environment: the packages import at the release's
    version, and the command line runs."""
    assert command in documented_commands()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**clean_environment(), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    run(command, env)
    module = "aws_lambda_persistence" if command.endswith("aws-lambda-persistence") else "aws_lambda_persistence_lite"
    import aws_lambda_persistence_lite

    version = run(f"python -c 'import {module}; print({module}.__version__)'", env).strip()
    assert version == aws_lambda_persistence_lite.__version__
    assert "policy" in run(f"{module.replace('_', '-')} --help", env)
