"""What every command works with: the settings as a function resolves them, the maps they name, questions before
destructive changes, stderr notes and progress, and errors as one line that names the fix."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import shlex
import shutil
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from .. import ConfigurationError, MissingAWSIAMPermissions, PersistenceError, PersistentMap, Settings, admin
from ._output import Progress, first_line

#: The full package's command: it reads every codec, the lite one only those the lite package can.
FULL_COMMAND = "aws-lambda-persistence"


class CliError(Exception):
    """A failure reported as one line (problem and fix) with exit code ``code``, never as a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class Context:
    map_class: type[PersistentMap[Any, Any]]
    args: argparse.Namespace
    prog: str
    out: TextIO
    err: TextIO
    #: The command's arguments, to suggest running them with another command.
    argv: Sequence[str] = ()
    #: A progress line is drawn and not yet ended by a newline.
    line_open: bool = False

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
        return admin.default_codec(self.map_class)

    def open(self, key: str, *, existing: bool = False) -> PersistentMap[Any, Any]:
        """The map under ``key``; with ``existing``, an error if nothing is stored there (an empty map is not a
        typo), else a new map when nothing is."""
        settings = self.settings(key)
        with self.transfer(f"reading {key}"):
            data = self.read(settings)
        if data is not None:
            return data
        if existing:
            raise CliError(no_map(self, settings))
        return self.map_class.open(lazy=True, **settings._asdict())  # (nothing to read: the first write says so)

    def read(self, settings: Settings) -> PersistentMap[Any, Any] | None:
        """The stored map ``settings`` names, read with the codec it is stored with (None: nothing is stored)."""
        return admin.read(settings, map_class=self.map_class)

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
    def transfer(self, label: str, unit: str | None = "item") -> Iterator[Progress]:
        """A progress line; one counting items is fed by what DynamoDB returns or receives meanwhile
        (``admin.watch``), others (maps, bytes of a file) by the command."""
        progress = Progress(self, label, getattr(self.args, "progress", None), unit)

        def seen(items: int, nbytes: int, more: int) -> None:
            progress.update(items, nbytes, total=progress.items + items + more if more else None)

        try:
            with admin.watch(seen) if unit == "item" else contextlib.nullcontext():
                yield progress
        finally:
            progress.done()


def no_map(ctx: Context, settings: Settings) -> str:
    return (
        f"no map is stored under key {settings.table_key!r} in table {settings.table_name!r}; "
        f"`{ctx.prog} list` shows the stored keys"
    )


def library_message(exc: PersistenceError, ctx: Context) -> str:
    """The library's message cut to one line; a denied call names the fix instead of printing the policy."""
    if isinstance(exc, MissingAWSIAMPermissions):
        key = getattr(ctx.args, "key", None) or "KEY"
        return (
            f"DynamoDB denied {exc.action}: grant it to these credentials "
            f"(`{ctx.prog} policy {key}` prints the least-privilege policy of a map)"
        )
    message = first_line(str(exc), type(exc).__name__)
    if isinstance(exc, ConfigurationError) and "AWS_REGION" in message:  # (the client's: no region anywhere)
        return f"{message}; or pass --region"
    install = f"; install it: pip install {FULL_COMMAND}"  # (a codec of the full package: _codec._FIX)
    full = shutil.which(FULL_COMMAND) if ctx.prog != FULL_COMMAND and message.endswith(install) else None
    if full:  # installed for another Python than this command's: no need to install it again
        instead = f"{full} {shlex.join(ctx.argv)}"
        return f"{message.removesuffix(install)}; the full package's command is installed: {instead}"
    return message


def aws_message(exc: Exception, ctx: Context) -> str:
    """One line for a botocore error: what failed and what to change."""
    kind = type(exc).__name__
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    first = (str(exc).splitlines() or [kind])[0]
    if code == "ResourceNotFoundException":
        return f"table {_table(ctx)} does not exist {_where()}; check --table, --region and --endpoint-url"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{first}; grant the permission (list and migrate need dynamodb:Scan) or use other credentials"
    if code in ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"):
        return f"{first}; DynamoDB throttled the requests: try again later or raise the table's capacity"
    if kind == "NoCredentialsError":
        return "no AWS credentials found; configure them (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return f"{first}; check --endpoint-url (AWS_ENDPOINT_URL_DYNAMODB) and the network"
    return f"{first} ({kind})"


def _table(ctx: Context) -> str:
    """The table a command used and where its name came from: PERSISTENCE_TABLE_NAME wins over --table, as in
    functions, so naming the option's table would send the user to the wrong one."""
    option, variable = getattr(ctx.args, "table", None), os.environ.get("PERSISTENCE_TABLE_NAME")
    if variable:
        overrides = f", which overrides --table {option!r}" if option and option != variable else ""
        return f"{variable!r} (from PERSISTENCE_TABLE_NAME{overrides})"
    if option:
        return f"{option!r} (from --table)"
    return f"{Settings.resolve({'table_key': '*'}).table_name!r} (the default)"


def _where() -> str:
    """The endpoint or region the command's calls went to (as --endpoint-url and --region left the environment)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    return f"at endpoint {endpoint}" if endpoint else f"in region {region}" if region else "in this region"
