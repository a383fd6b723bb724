"""Trying a function locally as the README's "Trying it locally" says: ``tools/servers.py`` (what ``tools/dev.py
local`` runs) starts a local DynamoDB in the foreground and prints the lines to paste into another shell; the
README's handler, run there with exactly that environment, keeps its map across runs; Ctrl-C or SIGTERM stops the
server cleanly. Also ``tools/demo.py --endpoint URL`` with no credentials or region set."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.docs.test_docs import readme_handler
from tools import servers

ROOT = Path(__file__).resolve().parents[2]
HAS_CORE = importlib.util.find_spec("aws_lambda_persistence") is not None


def start(server: str, port: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The server command, and the variables its ``export`` lines set (read up to the last of them)."""
    command = [sys.executable, str(ROOT / "tools" / "servers.py"), server, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, read_exports(process)


def read_exports(process: subprocess.Popen[str]) -> dict[str, str]:
    """The variables a running server's ``export`` lines set, read up to the line after the last of them."""
    assert process.stdout is not None
    exported: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exported[name] = value
        elif exported:  # (the blank line after them)
            return exported
    raise AssertionError(f"no environment printed; stderr: {process.stderr.read() if process.stderr else ''}")


def stop(process: subprocess.Popen[str], how: signal.Signals) -> str:
    """Stop the server as a user (Ctrl-C: SIGINT) or a process manager (SIGTERM) does; what it printed then."""
    process.send_signal(how)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err, err
    return out


@pytest.fixture(params=["moto", "dynamodb-local"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    if request.param == "dynamodb-local" and (servers.dynamodb_local_jar() is None or not shutil.which("java")):
        pytest.skip("DynamoDB Local is not installed (java and `python3 tools/dev.py test` install it)")
    process, exported = start(request.param, servers.free_port())
    try:
        yield process, exported
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_readme_handler_keeps_its_map_on_a_local_server(
    server: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    process, exported = server
    assert set(exported) == {
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
    }
    handler = readme_handler()
    if not HAS_CORE:  # (the lite package's hatch environment)
        handler = handler.replace("from aws_lambda_persistence import", "from aws_lambda_persistence_lite import")
    (tmp_path / "handler.py").write_text(handler)
    # Exactly the printed environment: no variable of this test's (PATH only, to find nothing in particular)
    env = {**exported, "PATH": os.defpath}
    invoke = "import handler; print(handler.lambda_handler(dict(), None))"  # (the README's command)
    runs = [
        subprocess.run(
            [sys.executable, "-c", invoke],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for _ in range(2)  # two cold starts: the second finds what the first stored
    ]
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    assert runs[0].stdout == "{'invocations': 1}\n"
    assert runs[1].stdout.startswith("last run at ") and runs[1].stdout.endswith("{'invocations': 2}\n")
    assert "stopped" in stop(process, signal.SIGTERM)


def test_ctrl_c_stops_the_server_and_its_tables_go() -> None:
    process, exported = start("moto", servers.free_port())
    url = exported["AWS_ENDPOINT_URL_DYNAMODB"]
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
    assert client.list_tables()["TableNames"] == []
    assert stop(process, signal.SIGINT).endswith("moto's DynamoDB server stopped\n")
    with pytest.raises(Exception, match="Could not connect"):
        boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1").list_tables()


class TestDemoEndpoint:
    def run(self, url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
        """tools/demo.py --endpoint URL with no AWS variable of this test's, and no AWS config or credentials file."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PERSISTENCE_"))}
        none = str(tmp_path / "none")
        base.update(AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none, **env)
        command = [
            sys.executable,
            str(ROOT / "tools" / "demo.py"),
            "--endpoint",
            url,
            *([] if HAS_CORE else ["--lite"]),
        ]
        return subprocess.run(command, env=base, capture_output=True, text=True, timeout=120, check=False)

    def test_supplies_dummy_credentials_and_region(self, moto_server: str, tmp_path: Path) -> None:
        demo = self.run(moto_server, tmp_path)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "is not AWS and none were set: using dummy credentials and region us-east-1" in demo.stdout
        assert "counter reached 6" in demo.stdout

    def test_keeps_what_the_user_set(self, moto_server: str, tmp_path: Path) -> None:
        """A region in AWS_REGION alone is kept: the demo's table is created there (moto keeps regions apart)."""
        demo = self.run(moto_server, tmp_path, AWS_REGION="eu-west-3", PERSISTENCE_TABLE_NAME="demo-region")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "using dummy credentials\n" in demo.stdout and "region us-east-1" not in demo.stdout
        tables = boto3.client("dynamodb", endpoint_url=moto_server, region_name="eu-west-3").list_tables()
        assert "demo-region" in tables["TableNames"]
