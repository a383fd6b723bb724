"""The command line tool: inspect, edit, export, import and migrate maps with the library's own engine.

One implementation serves both packages: each package's ``__main__`` passes its ``PersistentMap`` class, so
the full tool reads every codec and writes msgpack+zstd, and the lite tool reads and writes what lite can.
Settings resolve exactly as in a function (``Settings.resolve``: ``PERSISTENCE_*`` wins over the options),
and the endpoint and region come from the usual AWS variables, which ``--endpoint-url`` and ``--region`` set.
Only the standard library is used. Exit codes: 0 ok, 1 error (one line naming the problem and the fix),
2 usage (including a destructive command without ``--yes`` when there is no terminal to ask).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import pprint
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from . import _tagged_json as tagged
from ._client import default_client
from ._config import Settings
from ._errors import MissingAWSIAMPermissions, PersistenceError, StoredDataError
from ._format import CODEC, FMT, FORMAT_VERSION, GARBAGE, LEGACY_CODEC, RAW, SHARDS, VER, item_size
from ._iam import policy
from ._map import PersistentMap, decode_map
from ._store import Conflict, Store

#: First key of an export file; its value is the version of the file layout.
EXPORT_MARKER = "aws-lambda-persistence-export"
_SHARD_KEY = re.compile(r"#alp-shard#[^#]+#\d+$")
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


def _parser(prog: str, map_class: type[PersistentMap]) -> argparse.ArgumentParser:
    codec = map_class.codec_factory().name
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
    sub = command("migrate", _migrate, f"rewrite every 1.0.0 item of the table in format 2 (codec {codec})")
    sub.add_argument("--dry-run", action="store_true", help="only list the 1.0.0 items")
    confirmation(sub)
    sub = command("policy", _policy, "print the least-privilege IAM policy of the function owning a map")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("--all-rows", action="store_true", help="do not limit the policy to the map's own rows")
    sub = command("info", _info, "print a map's version, codec, storage, sizes and read cost")
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

    def open(self, key: str) -> PersistentMap:
        with self.transfer(f"reading {key}"):
            return self.map_class.open(client=self.client, **_as_arguments(self.settings(key)))

    def open_existing(self, key: str) -> PersistentMap:
        """The map under ``key``; an error if nothing is stored there (an empty map is not a typo)."""
        data = self.open(key)
        if data.version == 0 and not data and not _exists(self.client, data.settings):
            raise CliError(
                f"no map is stored under key {data.settings.table_key!r} in table {data.settings.table_name!r}; "
                f"`{self.prog} list` shows the stored keys"
            )
        return data

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
                shards = len(item.get(SHARDS, {}).get("L", ()))
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
    names = {"#k": s.key_field_name, "#f": FMT, "#c": CODEC, "#v": VER, "#r": RAW, "#s": SHARDS, "#g": GARBAGE}
    rows: list[dict[str, Any]] = []
    with ctx.transfer(f"scanning {s.table_name}") as progress:
        pages = ctx.client.get_paginator("scan").paginate(
            TableName=s.table_name, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
        )
        for page in pages:
            progress.update(page.get("ScannedCount", 0))
            for item in page.get("Items", ()):
                key = item.get(s.key_field_name, {}).get("S")
                if key is not None and not _SHARD_KEY.search(key):
                    rows.append(_row(key, item))
    rows.sort(key=lambda r: r["key"])
    if getattr(ctx.args, "json", False):
        ctx.out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        ctx.note(f"no maps in table {s.table_name!r}")
        return 0
    table = [["KEY", "VERSION", "FORMAT", "CODEC", "STORAGE", "SIZE"]]
    for r in rows:
        storage = f"{r['shards']} shards" if r["shards"] else "inline"
        size = "-" if r["size"] is None else _human(r["size"])
        table.append([r["key"], str(r["version"]), str(r["format"]), r["codec"], storage, size])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        ctx.out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n")
    return 0


def _row(key: str, item: dict[str, Any]) -> dict[str, Any]:
    legacy = FMT not in item
    return {
        "key": key,
        "version": int(item[VER]["N"]) if VER in item else 0,
        "format": 1 if legacy else int(item[FMT]["N"]),
        "codec": LEGACY_CODEC if legacy else item.get(CODEC, {}).get("S", "?"),
        "shards": len(item.get(SHARDS, {}).get("L", ())),
        "size": None if legacy else int(item.get(RAW, {}).get("N", 0)),  # decoded bytes; 1.0.0 items lack it
        "garbage": sorted(item.get(GARBAGE, {}).get("SS", ())),
    }


def _show(ctx: _Context) -> int:
    _print_value(ctx, ctx.open_existing(ctx.args.key).to_dict())
    return 0


def _existing_entry(ctx: _Context) -> tuple[PersistentMap, Any]:
    """The map and the entry name the command names, which must exist."""
    data = ctx.open_existing(ctx.args.key)
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
                f"VALUE {ctx.args.value!r} is not JSON ({exc}); write a string as '\"text\"' or pass --string"
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
    data = ctx.open_existing(ctx.args.key)
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
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}; choose another FILE") from None


def _import(ctx: _Context) -> int:
    path = ctx.args.file
    content = _read(ctx, path)
    try:
        document = tagged.loads(content)
    except ValueError as exc:
        raise CliError(f"{path} is not tagged JSON ({exc}); import reads files written by export") from None
    if type(document) is dict and document.get(EXPORT_MARKER) == 1 and "map" in document:
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
    s = ctx.settings()
    names = {"#k": s.key_field_name, "#b": s.value_field_name, "#f": FMT}
    keys: list[str] = []
    with ctx.transfer(f"scanning {s.table_name}") as progress:
        pages = ctx.client.get_paginator("scan").paginate(
            TableName=s.table_name,
            ProjectionExpression="#k",
            FilterExpression="attribute_exists(#b) AND attribute_not_exists(#f)",
            ExpressionAttributeNames=names,
        )
        for page in pages:
            progress.update(page.get("ScannedCount", 0))
            for item in page.get("Items", ()):
                key = item.get(s.key_field_name, {}).get("S")
                if key is not None and not _SHARD_KEY.search(key):  # shards look like 1.0.0 items: key + value
                    keys.append(key)
    keys.sort()
    if ctx.args.dry_run or not keys:
        for key in keys:
            ctx.out.write(key + "\n")
        ctx.note(f"{len(keys)} 1.0.0 item(s) in table {s.table_name!r}")
        return 0
    codec = ctx.map_class.codec_factory().name
    ctx.confirm(
        f"Rewrite {len(keys)} 1.0.0 item(s) of table {s.table_name!r} in format {FORMAT_VERSION} with codec "
        f"{codec}? Functions still running 1.0.0 cannot read them afterwards."
    )
    failed = 0
    with ctx.transfer("migrating", unit="maps") as progress:
        progress.total = len(keys)
        for key in keys:
            try:
                outcome = _migrate_one(ctx, _for_key(s, key))
            except PersistenceError as exc:
                failed += 1
                outcome = f"not migrated: {_library_message(exc, ctx)}"
            ctx.out.write(f"{key}: {outcome}\n")
            progress.update(1)
    if failed:
        raise CliError(f"{failed} of {len(keys)} item(s) were not migrated (see above); fix them and run migrate again")
    return 0


def _migrate_one(ctx: _Context, settings: Settings) -> str:
    """Re-encode one 1.0.0 item as a format 2 head, conditional on it being unchanged since it was read.

    PersistentMap writes nothing when the content is unchanged, so the item is committed through its Store and
    codec directly: the same commit a PersistentMap makes, without a content change to trigger it.
    """
    store = Store(ctx.client, settings)
    head, blob = store.load()
    if head is None:
        return "skipped: deleted meanwhile"
    if not head.legacy:
        return "skipped: already in format 2"
    data = decode_map(head, blob, settings)
    codec = ctx.map_class.codec_factory()
    body = codec.join([codec.encode_entry(k, v) for k, v in data.items()])
    try:
        new = store.commit(codec.compress(body), codec.name, len(body), head)
    except Conflict:
        return "skipped: another writer changed it meanwhile (run migrate again)"
    return f"migrated: {_entries(len(data))}, version {new.version}, codec {codec.name}"


def _policy(ctx: _Context) -> int:
    document = policy(ctx.settings(ctx.args.key), own_rows_only=not ctx.args.all_rows)
    ctx.out.write(json.dumps(document, indent=2) + "\n")
    return 0


def _info(ctx: _Context) -> int:
    s = ctx.settings(ctx.args.key)
    store = Store(ctx.client, s)
    with ctx.transfer(f"reading {s.table_key}"):
        head, blob = store.load()
    if head is None:
        raise CliError(
            f"no map is stored under key {s.table_key!r} in table {s.table_name!r}; `{ctx.prog} list` shows the keys"
        )
    usage = store.last_load
    try:
        entries: Any = len(decode_map(head, blob, s))
    except StoredDataError as exc:
        entries = f"unreadable here ({_library_message(exc, ctx)})"
    facts: dict[str, Any] = {
        "table": s.table_name,
        "key": s.table_key,
        "format": 1 if head.legacy else FORMAT_VERSION,
        "codec": head.codec or "none (placeholder of an unfinished first commit)",
        "version": head.version,
        "storage": f"{len(head.shard_digests)} shards (generation {head.gen})" if head.gen else "inline",
        "stored_bytes": len(blob) if blob is not None else 0,
        "item_bytes": usage.bytes,
        "decoded_bytes": head.raw_size,
        "entries": entries,
        "garbage": sorted(head.garbage),
        "load_calls": usage.calls,
        "load_items": usage.items,
        "load_read_units": usage.capacity_units,
        "load_reported_units": usage.reported_units,
    }
    if ctx.args.json:
        ctx.out.write(json.dumps(facts, indent=2) + "\n")
        return 0
    lines = {
        "table": s.table_name,
        "key": s.table_key,
        "format": "1 (aws-lambda-persistence 1.0.0)" if head.legacy else str(FORMAT_VERSION),
        "codec": facts["codec"],
        "version": str(head.version),
        "storage": facts["storage"],
        "stored": f"{_human(facts['stored_bytes'])} blob, {_human(usage.bytes)} in items",
        "decoded": _human(head.raw_size),
        "entries": str(entries),
        "garbage": ", ".join(facts["garbage"]) or "none",
        "last load": f"{usage.calls} calls, {usage.items} items, {usage.capacity_units:g} read units"
        + ("" if usage.reported_units is None else f" (DynamoDB reported {usage.reported_units:g})"),
    }
    width = max(map(len, lines))
    for label, value in lines.items():
        ctx.out.write(f"{label + ':':<{width + 1}} {value}\n")
    return 0


# -- helpers ------------------------------------------------------------------------------------------------------


def _as_arguments(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__annotations__}


def _for_key(settings: Settings, key: str) -> Settings:
    """``settings`` for another map of the same table. The key comes from the table itself, so no
    PERSISTENCE_TABLE_KEY may replace it (that would rewrite one map once per 1.0.0 item)."""
    return Settings(**{**_as_arguments(settings), "table_key": key})


def _name(ctx: _Context) -> Any:
    if not ctx.args.json_name:
        return ctx.args.name
    try:
        return tagged.loads(ctx.args.name)
    except ValueError as exc:
        raise CliError(f"NAME {ctx.args.name!r} is not tagged JSON ({exc}); drop --json-name for a string") from None


def _print_value(ctx: _Context, value: Any) -> None:
    if ctx.args.pretty:
        ctx.out.write(pprint.pformat(value, sort_dicts=False) + "\n")
    else:
        ctx.out.write(tagged.dumps(value, indent=2) + "\n")


def _exists(client: Any, settings: Settings) -> bool:
    try:
        response = client.get_item(
            TableName=settings.table_name,
            Key={settings.key_field_name: {"S": settings.table_key}},
            ProjectionExpression="#k",
            ExpressionAttributeNames={"#k": settings.key_field_name},
        )
    except Exception as exc:
        if _aws_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return "Item" in response


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
