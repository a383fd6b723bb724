"""The command line tool: inspect, edit, export, import and migrate maps with the library's own engine.

One implementation serves both packages: each package's ``__main__`` passes its ``PersistentMap`` class, so
the full tool reads every codec and writes new maps with msgpack+zstd, and the lite tool reads and writes what
lite can. A stored map is changed with the codec it is stored with (a map holds entries of one codec); only
``migrate`` moves maps to the tool's codec.
Settings resolve exactly as in a function (``Settings.resolve``: ``PERSISTENCE_*`` wins over the options),
and the endpoint and region come from the usual AWS variables, which ``--endpoint-url`` and ``--region`` set.
Only the standard library and the package's public API are used (maps, ``admin``; ``_tagged_json`` is the
notation of its files): whatever the tool does to a stored map, a script can do the same way. Exit codes: 0 ok,
1 error (one line naming the problem and the fix), 2 usage (including a destructive command without ``--yes``
when there is no terminal to ask).

Modules: ``_parser`` (the arguments), ``_context`` (settings, maps, questions, errors), ``_output`` (progress
lines, sizes), and the commands: ``_inspect`` (list, info, policy), ``_entries`` (show, get, set, delete),
``_files`` (export, import), ``_migrate``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .. import PersistenceError, PersistentMap
from ._context import CliError, Context, aws_message, library_message
from ._parser import parser


def main(
    argv: Sequence[str] | None = None, *, map_class: type[PersistentMap[Any, Any]] = PersistentMap, prog: str
) -> int:
    """Run the tool with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    try:
        args = parser(prog, map_class).parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    ctx = Context(map_class, args, prog, sys.stdout, sys.stderr, sys.argv[1:] if argv is None else argv)
    with _environment(args), _library_log(ctx):  # (errors are described where the calls went)
        return _run(ctx)


def _run(ctx: Context) -> int:
    """Run the command; an error becomes one line on stderr and its exit code."""
    prog = ctx.prog
    try:
        code: int = ctx.args.run(ctx)
        return code
    except CliError as exc:
        ctx.note(f"{prog}: error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        ctx.note(f"{prog}: interrupted")
        return 130
    except PersistenceError as exc:
        ctx.note(f"{prog}: error: {library_message(exc, ctx)}")
        return 1
    except Exception as exc:
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise  # a bug in this tool: the traceback is what is needed
        ctx.note(f"{prog}: error: {aws_message(exc, ctx)}")
        return 1


@contextlib.contextmanager
def _library_log(ctx: Context) -> Iterator[None]:
    """Show the library's log (table creation, capacity warnings) as lines of this tool, for this run only."""

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            ctx.note(f"{ctx.prog}: {record.levelname.lower()}: {record.getMessage()}")

    handler = Handler(logging.INFO)
    # The logger of the maps' package, and the lite package's (admin's whole-map writes)
    loggers = {
        logging.getLogger(ctx.map_class.__module__.partition(".")[0]),
        logging.getLogger(__name__.partition(".")[0]),
    }
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in levels.items():
            logger.removeHandler(handler)
            logger.setLevel(level)


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
