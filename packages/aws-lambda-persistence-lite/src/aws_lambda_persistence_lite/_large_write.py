"""Format 3's large writes (FORMAT.md, "Commits", 5): a record too large for the log, written as a run of its own
(on an empty map: as its partitions) and added to the table by a head update conditional on the version. In one
transaction when its shards fit one; else in steps, its shards claimed in ``alp_garbage`` until the head names
them, so that a writer that dies in between leaves nothing a flush will not delete.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ._dynamodb import Conflict, outcome_unknown
from ._errors import ConflictError, PersistenceError
from ._flushing import Flusher
from ._fold import View
from ._head import EPOCH, FMT, GARBAGE, IDS, LOG, ROOM, TABLE, TABLE_DIGEST, VER, parse, stored_ids, table_attributes
from ._log import backoff
from ._maintenance import Maintenance
from ._meter import Usage, write_units
from ._reading import Reader
from ._records import RUN, Segment, encode_run
from ._room import charge, ids_size, listable, listing, newest_ids, table_size

if TYPE_CHECKING:
    from ._head import Head
    from ._state import State


class LargeWriter:
    """The write of a record no log can hold."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.reader = Reader(state)

    def write(self, usage: Usage, rid: bytes, record: bytes, own: Any) -> list[Any]:
        """A record no log can hold: a run of its own (on an empty map: its partitions, nothing left to merge),
        added to the table by a head update conditional on the version (its place in sequence). In one
        transaction when it fits one; else in steps (FORMAT.md, "Large write"): claim the segments in
        ``alp_garbage``, write their shards, then the head update. CodecChanged, nothing written, when the map
        was rewritten in another codec meanwhile."""
        state = self.state
        head = state.head
        assert head is not None
        seq = head.version + 1
        bulk = None if head.table or head.log else Maintenance(state).bulk(record, seq, own)
        segments = bulk[2] if bulk else [state.segment(RUN, encode_run([(0, record)], 0), 0, 0, 0)]
        one_transaction = state.fits_one_transaction(segments)
        claims = [] if one_transaction else [f"{s.sid}:{s.shards}:{int(time.time())}" for s, _ in segments]
        if claims:
            self._claim(usage, claims, add=True)
            state.table.batch_write(usage, puts=state.items(segments))
        undecided = False
        try:
            for attempt in range(state.settings.max_attempts):
                head = state.head
                assert head is not None
                if bulk and head.version + 1 != seq:  # no longer empty: the partitions are void, write a run
                    break
                runs = [segments[0][0]._replace(b=seq, c=seq)] * (2 if head.log else 1)  # (its own and the log's)
                if not bulk and not listable([*head.listed, *runs]):
                    Flusher(state).flush(usage, head, lay_out=True)  # (FORMAT.md, "Manifest": make room first)
                try:
                    return self._place(usage, _Large(rid, record, own, segments, claims, bulk), attempt)
                except Conflict as conflict:
                    codec = state.codec
                    current, outcomes = self.reader.follow(self.reader.current(usage, conflict), usage, own=own)
                    if rid in current.ids:
                        return outcomes.get(rid, [])
                    if state.codec is not codec:  # its segments hold the old codec's entries: void
                        raise CodecChanged() from None
                    backoff(attempt, 0.02, 1.0)
                except Exception as exc:  # outcome unknown: the record's id in the stored head means it was written
                    if isinstance(exc, PersistenceError) or not outcome_unknown(exc):
                        raise
                    stored = self.reader.confirm(usage)
                    if stored is not None and rid in stored.ids:
                        return self.reader.follow(stored, usage, own=own)[1].get(rid, [])
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
            return self.write(usage, rid, record, own)
        raise ConflictError(f"map {state.settings.table_key!r} kept changing during a large write")

    def _place(self, usage: Usage, large: _Large, attempt: int) -> list[Any]:
        """One attempt at a large write's head update at sequence ``alp_ver + 1`` (with its shards when
        ``claims`` is empty: one transaction). The log's records move into a run of their own in the same commit:
        the log numbers its records back from alp_ver, which the large record takes."""
        rid, record, own, segments, claims, bulk = large
        state = self.state
        head = state.head
        assert head is not None
        seq = head.version + 1
        listed_added, added = listing(segments) if bulk else ([segments[0][0]._replace(b=seq, c=seq)],) * 2
        logged = [(head.first_logged + i, r) for i, r in enumerate(head.log)]
        log_run = []
        if logged:
            log_run.append(state.segment(RUN, encode_run(logged, logged[0][0]), 0, logged[0][0], head.version))
        table = [*head.table, *(r[0] for r in log_run), *added]
        listed = [*head.listed, *(r[0] for r in log_run), *listed_added]
        update = self._place_run(head, listed, rid, claims)
        puts = ([] if claims else segments) + log_run
        state.bill(usage, puts, [], head)
        actions = [*state.puts(puts), update]
        retried = False
        if len(actions) > 1:
            retried = state.table.transact(usage, actions, f"{rid.hex()}{attempt:02d}")
        else:
            state.table.call(usage, "update_item", **update["Update"])
        if bulk:
            state.view, outcome = bulk[0], bulk[1]
        else:
            state.pending[seq] = record
            outcome = state.view.apply(seq, record, None, own[1] if own else None)
        state.view.seq = seq
        state.head = head._replace(
            version=seq,
            epoch=head.epoch + 1,
            log=(),
            table=tuple(table),
            listed=tuple(listed),
            ids=newest_ids(*head.ids, rid),
        )
        # A retry that DynamoDB answered from its token cache reports success without the changes other
        # containers made since: one read of the head brings them.
        item = self.reader.get_head(usage) if retried else None
        if item is not None and FMT in item:
            current = parse(item, state.settings)
            if (current.version, current.epoch) != (seq, head.epoch + 1):
                self.reader.follow(current, usage)
        return outcome

    def _place_run(self, head: Head, listed: list[Segment], rid: bytes, claims: list[str]) -> dict[str, Any]:
        """The head update that adds a large write's run at sequence ``head.version + 1`` (and empties the log,
        whose records the same commit moves into a run); ``listed``: the head's new segment list."""
        attr = table_attributes(listed)
        ids = newest_ids(*head.ids, rid)
        freed = sum(charge(r) for r in head.log) - (ids_size(ids) - ids_size(stored_ids(head)))
        freed -= table_size(listed) - table_size(list(head.listed))
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
        action = self.state.head_update(update, "#ver = :v AND #ep = :e", names, values)
        action["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return action

    def _claim(self, usage: Usage, claims: list[str], *, add: bool) -> None:
        """List (or unlist) segment shards a large write is writing in ``alp_garbage``: should the writer die
        before the head names them, a later flush deletes them once the claim is older than any Lambda call."""
        state = self.state
        assert state.head is not None
        usage.capacity_units += write_units(state.head.stored_size + sum(len(c) + 1 for c in claims), False)
        state.table.call(
            usage,
            "update_item",
            TableName=state.settings.table_name,
            Key=state.table.key(state.settings.table_key),
            UpdateExpression=("ADD" if add else "DELETE") + " #g :claims",
            ExpressionAttributeNames={"#g": GARBAGE},
            ExpressionAttributeValues={":claims": {"SS": claims}},
        )

    def _drop_claims(self, usage: Usage, segments: list[tuple[Segment, bytes]], claims: list[str]) -> None:
        state = self.state
        try:
            keys = [state.shard_key(s.sid, i) for s, _ in segments for i in range(s.shards)]
            state.table.batch_write(usage, deletes=keys)
            self._claim(usage, claims, add=False)
        except Exception as exc:  # best effort: the claim stays, and a later flush removes the shards
            state.table.log.warning("could not remove the unused shards of map %r: %s", state.settings.table_key, exc)


class _Large(NamedTuple):
    """A large write being placed: its record, its segments (a run, or an empty map's partitions: ``bulk``, the
    view and outcomes they were written from), and their claims (empty: written with the head update)."""

    rid: bytes
    record: bytes
    own: Any
    segments: list[tuple[Segment, bytes]]
    claims: list[str]
    bulk: tuple[View, list[Any], list[tuple[Segment, bytes]]] | None


class CodecChanged(Exception):
    """A large write met its map rewritten in another codec (migrate, recompress): nothing of it was written."""
