"""What a map's code sees of it, and the two ways a change reaches DynamoDB.

Outside a ``batch()`` block the map shows its replica's values, caught up first when they are due (``_committing``);
inside, the block's own copy (``_batching``). A blind change is committed at once, a change that reads the map (a
plan) through the commit loop; inside a block, both are steps of the block, committed with one write at its exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._committing import Committer, Plan
from ._records import SET, Op

if TYPE_CHECKING:
    from ._batching import Batch
    from ._replica import Replica


class Contents:
    """One map's contents (its replica's, or an open batch's copy), and how changes reach them."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        #: Held by every change and refresh; reads take none.
        self.lock = threading.RLock()
        self.commits = Committer(replica)
        #: The open ``batch()`` block (None: none is open).
        self.batch: Batch | None = None

    def view(self) -> dict[Any, Any]:
        """The map as its code sees it, caught up first when due (the max_age setting)."""
        # Reads take no lock, so that they never wait for a commit's network calls (and a batch() block can hand
        # the map to worker threads); other threads therefore see a batch's changes before its exit commits them.
        batch = self.batch
        if batch is not None:
            return batch.data
        if self.commits.due(self.replica.settings.max_age):
            self.refresh()
        return self.replica.view.values

    def get(self, key: Any) -> Any:
        """``view()[key]``; inside a batch() block, the block's own copy of a stored value (``Batch.get``)."""
        batch = self.batch
        return self.view()[key] if batch is None else batch.get(key, self.replica)

    def refresh(self) -> None:
        """Catch up with the stored map (``PersistentMap.refresh``); an open block's changes stay on top."""
        with self.lock:
            self.commits.catch_up()
            batch = self.batch
            if batch is not None:
                # Inside batch(): the block's changes so far stay, on top of the fresh state, which is also what
                # the block's exit commits on.
                batch.rebase(self.replica.view.values, self.replica.codec)

    def blind(
        self, ops: list[Op], effect: Callable[[dict[Any, Any]], Any], known: list[tuple[Any, Any]] | None = None
    ) -> list[Any]:
        """Commit changes that do not depend on what is stored: they never conflict. ``known``: the (key, value)
        of each SET op, kept as they are (the caller's objects) instead of decoded again."""
        self.commits.writable()
        batch = self.batch
        if batch is not None:
            effect(batch.data)
            batch.steps.append(ops)
            return []
        outcomes = self.commits.commit(ops, None, known)
        self.commits.synced_at = time.monotonic()
        return outcomes

    def reading(self, plan: Plan) -> Any:
        """Commit a change computed from the stored state (``Committer.reading``); inside a batch() block, a step
        of the block, computed on its copy."""
        self.commits.writable()
        with self.lock:
            batch = self.batch
            if batch is not None:
                _, result = self.commits.plan(plan, batch.data)
                batch.steps.append(plan)
                batch.reads = True
                return result
            return self.commits.reading(plan)

    @contextmanager
    def block(self) -> Iterator[None]:
        """A ``batch()`` block: its changes only change its copy of the map, and are committed at its exit with
        one write (none when it raises); a nested block is part of the outermost one."""
        with self.lock:
            if self.batch is not None:  # nested: the outermost batch commits
                yield
                return
            if not self.commits.loaded or self.commits.stale:
                self.refresh()
            from ._batching import Batch, replay  # (imported by the first block, not by every import)

            batch = self.batch = Batch(dict(self.replica.view.values))
            try:
                yield
            finally:
                self.batch = None
            edited, _ = changed(self.replica, batch.held())  # (the values it read and edited in place: save())
            if edited:
                batch.steps.append(edited)
            if not batch.steps:
                return
            if not batch.reads:
                self.commits.commit([op for step in batch.steps for op in step], None)  # type: ignore[union-attr]
                return
            steps = batch.steps
            self.reading(lambda d: (replay(steps, d, self.replica.codec), None))


def changed(replica: Replica, pairs: Iterable[tuple[Any, Any]]) -> tuple[list[Op], list[tuple[Any, Any]]]:
    """A set of each (key, value) whose encoding differs from the stored entry (in-place edits found by
    encoding), and those pairs."""
    raw = replica.view.raw
    ops, known = [], []
    for key, value in pairs:
        entry = replica.entry(key, value)
        if entry != raw.get(key):
            ops.append(Op(SET, entry))
            known.append((key, value))
    return ops, known
