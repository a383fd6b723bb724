"""Opt-in: the essentials against real DynamoDB, in a uniquely named table that the test deletes.

Runs only with AWS_LAMBDA_PERSISTENCE_REAL_AWS=1 and credentials; it costs a few cents of on-demand capacity.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.aws

REAL = os.environ.get("AWS_LAMBDA_PERSISTENCE_REAL_AWS") == "1"


@pytest.fixture(scope="module")
def real_env() -> Iterator[dict[str, str]]:
    if not REAL:
        pytest.skip("real-AWS tests are opt-in: set AWS_LAMBDA_PERSISTENCE_REAL_AWS=1 with AWS credentials")
    import boto3

    session = boto3.session.Session()
    if session.get_credentials() is None:
        pytest.skip("no AWS credentials found")
    saved = dict(os.environ)  # the autouse clean_env fixture replaces credentials per test; keep the real ones
    yield saved
    table = saved.get("_ALP_TABLE")
    if table:
        session.client("dynamodb").delete_table(TableName=table)


@pytest.fixture
def real(real_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in real_env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    table = real_env.setdefault("_ALP_TABLE", f"AWSLambdaPersistenceTest-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("PERSISTENCE_TABLE_NAME", table)
    monkeypatch.setenv("PERSISTENCE_BILLING_MODE", "PAY_PER_REQUEST")
    monkeypatch.setenv("PERSISTENCE_TABLE_KEY", f"real-{uuid.uuid4().hex[:8]}")
    return table


def test_round_trip_and_sharding(real: str, pkg: Any) -> None:
    """Create the table, write a small then a sharded map, cold-load both; a conflict merges."""
    data = pkg.PersistentMap(a=1)
    assert pkg.PersistentMap().to_dict() == {"a": 1}
    data["blob"] = os.urandom(1_500_000)
    assert pkg.PersistentMap()["blob"] == data["blob"]
    other = pkg.PersistentMap()
    data["x"] = 1
    other["y"] = 2
    assert pkg.PersistentMap().to_dict().keys() >= {"a", "blob", "x", "y"}
    assert data.last_commit.reported_units is not None
