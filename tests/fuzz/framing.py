"""Format 3's framing, as a hostile writer would store it (FORMAT.md, "Records", "Segment table"): varints,
records framed by hand, and Hypothesis strategies for both."""

from __future__ import annotations

from hypothesis import strategies as st


def varint(n: int) -> bytes:
    """Unsigned LEB128 of any size (the reader refuses more than 10 bytes)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return bytes(out + bytes([low]))
        out.append(low | 0x80)


#: Numbers where parsers break: zero, one, the 7-bit and 64-bit edges, sizes beyond memory.
edge_numbers = st.integers(0, 300) | st.sampled_from(
    [127, 128, 2**31, 2**32, 2 * 1024**3, 2 * 1024**3 + 1, 2**63, 2**64 - 1, 2**64, 2**70, 10**30]
)
#: Op kinds: the four real ones, and any byte.
op_kinds = st.sampled_from([1, 2, 3, 4]) | st.integers(0, 255)


def frame_record(record_id: bytes, ops: list[tuple[int, bytes]], length_delta: int = 0) -> bytes:
    """``id op*`` framed by hand (no validation): a CLEAR (4) carries no entry, every other kind a sized one,
    whose stated length may lie by ``length_delta``."""
    parts = [record_id]
    for kind, entry in ops:
        parts.append(bytes([kind]))
        if kind != 4:
            parts += [varint(max(0, len(entry) + length_delta)), entry]
    return b"".join(parts)


def records(entries: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Change records a hostile writer could append: ids of any length near 8, any kinds, entries from
    ``entries``, lengths that may lie."""
    return st.builds(
        frame_record,
        st.binary(min_size=8, max_size=8) | st.binary(max_size=10),
        st.lists(st.tuples(op_kinds, entries), max_size=4),
        st.sampled_from([0, 0, 0, -1, 1, 2**20]),
    )
