"""1.0.0 items (FORMAT.md, "Format 1 (1.0.0) items"): the pickled dict of a 1.0.0 item, read through the
allow-list, is the map until its first write, which replaces the item by a head holding every key of that dict
and the write's change (FORMAT.md, "Commits", 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import StoredDataError
from ._head import bad
from ._pickle import loads_restricted
from ._records import SET, Op

if TYPE_CHECKING:
    from ._meter import Usage
    from ._replica import Replica


def adopt(replica: Replica) -> None:
    """A 1.0.0 item (the replica read one: ``replica.legacy``): its pickled dict, read through the allow-list, is
    the map until the first write."""
    item = replica.legacy
    if item is None:
        return
    s = replica.settings
    value = item.get(s.value_field_name)
    if value is None or "B" not in value:
        raise bad(s, f"attribute {s.value_field_name!r} is missing or not Binary")
    try:
        data = loads_restricted(bytes(value["B"]))
    except StoredDataError as exc:
        raise bad(s, str(exc), type(exc)) from exc
    except Exception as exc:  # a 1.0.0 pickle that is damaged
        raise bad(s, f"its 1.0.0 pickle cannot be decoded ({exc})") from exc
    if type(data) is not dict:
        raise bad(s, f"a 1.0.0 item must hold a pickled dict, not {type(data).__name__}")
    view = replica.view
    for index, (key, value) in enumerate(data.items()):
        view.values[key] = value
        view.raw[key] = b""  # (no entry stored in this format yet: the first write stores every key)
        view.positions[key] = (0, index)


def upgrade(replica: Replica, ops: list[Op], known: list[tuple[Any, Any]] | None, usage: Usage | None) -> list[Any]:
    """Commit ``ops`` as the first write over the adopted 1.0.0 item: one record that sets every key of its map,
    then ``ops``. Conflict when another container upgraded the item first. Returns the outcomes of ``ops``."""
    items = list(replica.view.values.items())
    first = [Op(SET, replica.entry(k, v)) for k, v in items] + ops
    outcomes = replica.commit(first, known=None if known is None else [*items, *known], usage=usage, first_only=True)
    return outcomes[len(items) :]  # (the caller's ops' outcomes)
