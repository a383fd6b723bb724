"""One container's state of one map (format 3), which the protocols that read and change the map share.

A :class:`State` is what the container knows (the folded map, the head it last saw, the records some partition
has not absorbed yet) and how the map's items look: segment shards, the actions that write them and the head, and
what those cost by DynamoDB's rules. The protocols (``_reading``, ``_maintenance``, ``_flushing``,
``_first_write``, ``_large_write``) each work on one State and keep nothing of their own, so that
``_replica.Replica``, the State that also appends, makes one per use: a replica and its protocols never refer to
each other in a cycle (a dropped map's state is freed at once, or kept whole for the next map: ``_reuse``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._errors import UnsupportedValueError
from ._fold import View
from ._head import HEAD_BUDGET, Head
from ._keyhash import key_hash
from ._limits import TRANSACT_BUDGET, TRANSACT_MAX_ACTIONS
from ._meter import Usage, item_size, write_units
from ._records import PARTITION, SHARD_BYTES, Segment, segment_digest

if TYPE_CHECKING:
    from ._codec import Codec
    from ._config import Settings
    from ._dynamodb import Table
    from ._meter import Item


def segment_key(table_key: str, sid: str, index: int) -> str:
    """The hash key of shard ``index`` of segment ``sid`` of the map under ``table_key`` (FORMAT.md, "Items")."""
    return f"{table_key}#alp#{sid}#{index}"


class State:
    """One container's copy of one map (format 3), and the shape of the items it is stored in."""

    def __init__(self, table: Table, settings: Settings, codec: Codec) -> None:
        self.table = table
        self.settings = settings
        self.codec = codec
        self.view = View(codec)
        #: The head this replica last folded (None: nothing stored, or a 1.0.0 item: see ``legacy``).
        self.head: Head | None = None
        self.legacy: dict[Any, Any] | None = None
        #: seq -> record, for records not yet absorbed by every partition (maintenance's input).
        self.pending: dict[int, bytes] = {}
        #: seq -> (key hash, or None for a CLEAR; bytes) of each op of a pending record (``Maintenance.ops_of``).
        self.hashes: dict[int, list[tuple[int | None, int]]] = {}
        self._key_hashes: dict[Any, int] = {}
        #: The last manifest read or written: its sid and the segments it lists (immutable, like every segment).
        self.manifest: tuple[str, tuple[Segment, ...]] = ("", ())
        #: The segment list the last append was pinned to, and its expression values (see ``Replica._pin``).
        self.pinned: tuple[tuple[Segment, ...] | None, dict[str, Any]] = (None, {})
        self.last_load = Usage()
        self.last_commit = Usage()

    # -- what it knows ------------------------------------------------------------------------------------

    def hash_of(self, key: Any) -> int:
        """The key's stable hash, computed once per key (UnsupportedValueError for a key no dict can hold)."""
        try:
            h = self._key_hashes.get(key)
        except TypeError:
            raise UnsupportedValueError(f"{type(key).__name__} is not hashable: it cannot be a key") from None
        if h is None:
            h = self._key_hashes[key] = key_hash(key)
        return h

    def entry(self, key: Any, value: Any) -> bytes:
        """The stored form of an entry, in the map's codec; validates the value, and the key as a partition key
        (FORMAT.md), before anything is sent."""
        key_hash(key)
        return self.codec.encode_entry(key, value)

    def prune(self) -> None:
        """Forget pending records every partition has absorbed."""
        if self.head is None:
            return
        partitions = [s for s in self.head.table if s.kind == PARTITION]
        floor = min((p.watermark for p in partitions), default=0)
        for seq in [s for s in self.pending if s <= floor]:
            del self.pending[seq]
            self.hashes.pop(seq, None)

    def reset(self, head: Head | None) -> None:
        """Forget everything folded: the state of an empty map at ``head`` (None: nothing stored)."""
        self.view = View(self.codec)
        self.head, self.legacy, self.pending, self.hashes = head, None, {}, {}

    # -- its items: segment shards, the actions that write them and the head, what those cost -------------

    def segment(self, kind: int, body: bytes, a: int, b: int, c: int) -> tuple[Segment, bytes]:
        """A new segment of ``body`` (compressed, digested, with a fresh sid) and its blob."""
        blob = self.codec.compress(body) if body else b""
        shards = -(-len(blob) // SHARD_BYTES)
        digest = segment_digest(blob) if blob else b"\0" * 8
        return Segment(kind, os.urandom(8).hex(), digest, len(body), len(blob), shards, a, b, c), blob

    def shard_key(self, sid: str, index: int) -> str:
        return segment_key(self.settings.table_key, sid, index)

    def shard_size(self, blob_bytes: int) -> int:
        """A shard item's size, by DynamoDB's rules, from the blob bytes it holds."""
        return blob_bytes + len(self.settings.key_field_name) + len(self.settings.value_field_name) + 64

    def items(self, puts: list[tuple[Segment, bytes]]) -> list[Item]:
        """The shard items of new segments ``puts``."""
        name, table_key = self.settings.value_field_name, self.settings.table_key
        return [
            {
                self.settings.key_field_name: {"S": segment_key(table_key, s.sid, i)},
                name: {"B": blob[i * SHARD_BYTES : (i + 1) * SHARD_BYTES]},
            }
            for s, blob in puts
            for i in range(s.shards)
        ]

    def puts(self, puts: list[tuple[Segment, bytes]]) -> list[dict[str, Any]]:
        """The transaction's Put actions of new segments ``puts``."""
        return [{"Put": {"TableName": self.settings.table_name, "Item": item}} for item in self.items(puts)]

    def delete(self, key: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self.settings.table_name, "Key": self.table.key(key)}}

    def head_update(self, update: str, condition: str, names: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
        """A transaction's Update action of the head (also a conditional UpdateItem's arguments: its "Update")."""
        return {
            "Update": {
                "TableName": self.settings.table_name,
                "Key": self.table.key(self.settings.table_key),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def bill(
        self,
        usage: Usage,
        puts: list[tuple[Segment, bytes]],
        deletes: list[tuple[str, int]],
        head: Head,
        *,
        grown: int = 0,
    ) -> None:
        """A transaction's write units by DynamoDB's rules: 2 per KB of each item put, deleted or updated (the
        head at the larger of its size before and after: it grows by ``grown`` bytes)."""
        items = self.items(puts)
        usage.items += len(items) + 1
        usage.bytes += sum(item_size(i) for i in items)
        usage.capacity_units += sum(write_units(item_size(i), True) for i in items)
        usage.capacity_units += sum(write_units(size, True) for _, size in deletes)
        usage.capacity_units += write_units(head.stored_size + max(0, grown), True)

    def fits_one_transaction(self, puts: list[tuple[Segment, bytes]]) -> bool:
        """Whether new segments ``puts`` and a head update fit one transaction (DynamoDB's caps on its actions
        and bytes)."""
        items = self.items(puts)
        return len(items) + 1 <= TRANSACT_MAX_ACTIONS and sum(map(item_size, items)) + HEAD_BUDGET <= TRANSACT_BUDGET
