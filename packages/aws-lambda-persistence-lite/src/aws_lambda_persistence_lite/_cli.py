"""The command line tool: inspect, edit, export, import and migrate maps with the library's own engine.

One implementation serves both packages: each package's ``__main__`` passes its ``PersistentMap`` class, so
the full tool reads every codec and writes new maps with msgpack+zstd, and the lite tool reads and writes what
lite can. A stored map is changed with the codec it is stored with (a map holds entries of one codec); only
``migrate`` moves maps to the tool's codec.
Settings resolve exactly as in a function (``Settings.resolve``: ``PERSISTENCE_*`` wins over the options),
and the endpoint and region come from the usual AWS variables, which ``--endpoint-url`` and ``--region`` set.
Only the standard library is used. Exit codes: 0 ok, 1 error (one line naming the problem and the fix),
2 usage (including a destructive command without ``--yes`` when there is no terminal to ask).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import logging
import os
import pprint
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from . import _tagged_json as tagged
from ._client import default_client
from ._codec import Codec, codec_for, lite_default
from ._config import Settings
from ._errors import MissingAWSIAMPermissions, PersistenceError, StoredDataError
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
from ._iam import policy
from ._map import PersistentMap
from ._meter import Usage, item_size
from ._records import MANIFEST, PARTITION, RUN, Segment
from ._stored import is_segment_key, replace_map, stored_head
from ._values import label as short_repr

#: First key of an export file; its value is the version of the file layout.
EXPORT_MARKER = "aws-lambda-persistence-export"
#: What a Scan for maps projects: every attribute of a head item but ``value`` (which holds a 1.0.0 item's map).
_HEAD_ATTRIBUTES = (FMT, CODEC, VER, EPOCH, LOG, ROOM, IDS, TABLE, TABLE_DIGEST, GARBAGE)
#: Reads of a map whose codec changed between its head and its load (a concurrent migrate) before giving up.
_OPEN_ATTEMPTS = 3
_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
_CHUNK = 1 << 20


class CliError(Exception):
    """A failure reported as one line (problem and fix) with exit code ``code``, never as a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None, *, map_class: type[PersistentMap] = PersistentMap, prog: str) -> int:
    """Run the tool with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = _parser(prog, map_class)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    ctx = _Context(map_class, args, prog, sys.stdout, sys.stderr)
    try:
        with _environment(args), _library_log(ctx):
            code: int = args.run(ctx)
            return code
    except CliError as exc:
        ctx.note(f"{prog}: error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        ctx.note(f"{prog}: interrupted")
        return 130
    except PersistenceError as exc:
        ctx.note(f"{prog}: error: {_library_message(exc, ctx)}")
        return 1
    except Exception as exc:
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise  # a bug in this tool: the traceback is what is needed
        ctx.note(f"{prog}: error: {_aws_message(exc, ctx)}")
        return 1


@contextlib.contextmanager
def _library_log(ctx: _Context) -> Iterator[None]:
    """Show the library's log (table creation, capacity warnings) as lines of this tool, for this run only."""

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            ctx.note(f"{ctx.prog}: {record.levelname.lower()}: {record.getMessage()}")

    logger = logging.getLogger("aws_lambda_persistence")
    handler, level = Handler(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- the command line ---------------------------------------------------------------------------------------------


def _default_codec(map_class: type[PersistentMap]) -> str:
    return map_class.default_codec or lite_default()


def _parser(prog: str, map_class: type[PersistentMap]) -> argparse.ArgumentParser:
    codec = _default_codec(map_class)
    package = map_class.__module__.split(".")[0]
    version = getattr(sys.modules.get(package), "__version__", "2")
    # Global options are accepted before or after the command: SUPPRESS keeps a later parser from resetting them.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("where the maps are (PERSISTENCE_* variables win, as in the library)")
    group.add_argument("--table", default=argparse.SUPPRESS, help="table name (default AWSLambdaPersistence)")
    group.add_argument("--key-field", default=argparse.SUPPRESS, help="hash key attribute (default key)")
    group.add_argument("--value-field", default=argparse.SUPPRESS, help="blob attribute (default value)")
    group.add_argument(
        "--endpoint-url", default=argparse.SUPPRESS, help="DynamoDB endpoint (sets AWS_ENDPOINT_URL_DYNAMODB)"
    )
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (sets AWS_REGION)")
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="progress line on stderr for long transfers (default: when stderr is a terminal)",
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        parents=[common],
        description=f"Inspect and manage aws-lambda-persistence maps in DynamoDB (writes with codec {codec}).",
    )
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    _add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common, codec)
    return parser


def _add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, codec: str
) -> None:

    def command(name: str, run: Callable[[_Context], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    def output(sub: argparse.ArgumentParser) -> None:
        mode = sub.add_mutually_exclusive_group()
        mode.add_argument("--json", action="store_true", help="tagged JSON, exact types (default)")
        mode.add_argument("--pretty", action="store_true", help="Python notation, for reading")

    def name(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("name", metavar="NAME", help="the entry's key (a string, unless --json-name)")
        sub.add_argument("--json-name", action="store_true", help="NAME is tagged JSON (for non-str keys: 5, ...)")

    def confirmation(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    sub = command("list", _list, "list the maps in the table (a Scan that skips the blobs; needs dynamodb:Scan)")
    sub.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    sub = command("show", _show, "print a map")
    sub.add_argument("key", metavar="KEY", help="the map's table_key (a function's name)")
    output(sub)
    sub = command("get", _get, "print one entry of a map")
    sub.add_argument("key", metavar="KEY")
    name(sub)
    output(sub)
    sub = command("set", _set, "set one entry of a map (one commit; creates the map and the table if needed)")
    sub.add_argument("key", metavar="KEY")
    name(sub)
    sub.add_argument("value", metavar="VALUE", help='tagged or plain JSON: 5, "text", {"$tuple": [1, 2]}')
    sub.add_argument("--string", action="store_true", help="store VALUE as a string, as typed")
    sub = command("delete", _delete, "delete one entry of a map (one commit)")
    sub.add_argument("key", metavar="KEY")
    name(sub)
    confirmation(sub)
    sub = command("export", _export, "write a map to a tagged JSON file (- for stdout)")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("file", metavar="FILE")
    confirmation(sub)
    sub = command("import", _import, "replace a map's content with a file written by export (one commit)")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("file", metavar="FILE", help="tagged JSON written by export, or a JSON object (- for stdin)")
    confirmation(sub)
    sub = command("migrate", _migrate, f"rewrite every 1.0.0 item and every map of another codec with codec {codec}")
    sub.add_argument("--dry-run", action="store_true", help="only list the maps migrate would rewrite (each is read)")
    confirmation(sub)
    sub = command("policy", _policy, "print the least-privilege IAM policy of the function owning a map")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("--all-rows", action="store_true", help="do not limit the policy to the map's own rows")
    sub = command("info", _info, "print a map's format, codec, version, log, segments, sizes and read cost")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("--json", action="store_true", help="print a JSON object")


@contextlib.contextmanager
def _environment(args: argparse.Namespace) -> Iterator[None]:
    """Apply --endpoint-url and --region the way a function gets them (environment), for this run only."""
    updates: dict[str, str] = {}
    if getattr(args, "endpoint_url", None):
        updates["AWS_ENDPOINT_URL_DYNAMODB"] = args.endpoint_url
    if getattr(args, "region", None):
        updates["AWS_REGION"] = updates["AWS_DEFAULT_REGION"] = args.region
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclasses.dataclass
class _Context:
    map_class: type[PersistentMap]
    args: argparse.Namespace
    prog: str
    out: TextIO
    err: TextIO
    #: A progress line is drawn and not yet ended by a newline.
    line_open: bool = False

    @property
    def client(self) -> Any:
        return default_client()

    def settings(self, key: str | None = None) -> Settings:
        """Settings as the library resolves them; says so on stderr when the environment overrides an option."""
        given = {
            "table_name": getattr(self.args, "table", None),
            "key_field_name": getattr(self.args, "key_field", None),
            "value_field_name": getattr(self.args, "value_field", None),
            "table_key": key,
        }
        for setting, value in given.items():
            variable = f"PERSISTENCE_{setting.upper()}"
            env = os.environ.get(variable)
            if value is not None and env is not None and env != value:
                self.note(f"{self.prog}: warning: {variable}={env!r} overrides {value!r} (the environment wins)")
        if key is None:  # table-wide commands: any key satisfies the validation; no map is opened with it
            given["table_key"] = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "*"
        return Settings.resolve({k: v for k, v in given.items() if v is not None})

    @functools.cached_property
    def codec_name(self) -> str:
        """The codec this package writes new maps with (and migrate rewrites maps with)."""
        return _default_codec(self.map_class)

    def open(self, key: str, *, existing: bool = False) -> PersistentMap:
        """The map under ``key``; with ``existing``, an error if nothing is stored there (an empty map is not a
        typo), else a new map when nothing is."""
        settings = self.settings(key)
        data = self.load(settings, progress=True)
        if data is not None:
            return data
        if existing:
            raise CliError(_no_map(self, settings))
        return self.map_class.open(client=self.client, **_as_arguments(settings))

    def load(self, settings: Settings, *, progress: bool = False) -> PersistentMap | None:
        """The stored map ``settings`` names, read with the codec it is stored with (None: nothing is stored).

        A map holds entries of one codec (its head's ``alp_codec``), which every map reads and writes it with,
        whatever codec it was opened with; ``codec``, from the head read first, tells a map that a concurrent
        ``migrate`` rewrote meanwhile (read again) from one read as stored."""
        for _ in range(_OPEN_ATTEMPTS):
            head, item = stored_head(self.client, settings)
            if item is None:
                return None
            codec = head.codec if head is not None else self.codec_name
            reading = self.transfer(f"reading {settings.table_key}") if progress else contextlib.nullcontext()
            with reading:
                data = self.map_class.open(client=self.client, **_as_arguments(settings))
            if data._replica.head is None or data.codec == codec:
                return data
        raise CliError(f"map {settings.table_key!r} kept changing its codec while being read; run the command again")

    def confirm(self, question: str) -> None:
        """Ask on the terminal; without one, refuse (exit 2): a script must say --yes explicitly."""
        if getattr(self.args, "yes", False):
            return
        stdin = sys.stdin
        if stdin is None or not stdin.isatty():
            raise CliError(f"{question} Not confirmed: stdin is not a terminal; pass --yes to proceed", code=2)
        self.err.write(f"{question} [y/N] ")
        self.err.flush()
        if stdin.readline().strip().lower() not in ("y", "yes"):
            raise CliError("aborted; nothing was changed")

    def note(self, message: str) -> None:
        """A line on stderr, below the progress line if one is being drawn."""
        self.err.write(("\n" if self.line_open else "") + message + "\n")
        self.line_open = False

    @contextlib.contextmanager
    def transfer(self, label: str, unit: str | None = "items") -> Iterator[_Progress]:
        """A progress line fed by botocore's events: items and bytes as DynamoDB returns or receives them."""
        progress = _Progress(self, label, getattr(self.args, "progress", None), unit)
        events = self.client.meta.events
        handler_id = f"aws-lambda-persistence-cli-{id(progress)}"

        def received(parsed: Any = None, model: Any = None, **_: Any) -> None:
            name = getattr(model, "name", "")
            if not isinstance(parsed, dict):
                return
            if name == "GetItem" and parsed.get("Item"):
                item = parsed["Item"]
                shards = segment_shards(item)
                progress.update(1, item_size(item), total=progress.items + 1 + shards if shards else None)
            elif name == "BatchGetItem":
                items = [i for found in parsed.get("Responses", {}).values() for i in found]
                progress.update(len(items), sum(item_size(i) for i in items))

        def sending(params: Any = None, model: Any = None, **_: Any) -> None:
            name = getattr(model, "name", "")
            if name not in _WRITES or not isinstance(params, dict):
                return
            items: list[Any] = []
            if "Item" in params:
                items.append(params["Item"])
            items.extend(a["Put"]["Item"] for a in params.get("TransactItems", ()) if "Put" in a)
            for requests in params.get("RequestItems", {}).values():
                items.extend(r["PutRequest"]["Item"] for r in requests if "PutRequest" in r)
            progress.update(len(items), sum(item_size(i) for i in items))

        events.register("after-call.dynamodb", received, unique_id=handler_id + "r")
        events.register("before-parameter-build.dynamodb", sending, unique_id=handler_id + "w")
        try:
            yield progress
        finally:
            events.unregister("after-call.dynamodb", unique_id=handler_id + "r")
            events.unregister("before-parameter-build.dynamodb", unique_id=handler_id + "w")
            progress.done()


class _Progress:
    """One self-overwriting stderr line. Drawn at most 10 times a second, and (unless --progress) only on a
    terminal and only once an operation has lasted half a second, so short commands print nothing extra."""

    def __init__(self, ctx: _Context, label: str, forced: bool | None, unit: str | None) -> None:
        self.ctx, self.stream, self.label, self.unit = ctx, ctx.err, label, unit
        self.enabled = forced if forced is not None else _isatty(ctx.err)
        self.delay = 0.0 if forced else 0.5
        self.start = time.monotonic()
        self.last = 0.0
        self.width = 0
        self.items = self.bytes = 0
        self.total: int | None = None

    def update(self, items: int = 0, nbytes: int = 0, *, total: int | None = None) -> None:
        self.items += items
        self.bytes += nbytes
        if total is not None:
            self.total = total
        now = time.monotonic()
        if self.enabled and now - self.start >= self.delay and now - self.last >= 0.1:
            self.last = now
            self._draw()

    def done(self) -> None:
        if self.width or (self.enabled and self.delay == 0):
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.ctx.line_open = False

    def _draw(self) -> None:
        line = f"{self.label}: {_human(self.bytes)}"
        if self.unit is not None:
            count = f"{self.items}/{self.total}" if self.total is not None else str(self.items)
            line = f"{self.label}: {count} {self.unit}, {_human(self.bytes)}"
        self.stream.write(("\r" if self.ctx.line_open else "") + line.ljust(self.width))
        self.stream.flush()
        self.ctx.line_open = True
        self.width = max(self.width, len(line))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


# -- commands -----------------------------------------------------------------------------------------------------


def _list(ctx: _Context) -> int:
    s = ctx.settings()
    rows = [_row(s, key, item) for key, item in _scan(ctx, s)]
    if getattr(ctx.args, "json", False):
        ctx.out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        ctx.note(f"no maps in table {s.table_name!r}")
        return 0
    table = [["KEY", "VERSION", "FORMAT", "CODEC", "STORAGE", "SIZE"]]
    for r in rows:
        size = "-" if r["size"] is None else _human(r["size"])
        version = "?" if r["version"] is None else str(r["version"])
        fmt = "?" if r["format"] is None else str(r["format"])
        table.append([r["key"], version, fmt, r["codec"], _storage(r), size])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        ctx.out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n")
    return 0


def _scan(ctx: _Context, s: Settings) -> list[tuple[str, dict[str, Any]]]:
    """(key, item) of every map in the table, by key: its head item without ``value``, or a 1.0.0 item's key.

    A Scan that never fetches ``value`` (a 1.0.0 item's whole map). Items with neither ``alp_fmt`` nor ``value``
    are not maps; segment items (key + value, like 1.0.0 items) are parts of maps and are left out by key."""
    names = {"#k": s.key_field_name, "#b": s.value_field_name}
    names.update({f"#h{i}": attribute for i, attribute in enumerate(_HEAD_ATTRIBUTES)})
    maps: list[tuple[str, dict[str, Any]]] = []
    with ctx.transfer(f"scanning {s.table_name}") as progress:
        pages = ctx.client.get_paginator("scan").paginate(
            TableName=s.table_name,
            ProjectionExpression=", ".join(name for name in names if name != "#b"),
            FilterExpression="attribute_exists(#h0) OR attribute_exists(#b)",
            ExpressionAttributeNames=names,
        )
        for page in pages:
            progress.update(page.get("ScannedCount", 0))
            for item in page.get("Items", ()):
                key = item.get(s.key_field_name, {}).get("S")
                if key is not None and not is_segment_key(key):
                    maps.append((key, item))
    return sorted(maps, key=lambda found: found[0])


def _row(s: Settings, key: str, item: dict[str, Any]) -> dict[str, Any]:
    """One map as ``list`` shows it. ``segments``: those stored (``shards``: their items); ``size``: bytes stored
    (head item and segment blobs; None for a 1.0.0 item, whose value the Scan does not fetch); ``error``: why the
    head cannot be read by this version."""
    row: dict[str, Any] = {
        "key": key,
        "version": 0,
        "format": 1,
        "codec": LEGACY_CODEC,
        "epoch": None,
        "log": None,
        "segments": None,
        "shards": None,
        "size": None,
        "error": None,
    }
    if FMT not in item:
        return row
    try:
        # A head's value is always the 1.0.0 trap (_head.build), which the Scan leaves out: put back for its size.
        head = parse({**item, s.value_field_name: {"B": LEGACY_TRAP}}, _for_key(s, key))
    except UnreadableCodec as exc:  # a sound head: its facts show (its entries need a codec this package lacks)
        head = exc.head
    except StoredDataError as exc:
        codec = item.get(CODEC, {}).get("S", "?")
        return {**row, "version": _number(item, VER), "format": _number(item, FMT), "codec": codec, "error": _line(exc)}
    return {
        **row,
        "version": head.version,
        "format": FORMAT,
        "codec": head.codec,
        "epoch": head.epoch,
        "log": len(head.log),
        "segments": _stored(head),
        "shards": sum(segment.shards for segment in _all_segments(head)),
        "size": head.stored_size + sum(segment.blob_size for segment in _all_segments(head)),
    }


def _storage(row: dict[str, Any]) -> str:
    if row["error"] is not None:
        return "unreadable"
    if row["format"] == 1:
        return "inline"
    return _segments(row["segments"]) if row["segments"] else "head"


def _stored(head: Head) -> int:
    """Segments stored in items (the table may also list empty partitions, which are not stored)."""
    return sum(1 for segment in _all_segments(head) if segment.shards)


def _all_segments(head: Head) -> list[Segment]:
    """The head's manifest (if any) and the map's segments; of a head not read through a map (``ls``), what the
    head itself lists (the manifest's segments are not read)."""
    manifest = head.manifest
    return [manifest, *head.table] if manifest is not None and manifest not in head.table else list(head.table)


def _segments(count: int) -> str:
    return _count(count, "segment")


def _number(item: dict[str, Any], name: str) -> int | None:
    try:
        return int(item[name]["N"])
    except (KeyError, TypeError, ValueError):
        return None


def _show(ctx: _Context) -> int:
    _print_value(ctx, ctx.open(ctx.args.key, existing=True).to_dict())
    return 0


def _existing_entry(ctx: _Context) -> tuple[PersistentMap, Any]:
    """The map and the entry name the command names, which must exist."""
    data = ctx.open(ctx.args.key, existing=True)
    name = _name(ctx)
    if name not in data:
        raise CliError(f"map {ctx.args.key!r} has no entry {name!r}; `{ctx.prog} show {ctx.args.key}` lists them")
    return data, name


def _get(ctx: _Context) -> int:
    data, name = _existing_entry(ctx)
    _print_value(ctx, data[name])
    return 0


def _set(ctx: _Context) -> int:
    name = _name(ctx)
    if ctx.args.string:
        value: Any = ctx.args.value
    else:
        try:
            value = tagged.loads(ctx.args.value)
        except ValueError as exc:
            raise CliError(
                f"VALUE {short_repr(ctx.args.value)} is not JSON ({exc}); write a string as '\"text\"' or pass --string"
            ) from None
    data = ctx.open(ctx.args.key)
    with ctx.transfer(f"writing {ctx.args.key}"):
        data[name] = value
    ctx.note(f"set {name!r} in map {data.settings.table_key!r}: version {data.version}")
    return 0


def _delete(ctx: _Context) -> int:
    data, name = _existing_entry(ctx)
    ctx.confirm(f"Delete entry {name!r} of map {data.settings.table_key!r} in table {data.settings.table_name!r}?")
    with ctx.transfer(f"writing {ctx.args.key}"):
        del data[name]
    ctx.note(f"deleted {name!r} from map {data.settings.table_key!r}: version {data.version}")
    return 0


def _export(ctx: _Context) -> int:
    path = ctx.args.file
    if path != "-" and os.path.exists(path):
        ctx.confirm(f"Overwrite {path}?")
    data = ctx.open(ctx.args.key, existing=True)
    document = {
        EXPORT_MARKER: 1,
        "table": data.settings.table_name,
        "key": data.settings.table_key,
        "version": data.version,
        "map": data.to_dict(),
    }
    text = tagged.dumps(document, indent=1) + "\n"
    if path == "-":
        ctx.out.write(text)
    else:
        encoded = text.encode("utf-8")
        _write_atomically(ctx, path, encoded)
    ctx.note(f"exported {_entries(len(data))} of map {data.settings.table_key!r} (version {data.version}) to {path}")
    return 0


def _write_atomically(ctx: _Context, path: str, content: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it: an interrupted export leaves no half file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".export-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file, ctx.transfer(f"writing {path}", unit=None) as progress:
                for start in range(0, len(content), _CHUNK):
                    file.write(content[start : start + _CHUNK])
                    progress.update(0, min(_CHUNK, len(content) - start))
            os.chmod(temporary, _mode_for(path))  # (mkstemp makes it 0600)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}; choose another FILE") from None


def _mode_for(path: str) -> int:
    """The permissions an export leaves ``path`` with: those it has, or what a new file gets (0666 less umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _import(ctx: _Context) -> int:
    path = ctx.args.file
    content = _read(ctx, path)
    try:
        document = tagged.loads(content)
    except ValueError as exc:
        raise CliError(f"{path} is not tagged JSON ({exc}); import reads files written by export") from None
    if type(document) is dict and EXPORT_MARKER in document:
        if document[EXPORT_MARKER] != 1 or "map" not in document:
            raise CliError(
                f"{path} was written by an export of another version (marker version "
                f"{document[EXPORT_MARKER]!r}{'' if 'map' in document else ', no map'}); upgrade this package to "
                "import it"
            )
        document = document["map"]
    if type(document) is not dict:
        raise CliError(f"{path} holds a {type(document).__name__}, not a map; import reads files written by export")
    data = ctx.open(ctx.args.key)
    s = data.settings
    if data:
        ctx.confirm(
            f"Replace the {_entries(len(data))} of map {s.table_key!r} (version {data.version}) in table "
            f"{s.table_name!r} with the {_entries(len(document))} of {path}?"
        )
    with ctx.transfer(f"writing {s.table_key}"), data.batch():  # one commit, all or nothing
        data.clear()
        data.update(document)
    ctx.note(f"imported {_entries(len(document))} into map {s.table_key!r}: version {data.version}")
    return 0


def _read(ctx: _Context, path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        chunks = []
        with open(path, "rb") as file, ctx.transfer(f"reading {path}", unit=None) as progress:
            while chunk := file.read(_CHUNK):
                chunks.append(chunk)
                progress.update(0, len(chunk))
        return b"".join(chunks)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}; check the FILE argument") from None


def _migrate(ctx: _Context) -> int:
    """Rewrite every map this package would not write as it is: 1.0.0 items, and format-3 maps of another codec.

    Heads in other formats are left alone: format 2 was never released, and a newer format is not downgraded."""
    s = ctx.settings()
    codec = ctx.codec_name
    rows = [_row(s, key, item) for key, item in _scan(ctx, s)]
    rows = [r for r in rows if r["format"] == 1 or (r["format"] == FORMAT and r["codec"] != codec)]
    if ctx.args.dry_run:
        return _dry_run(ctx, s, [r["key"] for r in rows])
    if not rows:
        ctx.note(f"0 maps to rewrite with codec {codec} in table {s.table_name!r}")
        return 0
    legacy = sum(r["format"] == 1 for r in rows)
    foreign = sorted({r["codec"] for r in rows if r["format"] != 1})
    kinds = [f"{legacy} 1.0.0 item(s)"] if legacy else []
    kinds += [f"{len(rows) - legacy} of codec {', '.join(foreign)}"] if foreign else []
    ctx.confirm(
        f"Rewrite {len(rows)} map(s) of table {s.table_name!r} in format {FORMAT} with codec {codec} "
        f"({'; '.join(kinds)})? Functions still running 1.0.0, or a package that cannot read {codec}, cannot "
        "read them afterwards."
    )
    failed = 0
    with ctx.transfer("migrating", unit="maps") as progress:
        progress.total = len(rows)
        for r in rows:
            try:
                outcome = _migrate_one(ctx, _for_key(s, r["key"]))
            except PersistenceError as exc:
                failed += 1
                outcome = f"not migrated: {_library_message(exc, ctx)}"
            ctx.out.write(f"{r['key']}: {outcome}\n")
            progress.update(1)
    if failed:
        raise CliError(f"{failed} of {len(rows)} map(s) were not migrated (see above); fix them and run migrate again")
    return 0


def _dry_run(ctx: _Context, s: Settings, keys: list[str]) -> int:
    """List the maps migrate would rewrite: each is read and re-encoded as migrate would, so that a map listed is
    one migrate can rewrite (the others are named on stderr, and the exit code is 1 as migrate's would be)."""
    listed = refused = 0
    with ctx.transfer("reading", unit="maps") as progress:
        progress.total = len(keys)
        for key in keys:
            try:
                plan = _rewrite_plan(ctx, _for_key(s, key))
            except PersistenceError as exc:
                refused += 1
                ctx.note(f"{key}: cannot be migrated: {_library_message(exc, ctx)}")
            else:
                if not isinstance(plan, str):
                    listed += 1
                    ctx.out.write(key + "\n")
            progress.update(1)
    ctx.note(f"{listed} map(s) to rewrite with codec {ctx.codec_name} in table {s.table_name!r}")
    if refused:
        raise CliError(f"{refused} of {len(keys)} map(s) cannot be migrated (see above); fix them, then run migrate")
    return 0


def _rewrite_plan(ctx: _Context, settings: Settings) -> tuple[Head | None, list[bytes], Codec] | str:
    """What migrating one map writes: the head it was read at (None: a 1.0.0 item), its entries encoded with this
    package's codec, and that codec; or why there is nothing to do."""
    data = ctx.load(settings)
    if data is None:
        return "skipped: deleted meanwhile"
    head = data._replica.head
    codec = codec_for(ctx.codec_name)
    if head is not None and head.codec == codec.name:
        return f"skipped: already written with codec {codec.name}"
    return head, [codec.encode_entry(key, value) for key, value in data.items()], codec


def _migrate_one(ctx: _Context, settings: Settings) -> str:
    """Replace one map by a format-3 map of the same entries written with this package's codec, conditional on
    the map being unchanged since it was read (a concurrent writer is never overwritten)."""
    plan = _rewrite_plan(ctx, settings)
    if isinstance(plan, str):
        return plan
    head, entries, codec = plan
    new = replace_map(ctx.client, settings, codec, head, entries)
    if new is None:
        return "skipped: another writer changed it meanwhile (run migrate again)"
    return f"migrated: {_entries(len(entries))}, version {new.version}, codec {codec.name}"


def _policy(ctx: _Context) -> int:
    document = policy(ctx.settings(ctx.args.key), own_rows_only=not ctx.args.all_rows)
    ctx.out.write(json.dumps(document, indent=2) + "\n")
    return 0


def _info(ctx: _Context) -> int:
    s = ctx.settings(ctx.args.key)
    usage = Usage()
    try:
        head, item = stored_head(ctx.client, s, usage)
    except UnreadableCodec as exc:  # the head's facts still show; the entries need a codec this package lacks
        head, item = exc.head, {}
    if item is None:
        raise CliError(_no_map(ctx, s))
    entries: Any
    try:
        data = ctx.load(s, progress=True)
    except StoredDataError as exc:  # the head's facts still show; the entries need a codec this package lacks
        entries = f"unreadable here ({_library_message(exc, ctx)})"
    else:
        if data is None:
            raise CliError(_no_map(ctx, s))
        entries, usage = len(data), data.last_load
        head, item = data._replica.head, data._replica.legacy or item
    facts = {"table": s.table_name, "key": s.table_key, **(_legacy_facts(s, item) if head is None else _facts(head))}
    facts.update(
        entries=entries,
        load_calls=usage.calls,
        load_items=usage.items,
        load_read_units=usage.capacity_units,
        load_reported_units=usage.reported_units,
    )
    if ctx.args.json:
        ctx.out.write(json.dumps(facts, indent=2) + "\n")
        return 0
    lines = [("table", s.table_name), ("key", s.table_key)]
    if head is None:
        lines += [("format", "1 (aws-lambda-persistence 1.0.0)"), ("codec", LEGACY_CODEC), ("version", "0")]
        lines += [("storage", "inline (the whole map in the item)"), ("stored", _human(facts["stored_bytes"]))]
    else:
        lines += [("format", str(FORMAT)), ("codec", head.codec), ("version", f"{head.version} (epoch {head.epoch})")]
        log = f"{_count(len(head.log), 'record')}, {_human(facts['log_bytes'])} (room for {_human(head.room)} more)"
        lines += [("log", log), ("storage", facts["storage"])]
        lines += [("segment", _segment_line(segment)) for segment in facts["segments"]]
        stored = f"head {_human(facts['head_bytes'])}, segments {_human(facts['segment_bytes'])}"
        lines.append(("stored", f"{_human(facts['stored_bytes'])} ({stored})"))
        if head.garbage:
            lines.append(("garbage", ", ".join(facts["garbage"])))
    decoded = facts["decoded_bytes"]
    lines += [("decoded", "-" if decoded is None else _human(decoded)), ("entries", str(entries))]
    lines.append(
        (
            "last load",
            f"{_count(usage.calls, 'call')}, {_count(usage.items, 'item')}, {usage.capacity_units:g} read units"
            + ("" if usage.reported_units is None else f" (DynamoDB reported {usage.reported_units:g})"),
        )
    )
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        ctx.out.write(f"{label + ':':<{width + 1}} {value}\n")
    return 0


def _facts(head: Head) -> dict[str, Any]:
    """What a format-3 head says, in bytes: the head item, its log, its segments (stored and decoded)."""
    log_bytes = sum(len(record) for record in head.log)
    segments = _all_segments(head)
    segment_bytes = sum(segment.blob_size for segment in segments)
    return {
        "format": FORMAT,
        "codec": head.codec,
        "version": head.version,
        "epoch": head.epoch,
        "storage": _segments(_stored(head)) if _stored(head) else "head",
        "log_records": len(head.log),
        "log_bytes": log_bytes,
        "log_room": head.room,
        "segments": [_segment_facts(segment) for segment in segments],
        "head_bytes": head.stored_size,
        "segment_bytes": segment_bytes,
        "stored_bytes": head.stored_size + segment_bytes,
        "decoded_bytes": log_bytes + sum(s.raw_size for s in segments if s.kind != MANIFEST),
        "garbage": sorted(head.garbage),
    }


def _legacy_facts(s: Settings, item: dict[str, Any]) -> dict[str, Any]:
    """What a 1.0.0 item is: one item holding the pickle of the whole map (stored uncompressed)."""
    value = item.get(s.value_field_name, {}).get("B")
    return {
        "format": 1,
        "codec": LEGACY_CODEC,
        "version": 0,
        "epoch": None,
        "storage": "inline",
        "log_records": None,
        "log_bytes": None,
        "log_room": None,
        "segments": [],
        "head_bytes": item_size(item),
        "segment_bytes": 0,
        "stored_bytes": item_size(item),
        "decoded_bytes": None if value is None else len(value),
        "garbage": [],
    }


def _segment_facts(segment: Segment) -> dict[str, Any]:
    kind = {PARTITION: "partition", RUN: "run"}.get(segment.kind, "manifest")
    facts: dict[str, Any] = {
        "kind": kind,
        "sid": segment.sid,
        "shards": segment.shards,
        "stored_bytes": segment.blob_size,
        "decoded_bytes": segment.raw_size,
    }
    if segment.kind == PARTITION:
        facts.update(depth=segment.depth, prefix=segment.prefix, watermark=segment.watermark)
    elif segment.kind == RUN:
        facts.update(level=segment.level, lo=segment.lo, hi=segment.hi)
    return facts


def _segment_line(facts: dict[str, Any]) -> str:
    where = {
        "partition": f" (depth {facts.get('depth')}, prefix {facts.get('prefix')}, watermark {facts.get('watermark')})",
        "run": f" (level {facts.get('level')}, sequence {facts.get('lo')}-{facts.get('hi')})",
    }.get(facts["kind"], "")
    size = f"{_human(facts['stored_bytes'])} ({_human(facts['decoded_bytes'])} decoded)"
    if not facts["shards"]:
        return f"{facts['kind']} {facts['sid']}{where}: " + (
            "in the head, " + size if facts["stored_bytes"] else "empty, not stored"
        )
    return f"{facts['kind']} {facts['sid']}{where}: {_count(facts['shards'], 'item')}, {size}"


# -- helpers ------------------------------------------------------------------------------------------------------


def _as_arguments(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__annotations__}


def _for_key(settings: Settings, key: str) -> Settings:
    """``settings`` for another map of the same table. The key comes from the table itself, so no
    PERSISTENCE_TABLE_KEY may replace it (that would rewrite one map once per map listed)."""
    return Settings(**{**_as_arguments(settings), "table_key": key})


def _name(ctx: _Context) -> Any:
    if not ctx.args.json_name:
        return ctx.args.name
    try:
        return tagged.loads(ctx.args.name)
    except ValueError as exc:
        raise CliError(f"NAME {ctx.args.name!r} is not tagged JSON ({exc}); drop --json-name for a string") from None


def _print_value(ctx: _Context, value: Any) -> None:
    try:
        text = pprint.pformat(value, sort_dicts=False) if ctx.args.pretty else tagged.dumps(value, indent=2)
    except RecursionError:
        mode = "--pretty" if ctx.args.pretty else "JSON"
        raise CliError(f"the value is nested too deeply to print as {mode}; read it with the library") from None
    ctx.out.write(text + "\n")


def _no_map(ctx: _Context, settings: Settings) -> str:
    return (
        f"no map is stored under key {settings.table_key!r} in table {settings.table_name!r}; "
        f"`{ctx.prog} list` shows the stored keys"
    )


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _line(exc: Exception) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _aws_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _library_message(exc: PersistenceError, ctx: _Context) -> str:
    """The library's message cut to one line; a denied call names the fix instead of printing the policy."""
    if isinstance(exc, MissingAWSIAMPermissions):
        key = getattr(ctx.args, "key", None) or "KEY"
        return (
            f"DynamoDB denied {exc.action}: grant it to these credentials "
            f"(`{ctx.prog} policy {key}` prints the least-privilege policy of a map)"
        )
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _aws_message(exc: Exception, ctx: _Context) -> str:
    """One line for a botocore error: what failed and what to change."""
    kind = type(exc).__name__
    code = _aws_code(exc)
    table = getattr(ctx.args, "table", None) or os.environ.get("PERSISTENCE_TABLE_NAME") or "AWSLambdaPersistence"
    first = (str(exc).splitlines() or [kind])[0]
    if code == "ResourceNotFoundException":
        return (
            f"table {table!r} does not exist in this region/endpoint; check --table, --region and --endpoint-url "
            "(or PERSISTENCE_TABLE_NAME, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB)"
        )
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{first}; grant the permission (list and migrate need dynamodb:Scan) or use other credentials"
    if code in ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"):
        return f"{first}; DynamoDB throttled the requests: try again later or raise the table's capacity"
    if kind == "NoCredentialsError":
        return "no AWS credentials found; configure them (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    if kind == "NoRegionError":
        return "no AWS region configured; pass --region or set AWS_REGION"
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return f"{first}; check --endpoint-url (AWS_ENDPOINT_URL_DYNAMODB) and the network"
    return f"{first} ({kind})"
