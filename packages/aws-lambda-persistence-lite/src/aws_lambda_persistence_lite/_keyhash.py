"""The stable key hash of stored format 3 (FORMAT.md, "Stable key hash and partitions").

``key_hash(key)`` is an unsigned 64-bit number that partitions a map by key. Two rules make it usable for that:

- keys a dict treats as the same key hash equal (``1 == 1.0 == True == Decimal(1) == complex(1, 0)``; an aware
  datetime and the same instant in another zone; ``(1, "a") == (True, "a")``), because their entries must land in
  the same partition;
- the number is the same in every process, whatever PYTHONHASHSEED, because it decides where an entry is stored
  and every reader recomputes it. Python's ``hash()`` of str, bytes, datetimes, tuples and frozensets is salted
  per process, so it is used only for numbers, whose hash is unsalted and equal across equal numbers.

Every hash ends in a BLAKE2b-64 digest of a type tag and a canonical payload, so that the low
bits, which pick the partition, are uniform for any set of distinct keys: the raw numeric hash of ``1024 * n``,
the microseconds of ``timedelta(seconds=n)`` and the like share their low bits and could never be split apart.

The walk over tuples and frozensets is iterative (a key nested 1,000,000 levels deep is refused, not a crash),
limited to ``_values.MAX_NESTING`` levels like every stored value, and linear in the number of distinct objects
(a frozenset shared many times in a key is hashed once, as Python's own cached frozenset hash does).
"""

from __future__ import annotations

import sys
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from ._errors import UnsupportedValueError
from ._values import MAX_NESTING

if TYPE_CHECKING:
    from collections.abc import Iterator

_MASK = (1 << 64) - 1
_DAY_US = 86_400_000_000
#: The numeric hash this format relies on: 64-bit CPython's, reduced modulo the prime 2**61 - 1 (Python's
#: documented algorithm). Lambda runs only 64-bit interpreters; a 32-bit one would partition numbers differently,
#: so it refuses numeric keys rather than misplace them.
_NUMERIC_HASH_OK = sys.hash_info.modulus == (1 << 61) - 1

# Type tags: the first byte BLAKE2b sees (str has none: its hash is the digest of its UTF-8 alone). Never change
# one: stored maps are partitioned by these hashes.
_NUMBER, _BYTES, _NONE, _TUPLE, _FROZENSET, _DATE = b"n", b"b", b"N", b"t", b"f", b"d"
_NAIVE_DATETIME, _AWARE_DATETIME, _NAIVE_TIME, _AWARE_TIME = b"D", b"Z", b"T", b"z"
_TIMEDELTA, _UUID = b"e", b"u"

#: Why a NaN is no key: a dict finds it only by identity, and every load makes a new object.
_NAN_WHY = "a NaN equals nothing, itself included: after a load the map could never find, overwrite or delete it"
_TZINFOS = (("datetime", "timezone"), ("zoneinfo", "ZoneInfo"))
_UNHASHABLE = frozenset({list, dict, set, bytearray})
KEY_TYPES_TEXT = (
    "None, bool, int, float, complex, str, bytes, Decimal, UUID, date, datetime and time (naive, "
    "datetime.timezone or zoneinfo.ZoneInfo), timedelta, and tuples and frozensets of these"
)


def _digest(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


_NONE_HASH = _digest(_NONE)


class _NotAKey(Exception):
    """An atom that cannot be part of a key: (what it is, why not, its type's name, the atom itself)."""


def key_hash(key: Any) -> int:
    """The stable 64-bit hash of a map key (FORMAT.md): equal keys hash equal, in every process.

    Raises UnsupportedValueError for a key outside the value model (naming its type, and where it sits inside a
    tuple or frozenset) and for a key nesting tuples and frozensets more than MAX_NESTING levels deep."""
    kind = type(key)
    if kind is str:  # the common key first
        return _digest(key.encode("utf-8", "surrogatepass"))
    try:
        if kind is tuple or kind is frozenset:
            flat = _flat(key)
            return _walk(key) if flat is None else flat
        return _atom(key, kind)
    except _NotAKey as exc:
        what, why, type_name, bad = exc.args
        where = _where(key, bad)
        if len(where) > 200:  # deep inside a deep key: its outermost and innermost steps
            where = f"{where[:100]} ... {where[-100:]}"
        found = f"contain {what} at {where}" if where else f"be {what}"
        raise UnsupportedValueError(
            f"a map key cannot {found}{f' ({why})' if why else ''}. Keys may be {KEY_TYPES_TEXT}.",
            path=where,
            type_name=type_name,
        ) from None


def _refuse(item: Any, what: str, why: str, type_name: str) -> _NotAKey:
    return _NotAKey(what, why, type_name, item)


def _number(item: Any) -> int:
    """Any number but NaN: hash() is unsalted and equal across equal numbers of every type."""
    if not _NUMERIC_HASH_OK:
        raise _refuse(item, "a number here", "this interpreter's hash() is not 64-bit CPython's", type(item).__name__)
    return _digest(_NUMBER + (hash(item) & _MASK).to_bytes(8, "little"))


def _micros(delta: Any) -> int:
    return int(delta.days * _DAY_US + delta.seconds * 1_000_000 + delta.microseconds)


def _signed(tag: bytes, value: int, size: int = 8) -> int:
    return _digest(tag + value.to_bytes(size, "little", signed=True))


def _tz_ok(item: Any, kind: type) -> None:
    tz = item.tzinfo
    if tz is not None and (type(tz).__module__, type(tz).__qualname__) not in _TZINFOS:
        name = f"{type(tz).__module__}.{type(tz).__qualname__}"
        why = "only datetime.timezone and zoneinfo.ZoneInfo"
        raise _refuse(item, f"a {kind.__name__} with tzinfo {name}", why, name)


def _atom(item: Any, kind: type) -> int:
    """The hash of anything but a tuple or frozenset."""
    if kind is str:
        return _digest(item.encode("utf-8", "surrogatepass"))
    if kind is int or kind is bool:
        return _number(item)
    if kind is float or kind is complex:
        if item != item:  # noqa: PLR0124
            raise _refuse(item, "a NaN", _NAN_WHY, kind.__name__)
        return _number(item)
    if kind is bytes:
        return _digest(_BYTES + item)
    if item is None:
        return _NONE_HASH
    name = (kind.__module__, kind.__qualname__)  # datetime, decimal and uuid are imported only by maps using them
    if name == ("decimal", "Decimal"):
        if item.is_nan():
            raise _refuse(item, "a NaN", _NAN_WHY, "decimal.Decimal")
        return _number(item)
    if name == ("datetime", "datetime"):
        _tz_ok(item, kind)
        seconds = item.toordinal() * 86_400 + item.hour * 3_600 + item.minute * 60 + item.second
        micros = seconds * 1_000_000 + item.microsecond
        # As datetime.__hash__: the UTC equivalent of the fold=0 reading (datetimes differing only in fold are
        # equal in the same zone); naive (and a tzinfo that gives no offset) hashes the fields, fold left out.
        offset = (item.replace(fold=0) if item.fold else item).utcoffset()
        if offset is None:
            return _signed(_NAIVE_DATETIME, micros)
        return _signed(_AWARE_DATETIME, micros - _micros(offset))
    if name == ("datetime", "date"):
        return _signed(_DATE, item.toordinal())
    if name == ("datetime", "time"):
        _tz_ok(item, kind)
        micros = (item.hour * 3_600 + item.minute * 60 + item.second) * 1_000_000 + item.microsecond
        # As time.__hash__: utcoffset() is that of tzinfo.utcoffset(None), which is None for a ZoneInfo with
        # transitions (such a time equals the naive time with its fields); no wrap-around at midnight.
        offset = (item.replace(fold=0) if item.fold else item).utcoffset()
        if offset is None:
            return _signed(_NAIVE_TIME, micros)
        return _signed(_AWARE_TIME, micros - _micros(offset))
    if name == ("datetime", "timedelta"):
        return _signed(_TIMEDELTA, _micros(item), 16)  # up to 999,999,999 days: 77 bits
    if name == ("uuid", "UUID"):
        number = item.int
        if type(number) is not int or not 0 <= number <= (1 << 128) - 1:  # a pickle can set any int
            raise _refuse(item, "a uuid.UUID whose int is not 128 bits", "", "uuid.UUID")
        return _digest(_UUID + number.to_bytes(16, "big"))
    type_name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
    if kind in _UNHASHABLE:
        raise _refuse(item, f"a {type_name}", "it is not hashable", type_name)
    raise _refuse(item, f"a value of type {type_name}", "", type_name)


def _finish(container: Any, parts: list[int]) -> int:
    if type(container) is tuple:
        return _digest(_TUPLE + b"".join(h.to_bytes(8, "little") for h in parts))
    return _digest(_FROZENSET + (sum(parts) & _MASK).to_bytes(8, "little"))


def _flat(container: Any) -> int | None:
    """The hash of a tuple or frozenset of atoms (the common composite key); None if it holds one of either."""
    parts = []
    for item in container:
        kind = type(item)
        if kind is str:
            parts.append(_digest(item.encode("utf-8", "surrogatepass")))
        elif kind is tuple or kind is frozenset:
            return None
        else:
            parts.append(_atom(item, kind))
    return _finish(container, parts)


def _too_deep() -> UnsupportedValueError:
    return UnsupportedValueError(
        f"a map key cannot nest tuples and frozensets more than {MAX_NESTING} levels deep (the most any stored "
        "value may nest); flatten it"
    )


def _walk(root: Any) -> int:
    """The hash of a tuple or frozenset: depth first, with an explicit stack of (container, its iterator, its
    parts' hashes, its height so far). Each distinct container is hashed once; ``done`` keeps (hash, height) by
    id (every container stays alive, held by ``root``, so ids are not reused during the walk). Heights are kept
    so that a shared container met again deeper down counts at its real depth: what is refused does not depend
    on the order a frozenset happens to iterate in (which str hashes, salted per process, decide)."""
    done: dict[int, tuple[int, int]] = {}
    stack: list[tuple[Any, Iterator[Any], list[int], list[int]]] = [(root, iter(root), [], [1])]
    while True:
        container, items, parts, height = stack[-1]
        child = None
        for item in items:
            kind = type(item)
            if kind is tuple or kind is frozenset:
                known = done.get(id(item))
                if known is None:
                    child = item
                    break
                if len(stack) + known[1] > MAX_NESTING:
                    raise _too_deep()
                height[0] = max(height[0], known[1] + 1)
                parts.append(known[0])
            elif kind is str:
                parts.append(_digest(item.encode("utf-8", "surrogatepass")))
            else:
                parts.append(_atom(item, kind))
        if child is not None:
            if len(stack) >= MAX_NESTING:
                raise _too_deep()
            stack.append((child, iter(child), [], [1]))
            continue
        stack.pop()
        value = _finish(container, parts)
        done[id(container)] = (value, height[0])
        if not stack:
            return value
        _, _, above, above_height = stack[-1]
        above.append(value)
        above_height[0] = max(above_height[0], height[0] + 1)


def _where(key: Any, bad: Any) -> str:
    """Where ``bad`` sits inside ``key``: ``[2][0]``, ``[1] (an element of a frozenset)``; "" at the top. Only for
    error messages. Iterative, each container entered once, in the walk's order; the path is spelled out only for
    the part found (a step is (the parent's step, index in a tuple or None in a frozenset))."""
    if bad is key:
        return ""
    stack: list[tuple[Any, Any]] = [(key, None)]
    seen: set[int] = set()
    while stack:
        item, step = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        steps = [((step, i if type(item) is tuple else None), child) for i, child in enumerate(item)]
        for found, child in steps:
            if child is bad:
                parts: list[str] = []
                while found is not None:
                    found, i = found  # noqa: PLW2901 (up the chain of steps)
                    parts.append(" (an element of a frozenset)" if i is None else f"[{i}]")
                return "".join(reversed(parts))
        stack.extend((child, at) for at, child in reversed(steps) if type(child) in (tuple, frozenset))
    return ""
