"""The full codec: msgpack with one extension type per Python type that msgpack lacks (``_model``), then zstandard.

Types are exact (``strict_types``): a tuple stays a tuple, a set a set, a bool a bool, and a value of any other
type is refused before anything is sent. One exception, made by msgpack itself: bytearray and memoryview are
packed natively as binary and so come back as bytes. Decoding is bounded by the size the head declares.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgpack
import zstandard
from aws_lambda_persistence_lite._codec import Codec
from aws_lambda_persistence_lite._compression import ZSTD_MAX_RATIO, decompress_bounded
from aws_lambda_persistence_lite._errors import CorruptDataError, UnsupportedValueError, undecodable
from aws_lambda_persistence_lite._model import BY_CODE, BY_TYPE, CONTAINER_TYPES, FROZENSET, SET
from aws_lambda_persistence_lite._values import (
    MAX_NESTING,
    check_decoded,
    find_unsupported,
    label,
    nesting,
    too_deep,
    unsupported_error,
)

from ._zstd import ZSTD_LEVEL, zstd_decompress

#: How deep tuples, sets and frozensets (the extension types that hold values) may nest. Each level's payload is a
#: msgpack document of its own, so decoding (and encoding) recurses once per level, through msgpack and Python:
#: this bound keeps both far from the recursion limit and the C stack. Readers allow one level more (the datetime,
#: date, time, timedelta or complex payload at the bottom); lists and dicts nest up to msgpack's own 1,024 levels
#: within each level, and up to ``MAX_NESTING`` in all.
MAX_EXTENSION_NESTING = 100
_NESTED = frozenset({tuple, set, frozenset})
#: Decoding an extension value holds its payload while it decodes the ones inside (each a copy, made by msgpack;
#: below _SHALLOW levels two, the Unpacker's buffer being the second): the copies nested in one another may add up
#: to 192 MiB at once, whatever the map's size, so that a read stays within FORMAT.md's bound (256 MB beyond the
#: map's own bytes). Without it a small item of nested extensions would hold 100 copies of itself. Writers refuse
#: what would take readers more.
EXTENSION_BYTES_HELD = 192 << 20
#: msgpack.unpackb keeps its decoding context (about 45 KB) on the C stack: extension payloads deeper than this are
#: decoded by an Unpacker instead, whose context is on the heap (4x slower, and deep payloads are rare).
_SHALLOW = 4
_OPTIONS: dict[str, Any] = {
    "raw": False,
    "strict_map_key": False,
    "use_list": True,
    "unicode_errors": "surrogatepass",
    "timestamp": 0,
}
#: The headers of msgpack's own Timestamp extension (type -1, a payload of 4, 8 or 12 bytes), which msgpack packs
#: and unpacks without asking us: fixext 4 and 8, and ext 8, 16 and 32 of those lengths.
_TIMESTAMP_MARKS = (
    b"\xd6\xff",
    b"\xd7\xff",
    *(b"\xc7" + bytes([n]) + b"\xff" for n in (4, 8, 12)),
    *(b"\xc8" + n.to_bytes(2, "big") + b"\xff" for n in (4, 8, 12)),
    *(b"\xc9" + n.to_bytes(4, "big") + b"\xff" for n in (4, 8, 12)),
)
#: The first byte of every msgpack extension (fixext 1, 2, 4, 8 and 16; ext 8, 16 and 32).
_EXT_HEADS = tuple(bytes([b]) for b in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xC7, 0xC8, 0xC9))


class _Unsupported(TypeError):
    pass


class _TooDeep(ValueError):
    def __init__(self, limit: int, counted: frozenset[type]) -> None:
        super().__init__(limit, counted)
        self.limit, self.counted = limit, counted


def _copies(depth: int) -> int:
    """How many copies of an extension payload at ``depth`` (1: outermost) a reader holds while it decodes it."""
    return 1 if depth <= _SHALLOW else 2


class _Encoder:
    """Packs one entry. Extension types recurse (``default`` packs each one's payload); their nesting is counted here,
    and the first time it passes _SHALLOW the whole value's nesting is measured once: msgpack's packer recurses in C
    for every list and dict level, without a bound across extension levels. It also adds up the payloads nested in
    one another, as a reader will hold them (``held``: the largest such sum)."""

    def __init__(self, roots: tuple[Any, ...]) -> None:
        self.roots = roots
        self.depth = 0
        self.measured = False
        self.below: list[int] = [0]  # per payload being packed: the largest sum of the payloads inside it
        self.packers: list[Any] = []  # one per payload being packed (a Packer is busy until its payload is done)
        self.exts = 0  # extensions made by ``default``: msgpack packs any others (ExtType, Timestamp) itself

    @property
    def held(self) -> int:
        return self.below[0]

    def payload(self, code: int, obj: Any) -> msgpack.ExtType:
        self.below.append(0)
        try:
            packed = self.pack(obj)
        finally:
            inside = self.below.pop()
        self.below[-1] = max(self.below[-1], _copies(len(self.below)) * len(packed) + inside)
        return msgpack.ExtType(code, packed)

    def pack(self, obj: Any) -> bytes:
        level = len(self.below) - 1
        if level == len(self.packers):
            self.packers.append(
                msgpack.Packer(
                    default=self.default,
                    strict_types=True,
                    use_bin_type=True,
                    unicode_errors="surrogatepass",
                    datetime=False,
                )
            )
        packed: bytes = self.packers[level].pack(obj)
        return packed

    def nested(self, code: int, items: Any) -> msgpack.ExtType:
        self.depth += 1
        try:
            if self.depth > MAX_EXTENSION_NESTING:
                raise _TooDeep(MAX_EXTENSION_NESTING, _NESTED)
            if self.depth > _SHALLOW and not self.measured:
                self.measured = True
                if max(nesting(root, "")[1] or 0 for root in self.roots) > MAX_NESTING:
                    raise _TooDeep(MAX_NESTING, CONTAINER_TYPES)
            return self.payload(code, list(items))
        finally:
            self.depth -= 1

    def default(self, obj: Any) -> msgpack.ExtType:
        """msgpack asks for each value it lacks: the value model's extension (``_model``), else refused."""
        self.exts += 1
        kind = BY_TYPE.get(type(obj))
        if kind is None or kind.code is None or kind.parts is None:
            raise _Unsupported(f"type {type(obj).__qualname__}")
        if kind.container:
            return self.nested(kind.code, obj)
        parts = kind.parts(obj)
        return msgpack.ExtType(kind.code, parts) if kind.raw else self.payload(kind.code, parts)


class _Decoder:
    """Decodes ``size`` bytes of msgpack. Each extension type's payload is a msgpack document of its own, decoded
    from the extension hook: the recursion is counted here, and refused beyond MAX_EXTENSION_NESTING (+ 1, the leaf
    payload of a datetime and the like) before it can exhaust the recursion limit or the C stack; so are payloads
    held at once beyond EXTENSION_BYTES_HELD."""

    def __init__(self) -> None:
        self.depth = self.held = 0
        #: Whether a set or frozenset was decoded since the caller last cleared it.
        self.sets = False

    def unpack(self, data: bytes) -> Any:
        self.depth += 1
        held = _copies(self.depth) * len(data)
        self.held += held
        try:
            if self.depth > MAX_EXTENSION_NESTING + 1:
                raise CorruptDataError(
                    f"stored msgpack nests extension types more than {MAX_EXTENSION_NESTING + 1} levels deep"
                )
            if self.held > EXTENSION_BYTES_HELD:
                raise CorruptDataError(
                    f"stored msgpack nests extension values holding {self.held} bytes, more than {EXTENSION_BYTES_HELD}"
                )
            if self.depth <= _SHALLOW:
                return msgpack.unpackb(data, ext_hook=self.ext_hook, **_OPTIONS)
            unpacker = msgpack.Unpacker(ext_hook=self.ext_hook, max_buffer_size=max(len(data), 1), **_OPTIONS)
            unpacker.feed(data)
            value = unpacker.unpack()
            if unpacker.tell() != len(data):
                raise CorruptDataError("stored msgpack extension has bytes after its value")
            return value
        finally:
            self.depth -= 1
            self.held -= held

    def ext_hook(self, code: int, data: bytes) -> Any:
        kind = BY_CODE.get(code)
        if kind is None or kind.build is None:
            raise CorruptDataError(f"unknown msgpack extension code {code}")
        self.sets = self.sets or kind.code in (SET, FROZENSET)
        return kind.build(data if kind.raw else self.unpack(data))


def _map_header(count: int) -> bytes:
    return b"\xdf" + count.to_bytes(4, "big")  # msgpack map32: the entries follow as key, value, key, value...


def _map_size(body: bytes) -> int:
    """The number of entries the map header at the start of ``body`` announces (fixmap, map 16 or map 32)."""
    if body[0] >> 4 == 0x8:
        return body[0] & 0x0F
    return int.from_bytes(body[1 : 3 if body[0] == 0xDE else 5], "big")


def _may_hold_timestamp(data: bytes, start: int = 0, end: int | None = None) -> bool:
    return data.find(b"\xff", start, end) >= 0 and any(data.find(mark, start, end) >= 0 for mark in _TIMESTAMP_MARKS)


class MsgpackZstdCodec(Codec):
    """msgpack entries (with extension types) in one msgpack map, compressed with zstandard."""

    name: ClassVar[str] = "msgpack+zstd"
    entry_format: ClassVar[str] = "msgpack"
    max_ratio: ClassVar[int] = ZSTD_MAX_RATIO

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)

    def encode_entry(self, key: Any, value: Any) -> bytes:
        encoder = _Encoder((key, value))
        try:
            entry = encoder.pack(key) + encoder.pack(value)
        except _TooDeep as exc:
            raise too_deep(key, value, exc.limit, exc.counted) from None
        except (_Unsupported, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise unsupported_error(key, value, exc) from None
        if encoder.held > EXTENSION_BYTES_HELD:
            raise UnsupportedValueError(
                f"cannot store the value at [{label(key)}]: its tuples, sets and frozensets nest {encoder.held} bytes "
                f"in one another, which a reader holds at once, more than {EXTENSION_BYTES_HELD}; nest big "
                "values in fewer tuples (or in lists)",
                path=f"[{label(key)}]",
            )
        # msgpack packs a caller's ExtType and Timestamp itself, without asking ``default``: outside the value model
        # (an ExtType would be read back as whatever its code names, or make the map unreadable). Each adds a head
        # byte to those of the extensions ``default`` made; only then is the value walked to find it.
        foreign = sum(map(entry.count, _EXT_HEADS)) > encoder.exts
        if foreign and (find_unsupported(value, "") or find_unsupported(key, "")):
            raise unsupported_error(key, value)
        return entry

    def join(self, entries: list[bytes]) -> bytes:
        return _map_header(len(entries)) + b"".join(entries)

    def compress(self, body: bytes) -> bytes:
        return self._compressor.compress(body)

    def read_entries(self, entries: list[bytes]) -> list[tuple[Any, Any, bytes]]:
        """Every entry through one Unpacker (a partition's 10,000 entries: one object, not 10,000), each with its
        own bounds: its payload copies held at once, and its key and value ending exactly where its length says."""
        joined = b"".join(entries)
        decoder = _Decoder()
        unpacker = msgpack.Unpacker(ext_hook=decoder.ext_hook, max_buffer_size=max(len(joined), 1), **_OPTIONS)
        unpacker.feed(joined)
        stamps = _may_hold_timestamp(joined)
        out = []
        end = 0
        for entry in entries:
            start, end = end, end + len(entry)
            decoder.sets = False
            with undecodable("msgpack"):
                key, value = unpacker.unpack(), unpacker.unpack()
            if unpacker.tell() != end:
                raise CorruptDataError(
                    f"a stored entry's key and value take {unpacker.tell() - start} of its {len(entry)} bytes"
                )
            if stamps and _may_hold_timestamp(joined, start, end):
                check_decoded(key, value)
            out.append((key, value, self.again(key, value) if decoder.sets else entry))
        return out

    def read(self, entry: bytes) -> tuple[Any, Any, bool]:
        """(key, value, whether it holds a set) of one stored entry."""
        decoder = _Decoder()
        with undecodable("msgpack"):
            unpacker = msgpack.Unpacker(ext_hook=decoder.ext_hook, max_buffer_size=max(len(entry), 1), **_OPTIONS)
            unpacker.feed(entry)
            key, value = unpacker.unpack(), unpacker.unpack()
            if unpacker.tell() != len(entry):
                raise CorruptDataError(f"a stored entry has {len(entry) - unpacker.tell()} bytes after its value")
        if _may_hold_timestamp(entry):  # msgpack decodes its Timestamp itself: outside the value model
            check_decoded(key, value)
        return key, value, decoder.sets

    def decompress(self, blob: bytes, raw_size: int) -> bytes:
        return decompress_bounded(zstd_decompress, blob, raw_size, self.max_ratio)

    def decode(self, blob: bytes, raw_size: int) -> dict[Any, Any]:
        """The whole map in one msgpack call: 40% quicker than entry by entry. Except for a value nested to msgpack's
        own limit of 1,024 levels, which the writer accepts: with the map around it, one call cannot hold it."""
        body = decompress_bounded(zstd_decompress, blob, raw_size, self.max_ratio)
        with undecodable("msgpack"):
            try:
                result = msgpack.unpackb(body, ext_hook=_Decoder().ext_hook, **_OPTIONS)
            except msgpack.StackError:
                return self._entries(body, again=False)[0]
        if type(result) is not dict:
            raise CorruptDataError(f"stored msgpack holds a {type(result).__name__}, not a map")
        if len(result) != _map_size(body):
            raise CorruptDataError("stored map holds a key twice")
        if _may_hold_timestamp(body):  # msgpack decodes its Timestamp itself: check the entries that may hold one
            entries = msgpack.Unpacker(max_buffer_size=len(body))
            entries.feed(body)
            entries.read_map_header()
            for key, value in result.items():
                start = entries.tell()
                entries.skip()
                entries.skip()
                if _may_hold_timestamp(body, start, entries.tell()):
                    check_decoded(key, value)
        return result

    def decode_entries(self, blob: bytes, raw_size: int) -> tuple[dict[Any, Any], list[memoryview]]:
        """Each entry's bytes are its key and value as stored (the Unpacker says where each ends), except for an
        entry holding a set: that one is packed again, since a set's encoding follows its iteration order, which
        the set decoded need not share (nor a set in another process: str hashes are seeded per process)."""
        return self._entries(decompress_bounded(zstd_decompress, blob, raw_size, self.max_ratio), again=True)

    def _entries(self, body: bytes, *, again: bool) -> tuple[dict[Any, Any], list[memoryview]]:
        """The map entry by entry, with each entry's bytes (``again``: entries holding a set packed again)."""
        view = memoryview(body)
        timestamps = _may_hold_timestamp(body)  # msgpack decodes its Timestamp itself: outside the value model
        decoder = _Decoder()
        result: dict[Any, Any] = {}
        stored: list[memoryview] = []
        with undecodable("msgpack"):
            unpacker = msgpack.Unpacker(ext_hook=decoder.ext_hook, max_buffer_size=max(len(body), 1), **_OPTIONS)
            unpacker.feed(body)
            for _ in range(unpacker.read_map_header()):
                start, decoder.sets = unpacker.tell(), False
                key, value = unpacker.unpack(), unpacker.unpack()
                end = unpacker.tell()
                if timestamps and _may_hold_timestamp(body, start, end):
                    check_decoded(key, value)
                count = len(result)
                result[key] = value
                if len(result) == count:
                    raise CorruptDataError(f"stored map holds the key {label(key)} twice")
                stored.append(memoryview(self.again(key, value)) if again and decoder.sets else view[start:end])
            if unpacker.tell() != len(body):
                raise CorruptDataError(f"stored msgpack has {len(body) - unpacker.tell()} bytes after its map")
        return result, stored
