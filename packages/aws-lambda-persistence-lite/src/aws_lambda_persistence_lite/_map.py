"""PersistentMap: a dict whose every change is committed to DynamoDB, safely under concurrency.

Owns the dict interface: its signatures, documentation and argument errors. What each change commits is
``_changes``'s: blind changes (set, delete, update, clear, increment) are appended whatever other containers did
meanwhile, so they never conflict; changes that depend on what is stored (``mutate``, ``pop``, ``popitem``,
``setdefault``) are appended only if the map is still at the version they were computed on, and are computed again
on the newest state otherwise (``_committing``). What the map shows, and ``batch()``, is ``_contents``'s. The
contents change only by folding committed records, so a failed write leaves memory as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from . import _snapstart
from ._changes import Changes
from ._client import client_for
from ._codec import CODECS, Codec, codec_for, lite_default
from ._config import Settings, split_arguments
from ._contents import Contents
from ._errors import ConfigurationError, UnsupportedFormatError
from ._meter import Usage
from ._reuse import replica_for

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from typing_extensions import TypedDict, Unpack

    from ._handler import Handler, LambdaHandler, P, R
    from ._replica import Replica

    class OpenOptions(TypedDict, total=False):
        """``open()``'s keyword parameters but ``lazy`` (for type checkers: what ``handler()`` passes on)."""

        table_name: str | None
        table_key: str | None
        key_field_name: str | None
        value_field_name: str | None
        max_age: float | None
        max_attempts: int | None
        billing_mode: str | None
        read_capacity: int | None
        write_capacity: int | None
        client: DynamoDBClient | None
        boto3_session: Session | None
        boto_config: Config | None
        codec: str | None


T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
M = TypeVar("M", bound="PersistentMap[Any, Any]")


class PersistentMap(MutableMapping[K, V]):
    """A dict persisted in DynamoDB. ``PersistentMap()`` loads this function's map (one GetItem for a small map).

    Positional data or keyword data (``PersistentMap({'a': 1})``, ``PersistentMap(a=1)``) is merged into
    the stored map with one write. The keywords ``table_name``, ``table_key``, ``key_field_name`` and
    ``value_field_name`` configure the map instead (env ``PERSISTENCE_<NAME>`` wins); use
    :meth:`open` for the other settings and to pass a boto3 client.
    """

    #: The codec a new map is written with when ``open()`` names none: msgpack+zstd in the full package; None, the
    #: lite package's choice for this interpreter (pickle5+zstd on Python 3.14+, else pickle5+zlib).
    default_codec: ClassVar[str | None] = None
    #: Where and how the map is stored (``open()``'s settings, the environment applied).
    settings: Settings
    _codec: Codec
    _replica: Replica
    _contents: Contents
    _changes: Changes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > 1:
            raise TypeError(f"PersistentMap expected at most 1 positional argument, got {len(args)}")
        config, data = split_arguments(kwargs)
        attach(self, Settings.resolve(config), client_for(), dict(*args, **data) if args or data else None)

    @classmethod
    def open(
        cls: type[M],
        initial: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        /,
        *,
        table_name: str | None = None,
        table_key: str | None = None,
        key_field_name: str | None = None,
        value_field_name: str | None = None,
        max_age: float | None = None,
        max_attempts: int | None = None,
        billing_mode: str | None = None,
        read_capacity: int | None = None,
        write_capacity: int | None = None,
        client: DynamoDBClient | None = None,
        boto3_session: Session | None = None,
        boto_config: Config | None = None,
        lazy: bool = False,
        codec: str | None = None,
    ) -> M:
        """Open a map with any setting (``Settings``; None: the default; ``PERSISTENCE_<NAME>`` wins), through
        ``client``, or one made from ``boto3_session`` and ``boto_config`` (which overrides this library's retries and
        timeouts). ``codec``: what a new map is written with (``CODECS``; a stored map keeps its own). ``lazy=True``:
        no DynamoDB call until the map is used; a first blind change is then appended unread (one call in all), and
        errors (a missing permission, a damaged map) surface at that first use.
        """
        settings = {k: v for k, v in locals().items() if k in Settings._fields}
        self = cls.__new__(cls)
        data = dict(initial) if initial is not None else None
        client = client if client is not None else client_for(boto3_session, boto_config)
        attach(self, Settings.resolve(settings), client, data, lazy=lazy, codec=codec)
        return self

    @classmethod
    def handler(cls: type[M], **options: Unpack[OpenOptions]) -> Callable[[Handler[M, P, R]], LambdaHandler[P, R]]:
        """Decorate a Lambda handler ``handler(event, context, data)`` to receive the map ``open(lazy=True,
        **options)`` opens at the container's first invocation; each invocation's changes are one write (none if
        it changes nothing), committed before it returns and discarded if it raises (see ``_handler``)."""
        from ._handler import persistent  # (imported by the functions that decorate a handler, not by every import)

        return persistent(lambda: cls.open(lazy=True, **options))

    # -- reading ------------------------------------------------------------------------------------------

    def __getitem__(self, key: K) -> V:
        return self._contents.get(key)  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return key in self._contents.view()

    def __iter__(self) -> Iterator[K]:
        return iter(self._contents.view())

    def __len__(self) -> int:
        return len(self._contents.view())

    def __repr__(self) -> str:
        return repr(self._contents.view())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PersistentMap):
            other = other._contents.view()
        return self._contents.view() == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Mapping[Any, Any]) -> dict[Any, Any]:
        return {**self._contents.view(), **other} if isinstance(other, Mapping) else NotImplemented

    def __ror__(self, other: Mapping[Any, Any]) -> dict[Any, Any]:
        return {**other, **self._contents.view()} if isinstance(other, Mapping) else NotImplemented

    def __ior__(self: M, other: Any) -> M:  # type: ignore[misc]
        self.update(other)
        return self

    def to_dict(self) -> dict[K, V]:
        """A plain dict with the map's current contents (a shallow copy)."""
        return dict(self._contents.view())

    @property
    def codec(self) -> str:
        """The codec of this map's entries: the stored map's, once read (else the one it was opened with)."""
        return self._replica.codec.name

    @property
    def version(self) -> int:
        """The sequence number of the newest change this container folded (0: nothing stored yet, or a 1.0.0 item)."""
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
        self._contents.refresh()

    # -- writing ------------------------------------------------------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        # Written even when identical to this container's copy: the copy may be stale (another container may have
        # changed the key since), and a set must leave the value it sets.
        self._changes.set(key, value)

    def __delitem__(self, key: K) -> None:
        self._changes.delete(key)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many keys with one write (none for no keys); every key is written, as by ``m[k] = v``."""
        self._changes.update(other, kwargs)

    def clear(self) -> None:
        """Remove every key with one write (also keys that other containers added meanwhile)."""
        self._changes.clear()

    def increment(self, key: K, delta: int | float = 1) -> Any:
        """Atomically add ``delta`` to the number at ``key`` (missing counts as 0); return the new value.

        Atomic across containers without a conflict: DynamoDB orders the additions, and each caller gets the
        value its own addition produced.
        """
        return self._changes.increment(key, delta)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value, like dict.pop(); atomic across containers: the value returned is
        the one removed from the stored map."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        return self._changes.pop(key, default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``m[key]`` if present, else set it to ``default`` and return that, like dict.setdefault(); atomic like
        pop(): set only if no container has set the key meanwhile (else the value it set is returned)."""
        return self._changes.setdefault(key, default)

    def popitem(self) -> tuple[K, V]:
        """Remove and return the last inserted (key, value) pair, like dict.popitem(); atomic like pop()."""
        return self._changes.popitem()

    def save(self) -> None:
        """Commit in-place changes to nested values (``data['list'].append(x)``), if there are any: every value
        is encoded again and compared with what is stored (the cost grows with the map)."""
        self._changes.save()

    def mutate(self, function: Callable[[dict[K, V]], T]) -> T:
        """Run ``function(d)`` on a private copy of the map and commit what it changed, atomically.

        On a concurrent write, ``function`` runs again on the fresh state, so read-modify-write code such as
        ``d['n'] = d.get('n', 0) + 1`` or popping from a queue is correct across containers. It must have no
        side effects besides changing ``d``. Returns what ``function`` returned on the attempt that committed.
        When it changes nothing, one GetItem confirms that it ran on the stored state (or it runs again on that).
        """
        return self._changes.mutate(function)  # type: ignore[no-any-return]

    @contextmanager
    def batch(self: M) -> Iterator[M]:
        """Group changes: inside, writes only change memory; at exit they are committed with one write.

        If the block raises, its changes are discarded and nothing is written. A value read inside the block is the
        block's own copy: editing it in place (``data['l'].append(x)``) is one of its changes. Values returned inside
        the block (by ``increment()``, ``mutate()``, ``pop()``) come from this container's copy; when another
        container committed meanwhile, blind changes land as they are and changes that read the map are computed
        again on the fresh state, so read the map after the block for what was committed."""
        with self._contents.block():
            yield self


def attach(
    self: PersistentMap[Any, Any],
    settings: Settings,
    client: DynamoDBClient,
    data: dict[Any, Any] | None,
    *,
    lazy: bool = False,
    codec: str | None = None,
) -> None:
    """Give a new map its state: a dropped map's of the same stored map, or a new one, loaded unless ``lazy``
    (a dropped map's state catches up at its first use, as a global's does); then merge ``data`` into it."""
    self.settings = settings
    self._codec = _writing_codec(codec or type(self).default_codec or lite_default())
    self._replica = replica_for(self, client, settings, self._codec)
    self._contents = Contents(self._replica)
    _snapstart.track(self._contents.commits)
    self._changes = Changes(self._contents)
    if not lazy and not self._contents.commits.loaded:
        self.refresh()
    if data:
        self.update(data)


def _writing_codec(name: str) -> Codec:
    """The codec ``open(codec=name)`` asks for, or ConfigurationError naming the choices and the fix."""
    if name not in CODECS:
        raise ConfigurationError(f"unknown codec {name!r}; known codecs: {', '.join(CODECS)}")
    try:
        return codec_for(name)
    except UnsupportedFormatError as exc:
        raise ConfigurationError(str(exc)) from None
