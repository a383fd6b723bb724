"""Format 3's protocols (FORMAT3.md): one container's replica of one map, and every read and commit of it.

A :class:`Replica` holds the folded map (``view``), the head it last saw, and the change records that some
partition has not absorbed yet (what maintenance needs). It reads only what changed since its sequence number,
commits a change as one record appended to the head's log, and, when the log is full, flushes it into a run in
one transaction together with one bounded maintenance step. It knows codec-encoded entries, never Python types,
except through the codec's ``decode_entry`` / ``encode_entry``.
"""

from __future__ import annotations

import contextlib
import os
import time

from ._config import Settings
from ._dynamodb import Conflict, Table, TableMissing
from ._errors import ConflictError, PersistenceError
from ._fold import View
from ._head import (
    CODEC,
    EPOCH,
    FLUSHED_IDS,
    FMT,
    GARBAGE,
    HEAD_BUDGET,
    IDS,
    LOG,
    ROOM,
    TABLE,
    TABLE_DIGEST,
    VER,
    Head,
    bad,
    build,
    parse,
    table_attributes,
)
from ._keyhash import key_hash
from ._limits import BATCH_GET_MAX_BYTES, BATCH_GET_MAX_KEYS, ITEM_BUDGET, TRANSACT_BUDGET, TRANSACT_MAX_ACTIONS
from ._log import backoff, logger
from ._meter import Usage, item_size, write_units
from ._records import (
    CLEAR,
    PARTITION,
    RUN,
    Entry,
    Op,
    Segment,
    decode_partition,
    decode_record,
    decode_run,
    encode_partition,
    encode_record,
    encode_run,
    record_id,
    segment_digest,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._codec import Codec
    from ._meter import Item


#: Times a reader re-reads the head when a structural commit replaced the segments it was reading.
READ_ATTEMPTS = 8
#: Times an append meets a full log (and flushes) before it gives up: each flush empties the log.
ROOM_ATTEMPTS = 8
#: Runs of one level that are compacted into one run of the next level.
RUN_FANOUT = 4
#: A compaction never makes a run larger than this (compressed): larger pending data goes into partitions.
RUN_MAX = 256 * 1024
#: A partition is split in two when its blob would be larger than this: a merge then stays under ~800 WCU.
PARTITION_MAX = 192 * 1024
#: A partition is merged when its pending changes weigh at least this share of it (both uncompressed): low
#: enough that a cold load reads little besides the partitions, high enough that a merge's cost (about 4 x the
#: partition's size: write it anew and delete the old, transactionally) is spread over many changes.
MERGE_SHARE = 0.1
#: Bytes a record adds to the head beyond its own: list element overhead and its id in ``alp_ids``.
RECORD_OVERHEAD = 1 + 8 + 4
#: Seconds after which a large write's claim is taken for a dead writer's: longer than a Lambda call can last.
CLAIM_LIFETIME = 3600
#: A record larger than this never goes into the log: it is written as a run of its own (a large write).
LARGE_RECORD = HEAD_BUDGET // 2
#: Largest value bytes of one shard item (FORMAT.md's sizing rule, with room for the key).
SHARD_BYTES = ITEM_BUDGET - 1_000


def segment_key(table_key: str, sid: str, index: int) -> str:
    return f"{table_key}#alp#{sid}#{index}"


class Replica:
    """One container's copy of one map (format 3), and the protocols that keep it and DynamoDB in step."""

    def __init__(self, table: Table, settings: Settings, codec: Codec) -> None:
        self.table = table
        self.settings = settings
        self.codec = codec
        self.view = View(codec.decode_entry, codec.encode_entry)
        #: The head this replica last folded (None: nothing stored, or a 1.0.0 item: see ``legacy``).
        self.head: Head | None = None
        self.legacy: dict[Any, Any] | None = None
        #: seq -> record, for records not yet absorbed by every partition (maintenance's input).
        self.pending: dict[int, bytes] = {}
        self._hashes: dict[int, list[tuple[int | None, int]]] = {}
        self._key_hashes: dict[Any, int] = {}
        self.last_load = Usage()
        self.last_commit = Usage()

    # -- reading ------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Cold load: the head, then every segment in one BatchGetItem round."""
        usage = self.last_load = Usage()
        for _ in range(READ_ATTEMPTS):
            item = self._get_head(usage)
            if item is None:
                self._reset(None)
                return
            if FMT not in item:
                self._reset(None)
                self.legacy = item
                return
            head = parse(item, self.settings)
            fresh = Replica(self.table, self.settings, self._codec_of(head))
            try:
                fresh._catch_up(head, usage, cold=True)
            except _Moved:
                continue
            self.view, self.head, self.pending, self._hashes = fresh.view, fresh.head, fresh.pending, fresh._hashes
            self.codec = fresh.codec
            self.legacy = None
            return
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def refresh(self) -> bool:
        """Bring the replica to the stored version, reading only what changed. True when something did."""
        usage = self.last_load = Usage()
        for _ in range(READ_ATTEMPTS):
            item = self._get_head(usage)
            if item is None or FMT not in item or self.head is None:
                if self.head is None and (item is None if self.legacy is None else item == self.legacy):
                    return False  # still nothing stored, or the same 1.0.0 item
                self.load()
                return True
            head = parse(item, self.settings)
            if head.version == self.head.version and head.epoch == self.head.epoch:
                return False
            try:
                self._catch_up(head, usage, cold=False)
            except _Moved:
                continue
            return True
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def _codec_of(self, head: Head) -> Codec:
        """The codec a stored map is written in: every entry of a map has its head's codec, whichever package
        reads or writes it (UnsupportedFormatError, naming what to install, when this package lacks it)."""
        if head.codec == self.codec.name:
            return self.codec
        from ._codec import codec_for

        found: Codec = codec_for(head.codec)
        return found

    def _get_head(self, usage: Usage) -> Item | None:
        try:
            return self.table.get(usage, self.settings.table_key)
        except TableMissing:
            return None

    def _reset(self, head: Head | None) -> None:
        self.view = View(self.codec.decode_entry, self.codec.encode_entry)
        self.head, self.legacy, self.pending, self._hashes = head, None, {}, {}

    def _catch_up(
        self, head: Head, usage: Usage, *, cold: bool, own: tuple[bytes, list[tuple[Any, Any]]] | None = None
    ) -> dict[bytes, list[Any]]:
        """Fold ``head`` into this replica, reading the segments that hold something newer than what it has.

        Returns the outcomes of the records folded (``View.apply``), by record id."""
        if cold:
            self._reset(None)
            self.codec = self._codec_of(head)
            self.view = View(self.codec.decode_entry, self.codec.encode_entry)
        have = 0 if cold or self.head is None else self.view.seq
        known = set() if cold or self.head is None else {s.sid for s in self.head.table}
        parts = [s for s in head.table if s.kind == PARTITION and s.sid not in known and s.watermark > have]
        runs = [s for s in head.table if s.kind == RUN and s.sid not in known and s.hi > have]
        blobs = self.read_segments(usage, [s for s in parts + runs if s.shards])
        fresh: dict[tuple[int, int], int] = {}
        for p in parts:
            if p.shards:
                body = self.codec.decompress(blobs[p.sid], p.raw_size)
                entries = decode_partition(body)
            else:
                entries = []

            def inside(key: Any, p: Segment = p) -> bool:
                return _inside(self._hash(key), p)

            self.view.drop(inside)
            self.view.add_partition(entries, inside)
            fresh[(p.depth, p.prefix)] = p.watermark
        records: dict[int, bytes] = {}
        for r in runs:
            for seq, record in decode_run(self.codec.decompress(blobs[r.sid], r.raw_size), r.lo):
                if seq > r.hi:
                    raise bad(self.settings, f"run {r.sid} holds sequence {seq}, beyond its range")
                if seq > have:
                    records[seq] = record
        for index, record in enumerate(head.log):
            if head.first_logged + index > have:
                records[head.first_logged + index] = record
        depths = sorted({d for d, _ in fresh})

        def floor(key: Any) -> int:
            h = self._hash(key)
            for depth in depths:
                mark = fresh.get((depth, h & ((1 << depth) - 1)))
                if mark is not None:
                    return max(mark, have)
            return have

        outcomes = {}
        for seq in sorted(records):
            rid = record_id(records[seq])
            values = own[1] if own is not None and own[0] == rid else None
            outcomes[rid] = self.view.apply(seq, records[seq], floor, values)
        if parts:
            self.view.order()
        self.view.seq = head.version
        self.pending.update(records)
        self.head = head
        self._prune()
        return outcomes

    def read_segments(self, usage: Usage, segments: list[Segment]) -> dict[str, bytes]:
        """Blobs of ``segments``, checked; _Moved when a shard is gone (a structural commit replaced it)."""
        table_key = self.settings.table_key
        keys = [segment_key(table_key, s.sid, i) for s in segments for i in range(s.shards)]
        if not keys:
            return {}
        items = self.table.batch_get(usage, keys, min(BATCH_GET_MAX_KEYS, BATCH_GET_MAX_BYTES // ITEM_BUDGET))
        for item in items.values():
            usage.read(item_size(item))
        name = self.settings.value_field_name
        blobs = {}
        for s in segments:
            parts = [items.get(segment_key(table_key, s.sid, i)) for i in range(s.shards)]
            if any(p is None for p in parts):
                raise _Moved()
            blob = b"".join(bytes(p[name]["B"]) for p in parts if p is not None)
            if len(blob) != s.blob_size or segment_digest(blob) != s.digest:
                raise bad(self.settings, f"segment {s.sid} fails its integrity check")
            blobs[s.sid] = blob
        return blobs

    # -- writing ------------------------------------------------------------------------------------------

    def commit(
        self,
        ops: list[Op],
        *,
        expected: int | None = None,
        known: list[tuple[Any, Any]] | None = None,
        usage: Usage | None = None,
        first_only: bool = False,
    ) -> list[Any]:
        """Append one record of ``ops``. ``expected``: the version the ops were computed on (a conditional
        commit: Conflict, after catching up, when the map has moved on); None: blind (never conflicts).
        ``known``: each op's (key, value), folded as they are instead of decoded again. ``usage`` accumulates the
        cost over the attempts of one write (it becomes ``last_commit``). ``first_only``: the record is a 1.0.0
        map's migration, valid only as the map's first write: Conflict when a head exists.

        Returns the record's per-op outcomes as folded (``View.apply``)."""
        usage = self.last_commit = usage if usage is not None else Usage()
        rid = os.urandom(8)
        record = encode_record(rid, ops)
        own = (rid, known) if known is not None else None
        large = len(record) + RECORD_OVERHEAD > LARGE_RECORD
        for _ in range(ROOM_ATTEMPTS):
            head = self.head
            if head is None:
                done = self._first_write(usage, record, rid, own, large=large)
                if done is not None:
                    return done.get(rid, [])
                continue
            if first_only:
                raise Conflict()
            if large:
                return self._large_write(usage, rid, record, own)
            try:
                new = self._append_confirmed(usage, head, record, rid, expected)
            except Conflict as conflict:
                current = self._current(usage, conflict)
                outcomes = self._catch_up(current, usage, cold=False, own=own)
                if rid in current.ids:  # botocore's retry of our applied append
                    return outcomes.get(rid, [])
                if expected is not None and current.version != expected:
                    raise Conflict() from None
                if current.room < len(record) + RECORD_OVERHEAD:
                    self._flush(usage, current)
                continue
            return self._catch_up(new, usage, cold=False, own=own).get(rid, [])
        raise ConflictError(f"map {self.settings.table_key!r}: the log stayed full after {ROOM_ATTEMPTS} flushes")

    def _append_confirmed(self, usage: Usage, head: Head, record: bytes, rid: bytes, expected: int | None) -> Head:
        """Append, and when botocore gave up on the call (its response lost, or the network down), decide by one
        strongly consistent read whether it was applied: the id in the stored head means it was. When that read
        fails too, the outcome is unknown and the call's error is raised, with nothing undone."""
        try:
            return self._append(usage, head, record, rid, expected)
        except (Conflict, PersistenceError):
            raise
        except Exception:
            try:
                item = self._get_head(usage)
            except Exception:
                item = None
            if item is not None and FMT in item:
                stored = parse(item, self.settings)
                if rid in stored.ids:
                    return stored
            raise

    def _current(self, usage: Usage, conflict: Conflict) -> Head:
        item = conflict.item or self._get_head(usage)
        if item is None or FMT not in item:
            raise Conflict()
        return parse(item, self.settings)

    def _append(self, usage: Usage, head: Head, record: bytes, rid: bytes, expected: int | None) -> Head:
        condition = "#room >= :n AND NOT contains(#ids, :id) AND #codec = :codec"
        values: dict[str, Any] = {
            ":codec": {"S": self.codec.name},
            ":rec": {"L": [{"B": record}]},
            ":one": {"N": "1"},
            ":n": {"N": str(len(record) + RECORD_OVERHEAD)},
            ":id": {"B": rid},
            ":ids": {"BS": [rid]},
        }
        if expected is not None:
            condition += " AND #ver = :v"
            values[":v"] = {"N": str(expected)}
        usage.items += 1
        usage.bytes += len(record)
        usage.capacity_units += write_units(min(HEAD_BUDGET, head.stored_size + len(record) + RECORD_OVERHEAD), False)
        response = self.table.call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.table.key(self.settings.table_key),
            UpdateExpression="SET #log = list_append(#log, :rec), #ver = #ver + :one, #room = #room - :n ADD #ids :ids",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#log": LOG, "#ver": VER, "#room": ROOM, "#ids": IDS, "#codec": CODEC},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return parse(response["Attributes"], self.settings)

    def _first_write(
        self, usage: Usage, record: bytes, rid: bytes, own: Any, *, large: bool
    ) -> dict[bytes, list[Any]] | None:
        """Create the head with the first record: in its log, or (a large record) as a run written with the head in
        one transaction. This also replaces a 1.0.0 item, whose whole map the record then holds. None when another
        container created a head first: the caller appends instead."""
        run = self._segment(RUN, encode_run([(1, record)], 1), 0, 1, 1) if large else None
        log, table = ([], [run[0]]) if run else ([record], [])
        item = build(self.settings, self.codec.name, version=1, epoch=0, log=log, table=table)
        item[IDS] = {"BS": [rid]}
        if not run:
            item[ROOM] = {"N": str(int(item[ROOM]["N"]) - len(record) - RECORD_OVERHEAD)}
        condition = {"ConditionExpression": "attribute_not_exists(#fmt)", "ExpressionAttributeNames": {"#fmt": FMT}}
        before = usage.snapshot()
        try:
            try:
                self._create_head(usage, item, condition, run)
            except TableMissing:  # the first write ever: create the table (not counted), then write again
                usage.restore(before)
                self.table.create()
                self._create_head(usage, item, condition, run)
        except Conflict as conflict:
            if conflict.item and FMT in conflict.item:
                current = parse(conflict.item, self.settings)
                outcomes = self._catch_up(current, usage, cold=True)
                return outcomes if rid in current.ids else None
            raise
        head = parse(item, self.settings)
        self._reset(head)
        self.pending[1] = record
        outcome = self.view.apply(1, record, None, own[1] if own else None)
        return {rid: outcome}

    def _create_head(self, usage: Usage, item: Item, condition: dict[str, Any], run: Any) -> None:
        if run is None:
            usage.items += 1
            usage.bytes += item_size(item)
            usage.capacity_units += write_units(item_size(item), False)
            self.table.call(
                usage,
                "put_item",
                TableName=self.settings.table_name,
                Item=item,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
            return
        put = {"Put": {"TableName": self.settings.table_name, "Item": item, **condition}}
        put["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self._bill(usage, [run], [], parse(item, self.settings))
        self.table.transact(usage, [*self._puts([run]), put], os.urandom(8).hex())

    # -- flush and maintenance -----------------------------------------------------------------------------

    def _flush(self, usage: Usage, head: Head) -> None:
        """Move the log into a run and do one maintenance step, in one transaction (the replica has folded
        ``head``). Losing to another flush is fine: the caller appends again either way."""
        n = len(head.log)
        if not n:
            return
        records = [(head.first_logged + i, r) for i, r in enumerate(head.log)]
        body = encode_run(records, records[0][0])
        run = self._segment(RUN, body, 0, records[0][0], records[-1][0])
        puts, deletes, table = self._maintain([*head.table, run[0]], [run])
        old_ids = self._forgotten_ids(head, n)
        table_attr = table_attributes(table)
        # What the flush gives back to the log: the records (their ids stay, the oldest ids go), less what the
        # table grows by.
        freed = sum(len(r) + RECORD_OVERHEAD - 8 for _, r in records) + 8 * len(old_ids)
        freed -= _table_size(table) - _table_size(list(head.table))
        update = "REMOVE " + ", ".join(f"#log[{i}]" for i in range(n))
        update += ", #seg" if table_attr["table"] is None else ""
        update += " SET #room = #room + :freed, #ep = #ep + :one, #dig = :dig"
        names = {"#log": LOG, "#room": ROOM, "#ep": EPOCH, "#dig": TABLE_DIGEST, "#seg": TABLE}
        values: dict[str, Any] = {
            ":freed": {"N": str(freed)},
            ":one": {"N": "1"},
            ":dig": table_attr["digest"],
            ":e": {"N": str(head.epoch)},
        }
        if table_attr["table"] is not None:
            update += ", #seg = :seg"
            values[":seg"] = table_attr["table"]
        deletes += self._stale_claims(head)
        dropped = []
        if old_ids:
            dropped.append("#ids :old")
            names["#ids"] = IDS
            values[":old"] = {"BS": sorted(old_ids)}
        stale = sorted(entry for entry in head.garbage if _claim_age(entry) > CLAIM_LIFETIME)
        if stale:
            dropped.append("#g :stale")
            names["#g"] = GARBAGE
            values[":stale"] = {"SS": stale}
        if dropped:
            update += " DELETE " + ", ".join(dropped)
        head_update = {
            "Update": {
                "TableName": self.settings.table_name,
                "Key": self.table.key(self.settings.table_key),
                "UpdateExpression": update,
                "ConditionExpression": "#ep = :e",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        actions = self._puts(puts) + self._deletes(deletes) + [head_update]
        self._bill(usage, puts, deletes, head)
        token = os.urandom(8).hex()
        try:
            self.table.transact(usage, actions, token)
        except Conflict:
            return  # another container flushed first
        self.head = head._replace(
            log=head.log[n:], epoch=head.epoch + 1, table=tuple(table), ids=head.ids - set(old_ids)
        )
        self._prune()

    def _bill(self, usage: Usage, puts: list[tuple[Segment, bytes]], deletes: list[Segment], head: Head) -> None:
        """A transaction's write units by DynamoDB's rules: 2 per KB of each item put, deleted or updated (the
        head at its size before, which is the larger: a flush shrinks it)."""
        items = self._items(puts)
        usage.items += len(items) + 1
        usage.bytes += sum(item_size(i) for i in items)
        usage.capacity_units += sum(write_units(item_size(i), True) for i in items)
        overhead = len(self.settings.key_field_name) + len(self.settings.value_field_name) + 64
        for s in deletes:
            for i in range(s.shards):
                usage.capacity_units += write_units(min(SHARD_BYTES, s.blob_size - i * SHARD_BYTES) + overhead, True)
        usage.capacity_units += write_units(head.stored_size, True)

    def _stale_claims(self, head: Head) -> list[Segment]:
        """Shards claimed by large writes that died before naming them in the head (older than any Lambda call
        can live): the flush deletes them."""
        out = []
        for entry in head.garbage:
            if _claim_age(entry) > CLAIM_LIFETIME:
                sid, shards, _ = entry.split(":")
                out.append(Segment(RUN, sid, b"", 0, 1, int(shards)))
        return out

    def _forgotten_ids(self, head: Head, n: int) -> list[bytes]:
        """Ids to drop from ``alp_ids`` at a flush of ``n`` records: all but the last FLUSHED_IDS flushed ones."""
        logged = {record_id(r) for r in head.log[n:]}
        keep = {record_id(r) for r in head.log[max(0, n - FLUSHED_IDS) : n]}
        return [i for i in head.ids if i not in logged and i not in keep]

    def _segment(self, kind: int, body: bytes, a: int, b: int, c: int) -> tuple[Segment, bytes]:
        blob = self.codec.compress(body) if body else b""
        shards = -(-len(blob) // SHARD_BYTES)
        digest = segment_digest(blob) if blob else b"\0" * 8
        return Segment(kind, os.urandom(8).hex(), digest, len(body), len(blob), shards, a, b, c), blob

    def _puts(self, puts: list[tuple[Segment, bytes]]) -> list[dict[str, Any]]:
        return [{"Put": {"TableName": self.settings.table_name, "Item": item}} for item in self._items(puts)]

    def _items(self, puts: list[tuple[Segment, bytes]]) -> list[Item]:
        name, table_key = self.settings.value_field_name, self.settings.table_key
        return [
            {
                self.settings.key_field_name: {"S": segment_key(table_key, s.sid, i)},
                name: {"B": blob[i * SHARD_BYTES : (i + 1) * SHARD_BYTES]},
            }
            for s, blob in puts
            for i in range(s.shards)
        ]

    def _deletes(self, deletes: list[Segment]) -> list[dict[str, Any]]:
        return [
            {"Delete": {"TableName": self.settings.table_name, "Key": self.table.key(k)}}
            for s in deletes
            for k in (segment_key(self.settings.table_key, s.sid, i) for i in range(s.shards))
        ]

    def _maintain(
        self, table: list[Segment], puts: list[tuple[Segment, bytes]]
    ) -> tuple[list[tuple[Segment, bytes]], list[Segment], list[Segment]]:
        """One bounded maintenance step on ``table`` (which already lists the flush's run): the segments to
        put, to delete, and the new table (FORMAT3.md, "Maintenance policy")."""
        seq = self.view.seq
        partitions = [s for s in table if s.kind == PARTITION] or [
            Segment(PARTITION, os.urandom(8).hex(), b"", 0, 0, 0)
        ]
        runs = [s for s in table if s.kind == RUN]
        pending = self._pending_weights(partitions)
        deletes: list[Segment] = []
        best = max(partitions, key=lambda p: (pending[p.sid] / max(p.raw_size, 1), -p.depth))
        if pending[best.sid] and pending[best.sid] >= MERGE_SHARE * best.raw_size:
            written = self._write_partition(best, seq)
            puts += written
            if best.shards:
                deletes.append(best)
            partitions = [p for p in partitions if p.sid != best.sid] + [s for s, _ in written]
            partitions += self._virtual_siblings(best, [s for s, _ in written])
        else:
            new = {s.sid for s, _ in puts}  # (a run put in this transaction cannot also be deleted by it)
            compaction = self._compaction([r for r in runs if r.sid not in new], partitions)
            if compaction is not None:
                merged, sources = compaction
                puts.append(merged)
                deletes += sources
                runs = [r for r in runs if r not in sources] + [merged[0]]
        dead = [r for r in runs if self._absorbed(r, partitions) and r.sid not in {s.sid for s, _ in puts}]
        budget = TRANSACT_MAX_ACTIONS - 1 - sum(s.shards for s, _ in puts) - sum(s.shards for s in deletes)
        dead = dead[: max(0, budget)]
        deletes += [r for r in dead if r.shards]
        runs = [r for r in runs if r not in dead]
        stored = [p for p in partitions if p.shards or p.depth]
        return puts, deletes, stored + runs

    def _pending_weights(self, partitions: list[Segment]) -> dict[str, int]:
        """Bytes of pending ops per partition (ops its watermark does not cover)."""
        weights = {p.sid: 0 for p in partitions}
        find = _finder(partitions)
        for seq in self.pending:
            for h, size in self._ops_of(seq):
                for p in partitions if h is None else (find(h),):
                    if seq > p.watermark:
                        weights[p.sid] += size
        return weights

    def _ops_of(self, seq: int) -> list[tuple[int | None, int]]:
        hashes = self._hashes.get(seq)
        if hashes is None:
            hashes = self._hashes[seq] = [
                (None if op.kind == CLEAR else self._hash(self.codec.decode_entry(op.entry)[0]), len(op.entry) + 2)
                for op in decode_record(self.pending[seq])[1]
            ]
        return hashes

    def _write_partition(self, partition: Segment, seq: int) -> list[tuple[Segment, bytes]]:
        """``partition`` anew from the view at ``seq``, split while its blob is too large (and splittable)."""
        keys = [k for k in self.view.values if _inside(self._hash(k), partition)]
        body = encode_partition([Entry(*self.view.positions[k], self.view.raw[k]) for k in keys])
        if len(body) > 4 * PARTITION_MAX and len(keys) > 1 and partition.depth < 64:
            return self._split(partition, seq)
        segment, blob = self._segment(PARTITION, body, partition.depth, partition.prefix, seq)
        if len(blob) > PARTITION_MAX and len(keys) > 1 and partition.depth < 64:
            return self._split(partition, seq)
        return [(segment, blob)]

    def _split(self, partition: Segment, seq: int) -> list[tuple[Segment, bytes]]:
        depth = partition.depth + 1
        children = [
            partition._replace(sid=os.urandom(8).hex(), a=depth, b=partition.prefix + bit * (1 << partition.depth))
            for bit in (0, 1)
        ]
        if not partition.shards:  # an empty, unstored partition splits for free: write one child now
            return self._write_partition(children[0], seq)
        return [w for child in children for w in self._write_partition(child, seq)]

    def _virtual_siblings(self, parent: Segment, written: list[Segment]) -> list[Segment]:
        """Unstored empty partitions for the part of ``parent``'s space that ``written`` leaves uncovered (an
        unstored partition split lazily: the rest is merged by later flushes)."""
        missing = [(parent.depth, parent.prefix)]
        covered = {(s.depth, s.prefix) for s in written}
        out: list[Segment] = []
        while missing:
            depth, prefix = missing.pop()
            if (depth, prefix) in covered:
                continue
            if any(d > depth and p & ((1 << depth) - 1) == prefix for d, p in covered):
                missing += [(depth + 1, prefix), (depth + 1, prefix + (1 << depth))]
                continue
            out.append(Segment(PARTITION, os.urandom(8).hex(), b"\0" * 8, 0, 0, 0, depth, prefix, 0))
        return out

    def _compaction(
        self, runs: list[Segment], partitions: list[Segment]
    ) -> tuple[tuple[Segment, bytes], list[Segment]] | None:
        for level in sorted({r.level for r in runs}):
            same = sorted((r for r in runs if r.level == level), key=lambda r: r.lo)
            if len(same) < RUN_FANOUT:
                continue
            sources = same[:RUN_FANOUT]
            lo, hi = sources[0].lo, sources[-1].hi
            find = _finder(partitions)
            live = [
                (s, r) for s, r in sorted(self.pending.items()) if lo <= s <= hi and not self._dead(s, partitions, find)
            ]
            merged = self._segment(RUN, encode_run(live, lo), level + 1, lo, hi)
            if merged[0].blob_size <= RUN_MAX:
                return merged, sources
        return None

    def _dead(self, seq: int, partitions: list[Segment], find: Callable[[int], Segment]) -> bool:
        """Whether every op of record ``seq`` is absorbed by its key's partition (a CLEAR: by every partition)."""
        lowest = min(p.watermark for p in partitions)
        return all((find(h).watermark if h is not None else lowest) >= seq for h, _ in self._ops_of(seq))

    def _absorbed(self, run: Segment, partitions: list[Segment]) -> bool:
        find = _finder(partitions)
        return all(self._dead(s, partitions, find) for s in self.pending if run.lo <= s <= run.hi)

    def _hash(self, key: Any) -> int:
        """The key's stable hash, computed once per key."""
        h = self._key_hashes.get(key)
        if h is None:
            h = self._key_hashes[key] = key_hash(key)
        return h

    def _prune(self) -> None:
        """Forget pending records every partition has absorbed."""
        if self.head is None:
            return
        partitions = [s for s in self.head.table if s.kind == PARTITION]
        floor = min((p.watermark for p in partitions), default=0)
        for seq in [s for s in self.pending if s <= floor]:
            del self.pending[seq]
            self._hashes.pop(seq, None)

    # -- large writes -------------------------------------------------------------------------------------

    def _large_write(self, usage: Usage, rid: bytes, record: bytes, own: Any) -> list[Any]:
        """A record no log can hold: a run of its own, added to the table by a head update conditional on the
        version (its place in sequence). In one transaction when it fits one; else in steps (FORMAT3.md, "Large
        write"): claim its segment in ``alp_garbage``, write its shards, then the head update."""
        run = self._segment(RUN, encode_run([(0, record)], 0), 0, 0, 0)
        items = self._items([run])
        one_transaction = len(items) + 1 <= TRANSACT_MAX_ACTIONS and sum(map(item_size, items)) <= TRANSACT_BUDGET
        claim = f"{run[0].sid}:{run[0].shards}:{int(time.time())}"
        if not one_transaction:
            self._claim(usage, claim, add=True)
            self.table.batch_write(usage, puts=items)
        try:
            for attempt in range(self.settings.max_attempts):
                head = self.head
                assert head is not None
                seq = head.version + 1
                segment = run[0]._replace(b=seq, c=seq)
                # The log's records move into a run of their own in the same commit: the log numbers its records
                # back from alp_ver, which the large record takes.
                logged = [(head.first_logged + i, r) for i, r in enumerate(head.log)]
                log_run = (
                    [self._segment(RUN, encode_run(logged, logged[0][0]), 0, logged[0][0], head.version)]
                    if logged
                    else []
                )
                table = [*head.table, *(r[0] for r in log_run), segment]
                update = self._place_run(head, table, rid, None if one_transaction else claim)
                puts = ([run] if one_transaction else []) + log_run
                self._bill(usage, puts, [], head)
                actions = [*self._puts(puts), update]
                try:
                    if len(actions) > 1:
                        self.table.transact(usage, actions, f"{rid.hex()}{attempt:02d}")
                    else:
                        self.table.call(usage, "update_item", **update["Update"])
                except Conflict as conflict:
                    current = self._current(usage, conflict)
                    outcomes = self._catch_up(current, usage, cold=False, own=own)
                    if rid in current.ids:
                        return outcomes.get(rid, [])
                    backoff(attempt, 0.02, 1.0)
                    continue
                self.pending[seq] = record
                outcome = self.view.apply(seq, record, None, own[1] if own else None)
                self.view.seq = seq
                self.head = head._replace(
                    version=seq, epoch=head.epoch + 1, log=(), table=tuple(table), ids=head.ids | {rid}
                )
                # A retry that DynamoDB answered from its token cache reports success without the changes other
                # containers made since: one read of the head brings them (a large write can afford it).
                item = self._get_head(usage)
                if item is not None and FMT in item:
                    current = parse(item, self.settings)
                    if (current.version, current.epoch) != (seq, head.epoch + 1):
                        with contextlib.suppress(_Moved):  # (the next refresh catches up)
                            self._catch_up(current, usage, cold=False)
                return outcome
        except BaseException:
            if not one_transaction:  # nobody will ever point at these shards: remove them now
                self._drop_claim(usage, run[0], claim)
            raise
        if not one_transaction:
            self._drop_claim(usage, run[0], claim)
        raise ConflictError(f"map {self.settings.table_key!r} kept changing during a large write")

    def _place_run(self, head: Head, table: list[Segment], rid: bytes, claim: str | None) -> dict[str, Any]:
        """The head update that adds a large write's run at sequence ``head.version + 1`` (and empties the log,
        whose records the same commit moves into a run)."""
        attr = table_attributes(table)
        freed = sum(len(r) + RECORD_OVERHEAD - 8 for r in head.log) - RECORD_OVERHEAD
        freed -= _table_size(table) - _table_size(list(head.table))
        update = "SET #ver = :seq, #ep = #ep + :one, #dig = :dig, #seg = :seg, #log = :empty, #room = #room + :freed"
        update += " ADD #ids :ids"
        names = {"#ver": VER, "#ep": EPOCH, "#dig": TABLE_DIGEST, "#seg": TABLE, "#ids": IDS, "#log": LOG}
        names["#room"] = ROOM
        values: dict[str, Any] = {
            ":empty": {"L": []},
            ":freed": {"N": str(freed)},
            ":seq": {"N": str(head.version + 1)},
            ":v": {"N": str(head.version)},
            ":e": {"N": str(head.epoch)},
            ":one": {"N": "1"},
            ":dig": attr["digest"],
            ":seg": attr["table"],
            ":ids": {"BS": [rid]},
        }
        if claim is not None:
            update += " DELETE #g :claim"
            names["#g"] = GARBAGE
            values[":claim"] = {"SS": [claim]}
        return {
            "Update": {
                "TableName": self.settings.table_name,
                "Key": self.table.key(self.settings.table_key),
                "UpdateExpression": update,
                "ConditionExpression": "#ver = :v AND #ep = :e",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _claim(self, usage: Usage, claim: str, *, add: bool) -> None:
        """List (or unlist) segment shards a large write is writing in ``alp_garbage``: should the writer die
        before the head names them, a later flush deletes them once the claim is older than any Lambda call."""
        assert self.head is not None
        usage.capacity_units += write_units(self.head.stored_size + len(claim), False)
        self.table.call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.table.key(self.settings.table_key),
            UpdateExpression=("ADD" if add else "DELETE") + " #g :claim",
            ExpressionAttributeNames={"#g": GARBAGE},
            ExpressionAttributeValues={":claim": {"SS": [claim]}},
        )

    def _drop_claim(self, usage: Usage, segment: Segment, claim: str) -> None:
        try:
            keys = [segment_key(self.settings.table_key, segment.sid, i) for i in range(segment.shards)]
            self.table.batch_write(usage, deletes=keys)
            self._claim(usage, claim, add=False)
        except Exception as exc:  # best effort: the claim stays, and a later flush removes the shards
            logger().warning("could not remove the unused shards of map %r: %s", self.settings.table_key, exc)


def _claim_age(entry: str) -> float:
    """Seconds since a large write claimed its shards (``sid:shards:unix time``); -1 for an entry this version
    cannot read, which is then never collected."""
    sid, _, rest = entry.partition(":")
    shards, _, stamp = rest.partition(":")
    if len(sid) != 16 or not shards.isdigit() or not stamp.isdigit() or not 0 < int(shards) <= 10_000:
        return -1.0
    return time.time() - int(stamp)


def _table_size(table: list[Segment]) -> int:
    attribute = table_attributes(table)["table"]
    return len(attribute["B"]) if attribute else 0


def _finder(partitions: list[Segment]) -> Callable[[int], Segment]:
    """The partition that holds a key hash, found by its low bits (the partitions cover the hash space once)."""
    by_bits = {(p.depth, p.prefix): p for p in partitions}
    depths = sorted({p.depth for p in partitions})

    def find(h: int) -> Segment:
        for depth in depths:
            found = by_bits.get((depth, h & ((1 << depth) - 1)))
            if found is not None:
                return found
        raise AssertionError("the partitions do not cover the key-hash space")

    return find


def _inside(h: int, partition: Segment) -> bool:
    return h & ((1 << partition.depth) - 1) == partition.prefix


class _Moved(Exception):
    """A segment the head listed is gone: a structural commit replaced it while it was being read."""


__all__ = ["GARBAGE", "Replica"]


# -- for tools (the command line): a head without its segments, and replacing a map whole ------------------------


def is_segment_key(hash_key: str) -> bool:
    """Whether ``hash_key`` is a segment shard's (``segment_key``): such items are parts of a map, not maps."""
    return "#alp#" in hash_key


def stored_head(client: Any, settings: Settings, usage: Usage | None = None) -> tuple[Head | None, Item | None]:
    """The map's head as stored, without reading its segments: ``(head, item)``. ``head`` is None for a 1.0.0
    item (no ``alp_fmt``); both are None when nothing is stored (or the table does not exist). A head in another
    format, or a damaged one, raises as a load would."""
    try:
        item = Table(client, settings).get(usage if usage is not None else Usage(), settings.table_key)
    except TableMissing:
        return None, None
    if item is None or FMT not in item:
        return None, item
    return parse(item, settings), item


def replace_map(client: Any, settings: Settings, codec: Codec, old: Head | None, entries: list[bytes]) -> Head | None:
    """Replace the stored map whole by one written with ``codec`` that holds ``entries`` (entries encoded by
    ``codec``, in insertion order), if the map is still as it was read: at ``old``'s version and epoch, or (None)
    a 1.0.0 item. Returns the new head, or None when the map changed meanwhile (nothing was written).

    This is how a map moves to another codec (a map holds entries of one codec: appending cannot do it). The new
    head continues the old sequence: its one record, number ``old.version + 1``, clears the map and sets every
    entry, so a container that folded the old map catches up on it like on any change. The record sits in the
    head's log, or (too large for it) is a run of its own put in the same transaction; a run too large for one
    transaction is put first and deleted again if the head is not replaced (a crash in between leaves it
    unreferenced). The old segments are deleted once the head no longer lists them (a reader that was reading
    them finds one missing and re-reads the head); the old head's ``alp_garbage`` claims are carried over."""
    from ._log import logger
    from ._records import SET

    writer = Replica(Table(client, settings), settings, codec)
    table, usage = writer.table, writer.last_commit
    seq, epoch = (old.version + 1, old.epoch + 1) if old is not None else (1, 0)
    rid = os.urandom(8)
    record = encode_record(rid, [Op(CLEAR), *(Op(SET, entry) for entry in entries)])
    large = len(record) + RECORD_OVERHEAD > LARGE_RECORD
    run = writer._segment(RUN, encode_run([(seq, record)], seq), 0, seq, seq) if large else None
    item = build(
        settings, codec.name, version=seq, epoch=epoch, log=[] if run else [record], table=[run[0]] if run else []
    )
    item[IDS] = {"BS": [rid]}
    if run is None:
        item[ROOM] = {"N": str(int(item[ROOM]["N"]) - len(record) - RECORD_OVERHEAD)}
    if old is not None and old.garbage:  # claims of large writes in steps: kept for a flush to collect when stale
        item[GARBAGE] = {"SS": sorted(old.garbage)}
        item[ROOM] = {"N": str(int(item[ROOM]["N"]) - item_size({GARBAGE: item[GARBAGE]}))}
    put: dict[str, Any] = {"TableName": settings.table_name, "Item": item}
    if old is None:
        put["ConditionExpression"] = "attribute_exists(#k) AND attribute_not_exists(#fmt)"
        put["ExpressionAttributeNames"] = {"#k": settings.key_field_name, "#fmt": FMT}
    else:
        put["ConditionExpression"] = "#ver = :v AND #ep = :e"
        put["ExpressionAttributeNames"] = {"#ver": VER, "#ep": EPOCH}
        put["ExpressionAttributeValues"] = {":v": {"N": str(old.version)}, ":e": {"N": str(old.epoch)}}
    puts = [run] if run else []
    shards = writer._items(puts)
    try:
        if not shards:
            table.call(usage, "put_item", **put)
        elif len(shards) < TRANSACT_MAX_ACTIONS and sum(map(item_size, [*shards, item])) <= TRANSACT_BUDGET:
            table.transact(usage, [*writer._puts(puts), {"Put": put}], rid.hex())
        else:
            table.batch_write(usage, puts=shards)
            try:
                table.call(usage, "put_item", **put)
            except BaseException:
                keys = [s[settings.key_field_name]["S"] for s in shards]
                try:
                    table.batch_write(usage, deletes=keys)
                except Exception:  # the error that matters is the head's; the run is unreferenced either way
                    logger().warning("map %r: %d unreferenced items were not deleted", settings.table_key, len(keys))
                raise
    except Conflict:
        return None
    if old is not None:
        stale = [segment_key(settings.table_key, s.sid, i) for s in old.table for i in range(s.shards)]
        try:
            table.batch_write(usage, deletes=stale)
        except Exception as exc:
            logger().warning(
                "map %r was replaced, but %d items of its old segments were not deleted (%s); nothing refers to "
                "them any more",
                settings.table_key,
                len(stale),
                exc,
            )
    return parse(item, settings)
