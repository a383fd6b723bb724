"""Property-based tests of both codecs, and of how blobs are split into shards at the size boundaries."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import importlib.util
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Calls, stored_item
from tests.fuzz.strategies import canonical, hashables, maps, values

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
        from aws_lambda_persistence_lite._pickle import default_codec

        return default_codec()
    from aws_lambda_persistence._msgpack import MsgpackZstdCodec, ZstdPickleCodec

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


class Custom:
    pass


class OtherTz(dt.tzinfo):
    def utcoffset(self, _: Any) -> dt.timedelta:
        return dt.timedelta(hours=1)


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
    choices = [
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


class TestShardSplit:
    """Store._split at sizes around the shard size: shards join back to the blob and each fits an item."""

    @staticmethod
    def shard_size(store: Any) -> int:
        return len(store._split(b"\0" * 1_000_000)[0])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        key_length=st.integers(1, 400),
        multiple=st.integers(0, 3),
        delta=st.integers(-2, 2),
    )
    def test_split_and_join(self, key_length: int, multiple: int, delta: int) -> None:
        from aws_lambda_persistence_lite._config import Settings
        from aws_lambda_persistence_lite._format import item_size, shard_item, shard_key
        from aws_lambda_persistence_lite._limits import DYNAMODB_ITEM_LIMIT, ITEM_BUDGET
        from aws_lambda_persistence_lite._store import Store

        settings_ = Settings.resolve({"table_key": "k" * key_length})
        store = Store(None, settings_)
        size = self.shard_size(store)
        length = max(1, multiple * size + delta)
        blob = random.Random(length).randbytes(length)
        chunks = store._split(blob)
        assert b"".join(chunks) == blob
        assert len(chunks) == -(-length // size)
        assert all(len(c) == size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= size
        gen = "f" * 16
        for i, chunk in enumerate(chunks):
            item = shard_item(settings_, shard_key(settings_.table_key, gen, i), chunk)
            assert item_size(item) <= ITEM_BUDGET < DYNAMODB_ITEM_LIMIT


def inline_head_size(pkg: Any, table_key: str, value_size: int) -> int:
    """Size of the head item if the map {'b': random bytes} were stored inline (as Store._commit decides), with
    a full commit history (every commit after the first HISTORY ones has one) and a two-digit version."""
    from aws_lambda_persistence_lite._config import Settings
    from aws_lambda_persistence_lite._format import HISTORY, Head, digest, head_item, item_size

    codec = pkg.PersistentMap.codec_factory()
    body = codec.join([codec.encode_entry("b", random.Random(7).randbytes(value_size))])
    blob = codec.compress(body)
    previous = tuple(f"{i:016x}" for i in range(HISTORY - 1))
    head = Head(10, codec.name, len(body), digest(blob), blob, commit_id="0" * 16, previous=previous)
    return item_size(head_item(Settings.resolve({"table_key": table_key}), head))


def transaction_size(pkg: Any, table_key: str, value_size: int) -> int:
    """The bytes Store._commit counts against the transaction budget for {'b': random bytes} as a first commit
    (no commit history), nothing stale."""
    from aws_lambda_persistence_lite._config import Settings
    from aws_lambda_persistence_lite._format import Head, digest, head_item, item_size, shard_item, shard_key
    from aws_lambda_persistence_lite._store import Store

    settings_ = Settings.resolve({"table_key": table_key})
    codec = pkg.PersistentMap.codec_factory()
    body = codec.join([codec.encode_entry("b", random.Random(7).randbytes(value_size))])
    blob = codec.compress(body)
    chunks = Store(None, settings_)._split(blob)
    digests = tuple(b"12345678" for _ in chunks)
    head = Head(1, codec.name, len(body), digest(blob), gen="0" * 16, shard_digests=digests, commit_id="0" * 16)
    shards = [shard_item(settings_, shard_key(table_key, "0" * 16, i), c) for i, c in enumerate(chunks)]
    return item_size(head_item(settings_, head)) + sum(item_size(s) for s in shards)


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


class TestSizeLimitsThroughMoto:
    """Maps whose blob is one byte either side of the inline limit and of the transaction limit, stored in moto
    and read back cold: the right protocol is used and the map comes back intact."""

    def test_inline_limit(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        from aws_lambda_persistence_lite._limits import ITEM_BUDGET

        edge = last_fitting(lambda n: inline_head_size(pkg, table_key, n), ITEM_BUDGET, 300_000, 420_000)
        history = pkg.PersistentMap.open(client=aws, table_key=table_key)
        for i in range(8):  # fill the head's commit history, as on any map written a few times (versions 10-99)
            history["i"] = i
        for size in (edge - 1, edge, edge + 1, edge + 2):
            value = {"b": random.Random(7).randbytes(size)}
            pkg.PersistentMap.open(client=aws, table_key=table_key).clear()
            calls.clear()
            data = pkg.PersistentMap(value)
            head = stored_item(aws, table_key)
            assert head is not None
            inline = inline_head_size(pkg, table_key, size) <= ITEM_BUDGET
            assert ("value" in head) is inline, (size, edge)
            assert calls.names[-1] == ("PutItem" if inline else "TransactWriteItems")
            assert pkg.PersistentMap().to_dict() == value == data.to_dict()

    def test_transaction_limit(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        from aws_lambda_persistence_lite._limits import TRANSACT_BUDGET

        mb = 1024 * 1024
        keys = {False: f"{table_key}-a", True: f"{table_key}-b"}  # same length: same item sizes
        edge = last_fitting(lambda n: transaction_size(pkg, keys[False], n), TRANSACT_BUDGET, 3 * mb, 5 * mb)
        for size, in_steps in ((edge, False), (edge + 1, True)):
            value = {"b": random.Random(7).randbytes(size)}
            calls.clear()
            pkg.PersistentMap.open(value, table_key=keys[in_steps])
            assert ("TransactWriteItems" not in calls.names) is in_steps, (size, calls.names)
            assert pkg.PersistentMap.open(table_key=keys[in_steps]).to_dict() == value
