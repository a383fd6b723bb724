"""Whole stored maps, for tools: describe one, read it with its own codec, rewrite it in another, list a table's.

The command line is built on this module alone, and scripts that do what it does (a migration job, a report of
sizes) use the same calls; functions keep using ``PersistentMap``. Not imported by the package itself: a function
that never needs it never loads it.

    from aws_lambda_persistence_lite import admin   # (the full package: aws_lambda_persistence.admin)

    info = admin.describe("my-function")       # one GetItem: format, codec, version, log, segments, sizes
    data = admin.read("my-function")           # the stored map, in its own codec (None: nothing is stored)
    admin.rewrite(data, "pickle5+zlib")        # the same entries in another codec; None if it changed meanwhile
    keys = [info.key for info in admin.list_maps()]   # a Scan that skips every value and segment item

A ``str`` target is a map's key with the other settings as a function would resolve them (``PERSISTENCE_*``
wins); a :class:`Settings` names the map exactly. Errors are the library's (``StoredDataError`` for a map that
cannot be read), except that a Scan's are botocore's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ._client import default_client
from ._codec import codec_for, lite_default
from ._config import Settings
from ._errors import StoredDataError
from ._head import (
    CODEC,
    EPOCH,
    FMT,
    FORMAT,
    GARBAGE,
    IDS,
    LEGACY_CODEC,
    LEGACY_TRAP,
    LOG,
    ROOM,
    TABLE,
    TABLE_DIGEST,
    VER,
    Head,
    UnreadableCodec,
    parse,
    segment_shards,
)
from ._map import PersistentMap, attach
from ._meter import Usage, item_size
from ._records import MANIFEST, PARTITION, RUN, Segment
from ._stored import is_segment_key, replace_map, stored_item

__all__ = ["MapInfo", "SegmentInfo", "default_codec", "describe", "list_maps", "read", "rewrite", "watch"]

#: What ``list_maps`` fetches of each item: every attribute of a head but ``value`` (a 1.0.0 item's whole map).
_SCANNED = (FMT, CODEC, VER, EPOCH, LOG, ROOM, IDS, TABLE, TABLE_DIGEST, GARBAGE)
_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


class SegmentInfo(NamedTuple):
    """One segment of a map (FORMAT.md, "Segments"): a ``partition`` (the entries of one key-hash prefix), a
    ``run`` (change records not yet merged into the partitions) or a ``manifest`` (the segment list of a large map).
    The fields of the other kinds are None."""

    kind: str
    sid: str
    #: Items it is stored in; 0 for a partition held in the head (``stored_bytes`` > 0) or empty.
    shards: int
    stored_bytes: int
    decoded_bytes: int
    depth: int | None = None
    prefix: int | None = None
    watermark: int | None = None
    level: int | None = None
    lo: int | None = None
    hi: int | None = None


class MapInfo(NamedTuple):
    """What a stored map is, from its head item (sizes in bytes). None where the head does not say: a 1.0.0 item
    (``format`` 1, codec ``pickle-1.0.0``) has no log, and a head this package cannot read (``error`` says why:
    damaged, or in another format) gives only the numbers it holds. A head of a codec this package lacks is
    described all the same: its entries are what cannot be read."""

    table: str
    key: str
    format: int | None
    codec: str
    version: int | None
    epoch: int | None = None
    log_records: int | None = None
    log_bytes: int | None = None
    #: Bytes the log may still grow by before a flush moves it into segments.
    log_room: int | None = None
    segments: tuple[SegmentInfo, ...] = ()
    #: The head item (None: a 1.0.0 item that ``list_maps`` did not fetch).
    head_bytes: int | None = None
    segment_bytes: int | None = None
    stored_bytes: int | None = None
    #: Entries' bytes before compression; None where the value was not fetched or the head was not read.
    decoded_bytes: int | None = None
    #: Segments written by large writes in steps, kept until a flush collects those left unreferenced.
    garbage: tuple[str, ...] = ()
    error: str | None = None


def default_codec(map_class: type[PersistentMap[Any, Any]] = PersistentMap) -> str:
    """The codec ``map_class`` writes new maps with (its ``default_codec``, else the lite package's choice for this
    interpreter): what ``rewrite`` writes when it is given none."""
    return map_class.default_codec or lite_default()


def describe(
    target: PersistentMap[Any, Any] | Settings | str, *, client: Any = None, usage: Usage | None = None
) -> MapInfo | None:
    """The stored map ``target`` names, as its head describes it; None when nothing is stored (or no table).

    A key or settings: one GetItem of the head (added to ``usage``), no segment read, so a large map's manifest
    counts as one segment. A map: what it read (reading it first if it has not), its manifest's segments listed."""
    if isinstance(target, PersistentMap):
        head, legacy, _ = _state(target)
        if head is not None:
            return _of_head(target.settings, head)
        return None if legacy is None else _of_legacy(target.settings, legacy, fetched=True)
    settings = _settings(target)
    item = stored_item(client or default_client(), settings, usage or Usage())
    return None if item is None else _of_item(settings, item, fetched=True)


def read(
    target: Settings | str, *, client: Any = None, map_class: type[PersistentMap[Any, Any]] = PersistentMap
) -> PersistentMap[Any, Any] | None:
    """The stored map ``target`` names, read whole with the codec it is stored with, as a ``map_class``; None when
    nothing is stored. Settings are used as given: no ``PERSISTENCE_TABLE_KEY`` replaces the map a listing named.
    StoredDataError when it cannot be read here (damaged, unsafe, or in a codec this process lacks)."""
    data = map_class.__new__(map_class)
    attach(data, _settings(target), client or default_client(), None)  # (``open`` would resolve the settings again)
    head, legacy, _ = _state(data)
    return None if head is None and legacy is None else data


def rewrite(data: PersistentMap[Any, Any], codec: str | None = None, *, dry_run: bool = False) -> MapInfo | None:
    """Replace the stored map ``data`` read by one holding the same entries written with ``codec`` (default: that
    of ``data``'s class), in the current format, if it is still at the head ``data`` read: this is how a map moves
    to another codec (appends keep the stored one), or how a 1.0.0 item is upgraded. Returns the new map's
    description, or None when nothing was written: another writer changed the map meanwhile (read it again), or
    nothing is stored, or ``dry_run`` (every entry is encoded, as a check that the rewrite can be done).

    The new head continues the version sequence, so containers holding the map follow it at their next read or
    write; ``data`` does too. UnsupportedValueError for an entry ``codec`` cannot hold."""
    target = codec_for(codec or default_codec(type(data)))
    head, legacy, client = _state(data)
    values = data.to_dict()  # (after the head: a refresh in between makes the condition fail, losing nothing)
    entries = [target.encode_entry(key, value) for key, value in values.items()]
    if dry_run or (head is None and legacy is None):
        return None
    new = replace_map(client, data.settings, target, head, entries)
    return None if new is None else _of_head(data.settings, new)


def list_maps(settings: Settings | None = None, *, client: Any = None) -> Iterator[MapInfo]:
    """Every map in the table of ``settings`` (default: as a function resolves them), in Scan order: one Scan
    that never fetches a value and leaves out segment items, so the maps are described as ``describe`` does by key
    (1.0.0 items without their sizes). Needs ``dynamodb:Scan``."""
    s = settings or Settings.resolve({"table_key": "*"})  # (any key: no map is opened with it)
    names = {"#k": s.key_field_name, "#b": s.value_field_name}
    names.update({f"#h{i}": attribute for i, attribute in enumerate(_SCANNED)})
    pages = (
        (client or default_client())
        .get_paginator("scan")
        .paginate(
            TableName=s.table_name,
            ProjectionExpression=", ".join(name for name in names if name != "#b"),
            FilterExpression="attribute_exists(#h0) OR attribute_exists(#b)",
            ExpressionAttributeNames=names,
        )
    )
    for page in pages:
        for item in page.get("Items", ()):
            key = item.get(s.key_field_name, {}).get("S")
            if key is not None and not is_segment_key(key):
                yield _of_item(s._replace(table_key=key), item, fetched=False)


@contextlib.contextmanager
def watch(seen: Callable[[int, int, int], None], *, client: Any = None) -> Iterator[None]:
    """Report what DynamoDB moves through ``client`` while the block runs, for progress lines: ``seen(items,
    nbytes, more)`` after a read (a GetItem or BatchGetItem: the items returned; a Scan: the items scanned) and
    before a write (the items put). ``more``: the segment items a cold load of a head just read reads next (0:
    none, or not known). What a map's own calls cost is in its ``last_load`` and ``last_commit``."""
    handler_id = f"aws-lambda-persistence-watch-{id(seen)}"

    def received(parsed: Any = None, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "")
        if not isinstance(parsed, dict):
            return
        if name == "GetItem" and parsed.get("Item"):
            seen(1, item_size(parsed["Item"]), segment_shards(parsed["Item"]))
        elif name in ("BatchGetItem", "Scan"):
            items = [*parsed.get("Items", ()), *(i for found in parsed.get("Responses", {}).values() for i in found)]
            seen(parsed.get("ScannedCount", len(items)), sum(item_size(i) for i in items), 0)

    def sending(params: Any = None, model: Any = None, **_: Any) -> None:
        if getattr(model, "name", "") not in _WRITES or not isinstance(params, dict):
            return
        items = [params["Item"]] if "Item" in params else []
        items.extend(a["Put"]["Item"] for a in params.get("TransactItems", ()) if "Put" in a)
        for requests in params.get("RequestItems", {}).values():
            items.extend(r["PutRequest"]["Item"] for r in requests if "PutRequest" in r)
        seen(len(items), sum(item_size(i) for i in items), 0)

    events = (client or default_client()).meta.events
    events.register("after-call.dynamodb", received, unique_id=handler_id + "r")
    events.register("before-parameter-build.dynamodb", sending, unique_id=handler_id + "w")
    try:
        yield
    finally:
        events.unregister("after-call.dynamodb", unique_id=handler_id + "r")
        events.unregister("before-parameter-build.dynamodb", unique_id=handler_id + "w")


# -- descriptions ---------------------------------------------------------------------------------------------


def _settings(target: Settings | str) -> Settings:
    return target if isinstance(target, Settings) else Settings.resolve({"table_key": target})


def _state(data: PersistentMap[Any, Any]) -> tuple[Head | None, dict[str, Any] | None, Any]:
    """What ``data`` last read (reading it first if it has not): its head, or its 1.0.0 item, and its client."""
    len(data)
    replica = data._replica
    return replica.head, replica.legacy, replica.table.client


def _info(settings: Settings, fmt: int | None, codec: str, version: int | None, **facts: Any) -> MapInfo:
    return MapInfo(settings.table_name, settings.table_key, fmt, codec, version, **facts)


def _of_item(settings: Settings, item: dict[str, Any], *, fetched: bool) -> MapInfo:
    """A head or 1.0.0 item; ``fetched``: with its ``value`` (a Scan leaves it out: a head's is the 1.0.0 trap)."""
    if FMT not in item:
        return _of_legacy(settings, item, fetched=fetched)
    try:
        head = parse(item if fetched else {**item, settings.value_field_name: {"B": LEGACY_TRAP}}, settings)
    except UnreadableCodec as exc:  # a sound head: its facts show (its entries need a codec this package lacks)
        head = exc.head
    except StoredDataError as exc:
        codec = item.get(CODEC, {}).get("S", "?")
        return _info(settings, _number(item, FMT), codec, _number(item, VER), error=str(exc))
    return _of_head(settings, head)


def _of_head(settings: Settings, head: Head) -> MapInfo:
    log_bytes = sum(len(record) for record in head.log)
    # (of a head read through a map, its manifest's segments; else what the head itself lists)
    manifest = head.manifest
    segments = [manifest, *head.table] if manifest is not None and manifest not in head.table else list(head.table)
    segment_bytes = sum(segment.blob_size for segment in segments)
    return _info(
        settings,
        FORMAT,
        head.codec,
        head.version,
        epoch=head.epoch,
        log_records=len(head.log),
        log_bytes=log_bytes,
        log_room=head.room,
        segments=tuple(_of_segment(segment) for segment in segments),
        head_bytes=head.stored_size,
        segment_bytes=segment_bytes,
        stored_bytes=head.stored_size + segment_bytes,
        decoded_bytes=log_bytes + sum(s.raw_size for s in segments if s.kind != MANIFEST),
        garbage=tuple(sorted(head.garbage)),
    )


def _of_legacy(settings: Settings, item: dict[str, Any], *, fetched: bool) -> MapInfo:
    """A 1.0.0 item: one item holding the pickle of the whole map (stored uncompressed)."""
    value = item.get(settings.value_field_name, {}).get("B")
    size = item_size(item) if fetched else None
    info = _info(settings, 1, LEGACY_CODEC, 0, segment_bytes=0)
    return info._replace(head_bytes=size, stored_bytes=size, decoded_bytes=None if value is None else len(value))


def _of_segment(segment: Segment) -> SegmentInfo:
    kind = {PARTITION: "partition", RUN: "run"}.get(segment.kind, "manifest")
    info = SegmentInfo(kind, segment.sid, segment.shards, segment.blob_size, segment.raw_size)
    if segment.kind == PARTITION:
        return info._replace(depth=segment.depth, prefix=segment.prefix, watermark=segment.watermark)
    if segment.kind == RUN:
        return info._replace(level=segment.level, lo=segment.lo, hi=segment.hi)
    return info


def _number(item: dict[str, Any], name: str) -> int | None:
    try:
        return int(item[name]["N"])
    except (KeyError, TypeError, ValueError):
        return None
