"""The one boto3 DynamoDB client a Lambda container uses, created on first use and then reused.

boto3 is imported here, lazily, so that importing this package stays cheap; its import is paid once,
by the first map that talks to DynamoDB. Retries are botocore's own ("standard" mode, which backs off
on throttling and transient network errors); this library adds retries only for its own conflicts.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_clients: dict[tuple[str | None, str | None], Any] = {}
_lock = threading.Lock()

#: botocore attempts per call, including the first; standard mode backs off exponentially with jitter.
MAX_ATTEMPTS = 5


def default_client() -> Any:
    """A low-level DynamoDB client for the current region and endpoint, shared by every map."""
    # Endpoint and region come from the environment (AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION): botocore reads
    # them itself; they are part of the cache key so that tests and tools that change them get a new client.
    key = (
        os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                connect_timeout=3,
                read_timeout=15,
                tcp_keepalive=True,
            )
            client = _clients[key] = boto3.session.Session().client("dynamodb", config=config)
        return client
