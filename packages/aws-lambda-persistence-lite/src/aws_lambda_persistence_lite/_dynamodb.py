"""The DynamoDB boundary: every call the library makes, its cost, and AWS error codes turned into ours.

Owns the low-level boto3 client for one map's table: single calls, the BatchGetItem / BatchWriteItem loops
over unprocessed keys, transactions that DynamoDB cancels for throttling (botocore does not retry those), and
creating the table on first write. It knows items, not maps: it never parses a head or decodes a value.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._errors import ConfigurationError, MissingAWSIAMPermissions, PersistenceError
from ._iam import permission_message
from ._limits import BATCH_GET_MAX_BYTES, BATCH_GET_MAX_KEYS, BATCH_WRITE_MAX_ITEMS, ITEM_BUDGET
from ._log import LITE, backoff
from ._meter import Usage, item_size, write_units

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._meter import Item

#: Attempts of a TransactWriteItems that DynamoDB cancels for throttling (botocore does not retry those).
THROTTLE_ATTEMPTS = 5
#: Rounds of BatchGetItem/BatchWriteItem for keys DynamoDB left unprocessed (throttling) before giving up.
BATCH_ROUNDS = 12


class Conflict(Exception):
    """A condition failed: another writer committed first. ``item`` is the stored item DynamoDB returned with the
    failure (None when it did not); the store parses it into ``current``."""

    def __init__(self, item: Item | None = None) -> None:
        super().__init__("conditional write lost to a concurrent commit")
        self.item = item
        self.current: Any = None


class TableMissing(Exception):
    """The table does not exist (a read sees an empty map; the first write creates it)."""


class Throttled(Exception):
    """DynamoDB cancelled a transaction because of throttling; ``original`` is botocore's error."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


def error_code(exc: Exception) -> str | None:
    """The AWS error code of a botocore error, or None."""
    # ClientError carries .response; botocore's WaiterError carries the failing call's as .last_response
    response = getattr(exc, "response", None) or getattr(exc, "last_response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None


def outcome_unknown(exc: Exception) -> bool:
    """Whether a failed write may have been applied: no response at all (a connection lost, a timeout) or a
    server error. An error DynamoDB answered with a 4xx code (a condition, throttling, a bad request) was not."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return not isinstance(status, int) or status >= 500
    return True


class Table:
    """One map's table, through one low-level boto3 client."""

    def __init__(self, client: Any, settings: Settings, log: logging.Logger | None = None) -> None:
        self.client = client
        self.settings = settings
        self.name = settings.table_name
        #: Where the map's work is logged: its package's logger (``_log``).
        self.log = log or logging.getLogger(LITE)

    def key(self, hash_key: str) -> Item:
        return {self.settings.key_field_name: {"S": hash_key}}

    def call(self, usage: Usage, operation: str, **arguments: Any) -> dict[str, Any]:
        """One DynamoDB call, counted in ``usage``; errors come back translated (see ``translate``)."""
        arguments.setdefault("ReturnConsumedCapacity", "TOTAL")
        usage.calls += 1
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**arguments)
        except Exception as exc:
            raise self.translate(exc, operation) from exc
        usage.reported(response)
        return response

    def translate(self, exc: Exception, operation: str) -> Exception:
        """This library's error for a botocore error; unknown errors are returned unchanged."""
        code = error_code(exc)
        # (UnrecognizedClientException is an invalid or expired credential, not a missing permission: botocore's
        # own error says so better than a policy would)
        if code in ("AccessDeniedException", "AccessDenied"):
            import re

            match = re.search(r"perform: (dynamodb:\w+)", str(exc))
            action = match.group(1) if match else "dynamodb:" + "".join(p.title() for p in operation.split("_"))
            return MissingAWSIAMPermissions(permission_message(self.settings, action), action=action)
        if code == "ResourceNotFoundException":
            return TableMissing()
        if code == "ValidationException":
            keyed = self._foreign_key_schema()
            if keyed is not None:
                s = self.settings
                return ConfigurationError(
                    f"table {s.table_name!r} is keyed by {keyed}, not by a string hash key {s.key_field_name!r} "
                    f"alone as this library's tables are (map {s.table_key!r}): set key_field_name "
                    "(PERSISTENCE_KEY_FIELD_NAME) to its hash key if that is a string and the table has no sort "
                    "key, or use another table"
                )
        if code == "ConditionalCheckFailedException":
            return Conflict(getattr(exc, "response", {}).get("Item"))
        if code == "TransactionConflictException":  # another container's transaction holds the head: reload, retry
            return Conflict()
        if code == "TransactionCanceledException":
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            codes = {r.get("Code") for r in reasons}
            if codes & {"ConditionalCheckFailed", "TransactionConflict"}:
                return Conflict(next((r["Item"] for r in reasons if r.get("Item")), None))
            throttled = {"ThrottlingError", "ProvisionedThroughputExceeded"}  # on-demand and provisioned tables
            if codes <= {"None", None, *throttled} and codes & throttled:
                return Throttled(exc)
        return exc

    def _foreign_key_schema(self) -> str | None:
        """The table's key schema, described, when it is not this library's (one string hash key named
        ``key_field_name``); None when it is, or when it cannot be read (the caller's error then stands)."""
        try:
            table = self.client.describe_table(TableName=self.name)["Table"]
            types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
            keys = [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in table["KeySchema"]]
        except Exception:
            return None
        if keys == [(self.settings.key_field_name, "HASH", "S")]:
            return None
        return " and ".join(
            f"{name!r} ({'hash' if kind == 'HASH' else 'sort'} key, type {t})" for name, kind, t in keys
        )

    def get(self, usage: Usage, hash_key: str) -> Item | None:
        """Strongly consistent GetItem, counted in ``usage``: None when the item does not exist (a miss costs one
        read unit); TableMissing when the table does not."""
        response = self.call(usage, "get_item", TableName=self.name, Key=self.key(hash_key), ConsistentRead=True)
        item: Item | None = response.get("Item")
        if item is None:
            usage.capacity_units += 1
        else:
            usage.read(item_size(item))
        return item

    def batch_get(self, usage: Usage, keys: list[tuple[str, int]]) -> dict[str, Item]:
        """Items by hash key (strongly consistent); missing keys are absent, and the keys after the calls that
        found one missing are not asked for (a head listing thousands of shards that do not exist costs one call,
        not all of them). ``keys``: each with the item's expected size, so that each BatchGetItem asks for as many
        as one response holds (100 keys, 16 MB): a map of a few MB is read in one call. (A response cut short
        anyway hands the rest back as UnprocessedKeys, asked again.)"""
        field, found = self.settings.key_field_name, {}
        chunks: list[list[str]] = []
        room = 0
        for key, size in keys:
            if not chunks or len(chunks[-1]) == BATCH_GET_MAX_KEYS or size > room:
                chunks.append([])
                room = BATCH_GET_MAX_BYTES
            chunks[-1].append(key)
            room -= size
        for chunk in chunks:
            wanted = [self.key(k) for k in chunk]
            for round_ in range(BATCH_ROUNDS):
                # ConsistentRead is set on every request, retries included: some endpoints drop it from the
                # UnprocessedKeys they hand back.
                request = {self.name: {"Keys": wanted, "ConsistentRead": True}}
                response = self.call(usage, "batch_get_item", RequestItems=request)
                received = response.get("Responses", {}).get(self.name, [])
                for item in received:
                    found[item[field]["S"]] = item
                wanted = response.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
                if not wanted:
                    break
                if not received:  # no progress at all: throttled, so back off before asking again
                    backoff(round_, 0.05, 2.0)
            if wanted:
                raise PersistenceError("DynamoDB kept shard reads unprocessed (throttled); try again later")
            if not all(key in found for key in chunk):
                break
        return found

    def batch_write(self, usage: Usage, puts: Sequence[Item] = (), deletes: Sequence[str] = ()) -> None:
        """Put ``puts`` and delete the items at ``deletes``, 25 requests per BatchWriteItem, until all are done.

        A delete is counted at a full shard's size: an upper bound, since the deleted item's size is unknown."""
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in puts]
        requests += [{"DeleteRequest": {"Key": self.key(k)}} for k in deletes]
        for start in range(0, len(requests), BATCH_WRITE_MAX_ITEMS):
            chunk = requests[start : start + BATCH_WRITE_MAX_ITEMS]
            for request in chunk:
                item = request.get("PutRequest", {}).get("Item")
                usage.capacity_units += write_units(item_size(item) if item else ITEM_BUDGET, False)
            pending: dict[str, Any] | None = {self.name: chunk}
            for round_ in range(BATCH_ROUNDS):
                if not pending:
                    break
                response = self.call(usage, "batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or None
                if pending:
                    backoff(round_, 0.05, 2.0)
            if pending:
                raise PersistenceError("DynamoDB kept writes unprocessed (throttled); the stored map is unchanged")

    def transact(self, usage: Usage, actions: list[dict[str, Any]], token: str) -> bool:
        """One TransactWriteItems, retried with backoff when DynamoDB cancels it only for throttling.

        The token makes botocore's retry of a transaction whose response was lost idempotent on DynamoDB (for
        10 minutes). Returns whether botocore retried the call that succeeded: its success may then be DynamoDB's
        answer from the token cache, about a transaction applied before changes other writers made since."""
        for attempt in range(THROTTLE_ATTEMPTS):
            try:
                response = self.call(usage, "transact_write_items", TransactItems=actions, ClientRequestToken=token)
                return bool(response.get("ResponseMetadata", {}).get("RetryAttempts"))
            except Throttled as throttled:
                # botocore does not retry a transaction that DynamoDB cancelled for throttling; we do, like
                # botocore does for a throttled PutItem, and then raise botocore's error as it would.
                if attempt + 1 == THROTTLE_ATTEMPTS:
                    raise throttled.original from None
                backoff(attempt, 0.05, 2.0)
        raise AssertionError("unreachable")

    def create(self) -> None:
        """Create the table (first write ever); its calls are not counted in a write's usage."""
        from ._table import create_table  # (once per table ever: imported here, not on every cold start)

        try:
            create_table(self.client, self.settings, self.log)
        except Exception as exc:
            operation = "describe_table" if type(exc).__name__ == "WaiterError" else "create_table"
            raise self.translate(exc, operation) from exc
