"""Whole stored maps, for ``admin`` (and so the command line): read a map's head item, and replace a map by
another in one step (``migrate``), deleting the segments of the map it replaces.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._dynamodb import Conflict, Table, TableMissing
from ._head import (
    EPOCH,
    FMT,
    GARBAGE,
    IDS,
    ROOM,
    VER,
    Head,
    build,
    parse,
)
from ._limits import TRANSACT_BUDGET, TRANSACT_MAX_ACTIONS
from ._meter import Usage, item_size
from ._records import (
    CLEAR,
    RUN,
    Op,
    encode_record,
    encode_run,
)
from ._room import LARGE_RECORD, RECORD_OVERHEAD, charge
from ._state import State, segment_key

if TYPE_CHECKING:
    from ._codec import Codec
    from ._meter import Item


def is_segment_key(hash_key: str) -> bool:
    """Whether ``hash_key`` is a segment shard's (``segment_key``): such items are parts of a map, not maps."""
    return "#alp#" in hash_key


def stored_item(client: Any, settings: Settings, usage: Usage) -> Item | None:
    """The map's head item (or 1.0.0 item) as stored, counted in ``usage``; None when nothing is stored (or the
    table does not exist)."""
    try:
        return Table(client, settings).get(usage, settings.table_key)
    except TableMissing:
        return None


def replace_map(client: Any, settings: Settings, codec: Codec, old: Head | None, entries: list[bytes]) -> Head | None:
    """Replace the stored map whole by one written with ``codec`` that holds ``entries`` (entries encoded by
    ``codec``, in insertion order), if the map is still as it was read: at ``old``'s version and epoch, or (None)
    a 1.0.0 item. Returns the new head, or None when the map changed meanwhile (nothing was written).

    This is how a map moves to another codec (a map holds entries of one codec: appending cannot do it). The new
    head continues the old sequence: its one record, number ``old.version + 1``, clears the map and sets every
    entry, so a container that folded the old map catches up on it like on any change. The record sits in the
    head's log, or (too large for it) is a run of its own put in the same transaction; a run too large for one
    transaction is put first and deleted again if the head is not replaced (a crash in between leaves it
    unreferenced). The old segments are deleted once the head no longer lists them (a reader that was reading
    them finds one missing and re-reads the head); the old head's ``alp_garbage`` claims are carried over."""
    from ._records import SET

    writer = State(Table(client, settings), settings, codec)
    table, usage = writer.table, writer.last_commit
    seq, epoch = (old.version + 1, old.epoch + 1) if old is not None else (1, 0)
    rid = os.urandom(8)
    record = encode_record(rid, [Op(CLEAR), *(Op(SET, entry) for entry in entries)])
    large = len(record) + RECORD_OVERHEAD > LARGE_RECORD
    run = writer.segment(RUN, encode_run([(seq, record)], seq), 0, seq, seq) if large else None
    item = build(
        settings, codec.name, version=seq, epoch=epoch, log=[] if run else [record], table=[run[0]] if run else []
    )
    if run is not None:  # (a record in the log has its id in its first bytes)
        item[IDS] = {"L": [{"B": rid}]}
    if run is None:
        item[ROOM] = {"N": str(int(item[ROOM]["N"]) - charge(record))}
    if old is not None and old.garbage:  # claims of large writes in steps: kept for a flush to collect when stale
        item[GARBAGE] = {"SS": sorted(old.garbage)}
        item[ROOM] = {"N": str(int(item[ROOM]["N"]) - item_size({GARBAGE: item[GARBAGE]}))}
    put: dict[str, Any] = {"TableName": settings.table_name, "Item": item}
    if old is None:
        put["ConditionExpression"] = "attribute_exists(#k) AND attribute_not_exists(#fmt)"
        put["ExpressionAttributeNames"] = {"#k": settings.key_field_name, "#fmt": FMT}
    else:
        put["ConditionExpression"] = "#ver = :v AND #ep = :e"
        put["ExpressionAttributeNames"] = {"#ver": VER, "#ep": EPOCH}
        put["ExpressionAttributeValues"] = {":v": {"N": str(old.version)}, ":e": {"N": str(old.epoch)}}
    puts = [run] if run else []
    shards = writer.items(puts)
    try:
        if not shards:
            table.call(usage, "put_item", **put)
        elif len(shards) < TRANSACT_MAX_ACTIONS and sum(map(item_size, [*shards, item])) <= TRANSACT_BUDGET:
            table.transact(usage, [*writer.puts(puts), {"Put": put}], rid.hex())
        else:
            table.batch_write(usage, puts=shards)
            try:
                table.call(usage, "put_item", **put)
            except BaseException:
                keys = [s[settings.key_field_name]["S"] for s in shards]
                try:
                    table.batch_write(usage, deletes=keys)
                except Exception:  # the error that matters is the head's; the run is unreferenced either way
                    table.log.warning("map %r: %d unreferenced items were not deleted", settings.table_key, len(keys))
                raise
    except Conflict:
        return None
    if old is not None:
        _delete_segments(table, usage, settings, old)
    return parse(item, settings)


def _delete_segments(table: Table, usage: Usage, settings: Settings, old: Head) -> None:
    """Delete every segment of a replaced map (``old`` was folded: its manifest's segments are known), best effort:
    nothing refers to them any more."""
    segments = {s.sid: s for s in (*old.listed, *old.table)}.values()  # (a folded head: its manifest's too)
    stale = [segment_key(settings.table_key, s.sid, i) for s in segments for i in range(s.shards)]
    try:
        table.batch_write(usage, deletes=stale)
    except Exception as exc:
        table.log.warning(
            "map %r was replaced, but %d items of its old segments were not deleted (%s); nothing refers to "
            "them any more",
            settings.table_key,
            len(stale),
            exc,
        )
