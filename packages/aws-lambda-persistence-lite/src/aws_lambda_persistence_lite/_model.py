"""The value model: every type a map can hold, and how each is taken apart and rebuilt. One row per type.

The rows drive every codec, so that a type is described once:

- the full codec's msgpack: a type msgpack lacks is extension ``code``, its payload the type's ``parts`` packed
  (or the parts themselves, when they are bytes: ``raw``);
- tagged JSON (the command line's export): ``{"$<tag>": ...}`` holding the type's readable ``text`` where it has
  one, else its parts; ``zoned`` types add their time zone (as ``zone_parts``) and fold;
- the lite codec's unpickler: a pickle may name the class of a ``named`` row (and the time-zone classes) to
  rebuild a value; nothing else is ever resolved.

``_values`` checks values against the rows. Never renumber a code or rename a tag: stored maps and exported files
depend on them (FORMAT.md, "msgpack+zstd"). A row's ``build`` raises TypeError or ValueError for parts that no
``parts`` made: callers turn that into CorruptDataError.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

_MICROSECOND = dt.timedelta(microseconds=1)
#: Ints wider than this are written as hex text: Python limits decimal conversion to 4,300 digits by default.
_DECIMAL_BITS = 12_000
#: The time-zone classes a datetime or time may carry, by (module, name): zoneinfo is imported only by maps that
#: hold one (boto3 does not import it: 1-2 ms of a cold start otherwise).
ZONE_CLASSES = frozenset({("datetime", "timezone"), ("zoneinfo", "ZoneInfo")})


class Kind(NamedTuple):
    """One type of the value model (see the module docstring for what each field drives)."""

    type: type
    tag: str
    code: int | None = None
    parts: Callable[[Any], Any] | None = None
    build: Callable[[Any], Any] | None = None
    text: Callable[[Any], str] | None = None
    parse: Callable[[str], Any] | None = None
    raw: bool = False
    named: bool = False
    zoned: bool = False
    container: bool = False


def zone_parts(tz: dt.tzinfo | None) -> Any:
    """A time zone as stored: None (naive), ``[offset in microseconds]`` or ``[offset, name]`` for a
    ``datetime.timezone``, the key of a ``zoneinfo.ZoneInfo``. TypeError for any other tzinfo."""
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return [offset // _MICROSECOND, *name]
    if (type(tz).__module__, type(tz).__qualname__) == ("zoneinfo", "ZoneInfo"):
        return tz.key  # type: ignore[attr-defined]
    raise TypeError(f"tzinfo {type(tz).__module__}.{type(tz).__qualname__} is not supported")


def zone_from(parts: Any) -> dt.tzinfo | None:
    """Inverse of :func:`zone_parts`."""
    if parts is None:
        return None
    if type(parts) is str:
        import zoneinfo

        return zoneinfo.ZoneInfo(parts)
    if type(parts) is not list or not 1 <= len(parts) <= 2 or type(parts[0]) is not int:
        raise TypeError("a time zone must be a zone key or [offset in microseconds, optional name]")
    return dt.timezone(parts[0] * _MICROSECOND, *parts[1:])


def _ints(parts: Any, count: int) -> list[int]:
    if type(parts) is not list or len(parts) != count or any(type(p) is not int for p in parts):
        raise TypeError(f"expected {count} integers")
    return parts


def _datetime(parts: Any) -> dt.datetime:
    if type(parts) is not list or len(parts) != 9:
        raise TypeError("expected [year, month, day, hour, minute, second, microsecond, fold, zone]")
    year, month, day, hour, minute, second, microsecond, fold = _ints(parts[:8], 8)
    return dt.datetime(year, month, day, hour, minute, second, microsecond, zone_from(parts[8]), fold=fold)


def _time(parts: Any) -> dt.time:
    if type(parts) is not list or len(parts) != 6:
        raise TypeError("expected [hour, minute, second, microsecond, fold, zone]")
    hour, minute, second, microsecond, fold = _ints(parts[:5], 5)
    return dt.time(hour, minute, second, microsecond, zone_from(parts[5]), fold=fold)


def _timedelta(parts: Any) -> dt.timedelta:
    days, seconds, microseconds = _ints(parts, 3)
    return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _complex(parts: Any) -> complex:
    if type(parts) is not list or len(parts) != 2 or any(type(p) not in (int, float) for p in parts):
        raise TypeError("expected [real, imag] as numbers")
    return complex(float(parts[0]), float(parts[1]))


def _int_text(value: int) -> str:
    return str(value) if value.bit_length() <= _DECIMAL_BITS else hex(value)


def _int_parse(text: str) -> int:
    return int(text, 16) if text.lstrip("+-").startswith("0x") else int(text)


def _base64(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


def _unbase64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _naive_iso(value: dt.datetime | dt.time) -> str:
    return value.replace(tzinfo=None, fold=0).isoformat()


# The extension codes (FORMAT.md, "msgpack+zstd"). Never renumber: stored maps depend on them.
TUPLE, SET, FROZENSET, DATETIME, DATE, TIME, TIMEDELTA, DECIMAL, UUID, BIGINT, COMPLEX = range(1, 12)

KINDS: tuple[Kind, ...] = (
    Kind(type(None), "none"),
    Kind(bool, "bool"),
    Kind(str, "str"),
    Kind(list, "list", container=True),
    Kind(dict, "dict", container=True),
    # int: msgpack holds 64 bits natively, beyond that the extension; JSON numbers up to 2**53, beyond that text.
    Kind(
        int,
        "int",
        BIGINT,
        lambda v: v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True),
        lambda b: int.from_bytes(b, "big", signed=True),
        _int_text,
        _int_parse,
        raw=True,
    ),
    Kind(float, "float", text=repr, parse=float),  # (text: JSON has no nan or infinity)
    Kind(complex, "complex", COMPLEX, lambda v: [v.real, v.imag], _complex, named=True),
    Kind(bytes, "bytes", text=_base64, parse=_unbase64, named=True),
    Kind(bytearray, "bytearray", text=_base64, parse=lambda t: bytearray(_unbase64(t)), named=True),
    Kind(tuple, "tuple", TUPLE, list, tuple, container=True),
    Kind(set, "set", SET, list, set, named=True, container=True),
    Kind(frozenset, "frozenset", FROZENSET, list, frozenset, named=True, container=True),
    Kind(
        dt.datetime,
        "datetime",
        DATETIME,
        lambda v: [v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, v.fold, zone_parts(v.tzinfo)],
        _datetime,
        _naive_iso,
        dt.datetime.fromisoformat,
        named=True,
        zoned=True,
    ),
    Kind(
        dt.date,
        "date",
        DATE,
        dt.date.toordinal,
        dt.date.fromordinal,
        dt.date.isoformat,
        dt.date.fromisoformat,
        named=True,
    ),
    Kind(
        dt.time,
        "time",
        TIME,
        lambda v: [v.hour, v.minute, v.second, v.microsecond, v.fold, zone_parts(v.tzinfo)],
        _time,
        _naive_iso,
        dt.time.fromisoformat,
        named=True,
        zoned=True,
    ),
    Kind(dt.timedelta, "timedelta", TIMEDELTA, lambda v: [v.days, v.seconds, v.microseconds], _timedelta, named=True),
    Kind(
        decimal.Decimal,
        "decimal",
        DECIMAL,
        lambda v: str(v).encode("ascii"),
        lambda b: decimal.Decimal(b.decode("ascii")),
        str,
        decimal.Decimal,
        raw=True,
        named=True,
    ),
    Kind(
        uuid.UUID, "uuid", UUID, lambda v: v.bytes, lambda b: uuid.UUID(bytes=b), str, uuid.UUID, raw=True, named=True
    ),
)

#: The rows by exact type (a subclass is not in the model: it would come back as its base), by code and by tag.
BY_TYPE: dict[type, Kind] = {kind.type: kind for kind in KINDS}
BY_CODE: dict[int, Kind] = {kind.code: kind for kind in KINDS if kind.code is not None}
BY_TAG: dict[str, Kind] = {kind.tag: kind for kind in KINDS}
CONTAINER_TYPES: frozenset[type] = frozenset(kind.type for kind in KINDS if kind.container)

SUPPORTED_TEXT = (
    "None, bool, int, float, complex, str, bytes, bytearray, Decimal, UUID, datetime/date/time "
    "(naive, datetime.timezone or zoneinfo.ZoneInfo), timedelta, and list/tuple/dict/set/frozenset of these"
)
