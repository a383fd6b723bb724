"""Format 3's structural commits (FORMAT.md, "Commits" 3-5): flushing the log into a run, with one bounded
maintenance step (``_maintenance``) and the garbage it leaves, in one transaction that replaces the head's segment
table. Appends, first and large writes flush through it when the log is full or the segment list must make room.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ._dynamodb import Conflict, outcome_unknown
from ._errors import PersistenceError
from ._head import (
    EPOCH,
    GARBAGE,
    HEAD_BUDGET,
    IDS,
    INLINE,
    LOG,
    ROOM,
    TABLE,
    TABLE_DIGEST,
    Head,
    stored_ids,
    table_attributes,
)
from ._maintenance import Maintenance
from ._meter import Usage, item_size, write_units
from ._reading import Reader
from ._records import (
    INLINE_MAX,
    PARTITION,
    RUN,
    SHARD_BYTES,
    Segment,
    encode_run,
    is_inline,
)
from ._room import (
    LARGE_RECORD,
    RECORD_OVERHEAD,
    charge,
    ids_size,
    inline_size,
    listable,
    newest_ids,
    table_size,
)

if TYPE_CHECKING:
    from ._state import State


#: Write units one flush may spend (DynamoDB's rules): deletes beyond it wait in alp_garbage for later flushes,
#: so no commit costs more than a free-tier table's burst capacity absorbs.
COMMIT_BUDGET = 900
#: Records a flush moves out of the log at most: each is one REMOVE clause of the head update, whose expression
#: DynamoDB caps at 4 KB (and moto's parser recurses per clause, failing past ~150). A log holds at most 117
#: records (see RECORD_MIN_CHARGE), so one flush empties it.
FLUSH_REMOVES = 120
#: Seconds after which a large write's claim is taken for a dead writer's: longer than a Lambda call can last.
CLAIM_LIFETIME = 3600


class Flusher:
    """A state's structural commit: the flush of its log, and the maintenance and garbage collection that go
    with it."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.reader = Reader(state)
        self.maintenance = Maintenance(state)

    def flush(self, usage: Usage, head: Head, *, lay_out: bool = False) -> None:
        """Move the log into a run and do one maintenance step, in one transaction (the state has folded
        ``head``). Losing to another flush is fine: the caller appends again either way. ``lay_out``: also when
        the log is empty (a large write makes room in the head's segment list)."""
        state = self.state
        n = min(len(head.log), FLUSH_REMOVES)
        if not n and not lay_out:
            return
        records = [(head.first_logged + i, r) for i, r in enumerate(head.log[:n])]
        runs = [state.segment(RUN, encode_run(records, records[0][0]), 0, records[0][0], records[-1][0])] if n else []
        puts, replaced, table = self.maintenance.step([*head.table, *(s for s, _ in runs)], runs)
        flushed = stored_ids(head)
        ids = newest_ids(*flushed, *(r[:8] for _, r in records))
        # What the flush gives back to the log: the records, less what alp_ids and the head's segment list grow
        # by; then less what alp_inl and alp_garbage grow by.
        freed = sum(charge(r) for _, r in records) - (ids_size(ids) - ids_size(flushed))
        # (the room an empty log would have after this flush: an inline partition must leave the largest record)
        empty = head.room + freed + sum(charge(r) for r in head.log[n:])
        empty -= table_size(table) - table_size(list(head.listed))
        inline, table, puts = _inline(head, table, puts, empty)
        listed, manifest = self._lay_out(head, table)
        if manifest is not None:
            puts.append(manifest)
        if head.manifest is not None and head.manifest not in listed:
            replaced.append(head.manifest)
        freed -= table_size(listed) - table_size(list(head.listed))
        deletes, retired, collected = self._budget(puts, replaced, head)
        if inline is not None:
            freed -= inline_size(inline) - inline_size(head.inline)
        freed -= sum(len(e) + 1 for e in retired) - sum(len(e) + 1 for e in collected)
        head_update = self._flush_update(head, n, listed, ids, freed=freed, garbage=(retired, collected), inline=inline)
        actions = state.puts(puts) + [state.delete(key) for key, _ in deletes] + [head_update]
        state.bill(usage, puts, deletes, head, grown=-freed)
        token = os.urandom(8).hex()
        try:
            state.table.transact(usage, actions, token)
        except Conflict:
            return  # another container flushed first
        except Exception as exc:
            if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                raise
            # Outcome unknown: a head read at a newer epoch means this flush or another one was stored, so go on
            # as after a lost race (the caller appends again and catches up); otherwise the call fails, with
            # nothing undone.
            current = self.reader.confirm(usage)
            if current is None or current.epoch == head.epoch:
                raise
            return
        state.head = head._replace(
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
        state.prune()

    def _lay_out(self, head: Head, table: list[Segment]) -> tuple[list[Segment], tuple[Segment, bytes] | None]:
        """What the head lists for the whole ``table`` (FORMAT.md, "Manifest"), and the new manifest to put (None:
        none): the table itself when it fits TABLE_MAX; else the head's manifest and the rest, when the manifest's
        segments are all kept and that fits; else a new manifest of the whole table."""
        if listable(table):
            return table, None
        manifest, known = head.manifest, self.state.manifest
        if manifest is not None and manifest.sid == known[0]:
            inside = {s.sid for s in known[1]}
            if inside <= {s.sid for s in table}:
                listed = [manifest, *(s for s in table if s.sid not in inside)]
                if listable(listed):
                    return listed, None
        new = self.maintenance.new_manifest(table)
        return [new[0]], new

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
        return self.state.head_update(update, "#ep = :e", names, values)

    def _budget(
        self, puts: list[tuple[Segment, bytes]], replaced: list[Segment], head: Head
    ) -> tuple[list[tuple[str, int]], list[str], list[str]]:
        """What a flush deletes within COMMIT_BUDGET write units (DynamoDB's rules, the head and the puts counted
        first): the shards of ``replaced`` it can afford, as (key, size); the rest retired to ``alp_garbage``, one
        entry per shard, for later flushes; and, when nothing is retired, the due garbage entries it collects."""
        state = self.state
        spent = sum(write_units(item_size(i), True) for i in state.items(puts)) + write_units(HEAD_BUDGET, True)
        deletes: list[tuple[str, int]] = []
        retired: list[str] = []
        for s in replaced:
            shards = [
                (state.shard_key(s.sid, i), state.shard_size(min(SHARD_BYTES, s.blob_size - i * SHARD_BYTES)))
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
            shards = [(state.shard_key(found[0], i), state.shard_size(SHARD_BYTES)) for i in found[1]]
            cost = sum(write_units(size, True) for _, size in shards)
            if spent + cost <= COMMIT_BUDGET:
                deletes += shards
                collected.append(entry)
                spent += cost
        return deletes, retired, collected


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
        room = empty - (inline_size(blob) - inline_size(head.inline))
        if len(blob) <= INLINE_MAX and room >= LARGE_RECORD + RECORD_OVERHEAD:
            inline = segment._replace(shards=0)
            return blob, [inline if s == segment else s for s in table], [p for p in puts if p[0] != segment]
    if head.inline and not any(is_inline(s) for s in table):
        return b"", table, puts
    return None, table, puts


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
