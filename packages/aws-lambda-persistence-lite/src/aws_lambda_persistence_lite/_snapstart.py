"""SnapStart: maps in a restored snapshot catch up before they are used.

With SnapStart, Lambda snapshots a function after its init and starts new containers from the snapshot, possibly
hours later and many at once: a map loaded during init would show the state of that moment for ever (with the
default ``max_age=None`` nothing else makes it read again). Lambda's Python runtimes ship ``snapshot_restore_py``,
whose after-restore hooks run in each restored container before its first invocation: the hook here marks every
map of the process stale, so that its first use reads the head again (one GetItem when nothing changed) and a
first blind change catches up as it commits. Where the module is missing (not on Lambda, or no SnapStart), nothing
is registered and nothing is tracked.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._committing import Committer

_lock = threading.Lock()
#: The commit loops of the maps alive in this process, where the runtime has the hooks.
_maps: weakref.WeakSet[Committer] = weakref.WeakSet()
#: Whether the runtime has SnapStart hooks (None: not asked yet; asked at the first map).
_hooks: bool | None = None


def track(commits: Committer) -> None:
    """Have ``commits`` (a map's) catch up after a SnapStart restore."""
    global _hooks  # noqa: PLW0603 - one registration per process
    with _lock:
        if _hooks is None:
            _hooks = _register()
        if _hooks:
            _maps.add(commits)


def _register() -> bool:
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    register_after_restore(restored)
    return True


def restored() -> None:
    """The after-restore hook: every map reads the head again at its first use (no call is made here: the hooks
    must finish within Lambda's restore timeout of 10 seconds)."""
    with _lock:
        for commits in list(_maps):
            commits.stale = commits.loaded
