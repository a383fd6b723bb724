"""Hypothesis strategies for every value a map can hold (``_values.py``), and an exact comparison.

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
from typing import Any

from hypothesis import strategies as st

ONE_DAY = dt.timedelta(hours=24)
TINY = dt.timedelta(microseconds=1)

#: Any code point, lone surrogates included (the default excludes category Cs).
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "\ud800", "a\udfffb", "\x00", "\U0010ffff", "é" * 40]
)
ints = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [0, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, -(2**64), 10**40, -(10**40)]
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
    return key != key  # noqa: PLR0124 (NaN: float, complex, Decimal)


#: What may be a map key: hashables without a NaN anywhere (a NaN equals nothing: it cannot be found again).
keys = hashables.filter(lambda k: not _has_nan(k))

values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=12,
)

#: A whole map: any hashable keys, any values, in insertion order.
maps = st.dictionaries(keys, values, max_size=6)


def _float(x: float) -> bytes:
    return struct.pack(">d", x)


def _tz(tz: dt.tzinfo | None) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return ("timezone", canonical(offset), name)
    return (type(tz).__name__, tz.key)  # type: ignore[attr-defined]


def canonical(x: Any, *, bytearray_as_bytes: bool = False) -> Any:
    """A structure equal for two values exactly when they are the same types with the same contents."""

    def c(v: Any) -> Any:
        return canonical(v, bytearray_as_bytes=bytearray_as_bytes)

    kind = type(x)
    if kind is float:
        return ("float", _float(x))
    if kind is complex:
        return ("complex", _float(x.real), _float(x.imag))
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


# -- format 3's framing, as a hostile writer would store it (FORMAT.md, "Records", "Segment table") ---------


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
