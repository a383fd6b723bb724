"""``export`` and ``import``: a map as a tagged JSON file (every type survives), written atomically, and read back
into a map in one commit."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from .. import _tagged_json as tagged
from ._context import CliError, Context
from ._output import entries

#: First key of an export file; its value is the version of the file layout.
EXPORT_MARKER = "aws-lambda-persistence-export"
_CHUNK = 1 << 20


def run_export(ctx: Context) -> int:
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
        _write_atomically(ctx, path, text.encode("utf-8"))
    ctx.note(f"exported {entries(len(data))} of map {data.settings.table_key!r} (version {data.version}) to {path}")
    return 0


def _write_atomically(ctx: Context, path: str, content: bytes) -> None:
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


def run_import(ctx: Context) -> int:
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
            f"Replace the {entries(len(data))} of map {s.table_key!r} (version {data.version}) in table "
            f"{s.table_name!r} with the {entries(len(document))} of {path}?"
        )
    with ctx.transfer(f"writing {s.table_key}"), data.batch():  # one commit, all or nothing
        data.clear()
        data.update(document)
    ctx.note(f"imported {entries(len(document))} into map {s.table_key!r}: version {data.version}")
    return 0


def _read(ctx: Context, path: str) -> bytes:
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
