"""Format 3's reading (FORMAT.md, "Reading"): one container's replica of one map, and how it catches up.

A :class:`Reader` holds the folded map (``view``), the head it last saw, and the change records that some
partition has not absorbed yet (what maintenance needs). A load or refresh reads only what changed since its
sequence number, and decodes and checks everything before folding any of it. The commit protocols build on it:
structural commits in ``_flushing``, appends and large writes in ``_replica``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._dynamodb import Conflict, Table, TableMissing
from ._errors import ConflictError, StoredDataError, UnsupportedValueError
from ._fold import View
from ._head import (
    FMT,
    Head,
    bad,
    named,
    parse,
)
from ._keyhash import key_hash
from ._meter import Usage, item_size
from ._records import (
    CLEAR,
    PARTITION,
    RUN,
    SHARD_BYTES,
    Segment,
    check_table,
    decode_manifest,
    decode_partition,
    decode_run,
    is_inline,
    record_id,
    segment_digest,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._codec import Codec
    from ._meter import Item

#: Times a reader re-reads the head when a structural commit replaced the segments it was reading.
READ_ATTEMPTS = 8


def segment_key(table_key: str, sid: str, index: int) -> str:
    return f"{table_key}#alp#{sid}#{index}"


class Reader:
    """One container's copy of one map (format 3): its state, and the reads that keep it in step with DynamoDB."""

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
            fresh = type(self)(self.table, self.settings, self._codec_of(head))
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

        Returns the outcomes of the records folded (``View.apply``), by record id: none when the map was rewritten
        in another codec (migrate, recompress), which is read whole, as a load does."""
        if not cold and head.codec != self.codec.name:
            self.load()
            return {}
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

    def _shard_key(self, sid: str, index: int) -> str:
        return segment_key(self.settings.table_key, sid, index)

    def _shard_size(self, blob_bytes: int) -> int:
        """A shard item's size, by DynamoDB's rules, from the blob bytes it holds."""
        return blob_bytes + len(self.settings.key_field_name) + len(self.settings.value_field_name) + 64


def _inside(h: int, partition: Segment) -> bool:
    return h & ((1 << partition.depth) - 1) == partition.prefix


class _Moved(Exception):
    """Segment ``sid``, which the head listed, is gone: a structural commit replaced it while it was being read
    (or, when the head read again still lists it, the segment is damaged)."""

    def __init__(self, sid: str) -> None:
        super().__init__(sid)
        self.sid = sid
