"""What the command line says when something is off: the table it used, the region to set, the command to run
instead of installing anything, counts in the right number, and whose capacity figure it shows."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import Cli, _run, one_line_error, opened, where_calls_went

pytestmark = pytest.mark.fresh_dynamodb


@pytest.fixture
def cli(aws: Any, pkg: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    main = importlib.import_module(pkg.__name__ + ".__main__").main
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return lambda *argv: _run(main, capsys, *argv)


class TestMissingTable:
    def test_names_the_table_the_environment_chose(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """PERSISTENCE_TABLE_NAME wins over --table: the message names the table scanned, and why that one."""
        monkeypatch.setenv("PERSISTENCE_TABLE_NAME", "EnvTable")
        line = one_line_error(cli("list", "--table", "OptionTable"))
        assert "table 'EnvTable' (from PERSISTENCE_TABLE_NAME, which overrides --table 'OptionTable')" in line
        assert f"does not exist {where_calls_went()}" in line

    def test_names_the_default_table(self, cli: Cli) -> None:
        line = one_line_error(cli("migrate", "--dry-run"))
        assert "table 'AWSLambdaPersistence' (the default) does not exist" in line


class TestRegion:
    def test_no_region_anywhere_says_what_to_set(
        self, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Not botocore's NoRegionError: the library's ConfigurationError, with the command's own option."""
        monkeypatch.delenv("AWS_DEFAULT_REGION")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        line = one_line_error(cli("show", "m"))
        assert "set AWS_REGION or AWS_DEFAULT_REGION" in line and line.endswith("; or pass --region")

    def test_aws_region_alone_is_enough(self, cli: Cli, pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """The variable a laptop often has alone, and the one the command line's help names."""
        opened(pkg, "m")["a"] = 1
        monkeypatch.delenv("AWS_DEFAULT_REGION")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        result = cli("show", "m")
        assert result.code == 0 and json.loads(result.out) == {"a": 1}, result


class TestCounts:
    def test_one_is_singular(self, cli: Cli, pkg: Any, aws: Any, tmp_path: Path) -> None:
        """No "1 calls", "1 read units" or "map(s)" in what the commands print."""
        import pickle

        from tests.conftest import put_legacy

        opened(pkg, "m")["a"] = 1
        info = cli("info", "m")
        assert re.search(r"last load: +1 call, 1 item, 1 read unit\b", info.out), info.out
        put_legacy(aws, "old", pickle.dumps({"x": 1}))
        dry = cli("migrate", "--dry-run", "--progress")
        assert "reading: 1/1 map," in dry.err and "1 map to rewrite" in dry.err, dry
        export = cli("export", "m", str(tmp_path / "m.json"), "--progress")
        assert "reading m: 1 item," in export.err and "exported 1 entry" in export.err, export
        for result in (info, dry, export, cli("migrate", "--yes"), cli("list")):
            assert "(s)" not in result.out + result.err and not re.search(r"\b1 \w+s\b", result.out + result.err)


class TestReportedCapacity:
    def test_an_emulators_figure_is_labelled_by_its_endpoint(
        self, moto_server: str, pkg: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """moto reports a fixed 0.5 for any GetItem: shown as the endpoint's figure, never as DynamoDB's."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
        main = importlib.import_module(pkg.__name__ + ".__main__").main
        opened(pkg, "reported")["a"] = 1
        result = _run(main, capsys, "info", "reported")
        assert f"({moto_server} reported 0.5)" in result.out and "DynamoDB reported" not in result.out, result
        facts = json.loads(_run(main, capsys, "info", "reported", "--json").out)
        assert facts["load_reported_by"] == moto_server

    @pytest.mark.parametrize(
        ("endpoint", "reporter"),
        [
            (None, "DynamoDB"),
            ("https://dynamodb.eu-west-1.amazonaws.com", "DynamoDB"),
            ("http://localhost:8000", "http://localhost:8000"),
        ],
    )
    def test_real_dynamodb_is_named_dynamodb(
        self, monkeypatch: pytest.MonkeyPatch, endpoint: str | None, reporter: str
    ) -> None:
        from aws_lambda_persistence_lite._cli._inspect import _reporter

        if endpoint:
            monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        assert _reporter() == reporter


class TestMigrateDryRun:
    def test_refuses_what_migrate_refuses_with_the_reason(
        self, aws: Any, core: Any, lite: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A lite map holding 150 nested tuples, more than msgpack reads back: the dry run encodes every entry as
        migrate does, so it names the map as a refusal (with the reason) instead of listing it to rewrite."""
        from aws_lambda_persistence.__main__ import main as core_main

        deep: Any = ()
        for _ in range(150):
            deep = (deep,)
        opened(lite, "deep")["k"] = deep
        opened(lite, "fine")["k"] = 1
        dry = _run(core_main, capsys, "migrate", "--dry-run")
        assert dry.code == 1 and dry.out.split() == ["fine"], dry
        assert "deep: cannot be migrated: cannot store the value at ['k']" in dry.err
        assert "1 of 2 maps cannot be migrated" in dry.err and "1 map to rewrite" in dry.err
        result = _run(core_main, capsys, "migrate", "--yes")
        assert result.code == 1 and "deep: not migrated: cannot store the value at ['k']" in result.out


class TestFullPackageAdvice:
    """The lite command meets a map only the full package reads: where that package is installed, installing it
    is not the advice."""

    def test_the_full_command_on_path_is_named(self, moto_server: str, core: Any, tmp_path: Path) -> None:
        """The full package installed for another Python (its command on PATH): run that command instead."""
        env = _endpoint_env(moto_server)
        core.PersistentMap.open(table_key="full-map", client=_client(moto_server))["a"] = (1,)
        full = tmp_path / "aws-lambda-persistence"
        full.write_text("#!/bin/sh\n")
        full.chmod(0o755)
        lite = _lite_command(env | {"PATH": str(tmp_path)}, "show", "full-map")
        assert lite.returncode == 1 and len(lite.stderr.splitlines()) == 1, lite.stderr
        assert "pip install" not in lite.stderr
        assert f"the full package's command is installed: {full} --endpoint-url {moto_server} show full-map" in (
            lite.stderr
        )

    def test_an_installed_full_package_that_does_not_import(self, moto_server: str, core: Any) -> None:
        """Installed here but broken (msgpack missing): say so, with the import error, rather than "install it"."""
        core.PersistentMap.open(table_key="full-map-2", client=_client(moto_server))["a"] = (1,)
        env = _endpoint_env(moto_server)
        lite = _lite_command(env, "show", "full-map-2", hide="msgpack")
        assert lite.returncode == 1 and len(lite.stderr.splitlines()) == 1, lite.stderr
        assert "pip install" not in lite.stderr
        assert "the full package is installed but does not import (ModuleNotFoundError: " in lite.stderr
        assert lite.stderr.rstrip().endswith("reinstall it")


def _client(url: str) -> Any:
    import boto3

    return boto3.client("dynamodb", endpoint_url=url)


def _endpoint_env(url: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": url}


def _lite_command(env: dict[str, str], *argv: str, hide: str = "aws_lambda_persistence") -> Any:
    """The lite command in a process where module ``hide`` cannot be imported."""
    run = f"import sys; sys.modules[{hide!r}] = None; from aws_lambda_persistence_lite.__main__ import main; "
    run += "sys.exit(main())"
    url = env["AWS_ENDPOINT_URL_DYNAMODB"]
    return subprocess.run(
        [sys.executable, "-c", run, "--endpoint-url", url, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )
