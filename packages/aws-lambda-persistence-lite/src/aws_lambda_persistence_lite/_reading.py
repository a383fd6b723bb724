"""Format 3's reading (FORMAT.md, "Reading"): how one container's state of one map catches up with DynamoDB.

A :class:`Reader` loads or refreshes a :class:`~._state.State`, reading only what changed since its sequence
number; a :class:`SegmentReader` reads what a head refers to (its manifest, the segments holding something
newer) and decodes and checks all of it before anything is folded. The commit protocols follow the heads their
writes return or find through a Reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._codec import codec_for
from ._dynamodb import Conflict, TableMissing
from ._errors import ConflictError, StoredDataError, UnsupportedValueError
from ._fold import View
from ._head import FMT, Head, bad, named, parse
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
from ._state import State, segment_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._codec import Codec
    from ._meter import Item

#: Times a reader re-reads the head when a structural commit replaced the segments it was reading.
READ_ATTEMPTS = 8


class Reader:
    """How a state catches up: a cold load, a refresh that reads only what changed, and following a head that a
    write returned or found."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.segments = SegmentReader(state)

    def load(self) -> None:
        """Cold load: the head, then every segment in one BatchGetItem round."""
        state = self.state
        usage = state.last_load = Usage()
        moved: _Moved | None = None
        for _ in range(READ_ATTEMPTS):
            item = self.get_head(usage)
            if item is None:
                state.reset(None)
                return
            if FMT not in item:
                state.reset(None)
                state.legacy = item
                return
            head = self._parse_after(item, moved)
            fresh = State(state.table, state.settings, self._codec_of(head))
            fresh.manifest = state.manifest  # (immutable once read: kept across attempts and loads)
            try:
                Reader(fresh).catch_up(head, usage, cold=True)
            except _Moved as exc:
                moved, state.manifest = exc, fresh.manifest
                continue
            state.view, state.head, state.pending, state.hashes = fresh.view, fresh.head, fresh.pending, fresh.hashes
            state.manifest = fresh.manifest
            state.codec = fresh.codec
            state.legacy = None
            return
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def refresh(self) -> bool:
        """Bring the state to the stored version, reading only what changed. True when something did."""
        usage = self.state.last_load = Usage()
        moved: _Moved | None = None
        for _ in range(READ_ATTEMPTS):
            item, folded = self.get_head(usage), self.state.head
            if item is None or FMT not in item or folded is None:
                if folded is None and (item is None if self.state.legacy is None else item == self.state.legacy):
                    return False  # still nothing stored, or the same 1.0.0 item
                self.load()
                return True
            head = self._parse_after(item, moved)
            if head.version == folded.version and head.epoch == folded.epoch:
                return False
            try:
                self.catch_up(head, usage, cold=False)
            except _Moved as exc:
                moved = exc
                continue
            return True
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def follow(
        self, head: Head, usage: Usage, *, cold: bool = False, own: tuple[bytes, Any] | None = None
    ) -> tuple[Head, dict[bytes, list[Any]]]:
        """Catch up to ``head`` (a head a write returned or found); when a segment it lists is gone (a later
        structural commit replaced it), to the head as stored now. Returns the head folded and the outcomes."""
        for _ in range(READ_ATTEMPTS):
            try:
                outcomes = self.catch_up(head, usage, cold=cold, own=own)
                assert self.state.head is not None
                return self.state.head, outcomes
            except _Moved as moved:
                item = self.get_head(usage)
                if item is None or FMT not in item:
                    raise bad(self.state.settings, "the head disappeared while the map was in use") from None
                head = self._parse_after(item, moved)
        raise ConflictError(f"the map changed {READ_ATTEMPTS} times while it was being read; try again")

    def current(self, usage: Usage, conflict: Conflict) -> Head:
        """The head a conditional write lost to: the one DynamoDB returned with the failure, else the stored one."""
        item = conflict.item or self.get_head(usage)
        if item is None or FMT not in item:
            raise Conflict()
        return parse(item, self.state.settings)

    def confirm(self, usage: Usage) -> Head | None:
        """The head as stored, read once after a write whose outcome botocore could not learn (every response
        lost, or the network down); None when there is none or this read fails too (the outcome stays unknown)."""
        try:
            item = self.get_head(usage)
        except Exception:
            return None
        return parse(item, self.state.settings) if item is not None and FMT in item else None

    def get_head(self, usage: Usage) -> Item | None:
        try:
            return self.state.table.get(usage, self.state.settings.table_key)
        except TableMissing:
            return None

    def catch_up(
        self, head: Head, usage: Usage, *, cold: bool, own: tuple[bytes, list[tuple[Any, Any]]] | None = None
    ) -> dict[bytes, list[Any]]:
        """Fold ``head`` into the state, reading the segments that hold something newer than what it has.
        Everything read is decoded and checked before the state changes: a failure (a StoredDataError naming
        the map) leaves it as it was.

        Returns the outcomes of the records folded (``View.apply``), by record id: none when the map was rewritten
        in another codec (migrate, recompress), which is read whole, as a load does."""
        state = self.state
        if not cold and head.codec != state.codec.name:
            self.load()
            return {}
        if cold:
            state.reset(None)
            state.codec = self._codec_of(head)
            state.view = View(state.codec)
        head = self.segments.resolve(head, usage)
        have = 0 if cold or state.head is None else state.view.seq
        known = set() if cold or state.head is None else {s.sid for s in state.head.table}
        parts = [s for s in head.table if s.kind == PARTITION and s.sid not in known and s.watermark > have]
        runs = [s for s in head.table if s.kind == RUN and s.sid not in known and s.hi > have]
        blobs = self.segments.read(usage, [s for s in parts + runs if s.shards])
        try:
            taken, records, decoded = self.segments.decode(head, parts, runs, blobs, have=have, own=own)
        except StoredDataError as exc:
            raise named(state.settings, exc) from None
        except UnsupportedValueError as exc:  # (a stored key that no writer could have hashed)
            raise bad(state.settings, f"it holds a key outside the value model ({exc})") from exc
        fresh = {(p.depth, p.prefix): p.watermark for p, _ in taken}
        depths = sorted({d for d, _ in fresh})
        if not cold and taken:  # (one pass: keys of the partitions read anew give way to their fresh copies)
            state.view.drop(lambda key: any((d, state.hash_of(key) & ((1 << d) - 1)) in fresh for d in depths))
        for _, entries in taken:
            state.view.take_partition(entries)

        def floor(key: Any) -> int:
            h = state.hash_of(key)
            for depth in depths:
                mark = fresh.get((depth, h & ((1 << depth) - 1)))
                if mark is not None:
                    return max(mark, have)
            return have

        outcomes = {record_id(records[seq]): state.view.fold(seq, decoded[seq], floor) for seq in sorted(records)}
        if parts:
            state.view.order()
        state.view.seq = head.version
        state.pending.update(records)
        state.head = head
        state.prune()
        return outcomes

    def _parse_after(self, item: Item, moved: _Moved | None) -> Head:
        """The head ``item``, read again after ``moved`` (if not None): a head that still lists the missing segment
        has not replaced it, so the segment is damaged, not moved."""
        head = parse(item, self.state.settings)
        listed = list(head.listed)
        manifest = self.state.manifest
        if head.manifest is not None and head.manifest.sid == manifest[0]:
            listed += manifest[1]  # (a manifest not read yet is checked when the segment is missed again)
        if moved is not None and any(s.sid == moved.sid for s in listed):
            raise bad(self.state.settings, f"segment {moved.sid} lacks a shard item, though the head still lists it")
        return head

    def _codec_of(self, head: Head) -> Codec:
        """The codec a stored map is written in: every entry of a map has its head's codec, whichever package
        reads or writes it (UnsupportedFormatError, naming what to install, when this package lacks it)."""
        if head.codec == self.state.codec.name:
            return self.state.codec
        return codec_for(head.codec)


class SegmentReader:
    """What a head refers to, read and checked: its manifest's segment table, segment blobs, and (decoded without
    changing the state) the partitions and records a catch-up folds."""

    def __init__(self, state: State) -> None:
        self.state = state

    def read(self, usage: Usage, segments: list[Segment]) -> dict[str, bytes]:
        """Blobs of ``segments``, checked; _Moved when a shard is gone (a structural commit replaced it, unless the
        head read again still lists it)."""
        settings = self.state.settings
        table_key = settings.table_key
        keys = [
            (segment_key(table_key, s.sid, i), self.state.shard_size(min(SHARD_BYTES, s.blob_size - i * SHARD_BYTES)))
            for s in segments
            for i in range(s.shards)
        ]
        if not keys:
            return {}
        items = self.state.table.batch_get(usage, keys)
        for item in items.values():
            usage.read(item_size(item))
        name = settings.value_field_name
        blobs = {}
        for s in segments:
            parts = [items.get(segment_key(table_key, s.sid, i)) for i in range(s.shards)]
            if any(p is None for p in parts):
                raise _Moved(s.sid)
            if not all(type(p.get(name)) is dict and isinstance(p[name].get("B"), bytes) for p in parts if p):
                raise bad(settings, f"a shard item of segment {s.sid} lacks its binary {name!r}")
            blobs[s.sid] = self._checked(s, b"".join(bytes(p[name]["B"]) for p in parts if p is not None))
        return blobs

    def resolve(self, head: Head, usage: Usage) -> Head:
        """``head`` with its whole table: a manifest's segments (read unless the state has it) and the head's
        others, checked as one table (FORMAT.md, "Manifest")."""
        state = self.state
        manifest = head.manifest
        if manifest is None:
            return head
        if manifest.sid != state.manifest[0]:
            blob = self.read(usage, [manifest])[manifest.sid]
            try:
                state.manifest = (manifest.sid, tuple(decode_manifest(state.codec.decompress(blob, manifest.raw_size))))
            except StoredDataError as exc:
                raise named(state.settings, exc) from None
        table = (*state.manifest[1], *head.listed[1:])
        try:
            check_table([manifest, *table])
        except StoredDataError as exc:
            raise named(state.settings, exc) from None
        return head._replace(table=table)

    def decode(
        self,
        head: Head,
        parts: list[Segment],
        runs: list[Segment],
        blobs: dict[str, bytes],
        *,
        have: int,
        own: tuple[bytes, list[tuple[Any, Any]]] | None,
    ) -> tuple[list[tuple[Segment, list[Any]]], dict[int, bytes], dict[int, list[Any]]]:
        """What ``Reader.catch_up`` folds, decoded and checked without changing anything: each partition's entries,
        the records newer than ``have`` by sequence number, and their decoded ops (every key
        hashed, so that folding cannot fail)."""
        state = self.state
        for p in parts:
            if is_inline(p):
                blobs[p.sid] = self._checked(p, head.inline)
        taken = []
        for p in parts:
            entries = decode_partition(state.codec.decompress(blobs[p.sid], p.raw_size)) if p.blob_size else []
            taken.append((p, state.view.read_partition(entries, self._belongs(p))))
        records: dict[int, bytes] = {}
        for r in runs:
            for seq, record in decode_run(state.codec.decompress(blobs[r.sid], r.raw_size), r.lo):
                if seq > r.hi:
                    raise bad(state.settings, f"run {r.sid} holds sequence {seq}, beyond its range")
                if seq > have:
                    records[seq] = record
        for index, record in enumerate(head.log):
            if head.first_logged + index > have:
                records[head.first_logged + index] = record
        decoded = {}
        for seq, record in records.items():
            values = own[1] if own is not None and own[0] == record_id(record) else None
            decoded[seq] = ops = state.view.read_record(record, values)
            for kind, key, _, _ in ops:
                if kind != CLEAR:
                    state.hash_of(key)
        return taken, records, decoded

    def _belongs(self, partition: Segment) -> Callable[[Any], bool]:
        return lambda key: _inside(self.state.hash_of(key), partition)

    def _checked(self, segment: Segment, blob: bytes) -> bytes:
        if len(blob) != segment.blob_size or segment_digest(blob) != segment.digest:
            raise bad(self.state.settings, f"segment {segment.sid} fails its integrity check")
        return blob


def _inside(h: int, partition: Segment) -> bool:
    return h & ((1 << partition.depth) - 1) == partition.prefix


class _Moved(Exception):
    """Segment ``sid``, which the head listed, is gone: a structural commit replaced it while it was being read
    (or, when the head read again still lists it, the segment is damaged)."""

    def __init__(self, sid: str) -> None:
        super().__init__(sid)
        self.sid = sid


#: (``segment_key`` is the state's: the command line's ``_stored`` imports it from here.)
