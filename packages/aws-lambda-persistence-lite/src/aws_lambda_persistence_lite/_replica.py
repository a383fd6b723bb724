"""Format 3's protocols (FORMAT.md): one container's replica of one map, and every read and commit of it.

A :class:`Replica` holds the folded map (``view``), the head it last saw, and the change records that some
partition has not absorbed yet (what maintenance needs). It reads only what changed since its sequence number,
commits a change as one record appended to the head's log, and, when the log is full, flushes it into a run in
one transaction together with one bounded maintenance step. It knows codec-encoded entries, never Python types,
except through the codec's ``decode_entry`` / ``encode_entry``.
"""

from __future__ import annotations

import os
import time

from ._config import Settings
from ._dynamodb import Conflict, Table, TableMissing, outcome_unknown
from ._errors import ConflictError, PersistenceError, StoredDataError, UnsupportedValueError
from ._fold import View
from ._head import (
    CODEC,
    EPOCH,
    FLUSHED_IDS,
    FMT,
    GARBAGE,
    HEAD_BUDGET,
    IDS,
    INLINE,
    LOG,
    ROOM,
    TABLE,
    TABLE_DIGEST,
    TABLE_MAX,
    VER,
    Head,
    appended,
    bad,
    build,
    named,
    parse,
    stored_ids,
    table_attributes,
)
from ._keyhash import key_hash
from ._limits import TRANSACT_BUDGET, TRANSACT_MAX_ACTIONS
from ._log import backoff, logger
from ._meter import Usage, item_size, write_units
from ._records import (
    CLEAR,
    INLINE_MAX,
    MANIFEST,
    PARTITION,
    RUN,
    SHARD_BYTES,
    Entry,
    Op,
    Segment,
    check_table,
    decode_manifest,
    decode_partition,
    decode_record,
    decode_run,
    encode_partition,
    encode_record,
    encode_run,
    encode_table,
    is_inline,
    record_id,
    segment_digest,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NamedTuple

    from ._codec import Codec
    from ._meter import Item
else:
    from ._record import NamedTuple


#: Times a reader re-reads the head when a structural commit replaced the segments it was reading.
READ_ATTEMPTS = 8
#: Write units one flush may spend (DynamoDB's rules): deletes beyond it wait in alp_garbage for later flushes,
#: so no commit costs more than a free-tier table's burst capacity absorbs.
COMMIT_BUDGET = 900
#: Times an append meets a full log (and flushes) before it gives up.
ROOM_ATTEMPTS = 8
#: Records a flush moves out of the log at most: each is one REMOVE clause of the head update, whose expression
#: DynamoDB caps at 4 KB (and moto's parser recurses per clause, failing past ~150). A log holds at most 117
#: records (see RECORD_MIN_CHARGE), so one flush empties it.
FLUSH_REMOVES = 120
#: Room below which the append that crosses it flushes at once, when other containers are appending too
#: (``_flush_ahead``): about 29 of a counter's records, left for them while the flush is in flight.
FLUSH_AHEAD = 1_000
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
#: Bytes a record adds to the head beyond its own: its list element's overhead (its id is its first 8 bytes).
RECORD_OVERHEAD = 1
#: The least room a record is charged: a log then holds at most 4,000 / 34 = 117 records, so one flush empties it,
#: and the head every append returns (and every container parses) stays short for a counter's tiny records.
RECORD_MIN_CHARGE = 34
#: Seconds after which a large write's claim is taken for a dead writer's: longer than a Lambda call can last.
CLAIM_LIFETIME = 3600
#: A record larger than this never goes into the log: it is written as a run of its own (a large write).
LARGE_RECORD = HEAD_BUDGET // 2


def segment_key(table_key: str, sid: str, index: int) -> str:
    return f"{table_key}#alp#{sid}#{index}"


class Replica:
    """One container's copy of one map (format 3), and the protocols that keep it and DynamoDB in step."""

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
        self._hashes: dict[int, list[tuple[int | None, int]]] = {}
        self._key_hashes: dict[Any, int] = {}
        #: The last manifest read or written: its sid and the segments it lists (immutable, like every segment).
        self._manifest: tuple[str, tuple[Segment, ...]] = ("", ())
        #: The segment list the last append was pinned to, and its expression values (see ``_pin``).
        self._pinned: tuple[tuple[Segment, ...] | None, dict[str, Any]] = (None, {})
        self.last_load = Usage()
        self.last_commit = Usage()

    # -- reading ------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Cold load: the head, then every segment in one BatchGetItem round."""
        usage = self.last_load = Usage()
        moved: _Moved | None = None
        for _ in range(READ_ATTEMPTS):
            item = self._get_head(usage)
            if item is None:
                self._reset(None)
                return
            if FMT not in item:
                self._reset(None)
                self.legacy = item
                return
            head = self._parse_after(item, moved)
            fresh = Replica(self.table, self.settings, self._codec_of(head))
            fresh._manifest = self._manifest  # (immutable once read: kept across attempts and loads)
            try:
                fresh._catch_up(head, usage, cold=True)
            except _Moved as exc:
                moved, self._manifest = exc, fresh._manifest
                continue
            self.view, self.head, self.pending, self._hashes = fresh.view, fresh.head, fresh.pending, fresh._hashes
            self._manifest = fresh._manifest
            self.codec = fresh.codec
            self.legacy = None
            return
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def refresh(self) -> bool:
        """Bring the replica to the stored version, reading only what changed. True when something did."""
        usage = self.last_load = Usage()
        moved: _Moved | None = None
        for _ in range(READ_ATTEMPTS):
            item = self._get_head(usage)
            if item is None or FMT not in item or self.head is None:
                if self.head is None and (item is None if self.legacy is None else item == self.legacy):
                    return False  # still nothing stored, or the same 1.0.0 item
                self.load()
                return True
            head = self._parse_after(item, moved)
            if head.version == self.head.version and head.epoch == self.head.epoch:
                return False
            try:
                self._catch_up(head, usage, cold=False)
            except _Moved as exc:
                moved = exc
                continue
            return True
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def _parse_after(self, item: Item, moved: _Moved | None) -> Head:
        """The head ``item``, read again after ``moved`` (if not None): a head that still lists the missing segment
        has not replaced it, so the segment is damaged, not moved."""
        head = parse(item, self.settings)
        listed = list(head.listed)
        if head.manifest is not None and head.manifest.sid == self._manifest[0]:
            listed += self._manifest[1]  # (a manifest not read yet is checked when the segment is missed again)
        if moved is not None and any(s.sid == moved.sid for s in listed):
            raise bad(self.settings, f"segment {moved.sid} lacks a shard item, though the head still lists it")
        return head

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
        self.view = View(self.codec)
        self.head, self.legacy, self.pending, self._hashes = head, None, {}, {}

    def _catch_up(
        self, head: Head, usage: Usage, *, cold: bool, own: tuple[bytes, list[tuple[Any, Any]]] | None = None
    ) -> dict[bytes, list[Any]]:
        """Fold ``head`` into this replica, reading the segments that hold something newer than what it has.
        Everything read is decoded and checked before the replica changes: a failure (a StoredDataError naming
        the map) leaves it as it was.

        Returns the outcomes of the records folded (``View.apply``), by record id."""
        if cold:
            self._reset(None)
            self.codec = self._codec_of(head)
            self.view = View(self.codec)
        head = self._resolve(head, usage)
        have = 0 if cold or self.head is None else self.view.seq
        known = set() if cold or self.head is None else {s.sid for s in self.head.table}
        parts = [s for s in head.table if s.kind == PARTITION and s.sid not in known and s.watermark > have]
        runs = [s for s in head.table if s.kind == RUN and s.sid not in known and s.hi > have]
        blobs = self.read_segments(usage, [s for s in parts + runs if s.shards])
        try:
            taken, records, decoded = self._decode(head, parts, runs, blobs, have=have, own=own)
        except StoredDataError as exc:
            raise named(self.settings, exc) from None
        except UnsupportedValueError as exc:  # (a stored key that no writer could have hashed)
            raise bad(self.settings, f"it holds a key outside the value model ({exc})") from exc
        fresh = {(p.depth, p.prefix): p.watermark for p, _ in taken}
        depths = sorted({d for d, _ in fresh})
        if not cold and taken:  # (one pass: keys of the partitions read anew give way to their fresh copies)
            self.view.drop(lambda key: any((d, self._hash(key) & ((1 << d) - 1)) in fresh for d in depths))
        for _, entries in taken:
            self.view.take_partition(entries)

        def floor(key: Any) -> int:
            h = self._hash(key)
            for depth in depths:
                mark = fresh.get((depth, h & ((1 << depth) - 1)))
                if mark is not None:
                    return max(mark, have)
            return have

        outcomes = {record_id(records[seq]): self.view.fold(seq, decoded[seq], floor) for seq in sorted(records)}
        if parts:
            self.view.order()
        self.view.seq = head.version
        self.pending.update(records)
        self.head = head
        self._prune()
        return outcomes

    def _decode(
        self,
        head: Head,
        parts: list[Segment],
        runs: list[Segment],
        blobs: dict[str, bytes],
        *,
        have: int,
        own: tuple[bytes, list[tuple[Any, Any]]] | None,
    ) -> tuple[list[tuple[Segment, list[Any]]], dict[int, bytes], dict[int, list[Any]]]:
        """What ``_catch_up`` folds, decoded and checked without changing anything: each partition's entries,
        the records newer than ``have`` by sequence number, and their decoded ops (every key
        hashed, so that folding cannot fail)."""
        for p in parts:
            if is_inline(p):
                blobs[p.sid] = self._checked(p, head.inline)
        taken = []
        for p in parts:
            entries = decode_partition(self.codec.decompress(blobs[p.sid], p.raw_size)) if p.blob_size else []
            taken.append((p, self.view.read_partition(entries, self._belongs(p))))
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
        decoded = {}
        for seq, record in records.items():
            values = own[1] if own is not None and own[0] == record_id(record) else None
            decoded[seq] = ops = self.view.read_record(record, values)
            for kind, key, _, _ in ops:
                if kind != CLEAR:
                    self._hash(key)
        return taken, records, decoded

    def _resolve(self, head: Head, usage: Usage) -> Head:
        """``head`` with its whole table: a manifest's segments (read unless this replica has it) and the head's
        others, checked as one table (FORMAT.md, "Manifest")."""
        manifest = head.manifest
        if manifest is None:
            return head
        if manifest.sid != self._manifest[0]:
            blob = self.read_segments(usage, [manifest])[manifest.sid]
            try:
                self._manifest = (manifest.sid, tuple(decode_manifest(self.codec.decompress(blob, manifest.raw_size))))
            except StoredDataError as exc:
                raise named(self.settings, exc) from None
        table = (*self._manifest[1], *head.listed[1:])
        try:
            check_table([manifest, *table])
        except StoredDataError as exc:
            raise named(self.settings, exc) from None
        return head._replace(table=table)

    def _belongs(self, partition: Segment) -> Callable[[Any], bool]:
        return lambda key: _inside(self._hash(key), partition)

    def read_segments(self, usage: Usage, segments: list[Segment]) -> dict[str, bytes]:
        """Blobs of ``segments``, checked; _Moved when a shard is gone (a structural commit replaced it, unless the
        head read again still lists it)."""
        table_key = self.settings.table_key
        keys = [
            (segment_key(table_key, s.sid, i), self._shard_size(min(SHARD_BYTES, s.blob_size - i * SHARD_BYTES)))
            for s in segments
            for i in range(s.shards)
        ]
        if not keys:
            return {}
        items = self.table.batch_get(usage, keys)
        for item in items.values():
            usage.read(item_size(item))
        name = self.settings.value_field_name
        blobs = {}
        for s in segments:
            parts = [items.get(segment_key(table_key, s.sid, i)) for i in range(s.shards)]
            if any(p is None for p in parts):
                raise _Moved(s.sid)
            if not all(type(p.get(name)) is dict and isinstance(p[name].get("B"), bytes) for p in parts if p):
                raise bad(self.settings, f"a shard item of segment {s.sid} lacks its binary {name!r}")
            blobs[s.sid] = self._checked(s, b"".join(bytes(p[name]["B"]) for p in parts if p is not None))
        return blobs

    def _checked(self, segment: Segment, blob: bytes) -> bytes:
        if len(blob) != segment.blob_size or segment_digest(blob) != segment.digest:
            raise bad(self.settings, f"segment {segment.sid} fails its integrity check")
        return blob

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
        for _ in range(max(ROOM_ATTEMPTS, self.settings.max_attempts)):
            head = self.head
            if head is None:
                done = self._first_write(usage, record, rid, own, large=large, first_only=first_only)
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
                current, outcomes = self._follow(self._current(usage, conflict), usage, own=own)
                if rid in current.ids:  # botocore's retry of our applied append
                    return outcomes.get(rid, [])
                if expected is not None and current.version != expected:
                    raise Conflict() from None
                if current.room < charge(record):
                    self._flush(usage, current)
                continue
            result = self._follow(new, usage, own=own)[1].get(rid, [])
            self._flush_ahead(usage, head.version, charge(record))
            return result
        raise ConflictError(
            f"map {self.settings.table_key!r}: other containers flushed its log (or it stayed full) on each of "
            f"{max(ROOM_ATTEMPTS, self.settings.max_attempts)} attempts; try again"
        )

    def append_unread(self, ops: list[Op], known: list[tuple[Any, Any]] | None, usage: Usage) -> list[Any] | None:
        """Commit blind ``ops`` on a map this replica has not read (a lazy open): one append without the table
        pin, then the head it returns folded as a cold load folds one (FORMAT.md, "Commits", 2). None when nothing
        was appended (no head, a 1.0.0 item, another codec, a full log, a large record): load, then commit."""
        self.last_commit = usage
        rid = os.urandom(8)
        record = encode_record(rid, ops)
        if len(record) + RECORD_OVERHEAD > LARGE_RECORD:
            return None
        try:
            new = self._append_confirmed(usage, None, record, rid, None)
        except TableMissing:
            return None
        except Conflict as conflict:  # (botocore's retry of this applied append fails: its head holds the id)
            item = conflict.item
            if item is None or FMT not in item:
                return None
            new = parse(item, self.settings)
            if rid not in new.ids:
                return None
        own = (rid, known) if known is not None else None
        return self._follow(new, usage, cold=True, own=own)[1].get(rid, [])

    def _flush_ahead(self, usage: Usage, before: int, charged: int) -> None:
        """Flush now, before the log is full, when this container's append (made at version ``before``, charged
        ``charged`` bytes of room) took the room below FLUSH_AHEAD and brought other containers' records back:
        one container flushes while the others append into the room left, instead of all of them finding the
        log full at once and racing to flush (every transaction but one cancelled). The change is committed
        already: a flush that fails is left to the next append that finds no room."""
        head = self.head
        if head is None or head.version - before <= 1 or not head.room < FLUSH_AHEAD <= head.room + charged:
            return
        try:
            self._flush(usage, head)
        except Exception as exc:
            logger().debug("map %r: the flush ahead failed (%s); an append will flush", self.settings.table_key, exc)

    def _append_confirmed(
        self, usage: Usage, head: Head | None, record: bytes, rid: bytes, expected: int | None
    ) -> Head:
        """Append, and when botocore gave up on the call (its response lost, or the network down), decide by one
        strongly consistent read whether it was applied: the id in the stored head means it was. When that read
        fails too, the outcome is unknown and the call's error is raised, with nothing undone."""
        try:
            return self._append(usage, head, record, rid, expected)
        except Exception as exc:
            if isinstance(exc, (Conflict, PersistenceError, TableMissing)) or not outcome_unknown(exc):
                raise
            stored = self._confirm(usage)
            if stored is not None and rid in stored.ids:
                return stored
            raise

    def _confirm(self, usage: Usage) -> Head | None:
        """The head as stored, read once after a write whose outcome botocore could not learn (every response
        lost, or the network down); None when there is none or this read fails too (the outcome stays unknown)."""
        try:
            item = self._get_head(usage)
        except Exception:
            return None
        return parse(item, self.settings) if item is not None and FMT in item else None

    def _follow(
        self, head: Head, usage: Usage, *, cold: bool = False, own: tuple[bytes, Any] | None = None
    ) -> tuple[Head, dict[bytes, list[Any]]]:
        """Catch up to ``head`` (a head a write returned or found); when a segment it lists is gone (a later
        structural commit replaced it), to the head as stored now. Returns the head folded and the outcomes."""
        for _ in range(READ_ATTEMPTS):
            try:
                outcomes = self._catch_up(head, usage, cold=cold, own=own)
                assert self.head is not None
                return self.head, outcomes
            except _Moved as moved:
                item = self._get_head(usage)
                if item is None or FMT not in item:
                    raise bad(self.settings, "the head disappeared while the map was in use") from None
                head = self._parse_after(item, moved)
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def _current(self, usage: Usage, conflict: Conflict) -> Head:
        item = conflict.item or self._get_head(usage)
        if item is None or FMT not in item:
            raise Conflict()
        return parse(item, self.settings)

    def _append(self, usage: Usage, head: Head | None, record: bytes, rid: bytes, expected: int | None) -> Head:
        condition = "#room >= :n AND NOT contains(#log, :record) AND NOT contains(#ids, :id) AND #codec = :codec"
        names = {"#log": LOG, "#ver": VER, "#room": ROOM, "#ids": IDS, "#codec": CODEC}
        values: dict[str, Any] = {
            ":codec": {"S": self.codec.name},
            ":rec": {"L": [{"B": record}]},
            ":record": {"B": record},
            ":one": {"N": "1"},
            ":n": {"N": str(charge(record))},
            ":id": {"B": rid},
        }
        if head is not None:
            # Pinned to the segment table this replica verified (its bytes and digest): an append never lands on a
            # head damaged since, and after another container's flush it fails, catches up and appends again.
            pinned = self._pin(head)
            condition += " AND #dig = :dig AND " + ("#seg = :seg" if ":seg" in pinned else "attribute_not_exists(#seg)")
            names.update({"#dig": TABLE_DIGEST, "#seg": TABLE})
            values.update(pinned)
        if expected is not None:
            condition += " AND #ver = :v"
            values[":v"] = {"N": str(expected)}
        usage.items += 1
        usage.bytes += len(record)
        grown = (head.stored_size if head is not None else 0) + len(record) + RECORD_OVERHEAD
        usage.capacity_units += write_units(min(HEAD_BUDGET, grown), False)
        response = self.table.call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.table.key(self.settings.table_key),
            UpdateExpression="SET #log = list_append(#log, :rec), #ver = #ver + :one, #room = #room - :n",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            # (pinned, only what the append changed comes back: the rest is the head the pin held)
            ReturnValues="ALL_NEW" if head is None else "UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if head is not None:
            return appended(head, response["Attributes"], self.settings)
        new = parse(response["Attributes"], self.settings)
        # (billed at the larger of the item before and after: the item after)
        usage.capacity_units += write_units(new.stored_size, False) - write_units(grown, False)
        return new

    def _pin(self, head: Head) -> dict[str, Any]:
        """The expression values that pin an append to ``head``'s segment list (encoded once per list)."""
        if self._pinned[0] != head.listed:
            stored = table_attributes(list(head.listed))
            pin = {":dig": stored["digest"]}
            if stored["table"] is not None:
                pin[":seg"] = stored["table"]
            self._pinned = (head.listed, pin)
        return self._pinned[1]

    def _first_write(
        self, usage: Usage, record: bytes, rid: bytes, own: Any, *, large: bool, first_only: bool
    ) -> dict[bytes, list[Any]] | None:
        """Create the head with the first record: in its log, or (a large record) as the map's first partitions,
        written with the head in one transaction. This also replaces a 1.0.0 item, whose whole map the record then
        holds. None when the caller should append instead: another container created a head first, or the
        partitions do not fit one transaction (an empty head was created; the large write puts them in steps)."""
        view, outcome, parts = self._bulk(record, 1, own) if large else (None, [], [])
        if view is not None and not self._fits_one_transaction(parts):
            if first_only:  # (a 1.0.0 item is under 400 KB: its map always fits)
                raise PersistenceError(f"map {self.settings.table_key!r}: too large to migrate from 1.0.0")
            view, parts, record = None, [], b""
        log, (listed, table) = ([record] if record and view is None else []), _listing(parts)
        item = build(self.settings, self.codec.name, version=1 if record else 0, epoch=0, log=log, table=listed)
        if record and not log:  # (a record in the log has its id in its first bytes)
            item[IDS] = {"L": [{"B": rid}]}
        if log:
            item[ROOM] = {"N": str(int(item[ROOM]["N"]) - charge(record))}
        condition = {"ConditionExpression": "attribute_not_exists(#fmt)", "ExpressionAttributeNames": {"#fmt": FMT}}
        before = usage.snapshot()
        try:
            try:
                self._create_head(usage, item, condition, parts)
            except TableMissing:  # the first write ever: create the table (not counted), then write again
                usage.restore(before)
                self.table.create()
                self._create_head(usage, item, condition, parts)
        except Conflict as conflict:
            # Another container created the head first (append instead), or its transaction held the item
            # (TransactionConflict: nothing was written, so try again).
            found = conflict.item if conflict.item and FMT in conflict.item else self._get_head(usage)
            if found is None or FMT not in found:
                return None
            current, outcomes = self._follow(parse(found, self.settings), usage, cold=True)
            return outcomes if rid in current.ids else None
        except Exception as exc:  # outcome unknown: a head holding the record's id means it was written
            if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                raise
            stored = self._confirm(usage)
            if stored is None:
                raise
            current, outcomes = self._follow(stored, usage, cold=True)
            return outcomes if rid in current.ids else None
        self._reset(parse(item, self.settings)._replace(table=tuple(table)))
        if not record:
            return None
        if view is not None:
            self.view = view
            return {rid: outcome}
        self.pending[1] = record
        return {rid: self.view.apply(1, record, None, own[1] if own else None)}

    def _bulk(self, record: bytes, seq: int, own: Any) -> tuple[View, list[Any], list[tuple[Segment, bytes]]]:
        """An empty map's first content, straight into partitions (watermark ``seq``), so that nothing is left to
        merge: the view folded at ``seq``, the record's outcomes, and the partitions written from the view."""
        view = View(self.codec)
        outcome = view.apply(seq, record, None, own[1] if own else None)
        root = Segment(PARTITION, os.urandom(8).hex(), b"", 0, 0, 0)
        parts = self._write_partition(root, seq, view)
        table = [s for s, _ in parts]
        if _table_size(table) > TABLE_MAX:  # (FORMAT.md, "Manifest": listed by a manifest, written with them)
            parts.append(self._new_manifest(table))
        return view, outcome, parts

    def _new_manifest(self, table: list[Segment]) -> tuple[Segment, bytes]:
        """A manifest of ``table``, kept as this replica's (its sid is new: should the commit fail, nothing ever
        names it), so that the commit that lists it does not read it back."""
        manifest = self._segment(MANIFEST, encode_table(table), 0, 0, 0)
        self._manifest = (manifest[0].sid, tuple(table))
        return manifest

    def _fits_one_transaction(self, puts: list[tuple[Segment, bytes]]) -> bool:
        items = self._items(puts)
        return len(items) + 1 <= TRANSACT_MAX_ACTIONS and sum(map(item_size, items)) + HEAD_BUDGET <= TRANSACT_BUDGET

    def _create_head(
        self, usage: Usage, item: Item, condition: dict[str, Any], puts: list[tuple[Segment, bytes]]
    ) -> None:
        if not puts:
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
        self._bill(usage, puts, [], parse(item, self.settings))
        self.table.transact(usage, [*self._puts(puts), put], os.urandom(8).hex())

    # -- flush and maintenance -----------------------------------------------------------------------------

    def _flush(self, usage: Usage, head: Head, *, lay_out: bool = False) -> None:
        """Move the log into a run and do one maintenance step, in one transaction (the replica has folded
        ``head``). Losing to another flush is fine: the caller appends again either way. ``lay_out``: also when
        the log is empty (a large write makes room in the head's segment list)."""
        n = min(len(head.log), FLUSH_REMOVES)
        if not n and not lay_out:
            return
        records = [(head.first_logged + i, r) for i, r in enumerate(head.log[:n])]
        runs = [self._segment(RUN, encode_run(records, records[0][0]), 0, records[0][0], records[-1][0])] if n else []
        puts, replaced, table = self._maintain([*head.table, *(s for s, _ in runs)], runs)
        flushed = stored_ids(head)
        ids = _newest_ids(*flushed, *(r[:8] for _, r in records))
        # What the flush gives back to the log: the records, less what alp_ids and the head's segment list grow
        # by; then less what alp_inl and alp_garbage grow by.
        freed = sum(charge(r) for _, r in records) - (_ids_size(ids) - _ids_size(flushed))
        # (the room an empty log would have after this flush: an inline partition must leave the largest record)
        empty = head.room + freed + sum(charge(r) for r in head.log[n:])
        empty -= _table_size(table) - _table_size(list(head.listed))
        inline, table, puts = self._inline(head, table, puts, empty)
        listed, manifest = self._lay_out(head, table)
        if manifest is not None:
            puts.append(manifest)
        if head.manifest is not None and head.manifest not in listed:
            replaced.append(head.manifest)
        freed -= _table_size(listed) - _table_size(list(head.listed))
        deletes, retired, collected = self._budget(puts, replaced, head)
        if inline is not None:
            freed -= _inline_size(inline) - _inline_size(head.inline)
        freed -= sum(len(e) + 1 for e in retired) - sum(len(e) + 1 for e in collected)
        head_update = self._flush_update(head, n, listed, ids, freed=freed, garbage=(retired, collected), inline=inline)
        actions = self._puts(puts) + [self._delete(key) for key, _ in deletes] + [head_update]
        self._bill(usage, puts, deletes, head, grown=-freed)
        token = os.urandom(8).hex()
        try:
            self.table.transact(usage, actions, token)
        except Conflict:
            return  # another container flushed first
        except Exception as exc:
            if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                raise
            # Outcome unknown: a head read at a newer epoch means this flush or another one was stored, so go on
            # as after a lost race (the caller appends again and catches up); otherwise the call fails, with
            # nothing undone.
            current = self._confirm(usage)
            if current is None or current.epoch == head.epoch:
                raise
            return
        self.head = head._replace(
            log=head.log[n:],
            room=head.room + freed,
            # (what the head shrank by: the flushed records' bytes, less what ``freed`` took for the rest)
            stored_size=head.stored_size - freed + sum(charge(r) - len(r) - RECORD_OVERHEAD for _, r in records),
            epoch=head.epoch + 1,
            table=tuple(table),
            listed=tuple(listed),
            ids=(*ids, *(r[:8] for r in head.log[n:])),
            inline=head.inline if inline is None else inline,
        )
        self._prune()

    def _lay_out(self, head: Head, table: list[Segment]) -> tuple[list[Segment], tuple[Segment, bytes] | None]:
        """What the head lists for the whole ``table`` (FORMAT.md, "Manifest"), and the new manifest to put (None:
        none): the table itself when it fits TABLE_MAX; else the head's manifest and the rest, when the manifest's
        segments are all kept and that fits; else a new manifest of the whole table."""
        if _table_size(table) <= TABLE_MAX:
            return table, None
        manifest = head.manifest
        if manifest is not None and manifest.sid == self._manifest[0]:
            inside = {s.sid for s in self._manifest[1]}
            if inside <= {s.sid for s in table}:
                listed = [manifest, *(s for s in table if s.sid not in inside)]
                if _table_size(listed) <= TABLE_MAX:
                    return listed, None
        new = self._new_manifest(table)
        return [new[0]], new

    @staticmethod
    def _inline(
        head: Head, table: list[Segment], puts: list[tuple[Segment, bytes]], empty: int
    ) -> tuple[bytes | None, list[Segment], list[tuple[Segment, bytes]]]:
        """Whether the flush's head update changes ``alp_inl`` (FORMAT.md, "Inline partition"): the new blob when
        the step wrote the map's one partition small enough to hold in the head (then not put as an item) and an
        empty log would still have room ``empty`` less its growth for the largest record; b"" when the inline
        partition was replaced by stored ones; None to leave it. Also the table and the puts."""
        partitions = [s for s in table if s.kind == PARTITION]
        written = [(s, blob) for s, blob in puts if s.kind == PARTITION]
        if len(partitions) == len(written) == 1 and partitions[0] == written[0][0]:
            segment, blob = written[0]
            room = empty - (_inline_size(blob) - _inline_size(head.inline))
            if len(blob) <= INLINE_MAX and room >= LARGE_RECORD + RECORD_OVERHEAD:
                inline = segment._replace(shards=0)
                return blob, [inline if s == segment else s for s in table], [p for p in puts if p[0] != segment]
        if head.inline and not any(is_inline(s) for s in table):
            return b"", table, puts
        return None, table, puts

    def _flush_update(
        self,
        head: Head,
        n: int,
        table: list[Segment],
        ids: tuple[bytes, ...],
        *,
        freed: int,
        garbage: tuple[list[str], ...],
        inline: bytes | None,
    ) -> dict[str, Any]:
        """The flush's head update: the log's first ``n`` records out, ``freed`` bytes of room back, the new table,
        ``alp_ids`` set to ``ids``, ``alp_inl`` set (removed: b"", kept: None), and the garbage entries (retired,
        collected) in and out; conditional on the epoch."""
        retired, collected = garbage
        table_attr = table_attributes(table)
        # (by index: records appended meanwhile come after, and the epoch excludes every other REMOVE; alp_ids is
        # set whole: only epoch-conditional commits change it)
        removes = [f"#log[{i}]" for i in range(n)] + (["#ids"] if not ids and stored_ids(head) else [])
        removes += ["#seg"] if table_attr["table"] is None else []
        removes += ["#inl"] if inline == b"" else []
        update = f"REMOVE {', '.join(removes)} " if removes else ""
        update += "SET #room = #room + :freed, #ep = #ep + :one, #dig = :dig"
        names = {"#room": ROOM, "#ep": EPOCH, "#dig": TABLE_DIGEST, "#seg": TABLE}
        if n:
            names["#log"] = LOG
        values: dict[str, Any] = {
            ":freed": {"N": str(freed)},
            ":one": {"N": "1"},
            ":dig": table_attr["digest"],
            ":e": {"N": str(head.epoch)},
        }
        if table_attr["table"] is not None:
            update += ", #seg = :seg"
            values[":seg"] = table_attr["table"]
        if inline is not None:
            names["#inl"] = INLINE
        if inline:
            update += ", #inl = :inl"
            values[":inl"] = {"B": inline}
        dropped = []
        if ids or stored_ids(head):
            names["#ids"] = IDS
        if ids:
            update += ", #ids = :ids"
            values[":ids"] = {"L": [{"B": i} for i in ids]}
        if collected:
            dropped.append("#g :collected")
            names["#g"] = GARBAGE
            values[":collected"] = {"SS": collected}
        if dropped:
            update += " DELETE " + ", ".join(dropped)
        if retired:  # (never with collected: one update cannot both add to and delete from a set)
            update += " ADD #g :retired"
            names["#g"] = GARBAGE
            values[":retired"] = {"SS": retired}
        return {
            "Update": {
                "TableName": self.settings.table_name,
                "Key": self.table.key(self.settings.table_key),
                "UpdateExpression": update,
                "ConditionExpression": "#ep = :e",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _bill(
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
        items = self._items(puts)
        usage.items += len(items) + 1
        usage.bytes += sum(item_size(i) for i in items)
        usage.capacity_units += sum(write_units(item_size(i), True) for i in items)
        usage.capacity_units += sum(write_units(size, True) for _, size in deletes)
        usage.capacity_units += write_units(head.stored_size + max(0, grown), True)

    def _budget(
        self, puts: list[tuple[Segment, bytes]], replaced: list[Segment], head: Head
    ) -> tuple[list[tuple[str, int]], list[str], list[str]]:
        """What a flush deletes within COMMIT_BUDGET write units (DynamoDB's rules, the head and the puts counted
        first): the shards of ``replaced`` it can afford, as (key, size); the rest retired to ``alp_garbage``, one
        entry per shard, for later flushes; and, when nothing is retired, the due garbage entries it collects."""
        spent = sum(write_units(item_size(i), True) for i in self._items(puts)) + write_units(HEAD_BUDGET, True)
        deletes: list[tuple[str, int]] = []
        retired: list[str] = []
        for s in replaced:
            shards = [
                (self._shard_key(s.sid, i), self._shard_size(min(SHARD_BYTES, s.blob_size - i * SHARD_BYTES)))
                for i in range(s.shards)
            ]
            cost = sum(write_units(size, True) for _, size in shards)
            if spent + cost <= COMMIT_BUDGET:
                deletes += shards
                spent += cost
            else:
                retired += (
                    [f"{s.sid}:{s.shards}:0"]
                    if s.shards == 1
                    else [f"{s.sid}:{s.shards}:0:{i}" for i in range(s.shards)]
                )
        collected: list[str] = []
        for entry in [] if retired else sorted(head.garbage):
            found = _garbage(entry)
            if found is None or found[2] <= CLAIM_LIFETIME:
                continue
            shards = [(self._shard_key(found[0], i), self._shard_size(SHARD_BYTES)) for i in found[1]]
            cost = sum(write_units(size, True) for _, size in shards)
            if spent + cost <= COMMIT_BUDGET:
                deletes += shards
                collected.append(entry)
                spent += cost
        return deletes, retired, collected

    def _shard_key(self, sid: str, index: int) -> str:
        return segment_key(self.settings.table_key, sid, index)

    def _shard_size(self, blob_bytes: int) -> int:
        """A shard item's size, by DynamoDB's rules, from the blob bytes it holds."""
        return blob_bytes + len(self.settings.key_field_name) + len(self.settings.value_field_name) + 64

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

    def _delete(self, key: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self.settings.table_name, "Key": self.table.key(key)}}

    def _maintain(
        self, table: list[Segment], puts: list[tuple[Segment, bytes]]
    ) -> tuple[list[tuple[Segment, bytes]], list[Segment], list[Segment]]:
        """One bounded maintenance step on ``table`` (which already lists the flush's run): the segments to
        put, to delete, and the new table (FORMAT.md, "Maintenance policy")."""
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
        new = {s.sid for s, _ in puts}
        dead = [r for r in runs if self._absorbed(r, partitions)]
        unwritten = [r for r in dead if r.sid in new]  # absorbed before it was stored: never written
        puts = [(s, blob) for s, blob in puts if s not in unwritten]
        budget = TRANSACT_MAX_ACTIONS - 3 - sum(s.shards for s, _ in puts) - sum(s.shards for s in deletes)
        dead = [r for r in dead if r.sid not in new][: max(0, budget)]
        deletes += [r for r in dead if r.shards]
        runs = [r for r in runs if r not in dead and r not in unwritten]
        stored = [p for p in partitions if p.shards or p.blob_size or p.depth]
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

    def _write_partition(
        self, partition: Segment, seq: int, view: View | None = None, keys: list[Any] | None = None
    ) -> list[tuple[Segment, bytes]]:
        """``partition`` anew from the view (this replica's, or an empty map's first content: ``view``) at
        ``seq``, split while its blob is too large (and splittable). ``keys``: the view's keys inside it."""
        lazy = view is None
        view = view if view is not None else self.view
        if keys is None:
            keys = [k for k in view.values if _inside(self._hash(k), partition)]
        body = encode_partition([Entry(*view.positions[k], view.raw[k]) for k in keys])
        splittable = len(keys) > 1 and partition.depth < 64
        if splittable and len(body) > 4 * PARTITION_MAX:
            return self._split(partition, seq, view, keys, lazy)
        segment, blob = self._segment(PARTITION, body, partition.depth, partition.prefix, seq)
        if splittable and len(blob) > PARTITION_MAX:
            return self._split(partition, seq, view, keys, lazy)
        return [(segment, blob)]

    def _split(
        self, partition: Segment, seq: int, view: View, keys: list[Any], lazy: bool
    ) -> list[tuple[Segment, bytes]]:
        depth = partition.depth + 1
        out = []
        for bit in (0, 1):
            prefix = partition.prefix + bit * (1 << partition.depth)
            child = partition._replace(sid=os.urandom(8).hex(), a=depth, b=prefix)
            inside = [k for k in keys if _inside(self._hash(k), child)]
            out += self._write_partition(child, seq, None if lazy else view, inside)
            if lazy and not partition.shards:  # an empty, unstored partition splits for free: one child now
                break
        return out

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
        """The key's stable hash, computed once per key (UnsupportedValueError for a key no dict can hold)."""
        try:
            h = self._key_hashes.get(key)
        except TypeError:
            raise UnsupportedValueError(f"{type(key).__name__} is not hashable: it cannot be a key") from None
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
        """A record no log can hold: a run of its own (on an empty map: its partitions, nothing left to merge),
        added to the table by a head update conditional on the version (its place in sequence). In one
        transaction when it fits one; else in steps (FORMAT.md, "Large write"): claim the segments in
        ``alp_garbage``, write their shards, then the head update."""
        head = self.head
        assert head is not None
        seq = head.version + 1
        bulk = None if head.table or head.log else self._bulk(record, seq, own)
        segments = bulk[2] if bulk else [self._segment(RUN, encode_run([(0, record)], 0), 0, 0, 0)]
        one_transaction = self._fits_one_transaction(segments)
        claims = [] if one_transaction else [f"{s.sid}:{s.shards}:{int(time.time())}" for s, _ in segments]
        if claims:
            self._claim(usage, claims, add=True)
            self.table.batch_write(usage, puts=self._items(segments))
        undecided = False
        try:
            for attempt in range(self.settings.max_attempts):
                head = self.head
                assert head is not None
                if bulk and head.version + 1 != seq:  # no longer empty: the partitions are void, write a run
                    break
                runs = [segments[0][0]._replace(b=seq, c=seq)] * (2 if head.log else 1)  # (its own and the log's)
                if not bulk and _table_size([*head.listed, *runs]) > TABLE_MAX:
                    self._flush(usage, head, lay_out=True)  # (FORMAT.md, "Manifest": make room in the list first)
                try:
                    return self._place(usage, _Large(rid, record, own, segments, claims, bulk), attempt)
                except Conflict as conflict:
                    current, outcomes = self._follow(self._current(usage, conflict), usage, own=own)
                    if rid in current.ids:
                        return outcomes.get(rid, [])
                    backoff(attempt, 0.02, 1.0)
                except Exception as exc:  # outcome unknown: the record's id in the stored head means it was written
                    if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                        raise
                    stored = self._confirm(usage)
                    if stored is not None and rid in stored.ids:
                        return self._follow(stored, usage, own=own)[1].get(rid, [])
                    # Not written, unless the head could not be read or the update may still land: then the
                    # shards stay claimed (a flush removes them an hour later), never deleted under a live head.
                    undecided = stored is None or (stored.version, stored.epoch) == (head.version, head.epoch)
                    raise
        except BaseException:
            if claims and not undecided:  # nobody will ever point at these shards: remove them now
                self._drop_claims(usage, segments, claims)
            raise
        if claims:
            self._drop_claims(usage, segments, claims)
        if bulk:
            return self._large_write(usage, rid, record, own)
        raise ConflictError(f"map {self.settings.table_key!r} kept changing during a large write")

    def _place(self, usage: Usage, large: _Large, attempt: int) -> list[Any]:
        """One attempt at a large write's head update at sequence ``alp_ver + 1`` (with its shards when
        ``claims`` is empty: one transaction). The log's records move into a run of their own in the same commit:
        the log numbers its records back from alp_ver, which the large record takes."""
        rid, record, own, segments, claims, bulk = large
        head = self.head
        assert head is not None
        seq = head.version + 1
        listed_added, added = _listing(segments) if bulk else ([segments[0][0]._replace(b=seq, c=seq)],) * 2
        logged = [(head.first_logged + i, r) for i, r in enumerate(head.log)]
        log_run = []
        if logged:
            log_run.append(self._segment(RUN, encode_run(logged, logged[0][0]), 0, logged[0][0], head.version))
        table = [*head.table, *(r[0] for r in log_run), *added]
        listed = [*head.listed, *(r[0] for r in log_run), *listed_added]
        update = self._place_run(head, listed, rid, claims)
        puts = ([] if claims else segments) + log_run
        self._bill(usage, puts, [], head)
        actions = [*self._puts(puts), update]
        retried = False
        if len(actions) > 1:
            retried = self.table.transact(usage, actions, f"{rid.hex()}{attempt:02d}")
        else:
            self.table.call(usage, "update_item", **update["Update"])
        if bulk:
            self.view, outcome = bulk[0], bulk[1]
        else:
            self.pending[seq] = record
            outcome = self.view.apply(seq, record, None, own[1] if own else None)
        self.view.seq = seq
        self.head = head._replace(
            version=seq,
            epoch=head.epoch + 1,
            log=(),
            table=tuple(table),
            listed=tuple(listed),
            ids=_newest_ids(*head.ids, rid),
        )
        # A retry that DynamoDB answered from its token cache reports success without the changes other
        # containers made since: one read of the head brings them.
        item = self._get_head(usage) if retried else None
        if item is not None and FMT in item:
            current = parse(item, self.settings)
            if (current.version, current.epoch) != (seq, head.epoch + 1):
                self._follow(current, usage)
        return outcome

    def _place_run(self, head: Head, listed: list[Segment], rid: bytes, claims: list[str]) -> dict[str, Any]:
        """The head update that adds a large write's run at sequence ``head.version + 1`` (and empties the log,
        whose records the same commit moves into a run); ``listed``: the head's new segment list."""
        attr = table_attributes(listed)
        ids = _newest_ids(*head.ids, rid)
        freed = sum(charge(r) for r in head.log) - (_ids_size(ids) - _ids_size(stored_ids(head)))
        freed -= _table_size(listed) - _table_size(list(head.listed))
        # (alp_ids is set whole: the version condition means no append came in between)
        update = "SET #ver = :seq, #ep = #ep + :one, #dig = :dig, #seg = :seg, #log = :empty, #room = #room + :freed"
        update += ", #ids = :ids"
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
            ":ids": {"L": [{"B": i} for i in ids]},
        }
        if claims:
            update += " DELETE #g :claims"
            names["#g"] = GARBAGE
            values[":claims"] = {"SS": claims}
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

    def _claim(self, usage: Usage, claims: list[str], *, add: bool) -> None:
        """List (or unlist) segment shards a large write is writing in ``alp_garbage``: should the writer die
        before the head names them, a later flush deletes them once the claim is older than any Lambda call."""
        assert self.head is not None
        usage.capacity_units += write_units(self.head.stored_size + sum(len(c) + 1 for c in claims), False)
        self.table.call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.table.key(self.settings.table_key),
            UpdateExpression=("ADD" if add else "DELETE") + " #g :claims",
            ExpressionAttributeNames={"#g": GARBAGE},
            ExpressionAttributeValues={":claims": {"SS": claims}},
        )

    def _drop_claims(self, usage: Usage, segments: list[tuple[Segment, bytes]], claims: list[str]) -> None:
        try:
            keys = [segment_key(self.settings.table_key, s.sid, i) for s, _ in segments for i in range(s.shards)]
            self.table.batch_write(usage, deletes=keys)
            self._claim(usage, claims, add=False)
        except Exception as exc:  # best effort: the claim stays, and a later flush removes the shards
            logger().warning("could not remove the unused shards of map %r: %s", self.settings.table_key, exc)


def charge(record: bytes) -> int:
    """The room (``alp_room``) a record takes in the head: its bytes and list overhead, at least
    ``RECORD_MIN_CHARGE`` (FORMAT.md, "Head item")."""
    return max(len(record) + RECORD_OVERHEAD, RECORD_MIN_CHARGE)


def _garbage(entry: str) -> tuple[str, list[int], float] | None:
    """An ``alp_garbage`` entry read: its segment, the shard indexes it stands for, and its age in seconds. Claims
    are ``sid:shards:unix time`` (every shard); a retired shard is ``sid:shards:0:index`` (age: forever). None for
    an entry this version cannot read, which is then never collected."""
    parts = entry.split(":")
    # (ASCII digits, at most 20: str.isdigit() also accepts "²", which int() refuses, and a stamp of 400 digits
    # would overflow the float arithmetic below)
    digits = all(0 < len(p) <= 20 and p.isascii() and p.isdigit() for p in parts[1:])
    if len(parts) not in (3, 4) or len(parts[0]) != 16 or not digits:
        return None
    shards, stamp = int(parts[1]), int(parts[2])
    if not 0 < shards <= 10_000:
        return None
    if len(parts) == 4:
        index = int(parts[3])
        return (parts[0], [index], time.time()) if index < shards and stamp == 0 else None
    return parts[0], list(range(shards)), time.time() - stamp


def _newest_ids(*ids: bytes) -> tuple[bytes, ...]:
    """What ``alp_ids`` keeps of ``ids`` (in sequence order): botocore's retry of an append whose response was lost
    must still find its id after the flushes in between."""
    return ids[-FLUSHED_IDS:]


def _ids_size(ids: tuple[bytes, ...]) -> int:
    """What ``alp_ids`` holding ``ids`` adds to the head (DynamoDB's count; absent when empty)."""
    return len(IDS) + 3 + sum(1 + len(i) for i in ids) if ids else 0


def _listing(parts: list[tuple[Segment, bytes]]) -> tuple[list[Segment], list[Segment]]:
    """What a head lists for new segments ``parts`` (a manifest, last, lists the others) and the table they make."""
    segments = [s for s, _ in parts]
    if segments and segments[-1].kind == MANIFEST:
        return segments[-1:], segments[:-1]
    return segments, segments


def _inline_size(blob: bytes) -> int:
    """What ``alp_inl`` holding ``blob`` adds to the head (DynamoDB's count: name and value; absent when empty)."""
    return len(INLINE) + len(blob) if blob else 0


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


class _Large(NamedTuple):
    """A large write being placed: its record, its segments (a run, or an empty map's partitions: ``bulk``, the
    view and outcomes they were written from), and their claims (empty: written with the head update)."""

    rid: bytes
    record: bytes
    own: Any
    segments: list[tuple[Segment, bytes]]
    claims: list[str]
    bulk: tuple[View, list[Any], list[tuple[Segment, bytes]]] | None


class _Moved(Exception):
    """Segment ``sid``, which the head listed, is gone: a structural commit replaced it while it was being read
    (or, when the head read again still lists it, the segment is damaged)."""

    def __init__(self, sid: str) -> None:
        super().__init__(sid)
        self.sid = sid


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
    if run is not None:  # (a record in the log has its id in its first bytes)
        item[IDS] = {"L": [{"B": rid}]}
    if run is None:
        item[ROOM] = {"N": str(int(item[ROOM]["N"]) - charge(record))}
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
        _delete_segments(table, usage, settings, old)
    return parse(item, settings)


def _delete_segments(table: Table, usage: Usage, settings: Settings, old: Head) -> None:
    """Delete every segment of a replaced map (``old`` was folded: its manifest's segments are known), best effort:
    nothing refers to them any more."""
    from ._log import logger

    segments = {s.sid: s for s in (*old.listed, *old.table)}.values()  # (a folded head: its manifest's too)
    stale = [segment_key(settings.table_key, s.sid, i) for s in segments for i in range(s.shards)]
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
