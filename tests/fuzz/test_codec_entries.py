"""Codec.decode_entries (issue #10: a load derives entry digests from the stored bytes, never by encoding again):
each entry's bytes are what encode_entry gives for the decoded key and value, and every decoded value is in the
value model, so that nothing but the decoders stands between stored bytes and the map."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import package_codec
from tests.fuzz.test_codecs import CODECS, HAS_CORE, make_codec
from tests.values import canonical, hashables, maps, values

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> Any:
    return make_codec(request.param)


def stored(codec: Any, data: dict[Any, Any]) -> tuple[list[bytes], bytes, int]:
    """(entries as written, the blob, its decoded size)."""
    entries = [codec.encode_entry(k, v) for k, v in data.items()]
    body = codec.join(entries)
    return entries, codec.compress(body), len(body)


def digest(entry: bytes | memoryview) -> bytes:
    """An entry's identity, as format 2 kept it per key (BLAKE2b-128)."""
    return hashlib.blake2b(entry, digest_size=16).digest()


def is_msgpack(codec: Any) -> bool:
    return bool(codec.name == "msgpack+zstd")  # msgpack packs bytearray as binary: it comes back as bytes


def holds_a_set(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in (set, frozenset):
            return True
        if type(item) in (list, tuple):
            stack.extend(item)
        elif type(item) is dict:
            stack.extend((*item, *item.values()))
    return False


class TestEntryBytes:
    @pytest.mark.slow  # (8-13 s per codec: test-more runs it)
    @FUZZ
    @given(data=maps)
    def test_each_entrys_bytes_are_its_encoding(self, codec: Any, data: dict[Any, Any]) -> None:
        """For every value of the model: the bytes handed back for an entry equal encode_entry(decoded key, decoded
        value), so their digest is the entry's digest; and they are the stored bytes themselves, except for an
        entry holding a set (see test_a_set_may_iterate_differently_once_decoded)."""
        written, blob, size = stored(codec, data)
        decoded, entries = codec.decode_entries(blob, size)
        assert len(entries) == len(decoded) == len(data)
        for (key, value), entry, original in zip(decoded.items(), entries, written, strict=True):
            assert isinstance(entry, memoryview)
            assert bytes(entry) == codec.encode_entry(key, value)
            assert digest(entry) == digest(codec.encode_entry(key, value))
            if not holds_a_set(key) and not holds_a_set(value):
                assert entry == original  # a slice of the stored body: nothing was encoded again
        assert canonical(codec.decode(blob, size)) == canonical(decoded)

    @FUZZ
    @given(key=hashables, value=values)
    def test_read_entry(self, codec: Any, key: Any, value: Any) -> None:
        """One entry (format 3 stores them one by one): read_entry gives its key, value, and bytes equal to what
        encode_entry gives for those, which are the stored entry itself unless it holds a set."""
        stored_entry = codec.encode_entry(key, value)
        decoded_key, decoded_value, entry = codec.read_entry(stored_entry)
        assert canonical((decoded_key, decoded_value)) == canonical((key, value), bytearray_as_bytes=is_msgpack(codec))
        assert entry == codec.encode_entry(decoded_key, decoded_value)
        if not holds_a_set(key) and not holds_a_set(value):
            assert entry is stored_entry
        assert canonical(codec.decode_entry(stored_entry)) == canonical((decoded_key, decoded_value))

    @pytest.mark.slow  # (13 s: test-more runs it)
    @FUZZ
    @given(data=maps)
    def test_one_entry_format_one_encoding(self, data: dict[Any, Any]) -> None:
        """Codecs that declare the same entry format (the pickle ones, whatever their compression) encode every
        entry identically, so entries one stored compare with entries another encodes."""
        codecs = [make_codec(name) for name in CODECS if name.startswith("lite") or HAS_CORE]
        for codec in codecs:
            _, blob, size = stored(codec, data)
            decoded, entries = codec.decode_entries(blob, size)
            for other in codecs:
                if other.entry_format == codec.entry_format:
                    assert [bytes(e) for e in entries] == [other.encode_entry(k, v) for k, v in decoded.items()]

    @pytest.mark.parametrize("kind", [set, frozenset])
    def test_a_set_may_iterate_differently_once_decoded(self, codec: Any, kind: type) -> None:
        """Why entries holding a set are encoded again: the set a decoder builds from 7, 15 (in that order) iterates
        15, 7 or 7, 15 depending on how it was built, even in one process (and str hashes differ between
        processes). The stored bytes then differ from what encode_entry gives for the decoded set."""
        grown = set()
        grown.add(7)
        grown.add(15)  # collides with 7 in an 8-slot table, probed elsewhere: iterates 15, 7
        value = kind(grown)
        written, blob, size = stored(codec, {"s": value})
        decoded, entries = codec.decode_entries(blob, size)
        assert decoded == {"s": value}
        assert codec.encode_entry("s", decoded["s"]) != written[0]  # the decoded set iterates the other way round
        assert bytes(entries[0]) == codec.encode_entry("s", decoded["s"])
        _, read, entry = codec.read_entry(written[0])
        assert entry == codec.encode_entry("s", read) != written[0]

    def test_a_key_stored_twice_is_refused(self, codec: Any) -> None:
        from aws_lambda_persistence_lite import CorruptDataError

        entries = [codec.encode_entry(k, v) for k, v in (("a", 1), ("b", 2), (1, 3), (True, 4))]
        for body in (codec.join(entries[:1] * 2), codec.join(entries[2:])):  # "a" twice; 1 == True
            with pytest.raises(CorruptDataError, match="twice"):
                codec.decode_entries(codec.compress(body), len(body))


# -- hostile entries holding values outside the model: refused by the decoders themselves ---------------------------


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def pickled_entry(value: bytes) -> bytes:
    """A (key, value) entry whose value is the given opcodes."""
    return b"\x80\x05" + _unicode("k") + value + b"\x86."


OUTSIDE_THE_MODEL = {
    "a class": (pickled_entry(b"cbuiltins\nset\n"), "builtins.type"),
    "an allow-listed function": (pickled_entry(b"cbuiltins\nbytes\n"), "_AllowedFunction"),
    "a timezone on its own": (
        pickled_entry(b"cdatetime\ntimezone\ncdatetime\ntimedelta\nK\x00K\x00K\x00\x87R\x85R"),
        "datetime.timezone",
    ),
    "a ZoneInfo on its own": (pickled_entry(b"czoneinfo\nZoneInfo\n" + _unicode("UTC") + b"\x85R"), "ZoneInfo"),
    "a UUID whose int is a list": (
        pickled_entry(b"cuuid\nUUID\n)\x81}" + _unicode("int") + b"]K\x01as" + b"b"),
        "uuid.UUID with an int of type list",
    ),
    "a class as a dict key": (pickled_entry(b"}cbuiltins\ncomplex\nK\x01s"), "builtins.type"),
}  # fmt: skip


class TestValuesOutsideTheModel:
    """What _map._stored used to find by encoding every entry again: now the decoders refuse it themselves."""

    @pytest.mark.parametrize(("body", "named"), OUTSIDE_THE_MODEL.values(), ids=OUTSIDE_THE_MODEL.keys())
    def test_pickle(self, body: bytes, named: str) -> None:
        from aws_lambda_persistence_lite import CorruptDataError
        from aws_lambda_persistence_lite._pickle import PickleCodec, loads_restricted

        codec = PickleCodec()
        for decode in (codec.decode, codec.decode_entries):
            with pytest.raises(CorruptDataError, match=rf"outside the supported types at \['k'\].*{named}"):
                decode(zlib.compress(body), len(body))
        with pytest.raises(CorruptDataError, match=named):  # the 1.0.0 reader, given a map holding it
            loads_restricted(b"\x80\x05}" + body[2:-2] + b"s.")

    def test_pickle_memoryview(self) -> None:
        """READONLY_BUFFER turns a bytearray into a memoryview: the opcode is refused (never written for data)."""
        from aws_lambda_persistence_lite import CorruptDataError
        from aws_lambda_persistence_lite._pickle import PickleCodec

        body = pickled_entry(b"\x96" + struct.pack("<Q", 2) + b"ab\x98")
        with pytest.raises(CorruptDataError, match="never written for plain data"):
            PickleCodec().decode(zlib.compress(body), len(body))

    @pytest.mark.parametrize(
        "value",
        [
            b"\xd6\xff\x00\x00\x00\x01",
            b"\xd7\xff" + bytes(8),
            b"\xc7\x0c\xff" + bytes(12),
            b"\xc7\x07\x01\x91\xd6\xff\x00\x00\x00\x01",
        ],
        ids=["fixext4", "fixext8", "ext8", "in a tuple"],
    )
    def test_msgpack_timestamp(self, core: Any, value: bytes) -> None:
        """msgpack decodes its own Timestamp extension (-1) without asking the extension hook."""
        from aws_lambda_persistence._msgpack import MsgpackZstdCodec

        codec = MsgpackZstdCodec()
        for body in (b"\xdf\x00\x00\x00\x01\xa1k" + value, b"\xdf\x00\x00\x00\x01" + value + b"\x01"):
            for decode in (codec.decode, codec.decode_entries):
                with pytest.raises(core.CorruptDataError, match=r"outside the supported types.*Timestamp"):
                    decode(codec.compress(body), len(body))

    def test_the_writers_refuse_them_too(self, pkg: Any) -> None:
        """What the readers refuse is never written: a tzinfo on its own (also after the same one inside a
        datetime, where the pickler only refers back to it), and msgpack's Timestamp in the full package."""
        codec = package_codec(pkg)
        utc = dt.timezone.utc
        for value in (utc, [dt.datetime(2020, 1, 1, tzinfo=utc), utc], {"z": dt.timezone(dt.timedelta(hours=1))}):
            with pytest.raises(pkg.UnsupportedValueError, match="timezone is not supported"):
                codec.encode_entry("k", value)
        if pkg.__name__ == "aws_lambda_persistence":
            import msgpack

            with pytest.raises(pkg.UnsupportedValueError, match="Timestamp is not supported"):
                codec.encode_entry("k", [1, msgpack.Timestamp(1, 0)])

    def test_honest_values_with_globals_pass(self, codec: Any) -> None:
        """The check runs on entries that name classes (datetimes, UUIDs, Decimals...): those load as before."""
        import decimal
        import uuid
        import zoneinfo

        value = {
            "when": [dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), dt.time(1, tzinfo=zoneinfo.ZoneInfo("UTC"))],
            "id": uuid.UUID(int=5),
            "n": decimal.Decimal("1.5"),
            "c": 1j,
        }
        _, blob, size = stored(codec, {"k": value})
        assert codec.decode_entries(blob, size)[0] == {"k": value}
