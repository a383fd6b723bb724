"""Fixtures shared by every test: a clean environment, the two packages, DynamoDB backends, call counting
and fault injection.

Backends: moto in-process (the default, fast), moto's HTTP server on 127.0.0.1, and AWS's DynamoDB Local
(Java, installed from npm by tools/dev.py) when present. ``backend`` runs a test against each of them.

``ALP_TEST_BACKEND`` moves the ``aws`` fixture (and so every test using it, the DynamoDB suite) to another backend,
real AWS included; see TEST_BACKEND and SHARED_TABLE below. "Runs against both packages" is the ``pkg`` fixture.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests import totals
from tests.faults.injection import Faults, quick_retries
from tools import servers

HAS_CORE = importlib.util.find_spec("aws_lambda_persistence") is not None
PACKAGES = ["core", "lite"] if HAS_CORE else ["lite"]


#: Where the ``aws`` fixture sends DynamoDB calls: ``moto`` (in-process, the default), ``moto-server``,
#: ``dynamodb-local``, or ``aws``: real DynamoDB with the credentials, region (and AWS_ENDPOINT_URL_DYNAMODB, if
#: any) of the environment that started pytest. ``ALP_TEST_BACKEND=dynamodb-local pytest tests`` runs the
#: DynamoDB suite on DynamoDB Local; ``ALP_TEST_BACKEND=aws pytest tests`` on real AWS (opt-in; skipped when no
#: credentials are found).
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


def pytest_configure(config: pytest.Config) -> None:
    totals.pytest_configure(config)  # the session's totals for tools/dev.py (tests/totals.py)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ALP_TEST_BACKEND set, run only the tests it moves (those using the ``aws`` fixture, but for those
    marked ``moto_only``): the others (local servers they start themselves, codecs, tools) run the same in the
    default run."""
    if TEST_BACKEND == "moto":
        return
    moved = [
        item
        for item in items
        if "aws" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("moto_only")
    ]
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
        create_table(client, TABLE, Tags=[{"Key": "purpose", "Value": "aws-lambda-persistence tests"}])
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

    @classmethod
    def of(cls, client: Any) -> Calls:
        """The calls ``client`` makes from now on."""
        recorder = cls()
        client.meta.events.register("before-call.dynamodb", recorder)
        return recorder


@pytest.fixture
def calls() -> Calls:
    """Counts every DynamoDB call the library makes (the shared default client, wherever it points)."""
    from aws_lambda_persistence_lite._client import default_client

    return Calls.of(default_client())


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    """Faults injected into the shared client (tests/faults/injection.py), with botocore retrying twice (not 5
    times) and quickly, to keep tests fast."""
    from aws_lambda_persistence_lite._client import default_client

    quick_retries(monkeypatch, 2)
    return Faults(default_client())


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


def create_table(
    client: Any, table: str = TABLE, *, key: str = "key", sort_key: str | None = None, **options: Any
) -> None:
    """Create ``table`` as the library does (a string hash key named ``key``, on-demand) and wait until it exists.
    A test that needs another table passes only what differs: the key's name, a (string) sort key, or
    CreateTable's own ``options`` (tags; 1.0.0's provisioned capacity, with ``BillingMode="PROVISIONED"``)."""
    schema = [(key, "HASH"), *([(sort_key, "RANGE")] if sort_key else [])]
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name, _ in schema],
        KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in schema],
        **{"BillingMode": "PAY_PER_REQUEST", **options},
    )
    client.get_waiter("table_exists").wait(TableName=table)


def stored_item(client: Any, key: str, table: str = TABLE) -> dict[str, Any] | None:
    """The raw head item of a map, as DynamoDB holds it."""
    item: dict[str, Any] | None = client.get_item(TableName=table, Key={"key": {"S": key}}, ConsistentRead=True).get(
        "Item"
    )
    return item


def stored_keys(client: Any, table_key: str) -> set[str]:
    """The hash keys of one map's items: its head and its segment shards."""
    return {k for k in all_keys(client) if k == table_key or k.startswith(f"{table_key}#")}


def put_legacy(
    client: Any,
    key: str,
    payload: bytes,
    table: str = TABLE,
    key_field: str = "key",
    value_field: str = "value",
) -> None:
    """Write an item exactly as aws-lambda-persistence 1.0.0 does: a pickled dict as Binary in ``value``, in a
    table with a string hash key (created, with 1.0.0's 1/1 capacity, if missing)."""
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        capacity = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
        create_table(client, table, key=key_field, BillingMode="PROVISIONED", ProvisionedThroughput=capacity)
    client.put_item(TableName=table, Item={key_field: {"S": key}, value_field: {"B": payload}})


def apply_ops(data: dict[Any, Any], ops: Iterable[Any], codec: Any) -> None:
    """Apply format 3's ops (``_records.Op``: SET, DEL, ADD, CLEAR of entries ``codec`` encoded) to a plain dict,
    as a reader folds them (FORMAT.md, "Records"): the model that what is stored must equal."""
    from aws_lambda_persistence_lite._records import CLEAR, DEL, SET

    for op in ops:
        if op.kind == CLEAR:
            data.clear()
            continue
        key, value = codec.decode_entry(op.entry)
        if op.kind == SET:
            data[key] = value
        elif op.kind == DEL:
            data.pop(key, None)
        elif type(data.get(key, 0)) in (int, float):  # ADD (a missing key counts as 0; a bool or a non-number stays)
            data[key] = data.get(key, 0) + value


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


def flushed(pkg: Any) -> Any:
    """A map whose log was flushed into stored segments (a partition too large to be inline, and runs), with
    records in its log."""
    rng = random.Random(0)
    data = pkg.PersistentMap(a=1, b="x" * 100)
    for i in range(200):
        data[f"k{i % 30}"] = rng.randbytes(60).hex() + str(i)
    return data


def patch(client: Any, key: str, **attributes: Any) -> None:
    """Change the stored head: attributes set to None are removed."""
    item = stored_item(client, key)
    assert item is not None
    item.update(attributes)
    for name, value in list(item.items()):
        if value is None:
            del item[name]
    client.put_item(TableName=TABLE, Item=item)


def refused(pkg: Any, table_key: str, error: type[Exception] = Exception, match: str | None = None) -> Any:
    """A cold reader refuses the map with ``error`` (a StoredDataError) naming table and key."""
    with pytest.raises(error, match=match) as raised:
        pkg.PersistentMap()
    assert isinstance(raised.value, pkg.StoredDataError)
    assert (raised.value.table, raised.value.key) == (TABLE, table_key)
    return raised.value


def package_codec(pkg: Any) -> Any:
    """A codec object of the codec ``pkg``'s maps are written with by default."""
    from aws_lambda_persistence_lite._codec import codec_for, lite_default

    return codec_for(pkg.PersistentMap.default_codec or lite_default())
