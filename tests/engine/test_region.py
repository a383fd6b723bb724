"""Where a map's client finds its region: boto3's own places (a passed client, session or config,
AWS_DEFAULT_REGION, the profile), else AWS_REGION, which botocore ignores (checked below) but Lambda, other SDKs and
many shells set; with none, a ConfigurationError that says what to set, not botocore's NoRegionError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_persistence_lite import ConfigurationError, _client
from botocore.config import Config
from moto import mock_aws


@pytest.fixture(autouse=True)
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No region in the environment, and an AWS config file without one (not this machine's ~/.aws/config)."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))


def test_botocore_ignores_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """The premise: were botocore to read AWS_REGION one day, this fallback would be redundant, not wrong."""
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert boto3.session.Session().region_name is None


def test_aws_region_alone(pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert _client.default_client().meta.region_name == "us-east-1"
    with mock_aws():
        pkg.PersistentMap()["a"] = 1
        assert pkg.PersistentMap() == {"a": 1}


def test_aws_default_region_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert _client.default_client().meta.region_name == "eu-west-1"


def test_the_profiles_region(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[default]\nregion = ap-south-1\n")
    assert _client.default_client().meta.region_name == "ap-south-1"


def test_boto3s_choice_wins_over_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_REGION only fills in where boto3 finds nothing: what boto3 would choose is never overridden."""
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert _client.default_client().meta.region_name == "eu-west-1"


@pytest.mark.parametrize("how", ["constructor", "open", "session", "config"])
def test_no_region_is_a_configuration_error(pkg: Any, how: str) -> None:
    opening = {
        "constructor": pkg.PersistentMap,
        "open": lambda: pkg.PersistentMap.open(lazy=True),
        "session": lambda: pkg.PersistentMap.open(boto3_session=boto3.session.Session()),
        "config": lambda: pkg.PersistentMap.open(boto_config=Config(read_timeout=5)),
    }[how]
    with pytest.raises(ConfigurationError) as raised:
        opening()
    assert str(raised.value) == (
        "no AWS region is configured: set AWS_REGION or AWS_DEFAULT_REGION (Lambda sets both), or `region` in the "
        "profile of your AWS config file"
    )


def test_a_passed_client_session_or_config_keeps_its_region(pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = boto3.client("dynamodb", region_name="sa-east-1")
    assert pkg.PersistentMap.open(client=client, lazy=True)._replica.table.client is client
    session = boto3.session.Session(region_name="ap-northeast-1")
    assert _client.client_for(session).meta.region_name == "ap-northeast-1"
    assert _client.client_for(None, Config(region_name="ca-central-1")).meta.region_name == "ca-central-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert _client.client_for(boto3.session.Session()).meta.region_name == "eu-west-3"  # (a session without one)
