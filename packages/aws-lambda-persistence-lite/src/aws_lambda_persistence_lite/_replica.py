"""Format 3's appends (FORMAT.md, "Commits" 1-2 and 6): a change committed as one record appended to the head's
log, the first write of a map, and large writes (a record too large for the log, written as a run of its own).

:class:`Replica` is the whole engine of one map in one container: reading (``_reading.Reader``), structural
commits (``_flushing.Flusher``) and the appends here. It knows codec-encoded entries, never Python types, except
through the codec's ``decode_entry`` / ``encode_entry``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ._dynamodb import Conflict, TableMissing, outcome_unknown
from ._errors import ConflictError, PersistenceError
from ._flushing import (
    LARGE_RECORD,
    RECORD_OVERHEAD,
    Flusher,
    _ids_size,
    _listing,
    _newest_ids,
    _table_size,
    charge,
)
from ._fold import View
from ._head import (
    CODEC,
    EPOCH,
    FMT,
    GARBAGE,
    HEAD_BUDGET,
    IDS,
    LOG,
    ROOM,
    TABLE,
    TABLE_DIGEST,
    TABLE_MAX,
    VER,
    Head,
    appended,
    build,
    parse,
    stored_ids,
    table_attributes,
)
from ._log import backoff, logger
from ._meter import Usage, item_size, write_units
from ._reading import segment_key
from ._records import (
    CLEAR,
    RUN,
    Op,
    Segment,
    encode_record,
    encode_run,
)

if TYPE_CHECKING:
    from ._codec import Codec
    from ._meter import Item


#: Times an append meets a full log (and flushes) before it gives up.
ROOM_ATTEMPTS = 8
#: Room below which the append that crosses it flushes at once, when other containers are appending too
#: (``_flush_ahead``): about 29 of a counter's records, left for them while the flush is in flight.
FLUSH_AHEAD = 1_000


class Replica(Flusher):
    """One container's copy of one map, and the protocols that keep it and DynamoDB in step."""

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
        for _ in range(max(ROOM_ATTEMPTS, self.settings.max_attempts)):
            head = self.head
            if head is None:
                done = self._first_write(usage, record, rid, own, large=large, first_only=first_only)
                if done is not None:
                    return done.get(rid, [])
                continue
            if first_only:
                raise Conflict()
            codec = self.codec
            if large:
                try:
                    return self._large_write(usage, rid, record, own)
                except _CodecChanged:  # (nothing written) the change again, in the map's new codec
                    ops, record, large = _recoded_record(rid, ops, codec, self.codec)
                    continue
            try:
                new = self._append_confirmed(usage, head, record, rid, expected)
            except Conflict as conflict:
                current, outcomes = self._follow(self._current(usage, conflict), usage, own=own)
                if rid in current.ids:  # botocore's retry of our applied append
                    return outcomes.get(rid, [])
                if expected is not None and current.version != expected:
                    raise Conflict() from None
                if self.codec is not codec:  # the map was rewritten in another codec: the change, in that one
                    ops, record, large = _recoded_record(rid, ops, codec, self.codec)
                elif current.room < charge(record):
                    self._flush(usage, current)
                continue
            result = self._follow(new, usage, own=own)[1].get(rid, [])
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
        return self._follow(new, usage, cold=True, own=own)[1].get(rid, [])

    def _flush_ahead(self, usage: Usage, before: int, charged: int) -> None:
        """Flush now, before the log is full, when this container's append (made at version ``before``, charged
        ``charged`` bytes of room) took the room below FLUSH_AHEAD and brought other containers' records back:
        one container flushes while the others append into the room left, instead of all of them finding the
        log full at once and racing to flush (every transaction but one cancelled). The change is committed
        already: a flush that fails is left to the next append that finds no room."""
        head = self.head
        if head is None or head.version - before <= 1 or not head.room < FLUSH_AHEAD <= head.room + charged:
            return
        try:
            self._flush(usage, head)
        except Exception as exc:
            logger().debug("map %r: the flush ahead failed (%s); an append will flush", self.settings.table_key, exc)

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
            stored = self._confirm(usage)
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
        if self._pinned[0] != head.listed:
            stored = table_attributes(list(head.listed))
            pin = {":dig": stored["digest"]}
            if stored["table"] is not None:
                pin[":seg"] = stored["table"]
            self._pinned = (head.listed, pin)
        return self._pinned[1]

    def _first_write(
        self, usage: Usage, record: bytes, rid: bytes, own: Any, *, large: bool, first_only: bool
    ) -> dict[bytes, list[Any]] | None:
        """Create the head with the first record: in its log, or (a large record) as the map's first partitions,
        written with the head in one transaction. This also replaces a 1.0.0 item, whose whole map the record then
        holds. None when the caller should append instead: another container created a head first, or the
        partitions do not fit one transaction (an empty head was created; the large write puts them in steps)."""
        view, outcome, parts = self._bulk(record, 1, own) if large else (None, [], [])
        if view is not None and not self._fits_one_transaction(parts):
            if first_only:  # (a 1.0.0 item is under 400 KB: its map always fits)
                raise PersistenceError(f"map {self.settings.table_key!r}: too large to migrate from 1.0.0")
            view, parts, record = None, [], b""
        log, (listed, table) = ([record] if record and view is None else []), _listing(parts)
        item = build(self.settings, self.codec.name, version=1 if record else 0, epoch=0, log=log, table=listed)
        if record and not log:  # (a record in the log has its id in its first bytes)
            item[IDS] = {"L": [{"B": rid}]}
        if log:
            item[ROOM] = {"N": str(int(item[ROOM]["N"]) - charge(record))}
        condition = {"ConditionExpression": "attribute_not_exists(#fmt)", "ExpressionAttributeNames": {"#fmt": FMT}}
        before = usage.snapshot()
        try:
            try:
                self._create_head(usage, item, condition, parts)
            except TableMissing:  # the first write ever: create the table (not counted), then write again
                usage.restore(before)
                self.table.create()
                self._create_head(usage, item, condition, parts)
        except Conflict as conflict:
            # Another container created the head first (append instead), or its transaction held the item
            # (TransactionConflict: nothing was written, so try again).
            found = conflict.item if conflict.item and FMT in conflict.item else self._get_head(usage)
            if found is None or FMT not in found:
                return None
            current, outcomes = self._follow(parse(found, self.settings), usage, cold=True)
            return outcomes if rid in current.ids else None
        except Exception as exc:  # outcome unknown: a head holding the record's id means it was written
            if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                raise
            stored = self._confirm(usage)
            if stored is None:
                raise
            current, outcomes = self._follow(stored, usage, cold=True)
            return outcomes if rid in current.ids else None
        self._reset(parse(item, self.settings)._replace(table=tuple(table)))
        if not record:
            return None
        if view is not None:
            self.view = view
            return {rid: outcome}
        self.pending[1] = record
        return {rid: self.view.apply(1, record, None, own[1] if own else None)}

    def _create_head(
        self, usage: Usage, item: Item, condition: dict[str, Any], puts: list[tuple[Segment, bytes]]
    ) -> None:
        if not puts:
            usage.items += 1
            usage.bytes += item_size(item)
            usage.capacity_units += write_units(item_size(item), False)
            self.table.call(
                usage,
                "put_item",
                TableName=self.settings.table_name,
                Item=item,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
            return
        put = {"Put": {"TableName": self.settings.table_name, "Item": item, **condition}}
        put["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self._bill(usage, puts, [], parse(item, self.settings))
        self.table.transact(usage, [*self._puts(puts), put], os.urandom(8).hex())

    def _large_write(self, usage: Usage, rid: bytes, record: bytes, own: Any) -> list[Any]:
        """A record no log can hold: a run of its own (on an empty map: its partitions, nothing left to merge),
        added to the table by a head update conditional on the version (its place in sequence). In one
        transaction when it fits one; else in steps (FORMAT.md, "Large write"): claim the segments in
        ``alp_garbage``, write their shards, then the head update."""
        head = self.head
        assert head is not None
        seq = head.version + 1
        bulk = None if head.table or head.log else self._bulk(record, seq, own)
        segments = bulk[2] if bulk else [self._segment(RUN, encode_run([(0, record)], 0), 0, 0, 0)]
        one_transaction = self._fits_one_transaction(segments)
        claims = [] if one_transaction else [f"{s.sid}:{s.shards}:{int(time.time())}" for s, _ in segments]
        if claims:
            self._claim(usage, claims, add=True)
            self.table.batch_write(usage, puts=self._items(segments))
        undecided = False
        try:
            for attempt in range(self.settings.max_attempts):
                head = self.head
                assert head is not None
                if bulk and head.version + 1 != seq:  # no longer empty: the partitions are void, write a run
                    break
                runs = [segments[0][0]._replace(b=seq, c=seq)] * (2 if head.log else 1)  # (its own and the log's)
                if not bulk and _table_size([*head.listed, *runs]) > TABLE_MAX:
                    self._flush(usage, head, lay_out=True)  # (FORMAT.md, "Manifest": make room in the list first)
                try:
                    return self._place(usage, _Large(rid, record, own, segments, claims, bulk), attempt)
                except Conflict as conflict:
                    codec = self.codec
                    current, outcomes = self._follow(self._current(usage, conflict), usage, own=own)
                    if rid in current.ids:
                        return outcomes.get(rid, [])
                    if self.codec is not codec:  # its segments hold the old codec's entries: void
                        raise _CodecChanged() from None
                    backoff(attempt, 0.02, 1.0)
                except Exception as exc:  # outcome unknown: the record's id in the stored head means it was written
                    if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                        raise
                    stored = self._confirm(usage)
                    if stored is not None and rid in stored.ids:
                        return self._follow(stored, usage, own=own)[1].get(rid, [])
                    # Not written, unless the head could not be read or the update may still land: then the
                    # shards stay claimed (a flush removes them an hour later), never deleted under a live head.
                    undecided = stored is None or (stored.version, stored.epoch) == (head.version, head.epoch)
                    raise
        except BaseException:
            if claims and not undecided:  # nobody will ever point at these shards: remove them now
                self._drop_claims(usage, segments, claims)
            raise
        if claims:
            self._drop_claims(usage, segments, claims)
        if bulk:
            return self._large_write(usage, rid, record, own)
        raise ConflictError(f"map {self.settings.table_key!r} kept changing during a large write")

    def _place(self, usage: Usage, large: _Large, attempt: int) -> list[Any]:
        """One attempt at a large write's head update at sequence ``alp_ver + 1`` (with its shards when
        ``claims`` is empty: one transaction). The log's records move into a run of their own in the same commit:
        the log numbers its records back from alp_ver, which the large record takes."""
        rid, record, own, segments, claims, bulk = large
        head = self.head
        assert head is not None
        seq = head.version + 1
        listed_added, added = _listing(segments) if bulk else ([segments[0][0]._replace(b=seq, c=seq)],) * 2
        logged = [(head.first_logged + i, r) for i, r in enumerate(head.log)]
        log_run = []
        if logged:
            log_run.append(self._segment(RUN, encode_run(logged, logged[0][0]), 0, logged[0][0], head.version))
        table = [*head.table, *(r[0] for r in log_run), *added]
        listed = [*head.listed, *(r[0] for r in log_run), *listed_added]
        update = self._place_run(head, listed, rid, claims)
        puts = ([] if claims else segments) + log_run
        self._bill(usage, puts, [], head)
        actions = [*self._puts(puts), update]
        retried = False
        if len(actions) > 1:
            retried = self.table.transact(usage, actions, f"{rid.hex()}{attempt:02d}")
        else:
            self.table.call(usage, "update_item", **update["Update"])
        if bulk:
            self.view, outcome = bulk[0], bulk[1]
        else:
            self.pending[seq] = record
            outcome = self.view.apply(seq, record, None, own[1] if own else None)
        self.view.seq = seq
        self.head = head._replace(
            version=seq,
            epoch=head.epoch + 1,
            log=(),
            table=tuple(table),
            listed=tuple(listed),
            ids=_newest_ids(*head.ids, rid),
        )
        # A retry that DynamoDB answered from its token cache reports success without the changes other
        # containers made since: one read of the head brings them.
        item = self._get_head(usage) if retried else None
        if item is not None and FMT in item:
            current = parse(item, self.settings)
            if (current.version, current.epoch) != (seq, head.epoch + 1):
                self._follow(current, usage)
        return outcome

    def _place_run(self, head: Head, listed: list[Segment], rid: bytes, claims: list[str]) -> dict[str, Any]:
        """The head update that adds a large write's run at sequence ``head.version + 1`` (and empties the log,
        whose records the same commit moves into a run); ``listed``: the head's new segment list."""
        attr = table_attributes(listed)
        ids = _newest_ids(*head.ids, rid)
        freed = sum(charge(r) for r in head.log) - (_ids_size(ids) - _ids_size(stored_ids(head)))
        freed -= _table_size(listed) - _table_size(list(head.listed))
        # (alp_ids is set whole: the version condition means no append came in between)
        update = "SET #ver = :seq, #ep = #ep + :one, #dig = :dig, #seg = :seg, #log = :empty, #room = #room + :freed"
        update += ", #ids = :ids"
        names = {"#ver": VER, "#ep": EPOCH, "#dig": TABLE_DIGEST, "#seg": TABLE, "#ids": IDS, "#log": LOG}
        names["#room"] = ROOM
        values: dict[str, Any] = {
            ":empty": {"L": []},
            ":freed": {"N": str(freed)},
            ":seq": {"N": str(head.version + 1)},
            ":v": {"N": str(head.version)},
            ":e": {"N": str(head.epoch)},
            ":one": {"N": "1"},
            ":dig": attr["digest"],
            ":seg": attr["table"],
            ":ids": {"L": [{"B": i} for i in ids]},
        }
        if claims:
            update += " DELETE #g :claims"
            names["#g"] = GARBAGE
            values[":claims"] = {"SS": claims}
        return {
            "Update": {
                "TableName": self.settings.table_name,
                "Key": self.table.key(self.settings.table_key),
                "UpdateExpression": update,
                "ConditionExpression": "#ver = :v AND #ep = :e",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _claim(self, usage: Usage, claims: list[str], *, add: bool) -> None:
        """List (or unlist) segment shards a large write is writing in ``alp_garbage``: should the writer die
        before the head names them, a later flush deletes them once the claim is older than any Lambda call."""
        assert self.head is not None
        usage.capacity_units += write_units(self.head.stored_size + sum(len(c) + 1 for c in claims), False)
        self.table.call(
            usage,
            "update_item",
            TableName=self.settings.table_name,
            Key=self.table.key(self.settings.table_key),
            UpdateExpression=("ADD" if add else "DELETE") + " #g :claims",
            ExpressionAttributeNames={"#g": GARBAGE},
            ExpressionAttributeValues={":claims": {"SS": claims}},
        )

    def _drop_claims(self, usage: Usage, segments: list[tuple[Segment, bytes]], claims: list[str]) -> None:
        try:
            keys = [segment_key(self.settings.table_key, s.sid, i) for s, _ in segments for i in range(s.shards)]
            self.table.batch_write(usage, deletes=keys)
            self._claim(usage, claims, add=False)
        except Exception as exc:  # best effort: the claim stays, and a later flush removes the shards
            logger().warning("could not remove the unused shards of map %r: %s", self.settings.table_key, exc)


class _Large(NamedTuple):
    """A large write being placed: its record, its segments (a run, or an empty map's partitions: ``bulk``, the
    view and outcomes they were written from), and their claims (empty: written with the head update)."""

    rid: bytes
    record: bytes
    own: Any
    segments: list[tuple[Segment, bytes]]
    claims: list[str]
    bulk: tuple[View, list[Any], list[tuple[Segment, bytes]]] | None


def recoded(ops: list[Op], old: Codec, new: Codec) -> list[Op]:
    """``ops``, encoded by ``old``, encoded again by ``new`` (a map rewritten in another codec while in use)."""
    return [op if op.kind == CLEAR else Op(op.kind, new.encode_entry(*old.decode_entry(op.entry))) for op in ops]


def _recoded_record(rid: bytes, ops: list[Op], old: Codec, new: Codec) -> tuple[list[Op], bytes, bool]:
    """The ops of record ``rid`` in codec ``new``, the record, and whether it is a large one."""
    ops = recoded(ops, old, new)
    record = encode_record(rid, ops)
    return ops, record, len(record) + RECORD_OVERHEAD > LARGE_RECORD


class _CodecChanged(Exception):
    """A large write met its map rewritten in another codec (migrate, recompress): nothing of it was written."""
