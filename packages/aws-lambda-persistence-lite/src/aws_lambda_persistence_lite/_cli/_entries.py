"""The commands on a map's entries: ``show`` and ``get`` print them as tagged JSON (exact types) or in Python
notation; ``set`` and ``delete`` change one entry in one commit, with the codec the map is stored with."""

from __future__ import annotations

import pprint
import reprlib
from typing import Any

from .. import PersistentMap
from .. import _tagged_json as tagged
from ._context import CliError, Context


def run_show(ctx: Context) -> int:
    _print_value(ctx, ctx.open(ctx.args.key, existing=True).to_dict())
    return 0


def run_get(ctx: Context) -> int:
    data, name = _existing_entry(ctx)
    _print_value(ctx, data[name])
    return 0


def run_set(ctx: Context) -> int:
    name = _name(ctx)
    if ctx.args.string:
        value: Any = ctx.args.value
    else:
        try:
            value = tagged.loads(ctx.args.value)
        except ValueError as exc:
            raise CliError(
                f"VALUE {_short(ctx.args.value)} is not JSON ({exc}); write a string as '\"text\"' or pass --string"
            ) from None
    data = ctx.open(ctx.args.key)
    with ctx.transfer(f"writing {ctx.args.key}"):
        data[name] = value
    ctx.note(f"set {name!r} in map {data.settings.table_key!r}: version {data.version}")
    return 0


def run_delete(ctx: Context) -> int:
    data, name = _existing_entry(ctx)
    ctx.confirm(f"Delete entry {name!r} of map {data.settings.table_key!r} in table {data.settings.table_name!r}?")
    with ctx.transfer(f"writing {ctx.args.key}"):
        del data[name]
    ctx.note(f"deleted {name!r} from map {data.settings.table_key!r}: version {data.version}")
    return 0


def _existing_entry(ctx: Context) -> tuple[PersistentMap[Any, Any], Any]:
    """The map and the entry name the command names, which must exist."""
    data = ctx.open(ctx.args.key, existing=True)
    name = _name(ctx)
    if name not in data:
        raise CliError(f"map {ctx.args.key!r} has no entry {name!r}; `{ctx.prog} show {ctx.args.key}` lists them")
    return data, name


def _name(ctx: Context) -> Any:
    if not ctx.args.json_name:
        return ctx.args.name
    try:
        return tagged.loads(ctx.args.name)
    except ValueError as exc:
        raise CliError(f"NAME {ctx.args.name!r} is not tagged JSON ({exc}); drop --json-name for a string") from None


def _print_value(ctx: Context, value: Any) -> None:
    try:
        text = pprint.pformat(value, sort_dicts=False) if ctx.args.pretty else tagged.dumps(value, indent=2)
    except RecursionError:
        mode = "--pretty" if ctx.args.pretty else "JSON"
        raise CliError(f"the value is nested too deeply to print as {mode}; read it with the library") from None
    ctx.out.write(text + "\n")


def _short(text: str) -> str:
    """``repr(text)`` cut to about 80 characters, for a one-line message."""
    short = reprlib.Repr()
    short.maxstring = 80
    return short.repr(text)
