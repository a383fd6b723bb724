"""How a map's changes reach DynamoDB (FORMAT.md, "Commits"), and when its replica must catch up first.

A change that depends on what is stored (a plan: ``mutate``, ``pop``, ``popitem``, ``setdefault``) is committed
conditional on the version it was computed on, and computed again on the newest state when another container
committed first; a blind change is appended whatever other containers did meanwhile, so it never conflicts. The
contents change only by folding committed records, so a failed write leaves memory as it was. Callers hold the
map's lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._capacity import watch_capacity
from ._dynamodb import Conflict, TableMissing
from ._errors import ConfigurationError, ConflictError
from ._log import backoff
from ._meter import Usage
from ._records import Op
from ._replica import recoded

if TYPE_CHECKING:
    from ._replica import Replica

#: A change that depends on the stored values: given a private copy of the map, the ops and the result.
Plan = Callable[[dict[Any, Any]], tuple[list[Op], Any]]


class Committer:
    """One map's commit loop, and whether its replica is in step with the stored map."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        #: Whether the replica holds a state (False: nothing read yet); ``stale``: a dropped map's state, to catch
        #: up on before it is read or a change is computed from it (a blind change catches up as it commits).
        self.loaded = self.stale = replica.head is not None
        self.synced_at = 0.0
        #: True while a plan (the function given to mutate(), or pop()'s) runs: see ``writable``.
        self.planning = False

    def due(self, max_age: float | None) -> bool:
        """Whether the replica must catch up before it is read: nothing read yet, a dropped map's state, or a last
        read older than ``max_age`` seconds."""
        return not self.loaded or self.stale or (max_age is not None and time.monotonic() - self.synced_at > max_age)

    def catch_up(self) -> None:
        """Read what changed in the stored map (all of it, when nothing was read yet)."""
        replica, cold = self.replica, not self.loaded
        if cold:
            replica.load()
            self.loaded = True
            self._adopt()
        else:
            self.sync()
        self.stale = False
        self.synced_at = time.monotonic()
        replica.table.log.debug(
            "map %r: %s at version %d: %r", replica.settings.table_key, "loaded" if cold else "refreshed",
            replica.view.seq, replica.last_load,
        )  # fmt: skip

    def sync(self) -> bool:
        """Catch up with the stored map; True when it had changed."""
        changed = self.replica.refresh()
        if changed:
            self._adopt()
        return changed

    def _adopt(self) -> None:
        """Take a 1.0.0 item the replica read (``replica.legacy``) as the map (``_legacy``)."""
        if self.replica.legacy is not None:
            # Only 1.0.0 items need _legacy (and the pickle allow-list it reads them through): imported here, on
            # first use, so that importing the package does not load them (tools/bench/import_time.py).
            from ._legacy import adopt

            adopt(self.replica)

    def writable(self) -> None:
        """Refuse a change made from inside a plan: the function given to ``mutate()`` runs once per attempt, so a
        change it made to the map itself would be committed on every attempt."""
        if self.planning:
            raise RuntimeError(
                "cannot change the map from inside the function given to mutate() (it may run several times, and "
                "only what it does to its argument is committed once): change the dict it receives instead"
            )

    def plan(self, plan: Plan, d: dict[Any, Any]) -> tuple[list[Op], Any]:
        """``plan`` run on ``d``, the map refusing changes meanwhile (``writable``)."""
        self.planning = True
        try:
            return plan(d)
        finally:
            self.planning = False

    def reading(self, plan: Plan) -> Any:
        """Commit a change computed from the stored state: conditional on the version it was computed on, and
        computed again on the newest state when another container committed first."""
        replica = self.replica
        if not self.loaded or self.stale:
            self.catch_up()
        usage = Usage()  # one write's cost, over all its attempts
        for attempt in range(replica.settings.max_attempts):
            version = replica.view.seq
            ops, result = self.plan(plan, dict(replica.view.values))
            if not ops:
                # Nothing to write. The result must come from the current state: one GetItem confirms it, or
                # gives the state to redo it on (nobody raced this call: no backoff).
                if not self.sync():
                    return result
                continue
            try:
                self.commit(ops, version if replica.legacy is None else None, usage=usage)
            except Conflict:
                pause = backoff(attempt, 0.02, 1.0)
                replica.table.log.debug(
                    "map %r: attempt %d, computed at version %d, lost to another writer (now at %d); computing "
                    "it again after %.3f s", replica.settings.table_key, attempt + 1, version, replica.view.seq, pause,
                )  # fmt: skip
                continue
            self.synced_at = time.monotonic()
            return result
        raise ConflictError(
            f"map {replica.settings.table_key!r} was changed by other writers on each of "
            f"{replica.settings.max_attempts} attempts; nothing of this call was written, and the map now shows "
            "the newest stored state"
        )

    def commit(
        self,
        ops: list[Op],
        expected: int | None,
        known: list[tuple[Any, Any]] | None = None,
        usage: Usage | None = None,
    ) -> list[Any]:
        """Commit ``ops`` as one record: conditional on version ``expected`` (Conflict when the map moved on), or
        blind (None). ``known``: each op's (key, value), kept as they are instead of decoded again."""
        try:
            outcomes = self._commit_ops(ops, expected, known, usage)
            self.stale = False  # (the commit folded the newest head)
            replica = self.replica
            replica.table.log.debug(
                "map %r: committed %d ops as version %d: %r", replica.settings.table_key, len(ops), replica.view.seq,
                replica.last_commit,
            )  # fmt: skip
            watch_capacity(replica.table, replica.last_commit)
            return outcomes
        except TableMissing:  # (a first write creates the table; this one had a head in it)
            s = self.replica.settings
            raise ConfigurationError(
                f"the table {s.table_name!r} of the map under key {s.table_key!r} no longer exists (deleted while "
                "the map was in use); nothing of this change was written: refresh() starts again from an empty map"
            ) from None

    def _commit_ops(
        self,
        ops: list[Op],
        expected: int | None,
        known: list[tuple[Any, Any]] | None,
        usage: Usage | None,
    ) -> list[Any]:
        replica = self.replica
        if known is not None and len(known) != len(ops):
            known = None
        if not self.loaded:  # (lazy=True, nothing read yet: a blind change is appended unread, FORMAT.md)
            done = replica.append_unread(ops, known, usage or Usage()) if expected is None else None
            if done is not None:
                self.loaded = True
                return done
            ops = self._load_for(ops)
        if replica.legacy is not None:
            # The first write over a 1.0.0 item stores every key with this change (FORMAT.md, "First write"); if
            # another container upgraded the item first, this change is made on what that one stored.
            from ._legacy import upgrade  # (imported at first use: see _adopt)

            try:
                return upgrade(replica, ops, known, usage)
            except Conflict:
                if expected is not None:
                    raise  # computed on the 1.0.0 map: compute it again on the stored one
        return replica.commit(ops, expected=expected, known=known, usage=usage)

    def _load_for(self, ops: list[Op]) -> list[Op]:
        """Load a map not read yet; ``ops``, encoded before that, in the codec the stored map turned out to use."""
        codec = self.replica.codec
        self.catch_up()
        if self.replica.codec is codec:
            return ops
        return recoded(ops, codec, self.replica.codec)  # (the stored map's codec: the ops again in it)
