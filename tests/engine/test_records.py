"""Format 3's byte layouts (``_records``): what is written reads back, and stored bytes that are not exactly a
valid layout are refused with CorruptDataError, never another exception, a hang or a large allocation."""

from __future__ import annotations

import contextlib
import os

import pytest
from aws_lambda_persistence_lite._errors import CorruptDataError
from aws_lambda_persistence_lite._records import (
    ADD,
    CLEAR,
    DEL,
    MANIFEST,
    PARTITION,
    RUN,
    SET,
    Cursor,
    Entry,
    Op,
    Segment,
    decode_manifest,
    decode_partition,
    decode_record,
    decode_run,
    decode_table,
    encode_partition,
    encode_record,
    encode_run,
    encode_table,
    record_id,
    varint,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ops = st.builds(
    lambda kind, entry: Op(kind, b"" if kind == CLEAR else entry),
    st.sampled_from([SET, DEL, ADD, CLEAR]),
    st.binary(max_size=300),
)
sids = st.binary(min_size=8, max_size=8).map(bytes.hex)
digests = st.binary(min_size=8, max_size=8)


def _segment(kind: int, sid: str, a: int = 0, b: int = 0, c: int = 0) -> Segment:
    return Segment(kind, sid, b"d" * 8, 1000, 400, 1, a, b, c)


def _partitions(depth: int) -> list[Segment]:
    return [_segment(PARTITION, os.urandom(8).hex(), depth, p, 7) for p in range(2**depth)]


class TestVarint:
    @given(st.integers(0, 2**64 - 1))
    def test_round_trip(self, n: int) -> None:
        """Every 64-bit number reads back, and the reader stops exactly after it."""
        cursor = Cursor(varint(n) + b"rest", "t")
        assert cursor.varint() == n
        assert cursor.take(4) == b"rest"

    def test_over_64_bits_refused(self) -> None:
        """A number spelled over more than 10 bytes is damage, not a big number."""
        with pytest.raises(CorruptDataError, match="over 10 bytes"):
            Cursor(b"\xff" * 11, "t").varint()

    def test_length_past_the_end_refused_before_slicing(self) -> None:
        """A length claiming more than remains is refused (nothing of that size is allocated)."""
        with pytest.raises(CorruptDataError, match="runs past the end"):
            Cursor(varint(2**40) + b"abc", "t").sized()


class TestRecords:
    @given(st.binary(min_size=8, max_size=8), st.lists(ops, min_size=1, max_size=20))
    def test_round_trip(self, rid: bytes, record_ops: list[Op]) -> None:
        """A record's id and ops (kinds and entry bytes) read back exactly."""
        data = encode_record(rid, record_ops)
        assert decode_record(data) == (rid, record_ops)
        assert record_id(data) == rid

    @pytest.mark.parametrize(
        ("data", "why"),
        [
            (b"1234567", "runs past the end"),
            (b"12345678", "without ops"),
            (b"12345678\x09", "unknown op kind 9"),
            (b"12345678\x01\x05abc", "runs past the end"),
        ],
        ids=["short id", "no ops", "unknown kind", "entry past the end"],
    )
    def test_malformed_refused(self, data: bytes, why: str) -> None:
        """Each way a record can be malformed is named."""
        with pytest.raises(CorruptDataError, match=why):
            decode_record(data)


class TestBodies:
    @given(st.lists(st.builds(Entry, st.integers(0, 2**40), st.integers(0, 2**20), st.binary(max_size=200))))
    def test_partition_round_trip(self, entries: list[Entry]) -> None:
        assert decode_partition(encode_partition(entries)) == entries

    @given(st.lists(st.binary(min_size=9, max_size=100), max_size=20), st.integers(1, 1000))
    def test_run_round_trip(self, records: list[bytes], start: int) -> None:
        numbered = [(start + 3 * i, r) for i, r in enumerate(records)]
        assert decode_run(encode_run(numbered, start), start) == numbered

    def test_run_out_of_order_refused(self) -> None:
        """Records of a run are in strictly increasing sequence order; a repeat is damage."""
        with pytest.raises(CorruptDataError, match="does not follow"):
            decode_run(encode_run([(5, b"x" * 9), (5, b"y" * 9)], 5), 5)


class TestTable:
    @given(st.integers(0, 6), st.lists(st.tuples(sids, st.integers(0, 5), st.integers(0, 10**6)), max_size=8))
    def test_round_trip(self, depth: int, runs: list[tuple[str, int, int]]) -> None:
        """Partitions that cover the hash space, runs and a manifest read back exactly."""
        segments = _partitions(depth) + [_segment(RUN, sid, lvl, lo, lo + 9) for sid, lvl, lo in runs]
        segments.insert(0, _segment(MANIFEST, os.urandom(8).hex()))
        if len({s.sid for s in segments}) == len(segments):
            assert decode_table(encode_table(segments)) == segments

    def test_manifest_only_first_and_once(self) -> None:
        """A head lists at most one manifest, first; a manifest lists none (nor an inline partition)."""
        manifest, run = _segment(MANIFEST, os.urandom(8).hex()), _segment(RUN, os.urandom(8).hex(), 0, 1, 2)
        for listed in ([run, manifest], [manifest, _segment(MANIFEST, os.urandom(8).hex())]):
            with pytest.raises(CorruptDataError, match="manifest other than first"):
                decode_table(encode_table(listed))
        parts = _partitions(1)
        assert decode_manifest(encode_table([*parts, run])) == [*parts, run]
        with pytest.raises(CorruptDataError, match="lists a manifest"):
            decode_manifest(encode_table([manifest, run]))

    def test_no_partitions_is_the_empty_map(self) -> None:
        assert decode_table(encode_table([])) == []

    @pytest.mark.parametrize(
        ("partitions", "why"),
        [
            ([(1, 0)], "do not cover"),
            ([(1, 0), (1, 1), (2, 1)], "overlaps"),
            ([(0, 0), (1, 1)], "overlaps"),
            ([(1, 0), (2, 1), (2, 3), (2, 3)], "twice"),
        ],
        ids=["a gap", "a child of a listed partition", "the root and a child", "one partition twice"],
    )
    def test_partitions_must_cover_the_space_once(self, partitions: list[tuple[int, int]], why: str) -> None:
        """A key must belong to exactly one partition, or a reader could not know where it lives."""
        segments = [_segment(PARTITION, os.urandom(8).hex(), d, p) for d, p in partitions]
        with pytest.raises(CorruptDataError, match=why):
            decode_table(encode_table(segments))

    def test_prefix_beyond_depth_refused(self) -> None:
        with pytest.raises(CorruptDataError, match="larger than 1"):
            decode_table(encode_table([_segment(PARTITION, "00" * 8, 1, 2)]))

    def test_run_range_backwards_refused(self) -> None:
        with pytest.raises(CorruptDataError, match="covers sequence 9 to 3"):
            decode_table(encode_table([_segment(RUN, "00" * 8, 0, 9, 3)]))

    def test_segment_listed_twice_refused(self) -> None:
        run = _segment(RUN, "ab" * 8, 0, 1, 2)
        with pytest.raises(CorruptDataError, match="twice"):
            decode_table(encode_table([run, run]))

    def test_huge_count_refused_before_reading(self) -> None:
        """A count beyond the cap is refused at once, not after reading (or allocating for) that many."""
        with pytest.raises(CorruptDataError, match="larger than"):
            decode_table(varint(10**9))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    """Hostile bytes: every parser either returns or raises CorruptDataError."""
    for parse in (decode_record, decode_partition, lambda body: decode_run(body, 1), decode_table):
        with contextlib.suppress(CorruptDataError):
            parse(data)
