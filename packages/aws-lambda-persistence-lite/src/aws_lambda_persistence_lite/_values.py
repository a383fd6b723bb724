"""The value model both codecs share: which Python types a map may hold, and where a bad one sits.

A value round-trips through a cold load with equal value *and* the same type, so only exact types are
allowed (a subclass such as ``OrderedDict`` or an ``IntEnum`` would come back as its base type).
"""

from __future__ import annotations

from collections.abc import Iterator

from ._errors import UnsupportedValueError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any

CONTAINER_TYPES: frozenset[type] = frozenset({list, tuple, dict, set, frozenset})
_BUILTIN_ATOMS: frozenset[type] = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
#: Types from other modules are matched by (module, name): importing datetime, decimal and uuid (which pulls in
#: platform) would cost every cold start a few milliseconds, before any map holds one.
_NAMED_ATOMS = frozenset(
    {
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("decimal", "Decimal"),
        ("uuid", "UUID"),
    }
)
_WITH_TZINFO = frozenset({("datetime", "datetime"), ("datetime", "time")})


def supported(kind: type) -> bool:
    """Whether values of exactly this type can be stored (subclasses cannot: they would come back as the base)."""
    return kind in _BUILTIN_ATOMS or kind in CONTAINER_TYPES or _name(kind) in _NAMED_ATOMS


def _name(kind: type) -> tuple[str, str]:
    return kind.__module__, kind.__qualname__


SUPPORTED_TEXT = (
    "None, bool, int, float, complex, str, bytes, bytearray, Decimal, UUID, datetime/date/time "
    "(naive, datetime.timezone or zoneinfo.ZoneInfo), timedelta, and list/tuple/dict/set/frozenset of these"
)


def _tz_supported(tz: object) -> bool:
    return tz is None or _name(type(tz)) in (("datetime", "timezone"), ("zoneinfo", "ZoneInfo"))


def _children(value: Any) -> Iterator[tuple[str, Any]]:
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            yield " (a key of the dict)", k
            yield f"[{k!r}]", v
    elif kind in (list, tuple):
        for i, v in enumerate(value):
            yield f"[{i}]", v
    elif kind in (set, frozenset):
        for v in value:
            yield f" (an element {v!r} of the {kind.__name__})", v


def find_unsupported(value: Any, path: str) -> tuple[str, str] | None:
    """Return (key path, type name) of the first value that cannot be stored, or None if all can.

    Each container is looked into once, so shared and self-referencing values take linear time."""
    stack = [(path, value)]
    seen: set[int] = set()
    while stack:
        where, item = stack.pop()
        kind = type(item)
        if kind in CONTAINER_TYPES:
            if id(item) in seen:
                continue
            seen.add(id(item))
        if not supported(kind):
            return where, f"{kind.__module__}.{kind.__qualname__}"
        if _name(kind) in _WITH_TZINFO and not _tz_supported(item.tzinfo):
            tz = type(item.tzinfo)
            return where, f"{kind.__name__} with tzinfo {tz.__module__}.{tz.__qualname__}"
        if kind in CONTAINER_TYPES:
            stack.extend((where + suffix, child) for suffix, child in reversed(list(_children(item))))
    return None


def nesting(value: Any, path: str) -> tuple[str, int | None]:
    """Where a value is nested deepest, as (key path, depth); depth None means the container at that path
    contains itself (a cycle). Iterative, so any depth is measured, and linear: each container is entered once."""
    deepest: tuple[str, int | None] = (path, 0)
    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[str, Any, int, bool]] = [(path, value, 1, False)]
    while stack:
        where, item, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            done.add(id(item))
        elif type(item) in CONTAINER_TYPES and id(item) not in done:
            if id(item) in on_path:
                return where, None
            if depth > (deepest[1] or 0):
                deepest = (where, depth)
            on_path.add(id(item))
            stack.append((where, item, depth, True))
            stack.extend((where + suffix, child, depth + 1, False) for suffix, child in reversed(list(_children(item))))
    return deepest


def unsupported_error(key: Any, value: Any, cause: BaseException | None = None) -> UnsupportedValueError:
    """Build the error for ``data[key] = value``, naming the path and type of the offending part."""
    found = find_unsupported(value, f"[{key!r}]") or find_unsupported(key, f"the key {key!r}")
    if found is None:
        where, depth = nesting(value, f"[{key!r}]")
        if depth is None:
            return UnsupportedValueError(
                f"cannot store the value at [{key!r}]: it contains itself at {where} (a reference cycle); maps "
                "are stored as trees, so break the cycle first",
                path=where,
            )
        if isinstance(cause, RecursionError) or "recursion" in str(cause):
            return UnsupportedValueError(
                f"cannot store the value at [{key!r}]: it is nested {depth} levels deep, deeper than the encoder "
                "can follow; flatten it",
                path=f"[{key!r}]",
            )
        detail = f"{type(cause).__name__}: {cause}" if cause else "it could not be encoded"
        return UnsupportedValueError(f"cannot store the value at [{key!r}]: {detail}", path=f"[{key!r}]")
    path, type_name = found
    return UnsupportedValueError(
        f"cannot store the value at {path}: type {type_name} is not supported. Supported: {SUPPORTED_TEXT}. "
        "Convert it first (for example to a str, dict or tuple).",
        path=path,
        type_name=type_name,
    )
