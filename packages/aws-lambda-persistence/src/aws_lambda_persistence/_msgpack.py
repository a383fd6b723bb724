"""The full codec: msgpack with one extension type per Python type that msgpack lacks, then zstandard.

Types are exact (``strict_types``): a tuple stays a tuple, a set a set, a bool a bool, and a value of any other
type is refused before anything is sent. One exception, made by msgpack itself: bytearray and memoryview are
packed natively as binary and so come back as bytes. Decoding is bounded by the size the head declares.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, ClassVar

import msgpack
import zstandard
from aws_lambda_persistence_lite._codec import Codec, register
from aws_lambda_persistence_lite._errors import CorruptDataError
from aws_lambda_persistence_lite._pickle import PickleCodec, decompress_bounded
from aws_lambda_persistence_lite._values import unsupported_error

# The extension codes (FORMAT.md, "msgpack+zstd"). Never renumber: stored maps depend on them.
TUPLE, SET, FROZENSET, DATETIME, DATE, TIME, TIMEDELTA, DECIMAL, UUID, BIGINT, COMPLEX = range(1, 12)
ZSTD_LEVEL = 3


class _Unsupported(TypeError):
    pass


def _tz(tz: _dt.tzinfo | None) -> Any:
    if tz is None:
        return None
    if type(tz) is _dt.timezone:
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return [offset // _dt.timedelta(microseconds=1), *name]
    if type(tz).__module__ == "zoneinfo" and type(tz).__name__ == "ZoneInfo":
        return tz.key  # type: ignore[attr-defined]
    raise _Unsupported(f"tzinfo {type(tz).__qualname__}")


def _untz(value: Any) -> _dt.tzinfo | None:
    if value is None:
        return None
    if isinstance(value, str):
        import zoneinfo

        return zoneinfo.ZoneInfo(value)
    return _dt.timezone(_dt.timedelta(microseconds=value[0]), *value[1:])


def _default(obj: Any) -> msgpack.ExtType:
    kind = type(obj)
    if kind is tuple:
        return msgpack.ExtType(TUPLE, _pack(list(obj)))
    if kind is set:
        return msgpack.ExtType(SET, _pack(list(obj)))
    if kind is frozenset:
        return msgpack.ExtType(FROZENSET, _pack(list(obj)))
    if kind is _dt.datetime:
        fields = [obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold]
        return msgpack.ExtType(DATETIME, _pack([*fields, _tz(obj.tzinfo)]))
    if kind is _dt.date:
        return msgpack.ExtType(DATE, _pack(obj.toordinal()))
    if kind is _dt.time:
        fields = [obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold]
        return msgpack.ExtType(TIME, _pack([*fields, _tz(obj.tzinfo)]))
    if kind is _dt.timedelta:
        return msgpack.ExtType(TIMEDELTA, _pack([obj.days, obj.seconds, obj.microseconds]))
    named = (kind.__module__, kind.__qualname__)  # decimal and uuid are imported only by maps that hold them
    if named == ("decimal", "Decimal"):
        return msgpack.ExtType(DECIMAL, str(obj).encode())
    if named == ("uuid", "UUID"):
        return msgpack.ExtType(UUID, obj.bytes)
    if kind is int:  # beyond msgpack's 64 bits
        return msgpack.ExtType(BIGINT, obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True))
    if kind is complex:
        return msgpack.ExtType(COMPLEX, _pack([obj.real, obj.imag]))
    raise _Unsupported(f"type {kind.__qualname__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == TUPLE:
        return tuple(_unpack(data))
    if code == SET:
        return set(_unpack(data))
    if code == FROZENSET:
        return frozenset(_unpack(data))
    if code == DATETIME:
        year, month, day, hour, minute, second, microsecond, fold, tz = _unpack(data)
        return _dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=_untz(tz), fold=fold)
    if code == DATE:
        return _dt.date.fromordinal(_unpack(data))
    if code == TIME:
        hour, minute, second, microsecond, fold, tz = _unpack(data)
        return _dt.time(hour, minute, second, microsecond, tzinfo=_untz(tz), fold=fold)
    if code == TIMEDELTA:
        return _dt.timedelta(*_unpack(data))
    if code == DECIMAL:
        import decimal

        return decimal.Decimal(data.decode())
    if code == UUID:
        import uuid

        return uuid.UUID(bytes=data)
    if code == BIGINT:
        return int.from_bytes(data, "big", signed=True)
    if code == COMPLEX:
        return complex(*_unpack(data))
    raise CorruptDataError(f"unknown msgpack extension code {code}")


def _pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(
        obj,
        default=_default,
        strict_types=True,
        use_bin_type=True,
        unicode_errors="surrogatepass",
        datetime=False,
    )
    return packed


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(
        data,
        ext_hook=_ext_hook,
        raw=False,
        strict_map_key=False,
        use_list=True,
        unicode_errors="surrogatepass",
        timestamp=0,
    )


def _map_header(count: int) -> bytes:
    return b"\xdf" + count.to_bytes(4, "big")  # msgpack map32: the entries follow as key, value, key, value...


class MsgpackZstdCodec(Codec):
    """msgpack entries (with extension types) in one msgpack map, compressed with zstandard."""

    name: ClassVar[str] = "msgpack+zstd"

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)

    def encode_entry(self, key: Any, value: Any) -> bytes:
        try:
            return _pack(key) + _pack(value)
        except (_Unsupported, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise unsupported_error(key, value, exc) from None

    def join(self, entries: list[bytes]) -> bytes:
        return _map_header(len(entries)) + b"".join(entries)

    def compress(self, body: bytes) -> bytes:
        return self._compressor.compress(body)

    def decode(self, blob: bytes, raw_size: int) -> dict[Any, Any]:
        body = decompress_bounded(zstd_decompress, blob, raw_size)
        try:
            result = _unpack(body)
        except CorruptDataError:
            raise
        except Exception as exc:
            raise CorruptDataError(f"stored msgpack does not decode: {type(exc).__name__}: {exc}") from exc
        if type(result) is not dict:
            raise CorruptDataError(f"stored msgpack holds a {type(result).__name__}, not a map")
        return result


def zstd_decompress(blob: bytes, limit: int) -> bytes:
    """Decompress a zstd frame to at most ``limit`` bytes, whatever the frame header claims."""
    declared = zstandard.frame_content_size(blob)
    if declared not in (-1, limit):
        raise CorruptDataError(f"zstd frame declares {declared} bytes, the head says {limit}")
    with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
        parts, size = [], 0
        while size <= limit:
            part = reader.read(limit + 1 - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
    return b"".join(parts)


class ZstdPickleCodec(PickleCodec):
    """Reads the lite package's pickles compressed with Python 3.14's zstd, on any Python."""

    name: ClassVar[str] = "pickle5+zstd"

    def compress(self, body: bytes) -> bytes:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)

    def _decompress(self, blob: bytes, limit: int) -> bytes:
        return zstd_decompress(blob, limit)


register(MsgpackZstdCodec.name, MsgpackZstdCodec)
register(ZstdPickleCodec.name, ZstdPickleCodec)
