"""Format 3's structural commits (FORMAT.md, "Commits" 3-5): flushing the log into runs and partitions in one
transaction, with one bounded maintenance step (compaction, partition merges and splits, garbage collection),
and the segment items they write. Appends and large writes build on it in ``_replica``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ._dynamodb import Conflict, outcome_unknown
from ._errors import PersistenceError
from ._fold import View
from ._head import (
    EPOCH,
    FLUSHED_IDS,
    GARBAGE,
    HEAD_BUDGET,
    IDS,
    INLINE,
    LOG,
    ROOM,
    TABLE,
    TABLE_DIGEST,
    TABLE_MAX,
    Head,
    stored_ids,
    table_attributes,
)
from ._limits import TRANSACT_BUDGET, TRANSACT_MAX_ACTIONS
from ._meter import Usage, item_size, write_units
from ._reading import Reader, _inside, segment_key
from ._records import (
    CLEAR,
    INLINE_MAX,
    MANIFEST,
    PARTITION,
    RUN,
    SHARD_BYTES,
    Entry,
    Segment,
    decode_record,
    encode_partition,
    encode_run,
    encode_table,
    is_inline,
    segment_digest,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._meter import Item


#: Write units one flush may spend (DynamoDB's rules): deletes beyond it wait in alp_garbage for later flushes,
#: so no commit costs more than a free-tier table's burst capacity absorbs.
COMMIT_BUDGET = 900
#: Records a flush moves out of the log at most: each is one REMOVE clause of the head update, whose expression
#: DynamoDB caps at 4 KB (and moto's parser recurses per clause, failing past ~150). A log holds at most 117
#: records (see RECORD_MIN_CHARGE), so one flush empties it.
FLUSH_REMOVES = 120
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

#: Bytes a record adds to the head beyond its own: its list element's overhead (its id is its first 8 bytes).
RECORD_OVERHEAD = 1
#: The least room a record is charged: a log then holds at most 4,000 / 34 = 117 records, so one flush empties it,
#: and the head every append returns (and every container parses) stays short for a counter's tiny records.
RECORD_MIN_CHARGE = 34
#: Seconds after which a large write's claim is taken for a dead writer's: longer than a Lambda call can last.
CLAIM_LIFETIME = 3600
#: A record larger than this never goes into the log: it is written as a run of its own (a large write).
LARGE_RECORD = HEAD_BUDGET // 2


class Flusher(Reader):
    """A replica's structural commits: the flush of its log, and the maintenance and segments that go with it."""

    def _flush(self, usage: Usage, head: Head, *, lay_out: bool = False) -> None:
        """Move the log into a run and do one maintenance step, in one transaction (the replica has folded
        ``head``). Losing to another flush is fine: the caller appends again either way. ``lay_out``: also when
        the log is empty (a large write makes room in the head's segment list)."""
        n = min(len(head.log), FLUSH_REMOVES)
        if not n and not lay_out:
            return
        records = [(head.first_logged + i, r) for i, r in enumerate(head.log[:n])]
        runs = [self._segment(RUN, encode_run(records, records[0][0]), 0, records[0][0], records[-1][0])] if n else []
        puts, replaced, table = self._maintain([*head.table, *(s for s, _ in runs)], runs)
        flushed = stored_ids(head)
        ids = _newest_ids(*flushed, *(r[:8] for _, r in records))
        # What the flush gives back to the log: the records, less what alp_ids and the head's segment list grow
        # by; then less what alp_inl and alp_garbage grow by.
        freed = sum(charge(r) for _, r in records) - (_ids_size(ids) - _ids_size(flushed))
        # (the room an empty log would have after this flush: an inline partition must leave the largest record)
        empty = head.room + freed + sum(charge(r) for r in head.log[n:])
        empty -= _table_size(table) - _table_size(list(head.listed))
        inline, table, puts = self._inline(head, table, puts, empty)
        listed, manifest = self._lay_out(head, table)
        if manifest is not None:
            puts.append(manifest)
        if head.manifest is not None and head.manifest not in listed:
            replaced.append(head.manifest)
        freed -= _table_size(listed) - _table_size(list(head.listed))
        deletes, retired, collected = self._budget(puts, replaced, head)
        if inline is not None:
            freed -= _inline_size(inline) - _inline_size(head.inline)
        freed -= sum(len(e) + 1 for e in retired) - sum(len(e) + 1 for e in collected)
        head_update = self._flush_update(head, n, listed, ids, freed=freed, garbage=(retired, collected), inline=inline)
        actions = self._puts(puts) + [self._delete(key) for key, _ in deletes] + [head_update]
        self._bill(usage, puts, deletes, head, grown=-freed)
        token = os.urandom(8).hex()
        try:
            self.table.transact(usage, actions, token)
        except Conflict:
            return  # another container flushed first
        except Exception as exc:
            if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                raise
            # Outcome unknown: a head read at a newer epoch means this flush or another one was stored, so go on
            # as after a lost race (the caller appends again and catches up); otherwise the call fails, with
            # nothing undone.
            current = self._confirm(usage)
            if current is None or current.epoch == head.epoch:
                raise
            return
        self.head = head._replace(
            log=head.log[n:],
            room=head.room + freed,
            # (what the head shrank by: the flushed records' bytes, less what ``freed`` took for the rest)
            stored_size=head.stored_size - freed + sum(charge(r) - len(r) - RECORD_OVERHEAD for _, r in records),
            epoch=head.epoch + 1,
            table=tuple(table),
            listed=tuple(listed),
            ids=(*ids, *(r[:8] for r in head.log[n:])),
            inline=head.inline if inline is None else inline,
        )
        self._prune()

    def _lay_out(self, head: Head, table: list[Segment]) -> tuple[list[Segment], tuple[Segment, bytes] | None]:
        """What the head lists for the whole ``table`` (FORMAT.md, "Manifest"), and the new manifest to put (None:
        none): the table itself when it fits TABLE_MAX; else the head's manifest and the rest, when the manifest's
        segments are all kept and that fits; else a new manifest of the whole table."""
        if _table_size(table) <= TABLE_MAX:
            return table, None
        manifest = head.manifest
        if manifest is not None and manifest.sid == self._manifest[0]:
            inside = {s.sid for s in self._manifest[1]}
            if inside <= {s.sid for s in table}:
                listed = [manifest, *(s for s in table if s.sid not in inside)]
                if _table_size(listed) <= TABLE_MAX:
                    return listed, None
        new = self._new_manifest(table)
        return [new[0]], new

    @staticmethod
    def _inline(
        head: Head, table: list[Segment], puts: list[tuple[Segment, bytes]], empty: int
    ) -> tuple[bytes | None, list[Segment], list[tuple[Segment, bytes]]]:
        """Whether the flush's head update changes ``alp_inl`` (FORMAT.md, "Inline partition"): the new blob when
        the step wrote the map's one partition small enough to hold in the head (then not put as an item) and an
        empty log would still have room ``empty`` less its growth for the largest record; b"" when the inline
        partition was replaced by stored ones; None to leave it. Also the table and the puts."""
        partitions = [s for s in table if s.kind == PARTITION]
        written = [(s, blob) for s, blob in puts if s.kind == PARTITION]
        if len(partitions) == len(written) == 1 and partitions[0] == written[0][0]:
            segment, blob = written[0]
            room = empty - (_inline_size(blob) - _inline_size(head.inline))
            if len(blob) <= INLINE_MAX and room >= LARGE_RECORD + RECORD_OVERHEAD:
                inline = segment._replace(shards=0)
                return blob, [inline if s == segment else s for s in table], [p for p in puts if p[0] != segment]
        if head.inline and not any(is_inline(s) for s in table):
            return b"", table, puts
        return None, table, puts

    def _flush_update(
        self,
        head: Head,
        n: int,
        table: list[Segment],
        ids: tuple[bytes, ...],
        *,
        freed: int,
        garbage: tuple[list[str], ...],
        inline: bytes | None,
    ) -> dict[str, Any]:
        """The flush's head update: the log's first ``n`` records out, ``freed`` bytes of room back, the new table,
        ``alp_ids`` set to ``ids``, ``alp_inl`` set (removed: b"", kept: None), and the garbage entries (retired,
        collected) in and out; conditional on the epoch."""
        retired, collected = garbage
        table_attr = table_attributes(table)
        # (by index: records appended meanwhile come after, and the epoch excludes every other REMOVE; alp_ids is
        # set whole: only epoch-conditional commits change it)
        removes = [f"#log[{i}]" for i in range(n)] + (["#ids"] if not ids and stored_ids(head) else [])
        removes += ["#seg"] if table_attr["table"] is None else []
        removes += ["#inl"] if inline == b"" else []
        update = f"REMOVE {', '.join(removes)} " if removes else ""
        update += "SET #room = #room + :freed, #ep = #ep + :one, #dig = :dig"
        names = {"#room": ROOM, "#ep": EPOCH, "#dig": TABLE_DIGEST, "#seg": TABLE}
        if n:
            names["#log"] = LOG
        values: dict[str, Any] = {
            ":freed": {"N": str(freed)},
            ":one": {"N": "1"},
            ":dig": table_attr["digest"],
            ":e": {"N": str(head.epoch)},
        }
        if table_attr["table"] is not None:
            update += ", #seg = :seg"
            values[":seg"] = table_attr["table"]
        if inline is not None:
            names["#inl"] = INLINE
        if inline:
            update += ", #inl = :inl"
            values[":inl"] = {"B": inline}
        dropped = []
        if ids or stored_ids(head):
            names["#ids"] = IDS
        if ids:
            update += ", #ids = :ids"
            values[":ids"] = {"L": [{"B": i} for i in ids]}
        if collected:
            dropped.append("#g :collected")
            names["#g"] = GARBAGE
            values[":collected"] = {"SS": collected}
        if dropped:
            update += " DELETE " + ", ".join(dropped)
        if retired:  # (never with collected: one update cannot both add to and delete from a set)
            update += " ADD #g :retired"
            names["#g"] = GARBAGE
            values[":retired"] = {"SS": retired}
        return {
            "Update": {
                "TableName": self.settings.table_name,
                "Key": self.table.key(self.settings.table_key),
                "UpdateExpression": update,
                "ConditionExpression": "#ep = :e",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _bill(
        self,
        usage: Usage,
        puts: list[tuple[Segment, bytes]],
        deletes: list[tuple[str, int]],
        head: Head,
        *,
        grown: int = 0,
    ) -> None:
        """A transaction's write units by DynamoDB's rules: 2 per KB of each item put, deleted or updated (the
        head at the larger of its size before and after: it grows by ``grown`` bytes)."""
        items = self._items(puts)
        usage.items += len(items) + 1
        usage.bytes += sum(item_size(i) for i in items)
        usage.capacity_units += sum(write_units(item_size(i), True) for i in items)
        usage.capacity_units += sum(write_units(size, True) for _, size in deletes)
        usage.capacity_units += write_units(head.stored_size + max(0, grown), True)

    def _budget(
        self, puts: list[tuple[Segment, bytes]], replaced: list[Segment], head: Head
    ) -> tuple[list[tuple[str, int]], list[str], list[str]]:
        """What a flush deletes within COMMIT_BUDGET write units (DynamoDB's rules, the head and the puts counted
        first): the shards of ``replaced`` it can afford, as (key, size); the rest retired to ``alp_garbage``, one
        entry per shard, for later flushes; and, when nothing is retired, the due garbage entries it collects."""
        spent = sum(write_units(item_size(i), True) for i in self._items(puts)) + write_units(HEAD_BUDGET, True)
        deletes: list[tuple[str, int]] = []
        retired: list[str] = []
        for s in replaced:
            shards = [
                (self._shard_key(s.sid, i), self._shard_size(min(SHARD_BYTES, s.blob_size - i * SHARD_BYTES)))
                for i in range(s.shards)
            ]
            cost = sum(write_units(size, True) for _, size in shards)
            if spent + cost <= COMMIT_BUDGET:
                deletes += shards
                spent += cost
            else:
                retired += (
                    [f"{s.sid}:{s.shards}:0"]
                    if s.shards == 1
                    else [f"{s.sid}:{s.shards}:0:{i}" for i in range(s.shards)]
                )
        collected: list[str] = []
        for entry in [] if retired else sorted(head.garbage):
            found = _garbage(entry)
            if found is None or found[2] <= CLAIM_LIFETIME:
                continue
            shards = [(self._shard_key(found[0], i), self._shard_size(SHARD_BYTES)) for i in found[1]]
            cost = sum(write_units(size, True) for _, size in shards)
            if spent + cost <= COMMIT_BUDGET:
                deletes += shards
                collected.append(entry)
                spent += cost
        return deletes, retired, collected

    def _segment(self, kind: int, body: bytes, a: int, b: int, c: int) -> tuple[Segment, bytes]:
        blob = self.codec.compress(body) if body else b""
        shards = -(-len(blob) // SHARD_BYTES)
        digest = segment_digest(blob) if blob else b"\0" * 8
        return Segment(kind, os.urandom(8).hex(), digest, len(body), len(blob), shards, a, b, c), blob

    def _puts(self, puts: list[tuple[Segment, bytes]]) -> list[dict[str, Any]]:
        return [{"Put": {"TableName": self.settings.table_name, "Item": item}} for item in self._items(puts)]

    def _items(self, puts: list[tuple[Segment, bytes]]) -> list[Item]:
        name, table_key = self.settings.value_field_name, self.settings.table_key
        return [
            {
                self.settings.key_field_name: {"S": segment_key(table_key, s.sid, i)},
                name: {"B": blob[i * SHARD_BYTES : (i + 1) * SHARD_BYTES]},
            }
            for s, blob in puts
            for i in range(s.shards)
        ]

    def _delete(self, key: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self.settings.table_name, "Key": self.table.key(key)}}

    def _maintain(
        self, table: list[Segment], puts: list[tuple[Segment, bytes]]
    ) -> tuple[list[tuple[Segment, bytes]], list[Segment], list[Segment]]:
        """One bounded maintenance step on ``table`` (which already lists the flush's run): the segments to
        put, to delete, and the new table (FORMAT.md, "Maintenance policy")."""
        seq = self.view.seq
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

    def _pending_weights(self, partitions: list[Segment]) -> dict[str, int]:
        """Bytes of pending ops per partition (ops its watermark does not cover)."""
        weights = {p.sid: 0 for p in partitions}
        find = _finder(partitions)
        for seq in self.pending:
            for h, size in self._ops_of(seq):
                for p in partitions if h is None else (find(h),):
                    if seq > p.watermark:
                        weights[p.sid] += size
        return weights

    def _ops_of(self, seq: int) -> list[tuple[int | None, int]]:
        hashes = self._hashes.get(seq)
        if hashes is None:
            hashes = self._hashes[seq] = [
                (None if op.kind == CLEAR else self._hash(self.codec.decode_entry(op.entry)[0]), len(op.entry) + 2)
                for op in decode_record(self.pending[seq])[1]
            ]
        return hashes

    def _write_partition(
        self, partition: Segment, seq: int, view: View | None = None, keys: list[Any] | None = None
    ) -> list[tuple[Segment, bytes]]:
        """``partition`` anew from the view (this replica's, or an empty map's first content: ``view``) at
        ``seq``, split while its blob is too large (and splittable). ``keys``: the view's keys inside it."""
        lazy = view is None
        view = view if view is not None else self.view
        if keys is None:
            keys = [k for k in view.values if _inside(self._hash(k), partition)]
        body = encode_partition([Entry(*view.positions[k], view.raw[k]) for k in keys])
        splittable = len(keys) > 1 and partition.depth < 64
        if splittable and len(body) > 4 * PARTITION_MAX:
            return self._split(partition, seq, view, keys, lazy)
        segment, blob = self._segment(PARTITION, body, partition.depth, partition.prefix, seq)
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
            inside = [k for k in keys if _inside(self._hash(k), child)]
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
                (s, r) for s, r in sorted(self.pending.items()) if lo <= s <= hi and not self._dead(s, partitions, find)
            ]
            merged = self._segment(RUN, encode_run(live, lo), level + 1, lo, hi)
            if merged[0].blob_size <= RUN_MAX:
                return merged, sources
        return None

    def _dead(self, seq: int, partitions: list[Segment], find: Callable[[int], Segment]) -> bool:
        """Whether every op of record ``seq`` is absorbed by its key's partition (a CLEAR: by every partition)."""
        lowest = min(p.watermark for p in partitions)
        return all((find(h).watermark if h is not None else lowest) >= seq for h, _ in self._ops_of(seq))

    def _absorbed(self, run: Segment, partitions: list[Segment]) -> bool:
        find = _finder(partitions)
        return all(self._dead(s, partitions, find) for s in self.pending if run.lo <= s <= run.hi)

    def _new_manifest(self, table: list[Segment]) -> tuple[Segment, bytes]:
        """A manifest of ``table``, kept as this replica's (its sid is new: should the commit fail, nothing ever
        names it), so that the commit that lists it does not read it back."""
        manifest = self._segment(MANIFEST, encode_table(table), 0, 0, 0)
        self._manifest = (manifest[0].sid, tuple(table))
        return manifest

    def _fits_one_transaction(self, puts: list[tuple[Segment, bytes]]) -> bool:
        items = self._items(puts)
        return len(items) + 1 <= TRANSACT_MAX_ACTIONS and sum(map(item_size, items)) + HEAD_BUDGET <= TRANSACT_BUDGET

    def _bulk(self, record: bytes, seq: int, own: Any) -> tuple[View, list[Any], list[tuple[Segment, bytes]]]:
        """An empty map's first content, straight into partitions (watermark ``seq``), so that nothing is left to
        merge: the view folded at ``seq``, the record's outcomes, and the partitions written from the view."""
        view = View(self.codec)
        outcome = view.apply(seq, record, None, own[1] if own else None)
        root = Segment(PARTITION, os.urandom(8).hex(), b"", 0, 0, 0)
        parts = self._write_partition(root, seq, view)
        table = [s for s, _ in parts]
        if _table_size(table) > TABLE_MAX:  # (FORMAT.md, "Manifest": listed by a manifest, written with them)
            parts.append(self._new_manifest(table))
        return view, outcome, parts


def _garbage(entry: str) -> tuple[str, list[int], float] | None:
    """An ``alp_garbage`` entry read: its segment, the shard indexes it stands for, and its age in seconds. Claims
    are ``sid:shards:unix time`` (every shard); a retired shard is ``sid:shards:0:index`` (age: forever). None for
    an entry this version cannot read, which is then never collected."""
    parts = entry.split(":")
    # (ASCII digits, at most 20: str.isdigit() also accepts "²", which int() refuses, and a stamp of 400 digits
    # would overflow the float arithmetic below)
    digits = all(0 < len(p) <= 20 and p.isascii() and p.isdigit() for p in parts[1:])
    if len(parts) not in (3, 4) or len(parts[0]) != 16 or not digits:
        return None
    shards, stamp = int(parts[1]), int(parts[2])
    if not 0 < shards <= 10_000:
        return None
    if len(parts) == 4:
        index = int(parts[3])
        return (parts[0], [index], time.time()) if index < shards and stamp == 0 else None
    return parts[0], list(range(shards)), time.time() - stamp


def _newest_ids(*ids: bytes) -> tuple[bytes, ...]:
    """What ``alp_ids`` keeps of ``ids`` (in sequence order): botocore's retry of an append whose response was lost
    must still find its id after the flushes in between."""
    return ids[-FLUSHED_IDS:]


def _ids_size(ids: tuple[bytes, ...]) -> int:
    """What ``alp_ids`` holding ``ids`` adds to the head (DynamoDB's count; absent when empty)."""
    return len(IDS) + 3 + sum(1 + len(i) for i in ids) if ids else 0


def _listing(parts: list[tuple[Segment, bytes]]) -> tuple[list[Segment], list[Segment]]:
    """What a head lists for new segments ``parts`` (a manifest, last, lists the others) and the table they make."""
    segments = [s for s, _ in parts]
    if segments and segments[-1].kind == MANIFEST:
        return segments[-1:], segments[:-1]
    return segments, segments


def _inline_size(blob: bytes) -> int:
    """What ``alp_inl`` holding ``blob`` adds to the head (DynamoDB's count: name and value; absent when empty)."""
    return len(INLINE) + len(blob) if blob else 0


def _table_size(table: list[Segment]) -> int:
    attribute = table_attributes(table)["table"]
    return len(attribute["B"]) if attribute else 0


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


def charge(record: bytes) -> int:
    """The room (``alp_room``) a record takes in the head: its bytes and list overhead, at least
    ``RECORD_MIN_CHARGE`` (FORMAT.md, "Head item")."""
    return max(len(record) + RECORD_OVERHEAD, RECORD_MIN_CHARGE)
