"""The head's room (FORMAT.md, "Head item"): what a record, ``alp_ids``, ``alp_inl`` and the segment list take of
HEAD_BUDGET, and which records and segment lists the head takes at all. Every commit that changes what the head
holds (appends, flushes, first and large writes, the command line's whole-map replacement) counts it the same way.
"""

from __future__ import annotations

from ._head import FLUSHED_IDS, HEAD_BUDGET, IDS, INLINE, TABLE_MAX, table_attributes
from ._records import MANIFEST, Segment

#: Bytes a record adds to the head beyond its own: its list element's overhead (its id is its first 8 bytes).
RECORD_OVERHEAD = 1
#: The least room a record is charged: a log then holds at most 4,000 / 34 = 117 records, so one flush empties it,
#: and the head every append returns (and every container parses) stays short for a counter's tiny records.
RECORD_MIN_CHARGE = 34
#: A record larger than this never goes into the log: it is written as a run of its own (a large write).
LARGE_RECORD = HEAD_BUDGET // 2


def charge(record: bytes) -> int:
    """The room (``alp_room``) a record takes in the head: its bytes and list overhead, at least
    ``RECORD_MIN_CHARGE`` (FORMAT.md, "Head item")."""
    return max(len(record) + RECORD_OVERHEAD, RECORD_MIN_CHARGE)


def newest_ids(*ids: bytes) -> tuple[bytes, ...]:
    """What ``alp_ids`` keeps of ``ids`` (in sequence order): botocore's retry of an append whose response was lost
    must still find its id after the flushes in between."""
    return ids[-FLUSHED_IDS:]


def ids_size(ids: tuple[bytes, ...]) -> int:
    """What ``alp_ids`` holding ``ids`` adds to the head (DynamoDB's count; absent when empty)."""
    return len(IDS) + 3 + sum(1 + len(i) for i in ids) if ids else 0


def inline_size(blob: bytes) -> int:
    """What ``alp_inl`` holding ``blob`` adds to the head (DynamoDB's count: name and value; absent when empty)."""
    return len(INLINE) + len(blob) if blob else 0


def table_size(table: list[Segment]) -> int:
    attribute = table_attributes(table)["table"]
    return len(attribute["B"]) if attribute else 0


def listable(table: list[Segment]) -> bool:
    """Whether the head's own segment list may hold ``table`` (TABLE_MAX); else a manifest lists it (FORMAT.md,
    "Manifest")."""
    return table_size(table) <= TABLE_MAX


def listing(parts: list[tuple[Segment, bytes]]) -> tuple[list[Segment], list[Segment]]:
    """What a head lists for new segments ``parts`` (a manifest, last, lists the others) and the table they make."""
    segments = [s for s, _ in parts]
    if segments and segments[-1].kind == MANIFEST:
        return segments[-1:], segments[:-1]
    return segments, segments
