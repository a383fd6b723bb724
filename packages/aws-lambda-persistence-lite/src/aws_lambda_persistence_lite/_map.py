"""PersistentMap: a dict whose every change is committed to DynamoDB, safely under concurrency.

Owns the in-memory view and the optimistic-concurrency loop. Every write is a function applied to a
copy of the map; it is committed conditionally on the stored version this container last saw. When
another container won in between, the map reloads the stored state, re-applies this container's own
changes (its unsaved edits per top-level key, then the function again) and retries. The view changes
only when a commit succeeds, so a failed write leaves memory as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from ._client import default_client
from ._codec import Codec, codec_for
from ._config import Settings, split_arguments
from ._errors import ConflictError, CorruptDataError, StoredDataError, UnsupportedValueError
from ._format import LEGACY_CODEC, Head, digest
from ._log import backoff
from ._pickle import default_codec, loads_restricted
from ._meter import Usage
from ._store import Conflict, Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any, ClassVar, NamedTuple, TypeVar

    T = TypeVar("T")
    M = TypeVar("M", bound="PersistentMap")
    Digests = dict[Any, bytes]
    _Base = MutableMapping[Any, Any]
else:
    from ._record import NamedTuple

    _Base = MutableMapping


class _State(NamedTuple):
    """What this container knows of the stored map, replaced as a whole when a load or a commit succeeds (so a
    failed write leaves it as it was). ``data`` is also the dict that ``batch()`` edits in place."""

    #: The map's contents as this container sees them.
    data: dict[Any, Any]
    #: Per top-level key, the digest of its entry as stored: what tells a real change from a no-op.
    digests: Digests
    #: The stored head they came from (None: nothing stored).
    head: Head | None


class PersistentMap(_Base):
    """A dict persisted in DynamoDB. ``PersistentMap()`` loads this function's map (one GetItem).

    Positional data or keyword data (``PersistentMap({'a': 1})``, ``PersistentMap(a=1)``) is merged into
    the stored map with one write. The keywords ``table_name``, ``table_key``, ``key_field_name`` and
    ``value_field_name`` configure the map instead (env ``PERSISTENCE_<NAME>`` wins); use
    :meth:`open` for the other settings and to pass a boto3 client.
    """

    #: The codec new commits are written with; the full package overrides it with msgpack+zstd.
    codec_factory: ClassVar[Callable[[], Codec]] = staticmethod(default_codec)

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
        **settings: Any,
    ) -> M:
        """Open a map with any setting (see ``Settings``) and an optional boto3 DynamoDB client."""
        self = cls.__new__(cls)
        self._setup(Settings.resolve(settings), client, dict(initial) if initial is not None else None)
        return self

    def _setup(self, settings: Settings, client: Any, initial: dict[Any, Any] | None) -> None:
        self.settings = settings
        self._codec = type(self).codec_factory()
        self._store = Store(client if client is not None else default_client(), settings)
        self._lock = threading.RLock()
        self._batch: list[Callable[[dict[Any, Any]], Any]] | None = None
        self._before_batch: dict[Any, Any] = {}
        self._batch_reads = False
        self._state = _State({}, {}, None)
        self._synced_at = 0.0
        self.refresh()
        if initial:
            self.update(initial)

    # -- reading ------------------------------------------------------------------------------------------

    def _view(self) -> dict[Any, Any]:
        # Reads take no lock, so that they never wait for a commit's network calls (and a batch() block can hand
        # the map to worker threads); other threads therefore see a batch's changes before its exit commits them.
        max_age = self.settings.max_age
        if max_age is not None and self._batch is None and time.monotonic() - self._synced_at > max_age:
            self.refresh()
        return self._state.data

    def __getitem__(self, key: Any) -> Any:
        return self._view()[key]

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
    def version(self) -> int:
        """The stored version this container last read or wrote (0: nothing stored yet, or a 1.0.0 item)."""
        head = self._state.head
        return head.version if head else 0

    @property
    def last_load(self) -> Usage:
        """DynamoDB calls, items, bytes and capacity units of the last load or refresh."""
        return self._store.last_load

    @property
    def last_commit(self) -> Usage:
        """DynamoDB calls, items, bytes and capacity units of the last commit."""
        return self._store.last_commit

    def refresh(self) -> None:
        """Re-read the stored map. Costs one GetItem; shards are read only if the stored version changed.

        Unsaved in-place edits of nested values are discarded: call :meth:`save` first to keep them.
        """
        with self._lock:
            head, blob = self._store.load(unless_version=self._state.head)
            if head is None or blob is not None or head.empty:
                self._adopt(head, blob)
                if self._batch is not None:
                    # Inside batch(): the block's changes so far stay, on top of the fresh state, which is also
                    # what the block's exit commits on (not the state the block started from).
                    self._before_batch = dict(self._state.data)
                    for operation in self._batch:
                        operation(self._state.data)
            self._synced_at = time.monotonic()

    # -- writing ------------------------------------------------------------------------------------------

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            if self._batch is None and key in self._state.digests:
                entry = self._codec.encode_entry(key, value)  # also validates before anything is sent
                if digest(entry) == self._state.digests[key]:
                    self._state.data[key] = value  # identical to what is stored (same value, same type): no write
                    return
            self._apply(lambda d: d.__setitem__(key, value))

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            if key not in self._state.data:
                raise KeyError(key)
            self._apply(lambda d: d.pop(key, None))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many keys with one write."""
        items = dict(other, **kwargs)
        if items:
            self._apply(lambda d: d.update(items))

    def clear(self) -> None:
        """Remove every key with one write (also keys that other containers added meanwhile)."""
        self._apply(dict.clear)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value, like dict.pop(); atomic across containers: the value returned is
        the one removed from the stored map (a key missing from this container's copy costs one GetItem to
        confirm)."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        found = self._apply(lambda d: d.pop(key, _MISSING), reads=True)
        if found is not _MISSING:
            return found
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last inserted (key, value) pair, like dict.popitem(); atomic like pop()."""
        found: tuple[Any, Any] | None = self._apply(lambda d: d.popitem() if d else None, reads=True)
        if found is None:
            raise KeyError("popitem(): map is empty")
        return found

    def save(self) -> None:
        """Commit in-place changes to nested values (``data['list'].append(x)``), if there are any."""
        self._apply(lambda d: None)

    def increment(self, key: Any, delta: int | float = 1) -> Any:
        """Atomically add ``delta`` to the number at ``key`` (missing counts as 0); return the new value.

        Atomic across containers: on a concurrent write the addition is redone on the fresh value.
        """
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError(f"increment() delta must be an int or float, not {type(delta).__name__}")

        def add(d: dict[Any, Any]) -> Any:
            current = d.get(key, 0)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise TypeError(f"cannot increment {key!r}: it holds a {type(current).__name__}, not a number")
            d[key] = current + delta
            return d[key]

        return self._apply(add, reads=True)

    def mutate(self, function: Callable[[dict[Any, Any]], T]) -> T:
        """Run ``function(d)`` on a private copy of the map and commit what it changed, atomically.

        On a concurrent write, ``function`` runs again on the fresh state, so read-modify-write code such as
        ``d['n'] = d.get('n', 0) + 1`` or popping from a queue is correct across containers. It must have no
        side effects besides changing ``d``. Returns what ``function`` returned on the attempt that committed.
        When it changes nothing, one GetItem confirms that it ran on the stored state (or it runs again on that).
        """
        return self._apply(lambda d: function(_deep_copy_into(d)), reads=True)

    @contextmanager
    def batch(self) -> Iterator[PersistentMap]:
        """Group changes: inside, writes only change memory; at exit they are committed with one write.

        If the block raises, its changes are discarded and nothing is written. Values returned inside the block
        (by ``increment()``, ``mutate()``, ``pop()``) come from this container's copy; when another container
        committed meanwhile, the exit re-applies the block's operations on the fresh state, so read the map
        after the block for what was committed.
        """
        with self._lock:
            if self._batch is not None:  # nested: the outermost batch commits
                yield self
                return
            self._batch, self._before_batch, self._batch_reads = [], dict(self._state.data), False
            try:
                yield self
            except BaseException:
                self._state = self._state._replace(data=self._before_batch)
                raise
            finally:
                operations, self._batch = self._batch, None
            self._state = self._state._replace(data=self._before_batch)

            def replay(d: dict[Any, Any]) -> None:
                for operation in operations:
                    operation(d)

            self._apply(replay, reads=self._batch_reads)

    # -- the commit loop ----------------------------------------------------------------------------------

    def _apply(self, operation: Callable[[dict[Any, Any]], T], *, reads: bool = False) -> T:
        """Commit ``operation``. ``reads``: its effect or result depends on the stored values (increment, mutate,
        pop), so even when it changes nothing, that must be decided on the current stored state."""
        with self._lock:
            if self._batch is not None:
                result = operation(self._state.data)
                self._batch.append(operation)
                self._batch_reads |= reads
                return result
            return self._commit(operation, reads)

    def _commit(self, operation: Callable[[dict[Any, Any]], T], reads: bool) -> T:
        head, base = self._state.head, self._state.digests
        work = dict(self._state.data)
        result = operation(work)
        unsaved: tuple[dict[Any, Any], set[Any]] | None = None
        usage = Usage()  # one write's cost, over all its attempts
        for attempt in range(self.settings.max_attempts):
            digests, body = self._encode(work)
            if list(digests.items()) == list(base.items()):
                # Nothing to write. An operation that reads must have decided on the current state: one GetItem
                # (no shard is read when the version is unchanged) confirms it, or gives the state to redo it on.
                stored, blob = self._store.load(unless_version=head) if reads else (head, None)
                if _same_version(stored, head):
                    self._state = _State(work, digests, head)
                    return result
                fresh, newer = self._stored(stored, blob)
                raced = False  # nobody raced this call: its view was old, so redo it now, without backing off
            else:
                blob = self._codec.compress(body)
                try:
                    new_head = self._store.commit(blob, self._codec.name, len(body), head, usage=usage)
                except Conflict as conflict:
                    stored, (fresh, newer) = self._fetch(conflict.current)
                    raced = True
                else:
                    self._state = _State(work, digests, new_head)
                    self._synced_at = time.monotonic()
                    return result
            # Another container committed first: redo this container's changes on the newest stored state.
            if unsaved is None:
                unsaved = self._unsaved()
            head, base = stored, newer
            if attempt + 1 == self.settings.max_attempts:
                self._state = _State(fresh, base, head)
                break
            work = dict(fresh)
            work.update(unsaved[0])
            for key in unsaved[1]:
                work.pop(key, None)
            result = operation(work)
            if raced:
                backoff(attempt, 0.02, 1.0)
        raise ConflictError(
            f"map {self.settings.table_key!r} was changed by other writers on each of {self.settings.max_attempts} "
            "attempts; nothing of this call was written, and the map now shows the newest stored state"
        )

    def _encode(self, data: dict[Any, Any]) -> tuple[Digests, bytes]:
        entries = [self._codec.encode_entry(k, v) for k, v in data.items()]
        return dict(zip(data, map(digest, entries), strict=True)), self._codec.join(entries)

    def _unsaved(self) -> tuple[dict[Any, Any], set[Any]]:
        """This container's edits not yet stored (in-place edits of nested values), per top-level key."""
        state = self._state
        digests = self._encode(state.data)[0]
        changed = {k: state.data[k] for k, d in digests.items() if state.digests.get(k) != d}
        return changed, set(state.digests) - set(digests)

    def _fetch(self, current: Head | None) -> tuple[Head | None, tuple[dict[Any, Any], Digests]]:
        """The newest stored state: the winner's head returned with a lost condition, or one more load."""
        if current is None or current.blob is None:
            current, blob = self._store.load()
        else:
            blob = current.blob
        return current, self._stored(current, blob)

    def _adopt(self, head: Head | None, blob: bytes | None) -> None:
        data, digests = self._stored(head, blob)
        self._state = _State(data, digests, head)

    def _stored(self, head: Head | None, blob: bytes | None) -> tuple[dict[Any, Any], Digests]:
        """A stored map and its per-entry digests. Decoded data that cannot be encoded again (a hostile body
        holding something outside the value model) is damaged data, not a bad value of the user's."""
        data = decode_map(head, blob, self.settings)
        try:
            return data, self._encode(data)[0]
        except UnsupportedValueError as exc:
            s = self.settings
            raise CorruptDataError(
                f"map in table {s.table_name!r} under key {s.table_key!r} holds a value outside the supported "
                f"types: {exc}",
                table=s.table_name,
                key=s.table_key,
            ) from exc


def decode_map(head: Head | None, blob: bytes | None, settings: Settings) -> dict[Any, Any]:
    """The map a head and its blob hold, through the allow-listed readers; errors name table and key."""
    if head is None or head.empty or blob is None:
        return {}
    s = settings
    try:
        if head.codec == LEGACY_CODEC:
            data = loads_restricted(blob)
            if type(data) is not dict:
                raise StoredDataError(f"a 1.0.0 item must hold a pickled dict, not {type(data).__name__}")
            return data
        assert head.codec is not None
        return codec_for(head.codec).decode(blob, head.raw_size)
    except StoredDataError as exc:
        raise type(exc)(
            f"map in table {s.table_name!r} under key {s.table_key!r}: {exc}", table=s.table_name, key=s.table_key
        ) from exc
    except Exception as exc:  # a 1.0.0 pickle that is damaged
        raise CorruptDataError(
            f"map in table {s.table_name!r} under key {s.table_key!r} cannot be decoded: {exc}",
            table=s.table_name,
            key=s.table_key,
        ) from exc


_MISSING = object()


def _same_version(a: Head | None, b: Head | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.version, a.digest) == (b.version, b.digest)


def _deep_copy_into(d: dict[Any, Any]) -> dict[Any, Any]:
    # mutate() functions may edit nested values in place; they must edit private copies, or a retry after a
    # conflict would see (and repeat) the edits of the attempt that lost.
    import copy

    fresh = copy.deepcopy(d)
    d.clear()
    d.update(fresh)
    return d
