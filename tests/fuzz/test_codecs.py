"""Property-based tests of both codecs, of how segment blobs are split into shard items, and of the sizes at which
a change leaves the head's log for a run of its own (FORMAT.md)."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import importlib.util
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Calls, package_codec, stored_item
from tests.values import canonical, hashables, maps, values

HAS_CORE = importlib.util.find_spec("aws_lambda_persistence") is not None
CODECS = ["lite-pickle", "lite-default", "core-msgpack", "core-pickle-zstd"]
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def make_codec(name: str) -> Any:
    if name.startswith("core") and not HAS_CORE:
        pytest.skip("the full package is not installed")
    if name == "lite-pickle":
        from aws_lambda_persistence_lite._pickle import PickleCodec

        return PickleCodec()
    if name == "lite-default":
        from aws_lambda_persistence_lite._codec import codec_for, lite_default

        return codec_for(lite_default())
    from aws_lambda_persistence._msgpack import MsgpackZstdCodec
    from aws_lambda_persistence._zstd_pickle import ZstdPickleCodec

    return MsgpackZstdCodec() if name == "core-msgpack" else ZstdPickleCodec()


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> Any:
    return make_codec(request.param)


def round_trip(codec: Any, data: dict[Any, Any]) -> dict[Any, Any]:
    body = codec.join([codec.encode_entry(k, v) for k, v in data.items()])
    decoded: dict[Any, Any] = codec.decode(codec.compress(body), len(body))
    return decoded


def same(codec: Any, decoded: Any, original: Any) -> bool:
    msgpack = codec.name == "msgpack+zstd"  # msgpack packs bytearray as binary: it comes back as bytes
    return bool(canonical(decoded) == canonical(original, bytearray_as_bytes=msgpack))


class TestRoundTrip:
    @FUZZ
    @given(data=maps)
    def test_every_supported_value(self, codec: Any, data: dict[Any, Any]) -> None:
        """Equal values with identical types (float bits, Decimal digits, tzinfo, fold, dict order)."""
        assert same(codec, round_trip(codec, data), data)

    @FUZZ
    @given(key=hashables, value=values)
    def test_entry_encoding_is_deterministic(self, codec: Any, key: Any, value: Any) -> None:
        """The map compares per-entry encodings to skip identical writes: the same value encodes the same."""
        assert codec.encode_entry(key, value) == codec.encode_entry(key, value)

    @FUZZ
    @given(data=maps)
    def test_readers_of_other_writers(self, codec: Any, data: dict[Any, Any]) -> None:
        """A blob is decoded by whatever codec its head names (how the full package reads the lite's maps)."""
        from aws_lambda_persistence_lite._codec import codec_for

        body = codec.join([codec.encode_entry(k, v) for k, v in data.items()])
        reader = codec_for(codec.name)
        assert same(codec, reader.decode(codec.compress(body), len(body)), data)

    def test_empty_map(self, codec: Any) -> None:
        assert round_trip(codec, {}) == {}

    def test_a_zstd_frame_carries_its_checksum(self, codec: Any) -> None:
        """Every zstd blob is checked against its content checksum as it is decompressed (zlib's own adler32
        does as much for the lite default)."""
        from aws_lambda_persistence_lite import CorruptDataError

        if "zstd" not in codec.name:
            pytest.skip("zlib: its adler32 trailer is always written")
        body = codec.join([codec.encode_entry(f"k{i}", "v" * i) for i in range(50)])
        blob = codec.compress(body)
        assert blob[4] & 0x04  # (frame header descriptor: Content_Checksum_flag)
        with pytest.raises(CorruptDataError, match="checksum"):
            codec.decompress(blob[:-1] + bytes([blob[-1] ^ 1]), len(body))


class Custom:
    pass


class OtherTz(dt.tzinfo):
    def utcoffset(self, _: Any) -> dt.timedelta:
        return dt.timedelta(hours=1)

    def dst(self, _: Any) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, _: Any) -> str:
        return "other"


class Color(enum.IntEnum):
    RED = 1


UNSUPPORTED = [
    Custom(),
    object(),
    collections.OrderedDict(a=1),
    collections.defaultdict(int),
    type("Sub", (dict,), {})(),
    type("Text", (str,), {})("x"),
    Color.RED,
    dt.datetime(2020, 1, 1, tzinfo=OtherTz()),
    dt.time(1, tzinfo=OtherTz()),
    range(3),
    lambda: None,
    Ellipsis,
    NotImplemented,
    len,
    Custom,
]


def plant(container: Any, bad: Any, where: int) -> Any:
    """``container`` with ``bad`` hidden in it (as a value, so hashability does not matter)."""
    choices: list[Callable[[], Any]] = [
        lambda: bad,
        lambda: [container, bad],
        lambda: (bad, container),
        lambda: {"k": [1, {"deep": bad}], "c": container},
    ]
    return choices[where % len(choices)]()


class TestUnsupportedValues:
    @FUZZ
    @given(
        container=values,
        bad=st.sampled_from(UNSUPPORTED),
        where=st.integers(0, 3),
        key=st.sampled_from(["k", 1, ("t",)]),
    )
    def test_refused_before_anything_is_sent(self, codec: Any, container: Any, bad: Any, where: int, key: Any) -> None:
        """Anything outside the value model is refused with UnsupportedValueError naming the key path."""
        from aws_lambda_persistence_lite import UnsupportedValueError

        with pytest.raises(UnsupportedValueError) as raised:
            codec.encode_entry(key, plant(container, bad, where))
        assert repr(key) in raised.value.path and isinstance(raised.value, TypeError)

    @pytest.mark.parametrize(
        "value",
        [set, bytearray, dt.datetime, complex],
        ids=lambda v: v.__name__,
    )
    def test_classes_are_not_values(self, codec: Any, value: Any) -> None:
        """A class is not a supported value: it must be refused, not stored as a global reference."""
        from aws_lambda_persistence_lite import UnsupportedValueError

        with pytest.raises(UnsupportedValueError):
            codec.encode_entry("k", value)


class IdentityCodec:
    """Stores bodies as they are, so that a test chooses the exact blob size a segment gets."""

    name = "identity"

    def compress(self, body: bytes) -> bytes:
        return body

    def decompress(self, blob: bytes, raw_size: int) -> bytes:
        return blob

    def encode_entry(self, key: Any, value: Any) -> bytes:
        raise NotImplementedError

    def decode_entry(self, entry: bytes) -> tuple[Any, Any]:
        raise NotImplementedError

    def read_entry(self, entry: bytes) -> tuple[Any, Any, bytes]:
        raise NotImplementedError

    def read_entries(self, entries: list[bytes]) -> list[tuple[Any, Any, bytes]]:
        raise NotImplementedError


class ShardTable:
    """A DynamoDB client that stores put items and serves them to BatchGetItem (no I/O)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = {item["key"]["S"]: item for item in items}

    def batch_get_item(self, *, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        found = [self.items[k["key"]["S"]] for k in request["Keys"] if k["key"]["S"] in self.items]
        return {"Responses": {table: found}}


class TestShardSplit:
    """Segment blobs at sizes around the shard size, under keys of any length: the shards are items that fit
    DynamoDB's item limit, and they read back (digest checked) to the very blob."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key_length=st.integers(1, 400), multiple=st.integers(0, 3), delta=st.integers(-2, 2))
    def test_split_and_join(self, key_length: int, multiple: int, delta: int) -> None:
        from aws_lambda_persistence_lite._config import Settings
        from aws_lambda_persistence_lite._dynamodb import Table
        from aws_lambda_persistence_lite._limits import DYNAMODB_ITEM_LIMIT, ITEM_BUDGET
        from aws_lambda_persistence_lite._meter import Usage, item_size
        from aws_lambda_persistence_lite._records import RUN, SHARD_BYTES
        from aws_lambda_persistence_lite._replica import Replica
        from aws_lambda_persistence_lite._state import segment_key

        settings_ = Settings.resolve({"table_key": "k" * key_length})
        length = max(1, multiple * SHARD_BYTES + delta)
        body = random.Random(length).randbytes(length)
        # (IdentityCodec stands in for a Codec: splitting and joining shards only compress and decompress; the
        # splitting replica has no table, the joining one a stand-in client)
        replica = Replica(None, settings_, IdentityCodec())  # type: ignore[arg-type]
        segment, blob = replica.segment(RUN, body, 0, 1, 1)
        assert blob == body and segment.blob_size == length
        items = replica.items([(segment, blob)])
        assert len(items) == segment.shards == -(-length // SHARD_BYTES)
        keys = [segment_key(settings_.table_key, segment.sid, n) for n in range(len(items))]
        assert [i["key"]["S"] for i in items] == keys
        assert all(item_size(i) <= ITEM_BUDGET < DYNAMODB_ITEM_LIMIT for i in items)
        assert all(len(i["value"]["B"]) == SHARD_BYTES for i in items[:-1]) and len(items[-1]["value"]["B"]) > 0
        reader = Replica(Table(ShardTable(items), settings_), settings_, IdentityCodec())  # type: ignore[arg-type]
        assert reader.read_segments(Usage(), [segment]) == {segment.sid: body}


def record_size(pkg: Any, value_size: int) -> int:
    """What a one-key set of {'b': random bytes} adds to the head: its record and the per-record overhead."""
    from aws_lambda_persistence_lite._records import SET, Op, encode_record
    from aws_lambda_persistence_lite._room import RECORD_OVERHEAD

    codec = package_codec(pkg)
    entry = codec.encode_entry("b", random.Random(7).randbytes(value_size))
    return len(encode_record(b"\0" * 8, [Op(SET, entry)])) + RECORD_OVERHEAD


def last_fitting(measure: Any, limit: int, low: int, high: int) -> int:
    """The largest value size n in [low, high) with measure(n) <= limit < measure(n + 1) (bisection)."""
    assert measure(low) <= limit < measure(high)
    while high - low > 1:
        middle = (low + high) // 2
        if measure(middle) <= limit:
            low = middle
        else:
            high = middle
    return low


@pytest.mark.moto_only
class TestSizeLimitsThroughMoto:
    """Changes one byte either side of the largest record the log takes, and of the largest large write one
    transaction takes, stored in moto and read back cold: the right protocol is used, the head stays within its
    budget, and the map comes back intact."""

    @pytest.mark.parametrize("first", [True, False], ids=["first-write", "on-a-stored-map"])
    def test_log_limit(self, aws: Any, pkg: Any, table_key: str, calls: Calls, first: bool) -> None:
        from aws_lambda_persistence_lite._head import HEAD_BUDGET
        from aws_lambda_persistence_lite._meter import item_size
        from aws_lambda_persistence_lite._records import PARTITION, RUN, decode_table
        from aws_lambda_persistence_lite._room import LARGE_RECORD

        edge = last_fitting(lambda n: record_size(pkg, n), LARGE_RECORD, 1, 4_000)
        for size in (edge - 1, edge, edge + 1, edge + 2):
            key = f"{table_key}-{size}"
            if not first:
                pkg.PersistentMap.open({"seed": 1}, table_key=key)
            value = random.Random(7).randbytes(size)
            calls.clear()
            data = pkg.PersistentMap.open(table_key=key)
            data["b"] = value
            head = stored_item(aws, key)
            assert head is not None and item_size(head) <= HEAD_BUDGET
            in_log = record_size(pkg, size) <= LARGE_RECORD
            segments = decode_table(head["alp_seg"]["B"]) if "alp_seg" in head else ()
            # (a first write too large for the log goes straight into partitions; on a stored map: a run)
            runs = [s for s in segments if s.kind == (PARTITION if first else RUN)]
            assert (not runs) is in_log, (size, edge)
            expected_call = ("PutItem" if first else "UpdateItem") if in_log else "TransactWriteItems"
            assert calls.names[-1] == expected_call, (size, edge, calls.names)
            if not in_log and not first:  # (the log's earlier records may be flushed with it)
                assert (int(head["alp_ver"]["N"]),) * 2 in [(r.lo, r.hi) for r in runs]
                assert len(head["alp_log"]["L"]) == 0 or max(len(r["B"]) for r in head["alp_log"]["L"]) < size
            assert pkg.PersistentMap.open(table_key=key)["b"] == value == data["b"]

    @pytest.mark.parametrize(
        "first",
        [
            pytest.param(True, id="first-write"),
            pytest.param(False, id="on-a-stored-map"),
        ],
    )
    def test_transaction_limit(self, aws: Any, pkg: Any, table_key: str, calls: Calls, first: bool) -> None:
        """A change just under and one over what a transaction holds (4 MB): the first is one TransactWriteItems,
        the second is written in steps (FORMAT.md, commit 4); both read back whole."""
        for size, in_steps in ((3 * 1024 * 1024, False), (5 * 1024 * 1024, True)):
            value = {"b": random.Random(7).randbytes(size)}
            key = f"{table_key}-{size}"
            if not first:
                pkg.PersistentMap.open({"seed": 1}, table_key=key)
            calls.clear()
            pkg.PersistentMap.open(value, table_key=key)
            assert ("BatchWriteItem" in calls.names) is in_steps, calls.names
            assert pkg.PersistentMap.open(table_key=key).to_dict() == ({} if first else {"seed": 1}) | value
