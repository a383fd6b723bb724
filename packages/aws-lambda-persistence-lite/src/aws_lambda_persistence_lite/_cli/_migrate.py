"""``migrate``: rewrite every map this package would not write as it is (1.0.0 items, and maps of another codec)
with ``admin.rewrite``, each conditional on the head it was read at, so a concurrent writer is never overwritten.

Heads in other formats are left alone: format 2 was never released, and a newer format is not downgraded.
"""

from __future__ import annotations

from .. import FORMAT_VERSION, PersistenceError, Settings, admin
from ..admin import MapInfo
from ._context import CliError, Context, library_message
from ._inspect import stored_maps
from ._output import count, entries


def run_migrate(ctx: Context) -> int:
    s = ctx.settings()
    codec = ctx.codec_name
    found = [info for info in stored_maps(ctx, s) if _to_rewrite(info, codec)]
    if ctx.args.dry_run:
        return _dry_run(ctx, s, found)
    if not found:
        ctx.note(f"no maps to rewrite with codec {codec} in table {s.table_name!r}")
        return 0
    legacy = sum(info.format == 1 for info in found)
    foreign = sorted({info.codec for info in found if info.format != 1})
    kinds = [count(legacy, "1.0.0 item")] if legacy else []
    kinds += [f"{len(found) - legacy} of codec {', '.join(foreign)}"] if foreign else []
    ctx.confirm(
        f"Rewrite {count(len(found), 'map')} of table {s.table_name!r} in format {FORMAT_VERSION} with codec {codec} "
        f"({'; '.join(kinds)})? Functions still running 1.0.0, or a package that cannot read {codec}, cannot "
        "read them afterwards."
    )
    failed, _ = _each(ctx, s, found, dry_run=False)
    if failed:
        was, them = ("was", "it") if failed == 1 else ("were", "them")
        raise CliError(
            f"{failed} of {count(len(found), 'map')} {was} not migrated (see above); fix {them} and run migrate again"
        )
    return 0


def _to_rewrite(info: MapInfo, codec: str) -> bool:
    """A 1.0.0 item, or a format-3 head of another codec (one this version cannot parse is named as a failure)."""
    return info.format == 1 or (info.format == FORMAT_VERSION and info.codec != codec)


def _dry_run(ctx: Context, s: Settings, found: list[MapInfo]) -> int:
    """List the maps migrate would rewrite: each is read and re-encoded as migrate would, so that a map listed is
    one migrate can rewrite (the others are named on stderr, and the exit code is 1 as migrate's would be)."""
    refused, listed = _each(ctx, s, found, dry_run=True)
    ctx.note(f"{count(listed, 'map')} to rewrite with codec {ctx.codec_name} in table {s.table_name!r}")
    if refused:
        them = "it" if refused == 1 else "them"
        raise CliError(
            f"{refused} of {count(len(found), 'map')} cannot be migrated (see above); fix {them}, then run migrate"
        )
    return 0


def _each(ctx: Context, s: Settings, found: list[MapInfo], *, dry_run: bool) -> tuple[int, int]:
    """Rewrite (or, ``dry_run``, check) each map, saying what became of it: how many failed, and how many a dry run
    found to rewrite (listed on stdout)."""
    failed = listed = 0
    with ctx.transfer("reading" if dry_run else "migrating", unit="map") as progress:
        progress.total = len(found)
        for info in found:
            try:
                # The key comes from the table itself: no PERSISTENCE_TABLE_KEY may replace it (admin.read).
                outcome = _rewrite(ctx, s._replace(table_key=info.key), dry_run=dry_run)
            except PersistenceError as exc:
                failed += 1
                if dry_run:
                    ctx.note(f"{info.key}: cannot be migrated: {library_message(exc, ctx)}")
                else:
                    ctx.out.write(f"{info.key}: not migrated: {library_message(exc, ctx)}\n")
            else:
                if not dry_run:
                    ctx.out.write(f"{info.key}: {outcome}\n")
                elif outcome is None:
                    listed += 1
                    ctx.out.write(info.key + "\n")
            progress.update(1)
    return failed, listed


def _rewrite(ctx: Context, settings: Settings, *, dry_run: bool) -> str | None:
    """Migrate one map; what became of it (None: a dry run found it to rewrite)."""
    data = ctx.read(settings)
    info = None if data is None else admin.describe(data)
    if data is None or info is None:
        return "skipped: deleted meanwhile"
    if info.format == FORMAT_VERSION and info.codec == ctx.codec_name:
        return f"skipped: already written with codec {ctx.codec_name}"
    new = admin.rewrite(data, ctx.codec_name, dry_run=dry_run)
    if dry_run:
        return None
    if new is None:
        return "skipped: another writer changed it meanwhile (run migrate again)"
    return f"migrated: {entries(len(data))}, version {new.version}, codec {new.codec}"
