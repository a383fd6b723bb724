"""Format 3's first write (FORMAT.md, "Commits", 1): the head created with the map's first record, in its log or
(a record too large for it) as the map's first partitions, written with the head in one transaction. It also
replaces a 1.0.0 item, whose whole map the record then holds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._dynamodb import Conflict, TableMissing, outcome_unknown
from ._errors import PersistenceError
from ._head import FMT, IDS, ROOM, build, parse
from ._maintenance import Maintenance
from ._meter import Usage, item_size, write_units
from ._reading import Reader
from ._room import charge, listing

if TYPE_CHECKING:
    from ._meter import Item
    from ._records import Segment
    from ._state import State


class FirstWriter:
    """The write that creates a map's head."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.reader = Reader(state)

    def write(
        self, usage: Usage, record: bytes, rid: bytes, own: Any, *, large: bool, first_only: bool
    ) -> dict[bytes, list[Any]] | None:
        """Create the head with the first record: in its log, or (a large record) as the map's first partitions,
        written with the head in one transaction. This also replaces a 1.0.0 item, whose whole map the record then
        holds. None when the caller should append instead: another container created a head first, or the
        partitions do not fit one transaction (an empty head was created; the large write puts them in steps)."""
        state = self.state
        view, outcome, parts = Maintenance(state).bulk(record, 1, own) if large else (None, [], [])
        if view is not None and not state.fits_one_transaction(parts):
            if first_only:  # (a 1.0.0 item is under 400 KB: its map always fits)
                raise PersistenceError(f"map {state.settings.table_key!r}: too large to migrate from 1.0.0")
            view, parts, record = None, [], b""
        log, (listed, table) = ([record] if record and view is None else []), listing(parts)
        item = build(state.settings, state.codec.name, version=1 if record else 0, epoch=0, log=log, table=listed)
        if record and not log:  # (a record in the log has its id in its first bytes)
            item[IDS] = {"L": [{"B": rid}]}
        if log:
            item[ROOM] = {"N": str(int(item[ROOM]["N"]) - charge(record))}
        condition = {"ConditionExpression": "attribute_not_exists(#fmt)", "ExpressionAttributeNames": {"#fmt": FMT}}
        before = usage.snapshot()
        try:
            try:
                self._create_head(usage, item, condition, parts)
            except TableMissing:  # the first write ever: create the table (not counted), then write again
                usage.restore(before)
                state.table.create()
                self._create_head(usage, item, condition, parts)
        except Conflict as conflict:
            # Another container created the head first (append instead), or its transaction held the item
            # (TransactionConflict: nothing was written, so try again).
            found = conflict.item if conflict.item and FMT in conflict.item else self.reader.get_head(usage)
            if found is None or FMT not in found:
                return None
            current, outcomes = self.reader.follow(parse(found, state.settings), usage, cold=True)
            return outcomes if rid in current.ids else None
        except Exception as exc:  # outcome unknown: a head holding the record's id means it was written
            if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                raise
            stored = self.reader.confirm(usage)
            if stored is None:
                raise
            current, outcomes = self.reader.follow(stored, usage, cold=True)
            return outcomes if rid in current.ids else None
        state.reset(parse(item, state.settings)._replace(table=tuple(table)))
        if not record:
            return None
        if view is not None:
            state.view = view
            return {rid: outcome}
        state.pending[1] = record
        return {rid: state.view.apply(1, record, None, own[1] if own else None)}

    def _create_head(
        self, usage: Usage, item: Item, condition: dict[str, Any], puts: list[tuple[Segment, bytes]]
    ) -> None:
        state = self.state
        if not puts:
            usage.items += 1
            usage.bytes += item_size(item)
            usage.capacity_units += write_units(item_size(item), False)
            state.table.call(
                usage,
                "put_item",
                TableName=state.settings.table_name,
                Item=item,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
            return
        put = {"Put": {"TableName": state.settings.table_name, "Item": item, **condition}}
        put["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        state.bill(usage, puts, [], parse(item, state.settings))
        state.table.transact(usage, [*state.puts(puts), put], os.urandom(8).hex())
