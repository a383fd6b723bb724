"""Format 3's byte layouts (FORMAT.md): change records, partition and run bodies, and the segment table.

Codec-independent framing around codec-encoded entries: this module never decodes a key or a value. Every
parser here reads stored bytes, which are hostile until verified: each length is checked against the bytes that
remain before anything is sliced or allocated, counts are capped, and anything it cannot account for is a
CorruptDataError. Nothing here does I/O.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import NamedTuple

from ._errors import CorruptDataError
from ._limits import ITEM_BUDGET, MAX_DECODED_BYTES

#: Op kinds of a record. Never renumber: stored records depend on them.
SET, DEL, ADD, CLEAR = 1, 2, 3, 4
_KINDS = frozenset((SET, DEL, ADD, CLEAR))

#: Segment kinds in the segment table.
PARTITION, RUN, MANIFEST = ord("P"), ord("R"), ord("M")

RECORD_ID_BYTES = 8
SID_BYTES = 8
SEGMENT_DIGEST_BYTES = 8
#: A varint never spells more than 64 bits (10 bytes of 7 bits).
_VARINT_MAX_BYTES = 10
#: Partitions split by key-hash bits: a 64-bit hash gives at most 64 levels.
MAX_DEPTH = 64
#: Caps on what one stored table may list; far above what the maintenance policy ever produces.
MAX_SEGMENTS = 100_000
MAX_LEVEL = 64
#: Largest blob bytes of one shard item (with room for the key and names): a segment has exactly
#: ceil(blob size / SHARD_BYTES) shards, so a missing one is told from a table that lists too many.
SHARD_BYTES = ITEM_BUDGET - 1_000
#: Largest blob of an inline partition (held in the head's ``alp_inl``: shard count 0, blob size > 0).
INLINE_MAX = 1_536


class Op(NamedTuple):
    """One change: ``kind`` (SET, DEL, ADD, CLEAR) and the codec-encoded entry it carries (empty for CLEAR)."""

    kind: int
    entry: bytes = b""


class Segment(NamedTuple):
    """One immutable segment as the table lists it.

    For a partition, ``a, b, c`` are (depth, prefix, watermark); for a run (level, lo, hi); unused for a manifest.
    """

    kind: int
    sid: str
    digest: bytes
    raw_size: int
    blob_size: int
    shards: int
    a: int = 0
    b: int = 0
    c: int = 0

    @property
    def depth(self) -> int:
        return self.a

    @property
    def prefix(self) -> int:
        return self.b

    @property
    def watermark(self) -> int:
        return self.c

    @property
    def level(self) -> int:
        return self.a

    @property
    def lo(self) -> int:
        return self.b

    @property
    def hi(self) -> int:
        return self.c


def digest(data: bytes) -> bytes:
    """Integrity check of the segment table (16-byte BLAKE2b)."""
    return blake2b(data, digest_size=16).digest()


def segment_digest(blob: bytes) -> bytes:
    """Integrity check of a segment's blob (8-byte BLAKE2b)."""
    return blake2b(blob, digest_size=SEGMENT_DIGEST_BYTES).digest()


# -- varints -------------------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """Unsigned LEB128."""
    if n < 0:
        raise ValueError(f"varint of a negative number: {n}")
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(data: bytes | memoryview, pos: int, what: str) -> tuple[int, int]:
    """The varint at ``pos`` of ``data`` (at most 10 bytes, below 2**64) and the position after it."""
    value = shift = 0
    end = min(len(data), pos + _VARINT_MAX_BYTES)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> 64:
                raise CorruptDataError(f"{what} is malformed at byte {pos}: a number is larger than 64 bits")
            return value, pos
        shift += 7
    why = "it ends early" if pos >= len(data) else "a number runs over 10 bytes"
    raise CorruptDataError(f"{what} is malformed at byte {pos}: {why}")


class Cursor:
    """Reads a stored byte string front to back; every read is checked against what remains."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def bad(self, why: str) -> CorruptDataError:
        return CorruptDataError(f"{self.what} is malformed at byte {self.pos}: {why}")

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)

    def byte(self) -> int:
        if self.done:
            raise self.bad("it ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self, limit: int = 2**64 - 1) -> int:
        value, self.pos = read_varint(self.data, self.pos, self.what)
        if value > limit:
            raise self.bad(f"a number ({value}) is larger than {limit}")
        return value

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise self.bad(f"a length of {n} runs past the end ({len(self.data) - self.pos} bytes remain)")
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def sized(self) -> bytes:
        """A varint length, then that many bytes."""
        return self.take(self.varint())


# -- records -------------------------------------------------------------------------------------------------


def encode_record(record_id: bytes, ops: list[Op]) -> bytes:
    """``id op*``; op = kind [varint(len) entry]."""
    if len(record_id) != RECORD_ID_BYTES or not ops:
        raise ValueError("a record has an 8-byte id and at least one op")
    parts = [record_id]
    for op in ops:
        parts.append(bytes((op.kind,)))
        if op.kind != CLEAR:
            parts += (varint(len(op.entry)), op.entry)
    return b"".join(parts)


def decode_record(data: bytes) -> tuple[bytes, list[Op]]:
    """(id, ops) of a stored record."""
    cursor = Cursor(data, "a change record")
    record_id = cursor.take(RECORD_ID_BYTES)
    ops = []
    while not cursor.done:
        kind = cursor.byte()
        if kind not in _KINDS:
            raise cursor.bad(f"unknown op kind {kind}")
        ops.append(Op(kind) if kind == CLEAR else Op(kind, cursor.sized()))
    if not ops:
        raise cursor.bad("a record without ops")
    return record_id, ops


def record_id(data: bytes) -> bytes:
    """The id of a record, without parsing its ops."""
    if len(data) < RECORD_ID_BYTES:
        raise CorruptDataError("a change record is shorter than its id")
    return bytes(data[:RECORD_ID_BYTES])


# -- partition and run bodies --------------------------------------------------------------------------------


class Entry(NamedTuple):
    """A partition's entry: the key's position in insertion order (record sequence, op index) and its bytes."""

    seq: int
    op: int
    entry: bytes


def encode_partition(entries: list[Entry]) -> bytes:
    return b"".join(varint(e.seq) + varint(e.op) + varint(len(e.entry)) + e.entry for e in entries)


def decode_partition(body: bytes) -> list[Entry]:
    """A partition's entries. Its varints are read inline, not by ``read_varint``: a cold load reads three per key
    of the map, and the calls doubled this function's time."""
    data, size, pos = bytes(body), len(body), 0
    entries = []
    while pos < size:
        fields = []
        for _ in range(3):
            value = shift = 0
            while True:
                if pos >= size or shift >= 7 * _VARINT_MAX_BYTES:
                    raise CorruptDataError(f"a partition is malformed at byte {pos}: a number ends early or runs long")
                byte = data[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            if value >> 64:
                raise CorruptDataError(f"a partition is malformed at byte {pos}: a number is larger than 64 bits")
            fields.append(value)
        seq, index, length = fields
        if length > size - pos:
            raise CorruptDataError(f"a partition is malformed at byte {pos}: a length of {length} runs past its end")
        entries.append(Entry(seq, index, data[pos : pos + length]))
        pos += length
    return entries


def encode_run(records: list[tuple[int, bytes]], lo: int) -> bytes:
    """``varint(seq - lo) varint(len) record`` per record, in sequence order. Sequence numbers are relative to
    the run's first (``lo``, in the segment table), so a run can be written before its place is known."""
    return b"".join(varint(seq - lo) + varint(len(record)) + record for seq, record in records)


def decode_run(body: bytes, lo: int) -> list[tuple[int, bytes]]:
    """(absolute sequence number, record) of a run whose first sequence number is ``lo``."""
    cursor = Cursor(body, "a run")
    records: list[tuple[int, bytes]] = []
    while not cursor.done:
        seq = lo + cursor.varint()
        if records and seq <= records[-1][0]:
            raise cursor.bad(f"sequence {seq} does not follow {records[-1][0]}")
        records.append((seq, cursor.sized()))
    return records


# -- the segment table ---------------------------------------------------------------------------------------


def encode_table(segments: list[Segment]) -> bytes:
    parts = [varint(len(segments))]
    for s in segments:
        parts += (bytes((s.kind,)), bytes.fromhex(s.sid), s.digest)
        parts += (varint(s.raw_size), varint(s.blob_size), varint(s.shards))
        if s.kind != MANIFEST:
            parts += (varint(s.a), varint(s.b), varint(s.c))
    return b"".join(parts)


def decode_table(data: bytes) -> list[Segment]:
    """The segments a stored table lists, checked: sizes in bounds, partitions covering the key-hash space
    exactly once (or none: the one empty partition), runs with ordered ranges, no sid twice."""
    cursor = Cursor(data, "the segment table")
    count = cursor.varint(MAX_SEGMENTS)
    segments = []
    for _ in range(count):
        kind = cursor.byte()
        if kind not in (PARTITION, RUN, MANIFEST):
            raise cursor.bad(f"unknown segment kind {kind}")
        sid = cursor.take(SID_BYTES).hex()
        digest = cursor.take(SEGMENT_DIGEST_BYTES)
        raw, blob, shards = cursor.varint(MAX_DECODED_BYTES), cursor.varint(MAX_DECODED_BYTES), cursor.varint()
        inline = kind == PARTITION and shards == 0 and 0 < blob <= INLINE_MAX
        if not (shards == -(-blob // SHARD_BYTES) >= 1 or inline or (kind == PARTITION and shards == blob == raw == 0)):
            raise cursor.bad(f"segment {sid} has {shards} shards for {blob} bytes")
        a = b = c = 0
        if kind == PARTITION:
            a = cursor.varint(MAX_DEPTH)
            b, c = cursor.varint(2**a - 1), cursor.varint()
        elif kind == RUN:
            a, b = cursor.varint(MAX_LEVEL), cursor.varint()
            c = cursor.varint()
            if c < b:
                raise cursor.bad(f"run {sid} covers sequence {b} to {c}")
        segments.append(Segment(kind, sid, digest, raw, blob, shards, a, b, c))
    if not cursor.done:
        raise cursor.bad("bytes after the last segment")
    if [s.kind for s in segments].count(MANIFEST) > (segments[0].kind == MANIFEST if segments else 0):
        raise CorruptDataError("the segment table lists a manifest other than first")
    check_table(segments)
    return segments


def decode_manifest(body: bytes) -> list[Segment]:
    """The segments a manifest lists (a table of partitions and runs only), checked as ``decode_table`` does."""
    segments = decode_table(body)
    if any(s.kind == MANIFEST or is_inline(s) for s in segments):
        raise CorruptDataError("a manifest lists a manifest or an inline partition")
    return segments


def check_table(segments: list[Segment]) -> None:
    """A whole table's checks (the head's list, or a manifest's segments with the head's others): no sid twice,
    one inline partition at most and only alone, partitions covering the key-hash space exactly once."""
    if len({s.sid for s in segments}) != len(segments):
        raise CorruptDataError("the segment table lists a segment twice")
    claimed = max(sum(s.blob_size for s in segments), sum(s.raw_size for s in segments))
    if claimed > MAX_DECODED_BYTES:  # (so a table never sends a reader after more than ~5,500 shards)
        raise CorruptDataError(f"the segment table claims {claimed:,} bytes, more than any map holds")
    partitions = [s for s in segments if s.kind == PARTITION]
    if len(partitions) > 1 and any(is_inline(p) for p in partitions):
        raise CorruptDataError("the segment table lists an inline partition beside others")
    check_cover(partitions)


def is_inline(segment: Segment) -> bool:
    """Whether the segment's blob is the head's ``alp_inl`` (the map's one partition, small) rather than items."""
    return segment.shards == 0 and segment.blob_size > 0


def check_cover(partitions: list[Segment]) -> None:
    """Partitions must cover the 64-bit key-hash space exactly once, or be absent (one empty partition)."""
    if not partitions:
        return
    taken = {(p.depth, p.prefix) for p in partitions}
    if len(taken) != len(partitions):
        raise CorruptDataError("the segment table lists one partition twice")
    for p in partitions:  # no partition inside another
        for depth in range(p.depth):
            if (depth, p.prefix & ((1 << depth) - 1)) in taken:
                raise CorruptDataError(f"partition {p.sid} overlaps another")
    if sum(1 << (MAX_DEPTH - p.depth) for p in partitions) != 1 << MAX_DEPTH:
        raise CorruptDataError("the partitions do not cover every key")
