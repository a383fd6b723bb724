"""Every value a map can hold (``_values.py``), for every test that stores, encodes or writes values: named
examples (``VALUES``), Hypothesis strategies (``values``, ``keys``, ``maps``...) and an exact comparison.

``canonical(x)`` turns a value into a plain structure that records every type and every bit that a round trip
must keep: float bits (nan payload, -0.0), Decimal as written, datetime fields, fold and tzinfo, dict order.
Two values round-trip identically exactly when their canonical forms are equal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import struct
import uuid
import zoneinfo
from typing import Any

from hypothesis import strategies as st

UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2), "EET-ish")

#: One of each kind of value, by name: the type tests store each, and the command line tool's formats carry them.
VALUES: list[tuple[str, Any]] = [
    ("str", "héllo ✓"),
    ("lone surrogate", "a\ud800b"),
    ("empty str", ""),
    ("small int", -7),
    ("int64 edge", 2**63 - 1),
    ("uint64 edge", 2**64 - 1),
    ("huge int", 3**200),
    ("huge negative int", -(2**130)),
    ("float", 0.1),
    ("negative zero", -0.0),
    ("inf", float("inf")),
    ("-inf", float("-inf")),
    ("bytes", b"\x00\xff"),
    ("None", None),
    ("True", True),
    ("False", False),
    ("list", [1, "a", None]),
    ("tuple", (1, (2, [3]))),
    ("empty tuple", ()),
    ("dict with non-str keys", {1: "int", (1, 2): "tuple", b"k": "bytes", None: 0, frozenset({1}): "fs"}),
    ("set", {1, "two", (3,)}),
    ("frozenset", frozenset({1.5, "x"})),
    ("naive datetime", dt.datetime(2024, 2, 29, 23, 59, 59, 999999)),
    ("aware datetime", dt.datetime(2024, 1, 1, 12, tzinfo=UTC_PLUS_2)),
    ("utc datetime", dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)),
    ("zoneinfo datetime fold", dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("America/New_York"))),
    ("date", dt.date(1, 1, 1)),
    ("time", dt.time(23, 1, 2, 3)),
    ("aware time", dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(minutes=-90)))),
    ("timedelta", dt.timedelta(days=-3, seconds=5, microseconds=7)),
    ("decimal", decimal.Decimal("1.10")),
    ("decimal exact", decimal.Decimal("3.14159265358979323846264338327950288419716939937510")),
    ("decimal nan", decimal.Decimal("NaN")),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("complex", 1 - 2j),
    ("nested", {"a": [({"b": {1, 2}}, dt.date(2020, 1, 1))], "c": {"d": (decimal.Decimal("1e-30"), None)}}),
]

ONE_DAY = dt.timedelta(hours=24)
TINY = dt.timedelta(microseconds=1)

#: Any code point, lone surrogates included (the default excludes category Cs); strings that tagged JSON escapes.
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "\ud800", "a\udfffb", "\x00", "\U0010ffff", "é" * 40, "$", "$int"]
)
#: Small and huge ints, and the edges of 32 and 64 bits and of JSON's exact numbers (2**53).
ints = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, -(2**64)])
    | st.sampled_from([10**40, -(10**40), 2**53, 2**53 + 1, -(2**53) - 1])
)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324, 1.7976931348623157e308]
)
complexes = st.complex_numbers(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [complex(-0.0, math.nan), complex(math.inf, -0.0)]
)
hashable_decimals = st.decimals(allow_nan=False, allow_infinity=True) | st.sampled_from(
    [
        decimal.Decimal(s)
        for s in ["-0", "1E+5", "1.000", "NaN", "-NaN42", "Infinity", "-1e-1000", "12345678901234567890"]
    ]
)
#: Signalling NaNs cannot be hashed (nor compared): values only, never keys or set elements.
decimals = hashable_decimals | st.sampled_from([decimal.Decimal("sNaN"), decimal.Decimal("-sNaN7")])
fixed_offsets = st.builds(
    lambda offset, name: dt.timezone(offset) if name is None else dt.timezone(offset, name),
    st.timedeltas(min_value=-ONE_DAY + TINY, max_value=ONE_DAY - TINY),
    st.none() | text,
)
tzinfos = st.none() | st.just(dt.timezone.utc) | fixed_offsets | st.timezones()
datetimes = st.builds(lambda d, fold: d.replace(fold=fold), st.datetimes(timezones=tzinfos), st.integers(0, 1))
times = st.builds(lambda t, fold: t.replace(fold=fold), st.times(timezones=tzinfos), st.integers(0, 1))

hashable_atoms = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    complexes,
    text,
    st.binary(max_size=24),
    hashable_decimals,
    st.uuids(),
    datetimes,
    st.dates(),
    times,
    st.timedeltas(),
)
atoms = hashable_atoms | decimals | st.binary(max_size=24).map(bytearray)

#: What may be a dict key or a set element: hashable atoms, and tuples and frozensets of them.
hashables = st.recursive(
    hashable_atoms,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)


def _has_nan(key: Any) -> bool:
    if type(key) in (tuple, frozenset):
        return any(_has_nan(k) for k in key)
    return bool(key != key)  # noqa: PLR0124 (NaN: float, complex, Decimal)


#: What may be a map key: hashables without a NaN anywhere (a NaN equals nothing: it cannot be found again).
keys = hashables.filter(lambda k: not _has_nan(k))

values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(text, inner, max_size=4),  # (the usual dict, and a JSON object)
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=12,
)

#: A whole map: any hashable keys, any values, in insertion order.
maps = st.dictionaries(keys, values, max_size=6)


def _float(x: float, any_nan: bool = False) -> bytes:
    return b"nan" if any_nan and math.isnan(x) else struct.pack(">d", x)


def _tz(tz: dt.tzinfo | None) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        # (timezone's pickling helper, not in typeshed: it tells an explicit name from the one made up)
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return ("timezone", canonical(offset), name)
    assert isinstance(tz, zoneinfo.ZoneInfo), tz  # the only other tzinfo the codecs store
    return (type(tz).__name__, tz.key)


def canonical(x: Any, *, bytearray_as_bytes: bool = False, any_nan: bool = False) -> Any:
    """A structure equal for two values exactly when they are the same types with the same contents.
    ``bytearray_as_bytes``: for msgpack, which stores a bytearray as bytes; ``any_nan``: every float NaN is the
    same (for formats that keep no NaN sign or payload, as tagged JSON)."""

    def c(v: Any) -> Any:
        return canonical(v, bytearray_as_bytes=bytearray_as_bytes, any_nan=any_nan)

    kind = type(x)
    if kind is float:
        return ("float", _float(x, any_nan))
    if kind is complex:
        return ("complex", _float(x.real, any_nan), _float(x.imag, any_nan))
    if kind is decimal.Decimal:
        return ("Decimal", str(x))
    if kind is dt.datetime:
        fields = (x.year, x.month, x.day, x.hour, x.minute, x.second, x.microsecond, x.fold)
        return ("datetime", fields, _tz(x.tzinfo))
    if kind is dt.time:
        return ("time", (x.hour, x.minute, x.second, x.microsecond, x.fold), _tz(x.tzinfo))
    if kind is dt.date:
        return ("date", x.toordinal())
    if kind is dt.timedelta:
        return ("timedelta", x.days, x.seconds, x.microseconds)
    if kind in (list, tuple):
        return (kind.__name__, [c(v) for v in x])
    if kind is dict:
        return ("dict", [(c(k), c(v)) for k, v in x.items()])
    if kind in (set, frozenset):
        return (kind.__name__, sorted((c(v) for v in x), key=repr))
    if kind is bytearray:
        return ("bytes" if bytearray_as_bytes else "bytearray", bytes(x))
    if kind is uuid.UUID:
        return ("UUID", x.bytes, x.is_safe)
    return (kind.__name__, x)
