"""The commands that describe what is stored, changing nothing: ``list``, ``info`` and ``policy``."""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

from .. import FORMAT_VERSION, Settings, StoredDataError, Usage, admin, policy
from ..admin import MapInfo, SegmentInfo
from ._context import CliError, Context, library_message, no_map
from ._output import count, first_line, human


def run_list(ctx: Context) -> int:
    s = ctx.settings()
    found = stored_maps(ctx, s)
    if getattr(ctx.args, "json", False):
        ctx.out.write(json.dumps([_row(info) for info in found], indent=2, ensure_ascii=False) + "\n")
        return 0
    if not found:
        ctx.note(f"no maps in table {s.table_name!r}")
        return 0
    table = [["KEY", "VERSION", "FORMAT", "CODEC", "STORAGE", "SIZE"]]
    for info in found:
        size = _row(info)["size"]
        numbers = ["?" if number is None else str(number) for number in (info.version, info.format)]
        table.append([info.key, *numbers, info.codec, _storage(info), "-" if size is None else human(size)])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        ctx.out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n")
    return 0


def stored_maps(ctx: Context, settings: Settings) -> list[MapInfo]:
    """Every map in the table of ``settings`` (``admin.list_maps``), by key."""
    with ctx.transfer(f"scanning {settings.table_name}"):
        return sorted(admin.list_maps(settings), key=lambda info: info.key)


def _row(info: MapInfo) -> dict[str, Any]:
    """One map as ``list --json`` shows it. ``segments``: those stored (``shards``: their items); ``size``: bytes
    stored (head item and segment blobs; None for a 1.0.0 item, whose value the Scan does not fetch); ``error``: why
    the head cannot be read by this version."""
    readable = info.format == FORMAT_VERSION and info.error is None
    return {
        "key": info.key,
        "version": info.version,
        "format": info.format,
        "codec": info.codec,
        "epoch": info.epoch,
        "log": info.log_records,
        "segments": _stored(info) if readable else None,
        "shards": sum(segment.shards for segment in info.segments) if readable else None,
        "size": info.stored_bytes if readable else None,
        "error": None if info.error is None else first_line(info.error, "unreadable"),
    }


def _storage(info: MapInfo) -> str:
    if info.error is not None:
        return "unreadable"
    if info.format == 1:
        return "inline"
    return count(_stored(info), "segment") if _stored(info) else "head"


def _stored(info: MapInfo) -> int:
    """Segments stored in items (the table may also list empty partitions, which are not stored)."""
    return sum(1 for segment in info.segments if segment.shards)


def run_policy(ctx: Context) -> int:
    document = policy(ctx.settings(ctx.args.key), own_rows_only=not ctx.args.all_rows)
    ctx.out.write(json.dumps(document, indent=2) + "\n")
    return 0


def run_info(ctx: Context) -> int:
    """What the head says (``admin.describe``), then the map read whole, for its entries, its segments (a manifest's
    too) and what the read cost. A map in a codec this package lacks still shows its head."""
    s = ctx.settings(ctx.args.key)
    usage = Usage()
    info = admin.describe(s, usage=usage)
    if info is None:
        raise CliError(no_map(ctx, s))
    if info.error is not None:
        raise CliError(first_line(info.error, "unreadable"))
    entries: Any
    try:
        with ctx.transfer(f"reading {s.table_key}"):
            data = ctx.read(s)
    except StoredDataError as exc:  # the head's facts still show; the entries need a codec this package lacks
        entries = f"unreadable here ({library_message(exc, ctx)})"
    else:
        if data is None:
            raise CliError(no_map(ctx, s))
        info, entries, usage = admin.describe(data) or info, len(data), data.last_load
    if ctx.args.json:
        facts = _facts(info)
        facts.update(
            entries=entries,
            load_calls=usage.calls,
            load_items=usage.items,
            load_read_units=usage.capacity_units,
            load_reported_units=usage.reported_units,
            load_reported_by=_reporter(),
        )
        ctx.out.write(json.dumps(facts, indent=2) + "\n")
        return 0
    lines = [("table", info.table), ("key", info.key), *_head_lines(info)]
    decoded = info.decoded_bytes
    lines += [("decoded", "-" if decoded is None else human(decoded)), ("entries", str(entries))]
    cost = f"{count(usage.calls, 'call')}, {count(usage.items, 'item')}, {count(usage.capacity_units, 'read unit')}"
    reported = "" if usage.reported_units is None else f" ({_reporter()} reported {usage.reported_units:g})"
    lines.append(("last load", cost + reported))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        ctx.out.write(f"{label + ':':<{width + 1}} {value}\n")
    return 0


def _reporter() -> str:
    """Who returned the ConsumedCapacity figure shown beside the library's: DynamoDB, or the endpoint by its URL.
    moto answers every GetItem with a fixed 0.5 whatever the item's size, which is no figure of DynamoDB's; DynamoDB
    Local computes its figures as DynamoDB does, so it is named, not left out."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    host = (urllib.parse.urlsplit(endpoint).hostname or "") if endpoint else "dynamodb.amazonaws.com"
    return "DynamoDB" if host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws")) else str(endpoint)


def _facts(info: MapInfo) -> dict[str, Any]:
    """``info --json``: the description's fields (``storage`` as ``list`` shows it)."""
    facts = info._asdict()
    del facts["error"]
    facts.update(segments=[_segment_facts(segment) for segment in info.segments], garbage=list(info.garbage))
    first = {name: facts.pop(name) for name in ("table", "key", "format", "codec", "version", "epoch")}
    return {**first, "storage": _storage(info), **facts}


def _segment_facts(segment: SegmentInfo) -> dict[str, Any]:
    return {name: value for name, value in segment._asdict().items() if value is not None}


def _head_lines(info: MapInfo) -> list[tuple[str, str]]:
    if info.format == 1:
        return [
            ("format", "1 (aws-lambda-persistence 1.0.0)"),
            ("codec", info.codec),
            ("version", "0"),
            ("storage", "inline (the whole map in the item)"),
            ("stored", human(info.stored_bytes or 0)),
        ]
    room = f"room for {human(info.log_room or 0)} more"
    log = f"{count(info.log_records or 0, 'record')}, {human(info.log_bytes or 0)} ({room})"
    stored = f"head {human(info.head_bytes or 0)}, segments {human(info.segment_bytes or 0)}"
    lines = [("format", str(info.format)), ("codec", info.codec), ("version", f"{info.version} (epoch {info.epoch})")]
    lines += [("log", log), ("storage", _storage(info))]
    lines += [("segment", _segment_line(segment)) for segment in info.segments]
    lines.append(("stored", f"{human(info.stored_bytes or 0)} ({stored})"))
    if info.garbage:
        lines.append(("garbage", ", ".join(info.garbage)))
    return lines


def _segment_line(segment: SegmentInfo) -> str:
    where = {
        "partition": f" (depth {segment.depth}, prefix {segment.prefix}, watermark {segment.watermark})",
        "run": f" (level {segment.level}, sequence {segment.lo}-{segment.hi})",
    }.get(segment.kind, "")
    size = f"{human(segment.stored_bytes)} ({human(segment.decoded_bytes)} decoded)"
    if not segment.shards:
        return f"{segment.kind} {segment.sid}{where}: " + (
            "in the head, " + size if segment.stored_bytes else "empty, not stored"
        )
    return f"{segment.kind} {segment.sid}{where}: {count(segment.shards, 'item')}, {size}"
