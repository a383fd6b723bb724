"""The DynamoDB store: reads and commits one map's blob, inline or sharded, never torn (FORMAT.md).

Owns format 2's read and commit protocols; every call goes through the DynamoDB boundary (``_dynamodb``). It
knows nothing of Python values: it moves opaque, compressed blobs. Every commit is conditional on the version
the caller last read, so a concurrent writer is reported (Conflict), never overwritten.
"""

from __future__ import annotations

import os

from ._config import Settings
from ._dynamodb import Conflict, Table, TableMissing
from ._errors import ConflictError, CorruptDataError, PersistenceError
from ._format import (
    GARBAGE,
    HISTORY,
    VER,
    Head,
    digest,
    garbage_keys,
    head_item,
    item_size,
    parse_head,
    shard_digest,
    shard_item,
    shard_key,
)
from ._limits import (
    BATCH_GET_MAX_BYTES,
    BATCH_GET_MAX_KEYS,
    FREE_TIER_UNITS,
    ITEM_BUDGET,
    TRANSACT_BUDGET,
    TRANSACT_MAX_ACTIONS,
)
from ._log import logger
from ._meter import Usage, write_units

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any

    from ._format import Item

#: Times a reader re-reads the head when a commit replaced the shards it was reading.
READ_ATTEMPTS = 8

__all__ = ["Conflict", "Store", "Usage"]


class Store:
    """One map's items in one table, read and written through one low-level boto3 client."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.table = Table(client, settings)
        self.key = self.table.key(settings.table_key)
        self.last_load = Usage()
        self.last_commit = Usage()

    def _call(self, usage: Usage, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            return self.table.call(usage, operation, **arguments)
        except Conflict as conflict:
            conflict.current = self._parse_quietly(conflict.item)
            raise

    def _transact_call(self, usage: Usage, actions: list[dict[str, Any]], token: str) -> None:
        try:
            self.table.transact(usage, actions, token)
        except Conflict as conflict:
            conflict.current = self._parse_quietly(conflict.item)
            raise

    def _parse_quietly(self, item: Item | None) -> Head | None:
        if not item:
            return None
        try:
            return parse_head(item, self.settings)
        except PersistenceError:
            return None

    # -- reading ------------------------------------------------------------------------------------------

    def load(self, unless_version: Head | None = None) -> tuple[Head | None, bytes | None]:
        """Read the map: (head, blob), (None, None) when nothing is stored, or (head, None) when the
        stored head is ``unless_version`` (nothing changed, so no shard is read)."""
        usage = self.last_load = Usage()
        seen_version = None
        for _ in range(READ_ATTEMPTS):
            try:
                item = self.table.get(usage, self.settings.table_key)
            except TableMissing:
                return None, None
            if item is None:
                return None, None
            head = parse_head(item, self.settings)
            if unless_version is not None and (head.version, head.digest) == (
                unless_version.version,
                unless_version.digest,
            ):
                return head, None
            if head.empty or head.blob is not None:
                if head.blob is not None and digest(head.blob) != head.digest:
                    raise self._corrupt("the inline blob fails its integrity check")
                return head, head.blob
            try:
                blob = self._read_shards(usage, head)
            except TableMissing:  # the table was deleted under us: nothing is stored
                return None, None
            if blob is not None:
                return head, blob
            if seen_version == head.version:
                raise self._corrupt(f"shards of generation {head.gen} are missing or damaged")
            seen_version = head.version  # a commit may have replaced the shards under us: read the head again
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def _read_shards(self, usage: Usage, head: Head) -> bytes | None:
        keys = head.shard_keys(self.settings.table_key)
        # As many full shards as one 16 MB response holds, so that a large map is not cut short by the size limit
        items = self.table.batch_get(usage, keys, min(BATCH_GET_MAX_KEYS, BATCH_GET_MAX_BYTES // ITEM_BUDGET))
        for item in items.values():
            usage.read(item_size(item))
        name = self.settings.value_field_name
        chunks = {k: bytes(item[name]["B"]) for k, item in items.items()}
        ordered = []
        for key, expected in zip(keys, head.shard_digests, strict=True):
            chunk = chunks.get(key)
            if chunk is None or shard_digest(chunk) != expected:
                return None
            ordered.append(chunk)
        blob = b"".join(ordered)
        return blob if digest(blob) == head.digest else None

    def _corrupt(self, why: str) -> CorruptDataError:
        s = self.settings
        return CorruptDataError(
            f"the map stored in table {s.table_name!r} under key {s.table_key!r} is unreadable: {why}",
            table=s.table_name,
            key=s.table_key,
        )

    # -- writing ------------------------------------------------------------------------------------------

    def commit(
        self, blob: bytes, codec: str, raw_size: int, expected: Head | None, *, usage: Usage | None = None
    ) -> Head:
        """Store ``blob`` as the next version after ``expected`` (None: nothing stored yet).

        Raises Conflict when the stored version is no longer ``expected``; nothing is changed then. ``usage``
        accumulates the cost over the attempts of one write (it becomes ``last_commit``).
        """
        usage = self.last_commit = usage if usage is not None else Usage()
        # A failed condition check is billed; a write to a missing table is not, and wrote nothing
        before = usage.snapshot()
        commit_id = os.urandom(8).hex()
        try:
            try:
                head = self._commit(usage, blob, codec, raw_size, expected, commit_id=commit_id)
            except TableMissing:
                # First write ever: create the table (its CreateTable and DescribeTable polling are not counted)
                # and commit again; the failed attempt wrote nothing.
                usage.restore(before)
                self.table.create()
                head = self._commit(usage, blob, codec, raw_size, expected, commit_id=commit_id)
        except (Conflict, PersistenceError):
            raise
        except Exception:
            # The network or DynamoDB failed after botocore's retries; the write may still have been applied
            # (a lost response). One read tells: if the stored head is or follows this commit, it succeeded.
            stored = self._confirm(usage, commit_id)
            if stored is None:
                raise
            if stored.commit_id == commit_id:
                head = stored
            else:  # applied, then others committed on top: report this commit's version, now behind the stored one
                version = (expected.version if expected else 0) + 1
                head = Head(version, codec, raw_size, digest(blob), blob, commit_id=commit_id)
        if usage.capacity_units > FREE_TIER_UNITS:
            logger().warning(
                "committing map %r used %.0f write capacity units; a provisioned table within the free tier has %d "
                "per second in total, so commits this large will be throttled. See the README's capacity section.",
                self.settings.table_key,
                usage.capacity_units,
                FREE_TIER_UNITS,
            )
        return head

    def _confirm(self, usage: Usage, commit_id: str, *, strict: bool = False) -> Head | None:
        """The stored head if it contains commit ``commit_id`` (it is that commit's, or one of the HISTORY - 1
        following it), else None. When the head cannot be read: None, or with ``strict`` the read's error (the
        outcome is unknown, so nothing may be undone)."""
        try:
            # (a bare call: the read's units are not a write's, so they stay out of the commit's usage)
            response = self._call(
                usage, "get_item", TableName=self.settings.table_name, Key=self.key, ConsistentRead=True
            )
            item = response.get("Item")
            head = parse_head(item, self.settings) if item else None
        except Exception:
            if strict:
                raise
            return None
        return head if head is not None and commit_id in head.commits else None

    def _ours(self, conflict: Conflict, commit_id: str, usage: Usage) -> bool:
        """Whether a failed condition was a retry of commit ``commit_id`` that had been applied: the stored head
        returned with the failure, or read when the failure came without it, contains the commit."""
        if conflict.current is not None:
            return commit_id in conflict.current.commits
        return self._confirm(usage, commit_id, strict=True) is not None

    def _commit(
        self, usage: Usage, blob: bytes, codec: str, raw_size: int, expected: Head | None, *, commit_id: str
    ) -> Head:
        table_key = self.settings.table_key
        stale = set(expected.garbage) if expected else set()
        own = expected.own_garbage() if expected else None
        if own:
            stale.add(own)
        stale_keys = garbage_keys(table_key, frozenset(stale))
        head = Head(
            version=(expected.version if expected else 0) + 1,
            codec=codec,
            raw_size=raw_size,
            digest=digest(blob),
            blob=blob,
            commit_id=commit_id,
            previous=expected.commits[: HISTORY - 1] if expected else (),
        )
        shards: list[Item] = []
        if item_size(head_item(self.settings, head)) > ITEM_BUDGET:
            chunks = self._split(blob)
            gen = head.commit_id
            head = head._replace(blob=None, gen=gen, shard_digests=tuple(shard_digest(c) for c in chunks))
            shards = [shard_item(self.settings, shard_key(table_key, gen, i), c) for i, c in enumerate(chunks)]
        head_size = item_size(head_item(self.settings, head))
        total = head_size + sum(item_size(s) for s in shards) + 64 * len(stale_keys)
        condition = self._condition(expected)
        old_size = expected.stored_size if expected else 0
        usage.items += 1 + len(shards)  # counted as sent: an attempt that loses a race sent them too
        usage.bytes += total
        if not shards and not stale_keys:
            self._put_head(usage, head, condition, old_size)
        elif 1 + len(shards) + len(stale_keys) <= TRANSACT_MAX_ACTIONS and total <= TRANSACT_BUDGET:
            self._transact(usage, head, condition, shards, stale_keys, old_size=old_size)
        else:
            head = self._commit_in_steps(usage, head, condition, shards, frozenset(stale), old_size=old_size)
        return head._replace(stored_size=head_size)

    def _shard_size(self) -> int:
        """Size of a full shard item: what deleting an old shard is counted at (an upper bound)."""
        return ITEM_BUDGET

    def _split(self, blob: bytes) -> list[bytes]:
        overhead = item_size(shard_item(self.settings, shard_key(self.settings.table_key, "x" * 16, 9999), b""))
        size = ITEM_BUDGET - overhead
        return [blob[i : i + size] for i in range(0, len(blob), size)]

    def _condition(self, expected: Head | None) -> dict[str, Any]:
        if expected is None:
            return {
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": self.settings.key_field_name},
            }
        if expected.version == 0:  # a 1.0.0 item never touched by this version
            return {"ConditionExpression": "attribute_not_exists(#v)", "ExpressionAttributeNames": {"#v": VER}}
        return {
            "ConditionExpression": "#v = :v",
            "ExpressionAttributeNames": {"#v": VER},
            "ExpressionAttributeValues": {":v": {"N": str(expected.version)}},
        }

    def _put_head(self, usage: Usage, head: Head, condition: dict[str, Any], old_size: int) -> None:
        item = head_item(self.settings, head)
        usage.capacity_units += write_units(max(item_size(item), old_size), False)
        try:
            self._call(
                usage,
                "put_item",
                TableName=self.settings.table_name,
                Item=item,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
        except Conflict as conflict:
            # botocore retries a call whose response was lost; if the first try was applied, the stored head is
            # ours or one of the HISTORY - 1 commits since, and that is a success, not a conflict.
            if not self._ours(conflict, head.commit_id, usage):
                raise

    def _transact(
        self,
        usage: Usage,
        head: Head,
        condition: dict[str, Any],
        shards: list[Item],
        stale_keys: list[str],
        *,
        old_size: int,
    ) -> None:
        table = self.settings.table_name
        actions: list[dict[str, Any]] = [{"Put": {"TableName": table, "Item": s}} for s in shards]
        actions.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": head_item(self.settings, head),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    **condition,
                }
            }
        )
        actions.extend({"Delete": {"TableName": table, "Key": self.table.key(k)}} for k in stale_keys)
        for s in shards:
            usage.capacity_units += write_units(item_size(s), True)
        head_size = item_size(head_item(self.settings, head))
        usage.capacity_units += write_units(max(head_size, old_size), True)
        usage.capacity_units += len(stale_keys) * write_units(self._shard_size(), True)
        try:
            self._transact_call(usage, actions, head.commit_id)
        except Conflict as conflict:
            # Where an endpoint ignores the ClientRequestToken, botocore's retry of an applied transaction fails
            # its condition on our own head (or one of the HISTORY - 1 commits since): a success.
            if not self._ours(conflict, head.commit_id, usage):
                raise

    def _commit_in_steps(
        self,
        usage: Usage,
        head: Head,
        condition: dict[str, Any],
        shards: list[Item],
        stale: frozenset[str],
        *,
        old_size: int,
    ) -> Head:
        """Commit a map too large for one transaction without ever exposing a torn map (FORMAT.md, "Large
        commits"): claim the version, write new shards under new keys, flip the head, then delete the old."""
        claim = head.version
        names = dict(condition.get("ExpressionAttributeNames", {}), **{"#v": VER})
        values = dict(condition.get("ExpressionAttributeValues", {}), **{":claim": {"N": str(claim)}})
        update = "SET #v = :claim"
        own = head.own_garbage()
        if own:  # (an inline head that deletes many old shards has none; DynamoDB refuses unused names)
            update += " ADD #g :g"
            names["#g"] = GARBAGE
            values[":g"] = {"SS": [own]}
        usage.capacity_units += write_units(old_size, False)  # billed even when the condition fails
        self._call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.key,
            UpdateExpression=update,
            ConditionExpression=condition["ConditionExpression"],
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        self.table.batch_write(usage, puts=shards)
        final = head._replace(version=claim + 1, garbage=stale)
        flip = {
            "ConditionExpression": "#v = :v",
            "ExpressionAttributeNames": {"#v": VER},
            "ExpressionAttributeValues": {":v": {"N": str(claim)}},
        }
        try:
            self._put_head(usage, final, flip, old_size)  # (it reads the head when a failure comes without it)
        except Conflict:
            if own:  # nobody will ever point at these shards: remove them now
                self._delete_quietly(usage, garbage_keys(self.settings.table_key, frozenset({own})))
            raise
        try:
            self.collect_garbage(usage, final)
        except Exception as exc:  # the commit is done; the stale shards stay listed for the next commit
            logger().warning("map %r committed, but removing old shards failed: %s", self.settings.table_key, exc)
            return final
        return final._replace(garbage=frozenset())

    def collect_garbage(self, usage: Usage, head: Head) -> None:
        """Delete the shards ``head`` lists as garbage, then drop them from its list (order-independent)."""
        if not head.garbage:
            return
        self.table.batch_write(usage, deletes=garbage_keys(self.settings.table_key, head.garbage))
        usage.capacity_units += write_units(item_size(head_item(self.settings, head)), False)
        self._call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.key,
            UpdateExpression="DELETE #g :g",
            ExpressionAttributeNames={"#g": GARBAGE},
            ExpressionAttributeValues={":g": {"SS": sorted(head.garbage)}},
        )

    def _delete_quietly(self, usage: Usage, keys: list[str]) -> None:
        try:
            self.table.batch_write(usage, deletes=keys)
        except Exception:  # best effort: a later commit cannot find these, but they are never read either
            logger().warning("could not delete %d orphaned shard(s) of map %r", len(keys), self.settings.table_key)
