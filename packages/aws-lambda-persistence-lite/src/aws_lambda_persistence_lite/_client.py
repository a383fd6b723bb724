"""The one boto3 DynamoDB client a Lambda container uses, created on first use and then reused.

boto3 is imported here, lazily, so that importing this package stays cheap; its import is paid once,
by the first map that talks to DynamoDB. Retries are botocore's own ("standard" mode, which backs off
on throttling and transient network errors); this library adds retries only for its own conflicts.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient

_clients: dict[tuple[str | None, ...], DynamoDBClient] = {}
_lock = threading.Lock()

#: botocore attempts per call, including the first; standard mode backs off exponentially with jitter.
MAX_ATTEMPTS = 5

NO_REGION = (
    "no AWS region is configured: set AWS_REGION or AWS_DEFAULT_REGION (Lambda sets both), or `region` in the "
    "profile of your AWS config file"
)


def client_for(session: Session | None = None, config: Config | None = None) -> DynamoDBClient:
    """The client a map talks through: the shared one, or (given a boto3 session or a botocore config, as
    Powertools takes them) one of its own, from ``session`` with this library's retries and timeouts overridden by
    ``config``."""
    if session is None and config is None:
        return default_client()
    return _new_client(session, _config() if config is None else _config().merge(config))


def _new_client(session: Session | None, config: Config) -> DynamoDBClient:
    """A client of ``session`` (default: a new one) in the region boto3 would choose, else ``AWS_REGION``.

    botocore reads the region from the config, the session, ``AWS_DEFAULT_REGION`` or the profile, but not from
    ``AWS_REGION`` (checked up to botocore 1.44), the one variable many shells and other SDKs set: Lambda sets both,
    a laptop often only one. Without any, botocore's NoRegionError would surface at the first call; this says what
    to set instead, when the map is opened."""
    import boto3

    session = session or boto3.session.Session()
    region = getattr(config, "region_name", None) or session.region_name or os.environ.get("AWS_REGION")
    if not region:
        raise ConfigurationError(NO_REGION)
    client: DynamoDBClient = session.client("dynamodb", region_name=region, config=config)
    return client


def _config() -> Config:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=3,
        read_timeout=15,
        tcp_keepalive=True,
    )


def default_client() -> DynamoDBClient:
    """A low-level DynamoDB client for the current region and endpoint, shared by every map."""
    # botocore reads the endpoint from AWS_ENDPOINT_URL_DYNAMODB itself; what chooses the client is part of the cache
    # key, so that tests and tools that change the environment get a new one.
    key = tuple(
        os.environ.get(name)
        for name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE")
    )
    with _lock:
        client: DynamoDBClient | None = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(None, _config())
        return client
