"""The one boto3 DynamoDB client a Lambda container uses, created on first use and then reused.

boto3 is imported here, lazily, so that importing this package stays cheap; its import is paid once,
by the first map that talks to DynamoDB. Retries are botocore's own ("standard" mode, which backs off
on throttling and transient network errors); this library adds retries only for its own conflicts.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient

_clients: dict[tuple[str | None, str | None], DynamoDBClient] = {}
_lock = threading.Lock()

#: botocore attempts per call, including the first; standard mode backs off exponentially with jitter.
MAX_ATTEMPTS = 5


def client_for(session: Session | None = None, config: Config | None = None) -> DynamoDBClient:
    """The client a map talks through: the shared one, or (given a boto3 session or a botocore config, as
    Powertools takes them) one of its own, from ``session`` with this library's retries and timeouts overridden by
    ``config``."""
    if session is None and config is None:
        return default_client()
    import boto3

    merged = _config() if config is None else _config().merge(config)
    client: DynamoDBClient = (session or boto3.session.Session()).client("dynamodb", config=merged)
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
    # Endpoint and region come from the environment (AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION): botocore reads
    # them itself; they are part of the cache key so that tests and tools that change them get a new client.
    key = (
        os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )
    with _lock:
        client: DynamoDBClient | None = _clients.get(key)
        if client is None:
            import boto3

            client = _clients[key] = boto3.session.Session().client("dynamodb", config=_config())
        return client
