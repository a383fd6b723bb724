"""Fixtures of the fault suite: a local DynamoDB server (DynamoDB Local; moto's server where DynamoDB Local is not
installed) behind the fault-injecting proxy, and a direct client to that server."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.faults.injection import quick_retries
from tests.faults.proxy import FaultProxy

#: botocore retries per call in these tests (the library's default is 5): enough to see retries work.
RETRIES = 3


@pytest.fixture(scope="session")
def upstream(request: pytest.FixtureRequest) -> str:
    """The server behind the proxy: DynamoDB Local (real transaction semantics: ClientRequestToken, conflicts),
    else moto's server."""
    try:
        url: str = request.getfixturevalue("dynamodb_local")
    except pytest.skip.Exception:
        url = request.getfixturevalue("moto_server")
    return url


@pytest.fixture(scope="session")
def proxy_server(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as proxy:
        yield proxy


@pytest.fixture
def proxy(proxy_server: FaultProxy, direct: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The proxy with an empty plan; the library's shared client points at it, with fewer botocore attempts.

    Each test gets a table of its own (PERSISTENCE_TABLE_NAME), dropped afterwards: scans stay small and the
    server's memory does not grow with every megabyte the suite writes.
    """
    from aws_lambda_persistence_lite import _client

    proxy_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy_server.url)
    table = f"faults-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PERSISTENCE_TABLE_NAME", table)
    quick_retries(monkeypatch, RETRIES)
    yield proxy_server
    proxy_server.reset()
    _client._clients.clear()
    with contextlib.suppress(direct.exceptions.ResourceNotFoundException):
        direct.delete_table(TableName=table)


@pytest.fixture
def direct(upstream: str) -> Any:  # the table is PERSISTENCE_TABLE_NAME (see current_table)
    """A client to the server itself, bypassing the proxy: what DynamoDB really holds."""
    return boto3.client("dynamodb", endpoint_url=upstream)


def short_timeout_client(url: str, read_timeout: float = 0.5) -> Any:
    """A client that gives up on a response after ``read_timeout`` seconds (for slow responses)."""
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": RETRIES}, connect_timeout=2, read_timeout=read_timeout)
    return boto3.client("dynamodb", endpoint_url=url, config=config)


def current_table() -> str:
    """The table of the running test."""
    return os.environ["PERSISTENCE_TABLE_NAME"]
