"""Checks of values against the value model (``_model``): which values a map may hold, how deep, and where a bad
one sits.

A value round-trips through a cold load with equal value *and* the same type, so only exact types are
allowed (a subclass such as ``OrderedDict`` or an ``IntEnum`` would come back as its base type).
The walks here are iterative and linear in the value's size (a path is spelled out only for the part reported),
because they also run on values that a caller nested 200,000 levels deep and on every entry a reader must check.
"""

from __future__ import annotations

import reprlib
import uuid
from typing import TYPE_CHECKING, Any

from ._errors import CorruptDataError, UnsupportedValueError
from ._model import BY_TYPE, CONTAINER_TYPES, KINDS, SUPPORTED_TEXT, ZONE_CLASSES

if TYPE_CHECKING:
    from collections.abc import Iterator

    #: Where a part of a value sits, as a chain back to the top: (parent step, how to spell this step).
    Step = tuple["Step | None", str, Any]

#: The deepest a value may nest containers (``[[1]]`` is 2 levels). Every reader refuses stored values nested
#: deeper, before building them (hashing a tuple key recurses once per level in C, and so does the full codec's
#: decoding of extension types: deep enough, either overflows the C stack), and every writer refuses deeper values,
#: so that whatever is written reads back. The full codec allows fewer levels of tuples, sets and frozensets
#: (``_msgpack.MAX_EXTENSION_NESTING``); the lite codec's pickler gives up earlier on Python 3.10-3.12 (about 500
#: levels on 3.10 and 3.11, 750 on 3.12: its recursion limit).
MAX_NESTING = 1000


def supported(kind: type) -> bool:
    """Whether values of exactly this type can be stored (subclasses cannot: they would come back as the base)."""
    return kind in BY_TYPE


def label(value: Any) -> str:
    """``repr(value)`` for a message: at most about 80 characters, and never an error (a key nested 100,000
    levels deep has no repr: repr recurses)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    short.maxlevel = 2
    try:
        return short.repr(value)
    except Exception:  # RecursionError, or a broken object from damaged data
        return f"<{type(value).__name__}>"


def _children(value: Any) -> Iterator[tuple[str, Any, Any]]:
    """(how its path is spelled, the detail it needs, the child) for each part of a container, keys first."""
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            yield " (a key of the dict)", None, k
            yield "[{}]", k, v
    elif kind in (list, tuple):
        for i, v in enumerate(value):
            yield "[{}]", i, v
    elif kind in (set, frozenset):
        for v in value:
            yield f" (an element {{}} of the {kind.__name__})", v, v


def path_of(step: Step | None) -> str:
    """Spell out a chain of steps, top first: ``['k'][2] (a key of the dict)``; a path over 20 steps keeps its first
    and last ones, so that an error about a value nested 200,000 levels deep stays readable. Linear in the depth."""
    steps: list[tuple[str, Any]] = []
    while step is not None:
        step, template, detail = step
        steps.append((template, detail))
    steps.reverse()
    if len(steps) > 20:
        steps[10:-5] = [(f"...({len(steps) - 15} more)...", None)]
    return "".join(t.format(d if type(d) is int else label(d)) if "{}" in t else t for t, d in steps)


#: Types whose every instance is storable: all but those holding a tzinfo, and UUID (see ``_outside``).
_ALWAYS: frozenset[type] = frozenset(k.type for k in KINDS if not k.zoned and not k.container) - {uuid.UUID}


def _outside(item: Any) -> str | None:
    """Why ``item`` itself (not its parts) cannot be stored, as a type name; None when it can."""
    kind = type(item)
    found = BY_TYPE.get(kind)
    if found is None:
        return f"{kind.__module__}.{kind.__qualname__}"
    if found.zoned:
        tz = type(item.tzinfo)
        if item.tzinfo is not None and (tz.__module__, tz.__qualname__) not in ZONE_CLASSES:
            return f"{kind.__name__} with tzinfo {tz.__module__}.{tz.__qualname__}"
    elif kind is uuid.UUID:  # a stored pickle can set any ``int`` (UUID.__setstate__ does not check)
        number = getattr(item, "int", None)
        if type(number) is not int or not 0 <= number < 1 << 128:
            return f"uuid.UUID with an int of type {type(number).__name__}"
    return None


def _parts(value: Any) -> Any:
    return (*value, *value.values()) if type(value) is dict else value


def _path_to(value: Any, found: Any, path: str, inside: bool = False) -> str:
    """The path from ``value`` to the first place that holds ``found`` (``inside``: not ``value`` itself). Only errors
    need a path: the walks themselves spell none out, which keeps them linear and quick."""
    stack: list[tuple[Any, Step | None]] = [(value, None)]
    seen: set[int] = set()
    while stack:
        item, step = stack.pop()
        if item is found and (step is not None or not inside):
            return path + path_of(step)
        if type(item) in CONTAINER_TYPES and id(item) not in seen:
            seen.add(id(item))
            parts = [(child, (step, template, detail)) for template, detail, child in _children(item)]
            stack.extend(reversed(parts))
    return path


def find_unsupported(value: Any, path: str) -> tuple[str, str] | None:
    """Return (key path, type name) of the first value that cannot be stored, or None if all can.

    Each container is looked into once, so shared and self-referencing values take linear time."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _ALWAYS:
            continue
        if kind in CONTAINER_TYPES:
            if id(item) not in seen:
                seen.add(id(item))
                parts = _parts(item)
                stack.extend(parts[::-1] if type(parts) in (list, tuple) else parts)  # first part first
        else:
            found = _outside(item)
            if found is not None:
                return _path_to(value, item, path), found
    return None


def check_decoded(key: Any, value: Any) -> None:
    """Refuse (CorruptDataError) a decoded entry holding anything outside the value model: the decoders build only
    its types, except where stored bytes can name more (a pickle: a class as a value, a tzinfo on its own, a UUID
    whose ``int`` is not one; msgpack: its own Timestamp extension). Linear in the entry's size."""
    found, where = find_unsupported(value, ""), "["
    if found is None:
        found, where = find_unsupported(key, ""), "the key "
    if found is not None:
        where = f"[{label(key)}]" if where == "[" else f"the key {label(key)}"
        raise CorruptDataError(f"stored map holds a value outside the supported types at {where}{found[0]}: {found[1]}")


def nesting(value: Any, path: str, counted: frozenset[type] = CONTAINER_TYPES) -> tuple[str, int | None]:
    """Where a value is nested deepest, as (key path, depth), counting the levels of the ``counted`` container types
    (a shared container counts at its deepest place); depth None means the container at that path contains itself
    (a cycle). Iterative, so any depth is measured, and linear: each container is measured once."""
    heights: dict[int, int] = {}  # container id -> counted levels from it down, itself included
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)] if type(value) in CONTAINER_TYPES else []
    while stack:
        item, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            below = [heights[id(c)] for c in _parts(item) if type(c) in CONTAINER_TYPES]
            heights[id(item)] = (type(item) in counted) + max(below, default=0)
        elif id(item) not in heights:
            if id(item) in on_path:  # where it refers to itself
                return _path_to(item, item, _path_to(value, item, path), inside=True), None
            on_path.add(id(item))
            stack.append((item, True))
            stack.extend([(c, False) for c in _parts(item) if type(c) in CONTAINER_TYPES])
    # Down from the top along the deepest parts, spelling out the way.
    step: Step | None = None
    item = value
    while heights.get(id(item), 0) > (type(item) in counted):
        needed = heights[id(item)] - (type(item) in counted)
        template, detail, item = next(part for part in _children(item) if heights.get(id(part[2]), 0) == needed)
        step = (step, template, detail)
    return path + path_of(step), heights.get(id(value), 0)


def too_deep(key: Any, value: Any, limit: int, counted: frozenset[type] = CONTAINER_TYPES) -> UnsupportedValueError:
    """The error for a value nested beyond what a codec's readers accept: its depth, where, and the limit."""
    at = f"[{label(key)}]"
    where, depth = nesting(value, at, counted)
    if depth is None:
        return unsupported_error(key, value)
    key_where, key_depth = nesting(key, f"the key {label(key)}", counted)
    if (key_depth or 0) > depth:
        where, depth = key_where, key_depth or 0
    kinds = ", ".join(sorted(kind.__name__ for kind in counted))
    what = "it is nested" if counted == CONTAINER_TYPES else f"it nests {kinds}"
    return UnsupportedValueError(
        f"cannot store the value at {at}: {what} {depth} levels deep (deepest at {where}), more than the {limit} "
        "levels that can be read back; flatten it",
        path=where,
    )


def unsupported_error(key: Any, value: Any, cause: BaseException | None = None) -> UnsupportedValueError:
    """Build the error for ``data[key] = value``, naming the path and type of the offending part. Linear in the
    size of the value, however deep it is."""
    at = f"[{label(key)}]"
    found = find_unsupported(value, at) or find_unsupported(key, f"the key {label(key)}")
    if found is None:
        where, depth = nesting(value, at)
        if depth is None:
            return UnsupportedValueError(
                f"cannot store the value at {at}: it contains itself at {where} (a reference cycle); maps "
                "are stored as trees, so break the cycle first",
                path=where,
            )
        if isinstance(cause, RecursionError) or "recursion" in str(cause):
            return UnsupportedValueError(
                f"cannot store the value at {at}: it is nested {depth} levels deep, deeper than the encoder "
                f"can follow (about {MAX_NESTING} levels; fewer in the lite package on Python 3.10-3.12); flatten it",
                path=at,
            )
        detail = f"{type(cause).__name__}: {cause}" if cause else "it could not be encoded"
        return UnsupportedValueError(f"cannot store the value at {at}: {detail}", path=at)
    path, type_name = found
    return UnsupportedValueError(
        f"cannot store the value at {path}: type {type_name} is not supported. Supported: {SUPPORTED_TEXT}. "
        "Convert it first (for example to a str, dict or tuple).",
        path=path,
        type_name=type_name,
    )
