"""Format 3's appends (FORMAT.md, "Commits" 2-3): a change committed as one record appended to the head's log, and
the commit loop that chooses between an append, the map's first write (``_first_write``) and a large write
(``_large_write``), flushing (``_flushing``) when the log is full.

:class:`Replica` is the whole engine of one map in one container: its :class:`~._state.State`, which it reads
(``_reading``) and changes through these protocols. It knows codec-encoded entries, never Python types, except
through the codec's ``decode_entry`` / ``encode_entry``. A cold start that loads a map and appends to it needs
only ``_reading`` of them: the others (a first write, a large write, a flush every hundred or so appends) are
imported where they are first used, so that importing the package does not open their files (the import is on
every cold start's clock: tools/bench/import_time.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._dynamodb import Conflict, TableMissing, outcome_unknown
from ._errors import ConflictError, PersistenceError
from ._head import CODEC, FMT, HEAD_BUDGET, IDS, LOG, ROOM, TABLE, TABLE_DIGEST, VER, appended, parse, table_attributes
from ._meter import Usage, write_units
from ._reading import Reader
from ._records import CLEAR, Op, Segment, encode_record
from ._room import LARGE_RECORD, RECORD_OVERHEAD, charge
from ._state import State

if TYPE_CHECKING:
    from ._codec import Codec
    from ._head import Head


#: Times an append meets a full log (and flushes) before it gives up.
ROOM_ATTEMPTS = 8
#: Room below which the append that crosses it flushes at once, when other containers are appending too
#: (``_flush_ahead``): about 29 of a counter's records, left for them while the flush is in flight.
FLUSH_AHEAD = 1_000


class Replica(State):
    """One container's copy of one map, and the protocols that keep it and DynamoDB in step."""

    def load(self) -> None:
        """Cold load: the head, then every segment in one BatchGetItem round."""
        Reader(self).load()

    def refresh(self) -> bool:
        """Bring the replica to the stored version, reading only what changed. True when something did."""
        return Reader(self).refresh()

    def read_segments(self, usage: Usage, segments: list[Segment]) -> dict[str, bytes]:
        """Blobs of ``segments``, read and checked."""
        return Reader(self).segments.read(usage, segments)

    # -- appends ------------------------------------------------------------------------------------------

    def commit(
        self,
        ops: list[Op],
        *,
        expected: int | None = None,
        known: list[tuple[Any, Any]] | None = None,
        usage: Usage | None = None,
        first_only: bool = False,
    ) -> list[Any]:
        """Append one record of ``ops``. ``expected``: the version the ops were computed on (a conditional
        commit: Conflict, after catching up, when the map has moved on); None: blind (never conflicts).
        ``known``: each op's (key, value), folded as they are instead of decoded again. ``usage`` accumulates the
        cost over the attempts of one write (it becomes ``last_commit``). ``first_only``: the record is a 1.0.0
        map's migration, valid only as the map's first write: Conflict when a head exists.

        Returns the record's per-op outcomes as folded (``View.apply``)."""
        usage = self.last_commit = usage if usage is not None else Usage()
        rid = os.urandom(8)
        record = encode_record(rid, ops)
        own = (rid, known) if known is not None else None
        large = len(record) + RECORD_OVERHEAD > LARGE_RECORD
        reader = Reader(self)
        for _ in range(max(ROOM_ATTEMPTS, self.settings.max_attempts)):
            head = self.head
            if head is None:
                from ._first_write import FirstWriter  # (imported at first use: see the module docstring)

                done = FirstWriter(self).write(usage, record, rid, own, large=large, first_only=first_only)
                if done is not None:
                    return done.get(rid, [])
                continue
            if first_only:
                raise Conflict()
            codec = self.codec
            if large:
                from ._large_write import CodecChanged, LargeWriter  # (imported at first use: see the module docstring)

                try:
                    return LargeWriter(self).write(usage, rid, record, own)
                except CodecChanged:  # (nothing written) the change again, in the map's new codec
                    ops, record, large = _recoded_record(rid, ops, codec, self.codec)
                    continue
            try:
                new = self._append_confirmed(usage, head, record, rid, expected)
            except Conflict as conflict:
                current, outcomes = reader.follow(reader.current(usage, conflict), usage, own=own)
                self.table.log.debug(
                    "map %r: append at version %d met version %d (room %d of %d needed)", self.settings.table_key,
                    head.version, current.version, current.room, charge(record),
                )  # fmt: skip
                if rid in current.ids:  # botocore's retry of our applied append
                    return outcomes.get(rid, [])
                if expected is not None and current.version != expected:
                    raise Conflict() from None
                if self.codec is not codec:  # the map was rewritten in another codec: the change, in that one
                    ops, record, large = _recoded_record(rid, ops, codec, self.codec)
                elif current.room < charge(record):
                    from ._flushing import Flusher  # (imported at first use: see the module docstring)

                    Flusher(self).flush(usage, current)
                continue
            result = reader.follow(new, usage, own=own)[1].get(rid, [])
            self._flush_ahead(usage, head.version, charge(record))
            return result
        raise ConflictError(
            f"map {self.settings.table_key!r}: other containers flushed its log (or it stayed full) on each of "
            f"{max(ROOM_ATTEMPTS, self.settings.max_attempts)} attempts; try again"
        )

    def append_unread(self, ops: list[Op], known: list[tuple[Any, Any]] | None, usage: Usage) -> list[Any] | None:
        """Commit blind ``ops`` on a map this replica has not read (a lazy open): one append without the table
        pin, then the head it returns folded as a cold load folds one (FORMAT.md, "Commits", 2). None when nothing
        was appended (no head, a 1.0.0 item, another codec, a full log, a large record): load, then commit."""
        self.last_commit = usage
        rid = os.urandom(8)
        record = encode_record(rid, ops)
        if len(record) + RECORD_OVERHEAD > LARGE_RECORD:
            return None
        try:
            new = self._append_confirmed(usage, None, record, rid, None)
        except TableMissing:
            return None
        except Conflict as conflict:  # (botocore's retry of this applied append fails: its head holds the id)
            item = conflict.item
            if item is None or FMT not in item:
                return None
            new = parse(item, self.settings)
            if rid not in new.ids:
                return None
        own = (rid, known) if known is not None else None
        return Reader(self).follow(new, usage, cold=True, own=own)[1].get(rid, [])

    def _flush_ahead(self, usage: Usage, before: int, charged: int) -> None:
        """Flush now, before the log is full, when this container's append (made at version ``before``, charged
        ``charged`` bytes of room) took the room below FLUSH_AHEAD and brought other containers' records back:
        one container flushes while the others append into the room left, instead of all of them finding the
        log full at once and racing to flush (every transaction but one cancelled). The change is committed
        already: a flush that fails is left to the next append that finds no room."""
        head = self.head
        if head is None or head.version - before <= 1 or not head.room < FLUSH_AHEAD <= head.room + charged:
            return
        from ._flushing import Flusher  # (imported at first use: see the module docstring)

        try:
            Flusher(self).flush(usage, head)
        except Exception as exc:
            self.table.log.debug(
                "map %r: the flush ahead failed (%s); an append will flush", self.settings.table_key, exc
            )

    def _append_confirmed(
        self, usage: Usage, head: Head | None, record: bytes, rid: bytes, expected: int | None
    ) -> Head:
        """Append, and when botocore gave up on the call (its response lost, or the network down), decide by one
        strongly consistent read whether it was applied: the id in the stored head means it was. When that read
        fails too, the outcome is unknown and the call's error is raised, with nothing undone."""
        try:
            return self._append(usage, head, record, rid, expected)
        except Exception as exc:
            if isinstance(exc, (Conflict, PersistenceError, TableMissing)) or not outcome_unknown(exc):
                raise
            stored = Reader(self).confirm(usage)
            if stored is not None and rid in stored.ids:
                return stored
            raise

    def _append(self, usage: Usage, head: Head | None, record: bytes, rid: bytes, expected: int | None) -> Head:
        condition = "#room >= :n AND NOT contains(#log, :record) AND NOT contains(#ids, :id) AND #codec = :codec"
        names = {"#log": LOG, "#ver": VER, "#room": ROOM, "#ids": IDS, "#codec": CODEC}
        values: dict[str, Any] = {
            ":codec": {"S": self.codec.name},
            ":rec": {"L": [{"B": record}]},
            ":record": {"B": record},
            ":one": {"N": "1"},
            ":n": {"N": str(charge(record))},
            ":id": {"B": rid},
        }
        if head is not None:
            # Pinned to the segment table this replica verified (its bytes and digest): an append never lands on a
            # head damaged since, and after another container's flush it fails, catches up and appends again.
            pinned = self._pin(head)
            condition += " AND #dig = :dig AND " + ("#seg = :seg" if ":seg" in pinned else "attribute_not_exists(#seg)")
            names.update({"#dig": TABLE_DIGEST, "#seg": TABLE})
            values.update(pinned)
        if expected is not None:
            condition += " AND #ver = :v"
            values[":v"] = {"N": str(expected)}
        usage.items += 1
        usage.bytes += len(record)
        grown = (head.stored_size if head is not None else 0) + len(record) + RECORD_OVERHEAD
        usage.capacity_units += write_units(min(HEAD_BUDGET, grown), False)
        response = self.table.call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.table.key(self.settings.table_key),
            UpdateExpression="SET #log = list_append(#log, :rec), #ver = #ver + :one, #room = #room - :n",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            # (pinned, only what the append changed comes back: the rest is the head the pin held)
            ReturnValues="ALL_NEW" if head is None else "UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if head is not None:
            return appended(head, response["Attributes"], self.settings)
        new = parse(response["Attributes"], self.settings)
        # (billed at the larger of the item before and after: the item after)
        usage.capacity_units += write_units(new.stored_size, False) - write_units(grown, False)
        return new

    def _pin(self, head: Head) -> dict[str, Any]:
        """The expression values that pin an append to ``head``'s segment list (encoded once per list)."""
        if self.pinned[0] != head.listed:
            stored = table_attributes(list(head.listed))
            pin = {":dig": stored["digest"]}
            if stored["table"] is not None:
                pin[":seg"] = stored["table"]
            self.pinned = (head.listed, pin)
        return self.pinned[1]


def recoded(ops: list[Op], old: Codec, new: Codec) -> list[Op]:
    """``ops``, encoded by ``old``, encoded again by ``new`` (a map rewritten in another codec while in use)."""
    return [op if op.kind == CLEAR else Op(op.kind, new.encode_entry(*old.decode_entry(op.entry))) for op in ops]


def _recoded_record(rid: bytes, ops: list[Op], old: Codec, new: Codec) -> tuple[list[Op], bytes, bool]:
    """The ops of record ``rid`` in codec ``new``, the record, and whether it is a large one."""
    ops = recoded(ops, old, new)
    record = encode_record(rid, ops)
    return ops, record, len(record) + RECORD_OVERHEAD > LARGE_RECORD
