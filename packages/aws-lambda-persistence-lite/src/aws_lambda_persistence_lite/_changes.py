"""The changes the dict interface makes (FORMAT.md, "Commits" 2-3), each as what it commits: blind changes (set,
delete, update, clear, increment) as ops appended whatever other containers did meanwhile; changes that depend
on what is stored (``mutate``, ``pop``, ``popitem``, ``setdefault``) as plans, computed again on the newest state
until they land at the version they were computed on. ``_contents`` commits them, or adds them to a batch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._contents import Contents, changed
from ._fold import AddRefused, is_number
from ._records import ADD, CLEAR, DEL, SET, Op
from ._values import label

if TYPE_CHECKING:
    from ._replica import Replica

_MISSING = object()


class Changes:
    """One map's changes, as ops and plans committed through its ``Contents``."""

    def __init__(self, contents: Contents) -> None:
        self.contents = contents
        self.replica = contents.replica

    def set(self, key: Any, value: Any) -> None:
        with self.contents.lock:
            ops = [Op(SET, self.replica.entry(key, value))]
            self.contents.blind(ops, lambda d: d.__setitem__(key, value), [(key, value)])

    def delete(self, key: Any) -> None:
        with self.contents.lock:
            if key not in self.contents.view():
                raise KeyError(key)
            self.contents.blind([Op(DEL, self.replica.entry(key, None))], lambda d: d.pop(key, None))

    def update(self, other: Any, kwargs: dict[str, Any]) -> None:
        with self.contents.lock:
            items = dict(other, **kwargs)
            if items:
                ops = [Op(SET, self.replica.entry(k, v)) for k, v in items.items()]
                self.contents.blind(ops, lambda d: d.update(items), list(items.items()))

    def clear(self) -> None:
        contents, replica = self.contents, self.replica
        with contents.lock:
            if contents.commits.loaded and contents.batch is None and replica.head is None and not replica.view.values:
                return  # nothing stored, nothing to clear
            contents.blind([Op(CLEAR)], dict.clear)

    def increment(self, key: Any, delta: int | float) -> Any:
        if type(delta) not in (int, float):  # (exact types: a bool, a str or an IntEnum would add nothing or fail)
            raise TypeError(
                f"cannot increment {label(key)} by {label(delta)}: the delta must be an int or float, not "
                f"{type(delta).__name__}; convert it first (for example int(delta) or float(delta))"
            )
        contents = self.contents
        contents.commits.writable()
        with contents.lock:
            # (unread, lazily opened: the fold below refuses an addition to a value that is not a number)
            fresh = contents.commits.loaded and not contents.commits.stale
            current = contents.view().get(key, 0) if fresh or contents.batch is not None else 0
            if not is_number(current):
                raise TypeError(f"cannot increment {key!r}: it holds a {type(current).__name__}, not a number")
            ops = [Op(ADD, self.replica.entry(key, delta))]
            batch = contents.batch
            if batch is not None:
                batch.data[key] = current + delta
                batch.steps.append(ops)
                return batch.data[key]
            (outcome,) = contents.blind(ops, lambda d: None) or [None]
            if isinstance(outcome, AddRefused):
                raise TypeError(
                    f"cannot increment {key!r}: another container stored a {type(outcome.held).__name__} there"
                )
            return outcome if outcome is not None else self.replica.view.values.get(key)

    def pop(self, key: Any, default: tuple[Any, ...]) -> Any:
        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            if key not in d:
                return [], _MISSING
            return [Op(DEL, self.replica.entry(key, None))], d.pop(key)

        found = self.contents.reading(plan)
        if found is not _MISSING:
            return found
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key: Any, default: Any) -> Any:
        with self.contents.lock:
            view = self.contents.view()
            if key in view:
                return view[key]

        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            if key in d:
                return [], d[key]
            d[key] = default
            return [Op(SET, self.replica.entry(key, default))], default

        return self.contents.reading(plan)

    def popitem(self) -> tuple[Any, Any]:
        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            if not d:
                return [], None
            key, value = d.popitem()
            return [Op(DEL, self.replica.entry(key, None))], (key, value)

        found: tuple[Any, Any] | None = self.contents.reading(plan)
        if found is None:
            raise KeyError("popitem(): map is empty")
        return found

    def save(self) -> None:
        contents = self.contents
        with contents.lock:
            if contents.batch is not None:
                return  # the block's exit commits what the block changed, in-place edits included
            contents.commits.writable()
            ops, known = changed(self.replica, contents.view().items())
            if ops:
                contents.commits.commit(ops, None, known)

    def mutate(self, function: Callable[[dict[Any, Any]], Any]) -> Any:
        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            before = self.replica.view.raw if self.contents.batch is None else None
            try:
                work = copy.deepcopy(d)
            except RecursionError:
                # deepcopy recurses twice per level (~490 levels); the codecs store deeper values (MAX_NESTING) and
                # copy them within their own bounds (a value too deep for them is refused here, naming its depth).
                codec = self.replica.codec
                work = {k: codec.decode_entry(self.replica.entry(k, v))[1] for k, v in d.items()}
            result = function(work)
            return _diff(self.replica, d, work, before), result

        return self.contents.reading(plan)


def _diff(replica: Replica, old: dict[Any, Any], new: dict[Any, Any], raw: dict[Any, bytes] | None) -> list[Op]:
    """The ops that turn ``old`` into ``new`` (entries compared as encoded)."""
    ops = [Op(DEL, replica.entry(k, None)) for k in old if k not in new]
    for key, value in new.items():
        entry = replica.entry(key, value)
        stored = raw.get(key) if raw is not None and key in old else None
        if stored is None and key in old:
            stored = replica.entry(key, old[key])
        if entry != stored or key not in old:
            ops.append(Op(SET, entry))
    return ops
