"""PersistentMap: a dict whose every change is committed to DynamoDB, safely under concurrency.

Owns the dict interface and turns each change into one change record (FORMAT.md): blind changes (set, delete,
update, clear, increment) are appended whatever other containers did meanwhile, so they never conflict;
changes that depend on what is stored (``mutate``, ``pop``, ``popitem``) are appended only if the map is still
at the version they were computed on, and are computed again on the newest state otherwise. The contents change
only by folding committed records, so a failed write leaves memory as it was.
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from ._client import default_client
from ._codec import CODECS, Codec, codec_for, lite_default
from ._config import Settings, split_arguments
from ._dynamodb import Conflict, Table, TableMissing
from ._errors import ConfigurationError, ConflictError, StoredDataError, UnsupportedFormatError
from ._fold import AddRefused, is_number
from ._head import bad
from ._keyhash import key_hash
from ._log import backoff
from ._meter import Usage
from ._pickle import loads_restricted
from ._records import ADD, CLEAR, DEL, SET, Op
from ._replica import Replica, recoded
from ._values import label

T = TypeVar("T")
M = TypeVar("M", bound="PersistentMap")
#: A change that depends on the stored values: given a private copy of the map, the ops and the result.
Plan = Callable[[dict[Any, Any]], tuple[list[Op], Any]]


class _Batch:
    """What a ``batch()`` block has done so far: its own copy of the map, and its steps in order (fixed ops of
    blind changes, or plans of changes that read the map). ``copies``: the stored values the block read, each
    decoded afresh (its private copy), so that editing one in place is the block's change: committed at its exit,
    discarded when it raises."""

    __slots__ = ("copies", "data", "reads", "steps")

    def __init__(self, data: dict[Any, Any]) -> None:
        self.data = data
        self.steps: list[list[Op] | Plan] = []
        self.reads = False
        self.copies: dict[Any, Any] = {}


#: Values that cannot be edited in place: a batch hands them out as they are.
_IMMUTABLE = frozenset({int, float, str, bytes, bool, type(None)})


class PersistentMap(MutableMapping[Any, Any]):
    """A dict persisted in DynamoDB. ``PersistentMap()`` loads this function's map (one GetItem for a small map).

    Positional data or keyword data (``PersistentMap({'a': 1})``, ``PersistentMap(a=1)``) is merged into
    the stored map with one write. The keywords ``table_name``, ``table_key``, ``key_field_name`` and
    ``value_field_name`` configure the map instead (env ``PERSISTENCE_<NAME>`` wins); use
    :meth:`open` for the other settings and to pass a boto3 client.
    """

    #: The codec a new map is written with when ``open()`` names none: msgpack+zstd in the full package; None, the
    #: lite package's choice for this interpreter (pickle5+zstd on Python 3.14+, else pickle5+zlib).
    default_codec: ClassVar[str | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > 1:
            raise TypeError(f"PersistentMap expected at most 1 positional argument, got {len(args)}")
        config, data = split_arguments(kwargs)
        self._setup(Settings.resolve(config), None, dict(*args, **data) if args or data else None)

    @classmethod
    def open(
        cls: type[M],
        initial: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        /,
        *,
        client: Any = None,
        lazy: bool = False,
        codec: str | None = None,
        **settings: Any,
    ) -> M:
        """Open a map with any setting (see ``Settings``) and an optional boto3 DynamoDB client.

        ``codec``: what a new map is written with (``CODECS`` lists them; the default is the package's own). A
        stored map keeps the codec it is stored with, whichever package opens it: the command line's ``migrate``
        rewrites it in another.

        ``lazy=True``: make no DynamoDB call until the map is used. The first read loads it; a first blind change
        (``m[k] = v``, ``update()``, ``clear()``, ``increment()``) is appended unread and brings the map back with
        it: one call in all. Errors (a missing permission, a damaged map) then surface at that first use.
        """
        self = cls.__new__(cls)
        initial_data = dict(initial) if initial is not None else None
        self._setup(Settings.resolve(settings), client, initial_data, lazy=lazy, codec=codec)
        return self

    def _setup(
        self,
        settings: Settings,
        client: Any,
        initial: dict[Any, Any] | None,
        *,
        lazy: bool = False,
        codec: str | None = None,
    ) -> None:
        self.settings = settings
        self._codec = _writing_codec(codec or type(self).default_codec or lite_default())
        client = client if client is not None else default_client()
        table = Table(client, settings)
        stored = (
            id(client),
            settings.table_name,
            settings.table_key,
            settings.key_field_name,
            settings.value_field_name,
        )
        replica = _dropped.pop(stored, None) if REUSE else None
        if replica is None:
            replica = Replica(table, settings, self._codec)
        else:  # (the same client, table and key: the same stored map; the other settings may differ)
            replica.table, replica.settings = table, settings
        self._replica = replica
        weakref.finalize(self, _keep, stored, replica).atexit = False
        self._lock = threading.RLock()
        self._batch: _Batch | None = None
        #: True while a plan (the function given to mutate(), or pop()'s) runs: see ``_writable``.
        self._planning = False
        self._synced_at = 0.0
        #: Whether the replica holds a state (False: nothing read yet); ``_stale``: a dropped map's state, to catch
        #: up on before it is read or a change is computed from it (a blind change catches up as it commits).
        self._loaded = self._stale = replica.head is not None
        if not lazy and not self._loaded:  # (a dropped map's state catches up at its first use, as a global's does)
            self.refresh()
        if initial:
            self.update(initial)

    # -- reading ------------------------------------------------------------------------------------------

    def _view(self) -> dict[Any, Any]:
        # Reads take no lock, so that they never wait for a commit's network calls (and a batch() block can hand
        # the map to worker threads); other threads therefore see a batch's changes before its exit commits them.
        batch = self._batch
        if batch is not None:
            return batch.data
        max_age = self.settings.max_age
        if not self._loaded or self._stale or (max_age is not None and time.monotonic() - self._synced_at > max_age):
            self.refresh()
        return self._replica.view.values

    def __getitem__(self, key: Any) -> Any:
        batch = self._batch
        if batch is None:
            return self._view()[key]
        value = batch.data[key]
        view = self._replica.view
        if type(value) in _IMMUTABLE or key in batch.copies or value is not view.values.get(key, batch):
            return value  # (a scalar, a copy handed out already, or what the block itself set)
        batch.data[key] = batch.copies[key] = copy = self._replica.codec.decode_entry(view.raw[key])[1]
        return copy

    def __contains__(self, key: object) -> bool:
        return key in self._view()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def __repr__(self) -> str:
        return repr(self._view())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PersistentMap):
            other = other._view()
        return self._view() == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Mapping[Any, Any]) -> dict[Any, Any]:
        return {**self._view(), **other} if isinstance(other, Mapping) else NotImplemented

    def __ror__(self, other: Mapping[Any, Any]) -> dict[Any, Any]:
        return {**other, **self._view()} if isinstance(other, Mapping) else NotImplemented

    def __ior__(self, other: Any) -> PersistentMap:  # type: ignore[misc]
        self.update(other)
        return self

    def to_dict(self) -> dict[Any, Any]:
        """A plain dict with the map's current contents (a shallow copy)."""
        return dict(self._view())

    @property
    def codec(self) -> str:
        """The codec this map's entries are written in: the stored map's, once read (else the one it was opened
        with)."""
        return self._replica.codec.name

    @property
    def version(self) -> int:
        """The sequence number of the newest change this container has folded (0: nothing stored yet, or a
        1.0.0 item)."""
        return self._replica.view.seq

    @property
    def last_load(self) -> Usage:
        """DynamoDB calls, items, bytes and capacity units of the last load or refresh."""
        return self._replica.last_load

    @property
    def last_commit(self) -> Usage:
        """DynamoDB calls, items, bytes and capacity units of the last commit."""
        return self._replica.last_commit

    def refresh(self) -> None:
        """Re-read what changed in the stored map: one GetItem of the head when nothing did, and only the changed
        parts when something did. Unsaved in-place edits of nested values are discarded: :meth:`save` first."""
        with self._lock:
            if not self._loaded:
                self._replica.load()
                self._loaded = True
                self._adopt_legacy()
            else:
                self._sync()
            self._stale = False
            batch = self._batch
            if batch is not None:
                # Inside batch(): the block's changes so far stay, on top of the fresh state, which is also what
                # the block's exit commits on.
                fresh = dict(self._replica.view.values)
                self._replay(batch.steps, fresh)
                batch.data = fresh
            self._synced_at = time.monotonic()

    def _sync(self) -> bool:
        """Catch up with the stored map; True when it had changed."""
        changed = self._replica.refresh()
        if changed:
            self._adopt_legacy()
        return changed

    def _adopt_legacy(self) -> None:
        """A 1.0.0 item: its pickled dict, read through the allow-list, is the map until the first write."""
        item = self._replica.legacy
        if item is None:
            return
        s = self.settings
        value = item.get(s.value_field_name)
        if value is None or "B" not in value:
            raise bad(s, f"attribute {s.value_field_name!r} is missing or not Binary")
        try:
            data = loads_restricted(bytes(value["B"]))
        except StoredDataError as exc:
            raise bad(s, str(exc), type(exc)) from exc
        except Exception as exc:  # a 1.0.0 pickle that is damaged
            raise bad(s, f"its 1.0.0 pickle cannot be decoded ({exc})") from exc
        if type(data) is not dict:
            raise bad(s, f"a 1.0.0 item must hold a pickled dict, not {type(data).__name__}")
        view = self._replica.view
        for index, (key, value) in enumerate(data.items()):
            view.values[key] = value
            view.raw[key] = b""  # (no entry stored in this format yet: the first write stores every key)
            view.positions[key] = (0, index)

    # -- writing ------------------------------------------------------------------------------------------

    def _entry(self, key: Any, value: Any) -> bytes:
        """The stored form of an entry; validates the value, and the key as a partition key (FORMAT.md), before
        anything is sent."""
        key_hash(key)
        return self._replica.codec.encode_entry(key, value)

    def __setitem__(self, key: Any, value: Any) -> None:
        # Written even when identical to this container's copy: the copy may be stale (another container may have
        # changed the key since), and a set must leave the value it sets.
        with self._lock:
            self._blind([Op(SET, self._entry(key, value))], lambda d: d.__setitem__(key, value), [(key, value)])

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            if key not in self._view():
                raise KeyError(key)
            self._blind([Op(DEL, self._entry(key, None))], lambda d: d.pop(key, None))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many keys with one write (none for no keys); every key is written, as by ``m[k] = v``."""
        with self._lock:
            items = dict(other, **kwargs)
            if items:
                ops = [Op(SET, self._entry(k, v)) for k, v in items.items()]
                self._blind(ops, lambda d: d.update(items), list(items.items()))

    def clear(self) -> None:
        """Remove every key with one write (also keys that other containers added meanwhile)."""
        with self._lock:
            if self._loaded and self._batch is None and self._replica.head is None and not self._replica.view.values:
                return  # nothing stored, nothing to clear
            self._blind([Op(CLEAR)], dict.clear)

    def _writable(self) -> None:
        """Refuse a change made from inside a plan: the function given to ``mutate()`` runs once per attempt, so a
        change it made to the map itself would be committed on every attempt."""
        if self._planning:
            raise RuntimeError(
                "cannot change the map from inside the function given to mutate() (it may run several times, and "
                "only what it does to its argument is committed once): change the dict it receives instead"
            )

    def _blind(
        self, ops: list[Op], effect: Callable[[dict[Any, Any]], Any], known: list[tuple[Any, Any]] | None = None
    ) -> list[Any]:
        """Commit changes that do not depend on what is stored: they never conflict. ``known``: the (key, value)
        of each SET op, kept as they are (the caller's objects) instead of decoded again."""
        self._writable()
        batch = self._batch
        if batch is not None:
            effect(batch.data)
            batch.steps.append(ops)
            return []
        outcomes = self._commit(ops, None, known)
        self._synced_at = time.monotonic()
        return outcomes

    def increment(self, key: Any, delta: int | float = 1) -> Any:
        """Atomically add ``delta`` to the number at ``key`` (missing counts as 0); return the new value.

        Atomic across containers without a conflict: DynamoDB orders the additions, and each caller gets the
        value its own addition produced.
        """
        if type(delta) not in (int, float):  # (exact types: a bool, a str or an IntEnum would add nothing or fail)
            raise TypeError(
                f"cannot increment {label(key)} by {label(delta)}: the delta must be an int or float, not "
                f"{type(delta).__name__}; convert it first (for example int(delta) or float(delta))"
            )
        self._writable()
        with self._lock:
            # (unread, lazily opened: the fold below refuses an addition to a value that is not a number)
            fresh = self._loaded and not self._stale
            current = self._view().get(key, 0) if fresh or self._batch is not None else 0
            if not is_number(current):
                raise TypeError(f"cannot increment {key!r}: it holds a {type(current).__name__}, not a number")
            ops = [Op(ADD, self._entry(key, delta))]
            batch = self._batch
            if batch is not None:
                batch.data[key] = current + delta
                batch.steps.append(ops)
                return batch.data[key]
            (outcome,) = self._blind(ops, lambda d: None) or [None]
            if isinstance(outcome, AddRefused):
                raise TypeError(
                    f"cannot increment {key!r}: another container stored a {type(outcome.held).__name__} there"
                )
            return outcome if outcome is not None else self._replica.view.values.get(key)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value, like dict.pop(); atomic across containers: the value returned is
        the one removed from the stored map."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")

        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            if key not in d:
                return [], _MISSING
            return [Op(DEL, self._entry(key, None))], d.pop(key)

        found = self._reading(plan)
        if found is not _MISSING:
            return found
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``m[key]`` if present, else set it to ``default`` and return that, like dict.setdefault(); atomic like
        pop(): set only if no container has set the key meanwhile (else the value it set is returned)."""
        with self._lock:
            view = self._view()
            if key in view:
                return view[key]

        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            if key in d:
                return [], d[key]
            d[key] = default
            return [Op(SET, self._entry(key, default))], default

        return self._reading(plan)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last inserted (key, value) pair, like dict.popitem(); atomic like pop()."""

        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            if not d:
                return [], None
            key, value = d.popitem()
            return [Op(DEL, self._entry(key, None))], (key, value)

        found: tuple[Any, Any] | None = self._reading(plan)
        if found is None:
            raise KeyError("popitem(): map is empty")
        return found

    def save(self) -> None:
        """Commit in-place changes to nested values (``data['list'].append(x)``), if there are any: every value
        is encoded again and compared with what is stored (the cost grows with the map)."""
        with self._lock:
            if self._batch is not None:
                return  # the block's exit commits what the block changed, in-place edits included
            self._writable()
            ops, known = self._changed(self._view().items())
            if ops:
                self._commit(ops, None, known)

    def _changed(self, pairs: Iterable[tuple[Any, Any]]) -> tuple[list[Op], list[tuple[Any, Any]]]:
        """A set of each (key, value) whose encoding differs from the stored entry (in-place edits found by
        encoding), and those pairs."""
        raw = self._replica.view.raw
        ops, known = [], []
        for key, value in pairs:
            entry = self._entry(key, value)
            if entry != raw.get(key):
                ops.append(Op(SET, entry))
                known.append((key, value))
        return ops, known

    def mutate(self, function: Callable[[dict[Any, Any]], T]) -> T:
        """Run ``function(d)`` on a private copy of the map and commit what it changed, atomically.

        On a concurrent write, ``function`` runs again on the fresh state, so read-modify-write code such as
        ``d['n'] = d.get('n', 0) + 1`` or popping from a queue is correct across containers. It must have no
        side effects besides changing ``d``. Returns what ``function`` returned on the attempt that committed.
        When it changes nothing, one GetItem confirms that it ran on the stored state (or it runs again on that).
        """

        def plan(d: dict[Any, Any]) -> tuple[list[Op], Any]:
            before = self._replica.view.raw if self._batch is None else None
            try:
                work = copy.deepcopy(d)
            except RecursionError:
                # deepcopy recurses twice per level (~490 levels); the codecs store deeper values (MAX_NESTING) and
                # copy them within their own bounds (a value too deep for them is refused here, naming its depth).
                codec = self._replica.codec
                work = {k: codec.decode_entry(self._entry(k, v))[1] for k, v in d.items()}
            result = function(work)
            return self._diff(d, work, before), result

        return self._reading(plan)  # type: ignore[no-any-return]

    def _diff(self, old: dict[Any, Any], new: dict[Any, Any], raw: dict[Any, bytes] | None) -> list[Op]:
        """The ops that turn ``old`` into ``new`` (entries compared as encoded)."""
        ops = [Op(DEL, self._entry(k, None)) for k in old if k not in new]
        for key, value in new.items():
            entry = self._entry(key, value)
            stored = raw.get(key) if raw is not None and key in old else None
            if stored is None and key in old:
                stored = self._entry(key, old[key])
            if entry != stored or key not in old:
                ops.append(Op(SET, entry))
        return ops

    @contextmanager
    def batch(self) -> Iterator[PersistentMap]:
        """Group changes: inside, writes only change memory; at exit they are committed with one write.

        If the block raises, its changes are discarded and nothing is written. A value read inside the block is
        the block's own copy: editing it in place (``data['l'].append(x)``) is one of its changes. Values returned
        inside the block
        (by ``increment()``, ``mutate()``, ``pop()``) come from this container's copy; when another container
        committed meanwhile, blind changes land as they are and changes that read the map are computed again on
        the fresh state, so read the map after the block for what was committed.
        """
        with self._lock:
            if self._batch is not None:  # nested: the outermost batch commits
                yield self
                return
            if not self._loaded or self._stale:
                self.refresh()
            batch = self._batch = _Batch(dict(self._replica.view.values))
            try:
                yield self
            finally:
                self._batch = None
            self._edited(batch)
            if not batch.steps:
                return
            if not batch.reads:
                self._commit([op for step in batch.steps for op in step], None)  # type: ignore[union-attr]
                return
            steps = batch.steps
            self._reading(lambda d: (self._replay(steps, d), None))

    def _edited(self, batch: _Batch) -> None:
        """Add to ``batch``'s steps the sets of the values it read and edited in place (as ``save()`` finds them)."""
        held = ((key, copy) for key, copy in batch.copies.items() if key in batch.data and batch.data[key] is copy)
        ops, _ = self._changed(held)
        if ops:
            batch.steps.append(ops)

    def _replay(self, steps: list[list[Op] | Plan], d: dict[Any, Any]) -> list[Op]:
        """A batch's steps again on ``d`` (changing it as they do): their ops."""
        ops: list[Op] = []
        for step in steps:
            if isinstance(step, list):
                ops += step
                for op in step:
                    self._apply_local(d, op)
            else:
                more, _ = step(d)
                ops += more
        return ops

    def _apply_local(self, d: dict[Any, Any], op: Op) -> None:
        if op.kind == CLEAR:
            d.clear()
            return
        key, value = self._replica.codec.decode_entry(op.entry)
        if op.kind == SET:
            d[key] = value
        elif op.kind == DEL:
            d.pop(key, None)
        elif is_number(d.get(key, 0)):
            d[key] = d.get(key, 0) + value

    # -- the commit loop ----------------------------------------------------------------------------------

    def _commit(
        self,
        ops: list[Op],
        expected: int | None,
        known: list[tuple[Any, Any]] | None = None,
        usage: Usage | None = None,
    ) -> list[Any]:
        try:
            outcomes = self._commit_ops(ops, expected, known, usage)
            self._stale = False  # (the commit folded the newest head)
            return outcomes
        except TableMissing:  # (a first write creates the table; this one had a head in it)
            s = self.settings
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
        if known is not None and len(known) != len(ops):
            known = None
        if not self._loaded:  # (lazy=True, nothing read yet: a blind change is appended unread, FORMAT.md)
            done = self._replica.append_unread(ops, known, usage or Usage()) if expected is None else None
            if done is not None:
                self._loaded = True
                return done
            ops = self._load_for(ops)
        if self._replica.legacy is not None:
            # The first write over a 1.0.0 item stores every key with this change (FORMAT.md, "First write"); if
            # another container upgraded the item first, this change is made on what that one stored.
            items = list(self._replica.view.values.items())
            first = [Op(SET, self._entry(k, v)) for k, v in items] + ops
            try:
                outcomes = self._replica.commit(
                    first, known=None if known is None else [*items, *known], usage=usage, first_only=True
                )
                return outcomes[len(items) :]  # (the caller's ops' outcomes)
            except Conflict:
                if expected is not None:
                    raise  # computed on the 1.0.0 map: compute it again on the stored one
        return self._replica.commit(ops, expected=expected, known=known, usage=usage)

    def _plan(self, plan: Plan, d: dict[Any, Any]) -> tuple[list[Op], Any]:
        self._planning = True
        try:
            return plan(d)
        finally:
            self._planning = False

    def _load_for(self, ops: list[Op]) -> list[Op]:
        """Load a map not read yet; ``ops``, encoded before that, in the codec the stored map turned out to use."""
        codec = self._replica.codec
        self.refresh()
        if self._replica.codec is codec:
            return ops
        return recoded(ops, codec, self._replica.codec)  # (the stored map's codec: the ops again in it)

    def _reading(self, plan: Plan) -> Any:
        """Commit a change computed from the stored state: conditional on the version it was computed on, and
        computed again on the newest state when another container committed first."""
        self._writable()
        with self._lock:
            batch = self._batch
            if batch is not None:
                ops, result = self._plan(plan, batch.data)
                batch.steps.append(plan)
                batch.reads = True
                return result
            if not self._loaded or self._stale:
                self.refresh()
            usage = Usage()  # one write's cost, over all its attempts
            for attempt in range(self.settings.max_attempts):
                version = self._replica.view.seq
                ops, result = self._plan(plan, dict(self._replica.view.values))
                if not ops:
                    # Nothing to write. The result must come from the current state: one GetItem confirms it, or
                    # gives the state to redo it on (nobody raced this call: no backoff).
                    if not self._sync():
                        return result
                    continue
                try:
                    self._commit(ops, version if self._replica.legacy is None else None, usage=usage)
                except Conflict:
                    backoff(attempt, 0.02, 1.0)
                    continue
                self._synced_at = time.monotonic()
                return result
        raise ConflictError(
            f"map {self.settings.table_key!r} was changed by other writers on each of {self.settings.max_attempts} "
            "attempts; nothing of this call was written, and the map now shows the newest stored state"
        )


_MISSING = object()


def _writing_codec(name: str) -> Codec:
    """The codec ``open(codec=name)`` asks for, or ConfigurationError naming the choices and the fix."""
    if name not in CODECS:
        raise ConfigurationError(f"unknown codec {name!r}; known codecs: {', '.join(CODECS)}")
    try:
        return codec_for(name)
    except UnsupportedFormatError as exc:
        raise ConfigurationError(str(exc)) from None


#: Whether a map reuses the state of a dropped map of the same stored map (tests of a new container turn it off).
REUSE = True
#: The replicas of maps this process dropped, by stored map: (id of the client, which the replica holds, so the id
#: stays its own; table; key; attribute names). A handler that opens ``PersistentMap()`` on every invocation then
#: reads only what changed since the last one, as a map kept in a global does (the state stays in memory meanwhile).
_dropped: dict[tuple[int, str, str, str, str], Replica] = {}


def _keep(stored: tuple[int, str, str, str, str], replica: Replica) -> None:
    """A map was dropped (garbage): keep its replica for the next map of the same stored map, if it holds one.
    (No lock: a finalizer may run in any thread, inside any allocation; a dict store is atomic.)"""
    if replica.head is not None and replica.legacy is None:
        _dropped[stored] = replica
