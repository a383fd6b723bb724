"""Format 3's maintenance (FORMAT.md, "Maintenance policy" and "Manifest"): the segments a structural commit writes
besides its run, computed from the state without I/O. Partitions are merged with their pending changes (and split
while too large), runs are compacted into the next level or dropped once every partition has absorbed them, and a
table too long for the head goes into a manifest; an empty map's first content goes straight into partitions.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._fold import View
from ._limits import TRANSACT_MAX_ACTIONS
from ._reading import _inside
from ._records import (
    CLEAR,
    MANIFEST,
    PARTITION,
    RUN,
    Entry,
    Segment,
    decode_record,
    encode_partition,
    encode_run,
    encode_table,
)
from ._room import listable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._state import State

#: Runs of one level that are compacted into one run of the next level.
RUN_FANOUT = 4
#: A compaction never makes a run larger than this (compressed): larger pending data goes into partitions.
RUN_MAX = 256 * 1024
#: A partition is split in two when its blob would be larger than this: a merge then stays under ~800 WCU.
PARTITION_MAX = 192 * 1024
#: A partition is merged when its pending changes weigh at least this share of it (both uncompressed): low
#: enough that a cold load reads little besides the partitions, high enough that a merge's cost (about 4 x the
#: partition's size: write it anew and delete the old, transactionally) is spread over many changes.
MERGE_SHARE = 0.1


class Maintenance:
    """One bounded maintenance step on a state's segment table, and the partitions and manifests it writes."""

    def __init__(self, state: State) -> None:
        self.state = state

    def step(
        self, table: list[Segment], puts: list[tuple[Segment, bytes]]
    ) -> tuple[list[tuple[Segment, bytes]], list[Segment], list[Segment]]:
        """One bounded maintenance step on ``table`` (which already lists the flush's run): the segments to
        put, to delete, and the new table (FORMAT.md, "Maintenance policy")."""
        seq = self.state.view.seq
        partitions = [s for s in table if s.kind == PARTITION] or [
            Segment(PARTITION, os.urandom(8).hex(), b"", 0, 0, 0)
        ]
        runs = [s for s in table if s.kind == RUN]
        pending = self._pending_weights(partitions)
        deletes: list[Segment] = []
        best = max(partitions, key=lambda p: (pending[p.sid] / max(p.raw_size, 1), -p.depth))
        if pending[best.sid] and pending[best.sid] >= MERGE_SHARE * best.raw_size:
            written = self._write_partition(best, seq)
            puts += written
            if best.shards:
                deletes.append(best)
            partitions = [p for p in partitions if p.sid != best.sid] + [s for s, _ in written]
            partitions += self._virtual_siblings(best, [s for s, _ in written])
        else:
            new = {s.sid for s, _ in puts}  # (a run put in this transaction cannot also be deleted by it)
            compaction = self._compaction([r for r in runs if r.sid not in new], partitions)
            if compaction is not None:
                merged, sources = compaction
                puts.append(merged)
                deletes += sources
                runs = [r for r in runs if r not in sources] + [merged[0]]
        new = {s.sid for s, _ in puts}
        dead = [r for r in runs if self._absorbed(r, partitions)]
        unwritten = [r for r in dead if r.sid in new]  # absorbed before it was stored: never written
        puts = [(s, blob) for s, blob in puts if s not in unwritten]
        budget = TRANSACT_MAX_ACTIONS - 3 - sum(s.shards for s, _ in puts) - sum(s.shards for s in deletes)
        dead = [r for r in dead if r.sid not in new][: max(0, budget)]
        deletes += [r for r in dead if r.shards]
        runs = [r for r in runs if r not in dead and r not in unwritten]
        stored = [p for p in partitions if p.shards or p.blob_size or p.depth]
        return puts, deletes, stored + runs

    def bulk(self, record: bytes, seq: int, own: Any) -> tuple[View, list[Any], list[tuple[Segment, bytes]]]:
        """An empty map's first content, straight into partitions (watermark ``seq``), so that nothing is left to
        merge: the view folded at ``seq``, the record's outcomes, and the partitions written from the view."""
        view = View(self.state.codec)
        outcome = view.apply(seq, record, None, own[1] if own else None)
        root = Segment(PARTITION, os.urandom(8).hex(), b"", 0, 0, 0)
        parts = self._write_partition(root, seq, view)
        table = [s for s, _ in parts]
        if not listable(table):  # (FORMAT.md, "Manifest": listed by a manifest, written with them)
            parts.append(self.new_manifest(table))
        return view, outcome, parts

    def new_manifest(self, table: list[Segment]) -> tuple[Segment, bytes]:
        """A manifest of ``table``, kept as the state's (its sid is new: should the commit fail, nothing ever
        names it), so that the commit that lists it does not read it back."""
        manifest = self.state.segment(MANIFEST, encode_table(table), 0, 0, 0)
        self.state.manifest = (manifest[0].sid, tuple(table))
        return manifest

    def _pending_weights(self, partitions: list[Segment]) -> dict[str, int]:
        """Bytes of pending ops per partition (ops its watermark does not cover)."""
        weights = {p.sid: 0 for p in partitions}
        find = _finder(partitions)
        for seq in self.state.pending:
            for h, size in self._ops_of(seq):
                for p in partitions if h is None else (find(h),):
                    if seq > p.watermark:
                        weights[p.sid] += size
        return weights

    def _ops_of(self, seq: int) -> list[tuple[int | None, int]]:
        state = self.state
        hashes = state.hashes.get(seq)
        if hashes is None:
            hashes = state.hashes[seq] = [
                (None if op.kind == CLEAR else state.hash_of(state.codec.decode_entry(op.entry)[0]), len(op.entry) + 2)
                for op in decode_record(state.pending[seq])[1]
            ]
        return hashes

    def _write_partition(
        self, partition: Segment, seq: int, view: View | None = None, keys: list[Any] | None = None
    ) -> list[tuple[Segment, bytes]]:
        """``partition`` anew from the view (the state's, or an empty map's first content: ``view``) at ``seq``,
        split while its blob is too large (and splittable). ``keys``: the view's keys inside it."""
        lazy = view is None
        view = view if view is not None else self.state.view
        if keys is None:
            keys = [k for k in view.values if _inside(self.state.hash_of(k), partition)]
        body = encode_partition([Entry(*view.positions[k], view.raw[k]) for k in keys])
        splittable = len(keys) > 1 and partition.depth < 64
        if splittable and len(body) > 4 * PARTITION_MAX:
            return self._split(partition, seq, view, keys, lazy)
        segment, blob = self.state.segment(PARTITION, body, partition.depth, partition.prefix, seq)
        if splittable and len(blob) > PARTITION_MAX:
            return self._split(partition, seq, view, keys, lazy)
        return [(segment, blob)]

    def _split(
        self, partition: Segment, seq: int, view: View, keys: list[Any], lazy: bool
    ) -> list[tuple[Segment, bytes]]:
        depth = partition.depth + 1
        out = []
        for bit in (0, 1):
            prefix = partition.prefix + bit * (1 << partition.depth)
            child = partition._replace(sid=os.urandom(8).hex(), a=depth, b=prefix)
            inside = [k for k in keys if _inside(self.state.hash_of(k), child)]
            out += self._write_partition(child, seq, None if lazy else view, inside)
            if lazy and not partition.shards:  # an empty, unstored partition splits for free: one child now
                break
        return out

    def _virtual_siblings(self, parent: Segment, written: list[Segment]) -> list[Segment]:
        """Unstored empty partitions for the part of ``parent``'s space that ``written`` leaves uncovered (an
        unstored partition split lazily: the rest is merged by later flushes)."""
        missing = [(parent.depth, parent.prefix)]
        covered = {(s.depth, s.prefix) for s in written}
        out: list[Segment] = []
        while missing:
            depth, prefix = missing.pop()
            if (depth, prefix) in covered:
                continue
            if any(d > depth and p & ((1 << depth) - 1) == prefix for d, p in covered):
                missing += [(depth + 1, prefix), (depth + 1, prefix + (1 << depth))]
                continue
            out.append(Segment(PARTITION, os.urandom(8).hex(), b"\0" * 8, 0, 0, 0, depth, prefix, 0))
        return out

    def _compaction(
        self, runs: list[Segment], partitions: list[Segment]
    ) -> tuple[tuple[Segment, bytes], list[Segment]] | None:
        for level in sorted({r.level for r in runs}):
            same = sorted((r for r in runs if r.level == level), key=lambda r: r.lo)
            if len(same) < RUN_FANOUT:
                continue
            sources = same[:RUN_FANOUT]
            lo, hi = sources[0].lo, sources[-1].hi
            find = _finder(partitions)
            live = [
                (s, r)
                for s, r in sorted(self.state.pending.items())
                if lo <= s <= hi and not self._dead(s, partitions, find)
            ]
            merged = self.state.segment(RUN, encode_run(live, lo), level + 1, lo, hi)
            if merged[0].blob_size <= RUN_MAX:
                return merged, sources
        return None

    def _dead(self, seq: int, partitions: list[Segment], find: Callable[[int], Segment]) -> bool:
        """Whether every op of record ``seq`` is absorbed by its key's partition (a CLEAR: by every partition)."""
        lowest = min(p.watermark for p in partitions)
        return all((find(h).watermark if h is not None else lowest) >= seq for h, _ in self._ops_of(seq))

    def _absorbed(self, run: Segment, partitions: list[Segment]) -> bool:
        find = _finder(partitions)
        return all(self._dead(s, partitions, find) for s in self.state.pending if run.lo <= s <= run.hi)


def _finder(partitions: list[Segment]) -> Callable[[int], Segment]:
    """The partition that holds a key hash, found by its low bits (the partitions cover the hash space once)."""
    by_bits = {(p.depth, p.prefix): p for p in partitions}
    depths = sorted({p.depth for p in partitions})

    def find(h: int) -> Segment:
        for depth in depths:
            found = by_bits.get((depth, h & ((1 << depth) - 1)))
            if found is not None:
                return found
        raise AssertionError("the partitions do not cover the key-hash space")

    return find
