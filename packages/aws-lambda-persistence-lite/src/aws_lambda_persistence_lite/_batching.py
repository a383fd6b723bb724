"""``batch()`` blocks: what a block has done so far, as the map's code inside it sees it, and its steps made again
on a fresher state (a refresh inside the block, and the commit at its exit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._fold import is_number
from ._records import CLEAR, DEL, SET, Op

if TYPE_CHECKING:
    from ._codec import Codec
    from ._committing import Plan
    from ._replica import Replica

#: Values that cannot be edited in place: a batch hands them out as they are.
_IMMUTABLE = frozenset({int, float, str, bytes, bool, type(None)})


class Batch:
    """What a ``batch()`` block has done so far: its own copy of the map, and its steps in order (fixed ops of
    blind changes, or plans of changes that read the map). ``copies``: the stored values the block read, each
    decoded afresh (its private copy), so that editing one in place is the block's change: committed at its exit,
    discarded when it raises."""

    __slots__ = ("copies", "data", "reads", "steps")

    def __init__(self, data: dict[Any, Any]) -> None:
        self.data = data
        self.steps: list[list[Op] | Plan] = []
        self.reads = False
        self.copies: dict[Any, Any] = {}

    def get(self, key: Any, replica: Replica) -> Any:
        """The block's value at ``key``: a stored value is decoded afresh when the block first reads it."""
        value = self.data[key]
        view = replica.view
        if type(value) in _IMMUTABLE or key in self.copies or value is not view.values.get(key, self):
            return value  # (a scalar, a copy handed out already, or what the block itself set)
        self.data[key] = self.copies[key] = copy = replica.codec.decode_entry(view.raw[key])[1]
        return copy

    def held(self) -> list[tuple[Any, Any]]:
        """The copies the block read that it still holds (edited in place or not)."""
        return [(key, copy) for key, copy in self.copies.items() if key in self.data and self.data[key] is copy]

    def rebase(self, values: dict[Any, Any], codec: Codec) -> None:
        """Take ``values`` (a fresh state) as the block's copy, with the block's changes so far on top."""
        fresh = dict(values)
        replay(self.steps, fresh, codec)
        self.data = fresh


def replay(steps: list[list[Op] | Plan], d: dict[Any, Any], codec: Codec) -> list[Op]:
    """A batch's steps again on ``d`` (changing it as they do): their ops."""
    ops: list[Op] = []
    for step in steps:
        if isinstance(step, list):
            ops += step
            for op in step:
                _apply_local(d, op, codec)
        else:
            more, _ = step(d)
            ops += more
    return ops


def _apply_local(d: dict[Any, Any], op: Op, codec: Codec) -> None:
    if op.kind == CLEAR:
        d.clear()
        return
    key, value = codec.decode_entry(op.entry)
    if op.kind == SET:
        d[key] = value
    elif op.kind == DEL:
        d.pop(key, None)
    elif is_number(d.get(key, 0)):
        d[key] = d.get(key, 0) + value
