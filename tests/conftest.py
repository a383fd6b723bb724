"""Fixtures shared by every test: a clean environment, the two packages, DynamoDB backends, call counting
and fault injection.

Backends: moto in-process (the default, fast), moto's HTTP server on 127.0.0.1, and AWS's DynamoDB Local
(Java, installed from npm by tools/dev.py) when present. ``backend`` runs a test against each of them.

``ALP_TEST_BACKEND`` moves the ``aws`` fixture (and so the whole shared suite) to another backend, real AWS
included; see TEST_BACKEND and SHARED_TABLE below.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools import servers

HAS_CORE = importlib.util.find_spec("aws_lambda_persistence") is not None
PACKAGES = ["core", "lite"] if HAS_CORE else ["lite"]


#: Where the ``aws`` fixture sends DynamoDB calls: ``moto`` (in-process, the default), ``moto-server``,
#: ``dynamodb-local``, or ``aws``: real DynamoDB with the credentials, region (and AWS_ENDPOINT_URL_DYNAMODB, if
#: any) of the environment that started pytest. ``ALP_TEST_BACKEND=dynamodb-local pytest tests/shared`` runs the
#: shared suite on DynamoDB Local; ``ALP_TEST_BACKEND=aws pytest tests/shared`` on real AWS (opt-in; skipped
#: when no credentials are found).
TEST_BACKEND = os.environ.get("ALP_TEST_BACKEND", "moto")
BACKENDS = ("moto", "moto-server", "dynamodb-local", "aws")
if TEST_BACKEND not in BACKENDS:
    raise pytest.UsageError(f"ALP_TEST_BACKEND={TEST_BACKEND!r}: use one of {', '.join(BACKENDS)}")

#: Real AWS cannot give each test an empty DynamoDB. With a shared table (always on real AWS; on any backend
#: with ALP_TEST_SHARED_TABLE=1, which is how CI proves this mode on DynamoDB Local), each test session (each
#: pytest-xdist worker) creates one uniquely named on-demand table and deletes it at the end; every test keeps
#: to map keys of its own, and tests that need an empty DynamoDB (marker ``fresh_dynamodb``) are skipped.
SHARED_TABLE = TEST_BACKEND == "aws" or os.environ.get("ALP_TEST_SHARED_TABLE") == "1"
if SHARED_TABLE and TEST_BACKEND == "moto":
    raise pytest.UsageError("ALP_TEST_SHARED_TABLE=1 needs a server: ALP_TEST_BACKEND=moto-server or dynamodb-local")
#: The table the library uses by default in tests (the default table name, or this session's shared table).
TABLE = f"alp-test-{uuid.uuid4().hex[:12]}" if SHARED_TABLE else "AWSLambdaPersistence"
_REAL_AWS_ENV = {k: v for k, v in os.environ.items() if k.startswith("AWS_")} if TEST_BACKEND == "aws" else {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ALP_TEST_BACKEND set, run only the tests it moves (those using the ``aws`` fixture): the others
    (local servers they start themselves, codecs, tools) run the same in the default run."""
    if TEST_BACKEND == "moto":
        return
    moved = [item for item in items if "aws" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in moved])
    items[:] = moved


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with no PERSISTENCE_* settings, no endpoint, dummy credentials (real ones on real AWS),
    a function name of its own when tests share a table, and a fresh client. A new map in a test stands for a new
    container: it does not take over the state of a dropped one (``_reuse.REUSE``, tested in test_reuse.py)."""
    for name in list(os.environ):
        if name.startswith(("PERSISTENCE_", "AWS_")):
            monkeypatch.delenv(name)
    real = TEST_BACKEND == "aws"
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in (_REAL_AWS_ENV if real else fake).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", f"fn-{uuid.uuid4().hex[:12]}" if SHARED_TABLE else "test-function")
    from aws_lambda_persistence_lite import _client, _reuse

    monkeypatch.setattr(_reuse, "REUSE", False)
    _client._clients.clear()
    _reuse._dropped.clear()
    yield
    _client._clients.clear()
    _reuse._dropped.clear()


@pytest.fixture(params=PACKAGES)
def pkg(request: pytest.FixtureRequest) -> Any:
    """The package under test: ``aws_lambda_persistence`` (core) or ``aws_lambda_persistence_lite``."""
    name = "aws_lambda_persistence" if request.param == "core" else "aws_lambda_persistence_lite"
    return importlib.import_module(name)


@pytest.fixture
def core() -> Any:
    if not HAS_CORE:
        pytest.skip("the full package (msgpack + zstandard) is not installed in this environment")
    return importlib.import_module("aws_lambda_persistence")


@pytest.fixture
def lite() -> Any:
    return importlib.import_module("aws_lambda_persistence_lite")


@pytest.fixture
def aws(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """DynamoDB for this test on the backend ALP_TEST_BACKEND names: empty, or (SHARED_TABLE) with this session's
    table as the default table. Yields a client to inspect it."""
    if SHARED_TABLE:
        if request.node.get_closest_marker("fresh_dynamodb"):
            pytest.skip("needs an empty DynamoDB: not with a shared table (real AWS, ALP_TEST_SHARED_TABLE=1)")
        url = request.getfixturevalue("shared_table")
        if url:
            monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
        monkeypatch.setenv("PERSISTENCE_TABLE_NAME", TABLE)
        monkeypatch.setenv("PERSISTENCE_BILLING_MODE", "PAY_PER_REQUEST")
        client = boto3.client("dynamodb", endpoint_url=url) if url else boto3.client("dynamodb")
        keys = {os.environ["AWS_LAMBDA_FUNCTION_NAME"]}  # clean_env's; table_key (or the test) may set another
        yield client
        for prefix in keys | {os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")} - {""}:
            delete_keys_starting_with(client, prefix)
        return
    if TEST_BACKEND == "moto":
        with mock_aws():
            yield boto3.client("dynamodb")
        return
    url = request.getfixturevalue(TEST_BACKEND.replace("-", "_"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    client = boto3.client("dynamodb", endpoint_url=url)
    servers.reset(url, client)
    yield client


@pytest.fixture(scope="session")
def shared_table(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Create this session's table (TABLE), on demand capacity, and delete it when the session ends.
    Yields the endpoint URL of a local backend, or None for real AWS."""
    url: str | None = None
    if TEST_BACKEND == "aws":
        session = boto3.session.Session()
        if session.get_credentials() is None or session.region_name is None:
            pytest.skip("ALP_TEST_BACKEND=aws needs AWS credentials and a region (AWS_DEFAULT_REGION or a profile)")
        client = boto3.client("dynamodb")
    else:
        url = request.getfixturevalue(TEST_BACKEND.replace("-", "_"))
        client = boto3.client("dynamodb", endpoint_url=url)
    try:
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "purpose", "Value": "aws-lambda-persistence tests"}],
        )
        client.get_waiter("table_exists").wait(TableName=TABLE)
        yield url
    finally:  # also after a failed or interrupted creation (DeleteTable of a missing table is harmless here)
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=TABLE)


@dataclass
class Backend:
    name: str
    url: str | None

    def client(self) -> Any:
        return boto3.client("dynamodb", endpoint_url=self.url) if self.url else boto3.client("dynamodb")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    with servers.moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[str]:
    try:
        with servers.dynamodb_local() as url:
            yield url
    except servers.ServerUnavailable as unavailable:
        pytest.skip(str(unavailable))


@pytest.fixture(params=["moto", "moto-server", "dynamodb-local"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Each DynamoDB implementation in turn, reached the way users reach one: AWS_ENDPOINT_URL_DYNAMODB."""
    if request.param == "moto":
        with mock_aws():
            yield Backend("moto", None)
        return
    url = request.getfixturevalue("moto_server" if request.param == "moto-server" else "dynamodb_local")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    yield Backend(request.param, url)


@pytest.fixture
def table_key() -> str:
    """A map key of its own for each test, so tests on shared servers never see each other's maps."""
    key = f"fn-{uuid.uuid4().hex[:12]}"
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = key
    return key


@dataclass
class Calls:
    """DynamoDB operations made through the shared client, in order (botocore's before-call event)."""

    names: list[str] = field(default_factory=list)

    def __call__(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def clear(self) -> None:
        self.names.clear()

    def count(self, name: str) -> int:
        return self.names.count(name)


@pytest.fixture
def calls() -> Calls:
    """Counts every DynamoDB call the library makes (the shared default client, wherever it points)."""
    from aws_lambda_persistence_lite._client import default_client

    recorder = Calls()
    default_client().meta.events.register("before-call.dynamodb", recorder)
    return recorder


@dataclass
class Faults:
    """Make chosen DynamoDB calls fail as the network or DynamoDB would: the fake response is injected at
    botocore's before-send event, so botocore parses it and applies its retry policy exactly as for a real one."""

    plan: list[tuple[Callable[[str, int], bool], Callable[[str], Any]]] = field(default_factory=list)
    seen: int = 0

    def __call__(self, request: Any, **_: Any) -> Any:
        self.seen += 1
        target = request.headers.get("X-Amz-Target", b"")
        name = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        for matches, failure in self.plan:
            if matches(name, self.seen):
                # botocore calls every before-send handler; moto's in-process backend is one of them and would
                # still apply the request unless it no longer looks like an AWS endpoint.
                request.url = "http://fault.injected/"
                return failure(name)
        return None

    def error(
        self,
        operation: str | None,
        code: str,
        *,
        times: int = 1,
        message: str = "injected",
        nth: int | None = None,
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Fail ``operation`` (any operation if None, or the ``nth`` request overall) ``times`` times;
        ``extra`` adds fields to the error body (e.g. CancellationReasons)."""
        remaining = [times]

        def matches(name: str, seen: int) -> bool:
            if (operation and name != operation) or (nth is not None and seen != nth) or remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

        def failure(name: str) -> Any:
            from botocore.awsrequest import AWSResponse

            fields = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **(extra or {})}
            body = json.dumps(fields).encode()
            return AWSResponse(
                "http://fault.injected", status, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(body)
            )

        self.plan.append((matches, failure))

    def cancelled_transaction(self, reason: str) -> None:
        """The next TransactWriteItems is cancelled as DynamoDB reports it: one reason per action, here the
        shards' None and the head's ``reason`` (ThrottlingError, TransactionConflict...)."""
        self.error(
            "TransactWriteItems",
            "TransactionCanceledException",
            message=f"Transaction cancelled [None, {reason}]",
            extra={"CancellationReasons": [{"Code": "None"}, {"Code": reason}]},
        )


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    """Fault injection on the shared client, with botocore retrying twice (not 5 times) to keep tests fast."""
    from aws_lambda_persistence_lite import _client

    monkeypatch.setattr(_client, "MAX_ATTEMPTS", 2)
    _client._clients.clear()
    injector = Faults()
    _client.default_client().meta.events.register_first("before-send.dynamodb", injector)
    return injector


def enter_container(endpoint: str, table_key: str, **settings: str) -> None:
    """In a child process standing for a Lambda container: reach ``endpoint`` with dummy credentials and use the
    map ``table_key`` (plus any PERSISTENCE_* ``settings``), as the function's environment would."""
    os.environ.update(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PERSISTENCE_TABLE_KEY=table_key,
        **{f"PERSISTENCE_{name.upper()}": value for name, value in settings.items()},
    )


def stored_item(client: Any, key: str, table: str = TABLE) -> dict[str, Any] | None:
    """The raw head item of a map, as DynamoDB holds it."""
    item: dict[str, Any] | None = client.get_item(TableName=table, Key={"key": {"S": key}}, ConsistentRead=True).get(
        "Item"
    )
    return item


def delete_keys_starting_with(client: Any, prefix: str, table: str = TABLE) -> None:
    """Delete a test's items (its maps' heads and shards) from the shared table, so that the table stays small:
    tests that scan it (leftover-shard checks) would otherwise slow down with every map stored before them."""
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="#k",
        FilterExpression="begins_with(#k, :p)",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":p": {"S": prefix}},
    )
    keys = [item["key"] for page in pages for item in page["Items"]]
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": {"key": key}}} for key in keys[start : start + 25]]
        while requests:
            response = client.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])


def all_keys(client: Any, table: str = TABLE) -> set[str]:
    """Every hash key in the table (heads and shards)."""
    pages = client.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="#k", ExpressionAttributeNames={"#k": "key"}
    )
    return {item["key"]["S"] for page in pages for item in page["Items"]}


def package_codec(pkg: Any) -> Any:
    """A codec object of the codec ``pkg``'s maps are written with by default."""
    from aws_lambda_persistence_lite._codec import codec_for, lite_default

    return codec_for(pkg.PersistentMap.default_codec or lite_default())
