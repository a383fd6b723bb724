"""The tool's arguments: global options (accepted before or after the command), and each command's own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .. import PersistentMap, admin
from ._context import Context
from ._entries import run_delete, run_get, run_set, run_show
from ._files import run_export, run_import
from ._inspect import run_info, run_list, run_policy
from ._migrate import run_migrate


def parser(prog: str, map_class: type[PersistentMap[Any, Any]]) -> argparse.ArgumentParser:
    codec = admin.default_codec(map_class)
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
    group.add_argument(
        "--region", default=argparse.SUPPRESS, help="AWS region (sets AWS_REGION and AWS_DEFAULT_REGION)"
    )
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

    def command(name: str, run: Callable[[Context], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    def output(sub: argparse.ArgumentParser) -> None:
        mode = sub.add_mutually_exclusive_group()
        mode.add_argument("--json", action="store_true", help="tagged JSON, exact types (default)")
        mode.add_argument("--pretty", action="store_true", help="Python notation, for reading")

    def key(sub: argparse.ArgumentParser, help: str | None = None) -> argparse.ArgumentParser:
        sub.add_argument("key", metavar="KEY", help=help)
        return sub

    def name(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        key(sub).add_argument("name", metavar="NAME", help="the entry's key (a string, unless --json-name)")
        sub.add_argument("--json-name", action="store_true", help="NAME is tagged JSON (for non-str keys: 5, ...)")
        return sub

    def confirmation(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    sub = command("list", run_list, "list the maps in the table (a Scan that skips the blobs; needs dynamodb:Scan)")
    sub.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    output(key(command("show", run_show, "print a map"), "the map's table_key (a function's name)"))
    output(name(command("get", run_get, "print one entry of a map")))
    sub = name(command("set", run_set, "set one entry of a map (one commit; creates the map and the table if needed)"))
    sub.add_argument("value", metavar="VALUE", help='tagged or plain JSON: 5, "text", {"$tuple": [1, 2]}')
    sub.add_argument("--string", action="store_true", help="store VALUE as a string, as typed")
    confirmation(name(command("delete", run_delete, "delete one entry of a map (one commit)")))
    sub = key(command("export", run_export, "write a map to a tagged JSON file (- for stdout)"))
    sub.add_argument("file", metavar="FILE")
    confirmation(sub)
    sub = key(command("import", run_import, "replace a map's content with a file written by export (one commit)"))
    sub.add_argument("file", metavar="FILE", help="tagged JSON written by export, or a JSON object (- for stdin)")
    confirmation(sub)
    sub = command("migrate", run_migrate, f"rewrite every 1.0.0 item and every map of another codec with codec {codec}")
    sub.add_argument("--dry-run", action="store_true", help="only list the maps migrate would rewrite (each is read)")
    confirmation(sub)
    sub = key(command("policy", run_policy, "print the least-privilege IAM policy of the function owning a map"))
    sub.add_argument("--all-rows", action="store_true", help="do not limit the policy to the map's own rows")
    sub = key(command("info", run_info, "print a map's format, codec, version, log, segments, sizes and read cost"))
    sub.add_argument("--json", action="store_true", help="print a JSON object")
