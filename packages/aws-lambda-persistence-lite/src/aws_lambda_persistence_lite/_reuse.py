"""A dropped map's replica, taken over by the next map of the same stored map in this process: a handler that opens
``PersistentMap()`` on every invocation then reads only what changed since the last one, as a map kept in a global
does (the state stays in memory meanwhile).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ._dynamodb import Table
from ._log import package_logger
from ._replica import Replica

if TYPE_CHECKING:
    from ._codec import Codec
    from ._config import Settings

#: Whether a map reuses the state of a dropped map of the same stored map (tests of a new container turn it off).
REUSE = True
#: The replicas of maps this process dropped, by stored map: (id of the client, which the replica holds, so the id
#: stays its own; table; key; attribute names).
_dropped: dict[tuple[int, str, str, str, str], Replica] = {}


def replica_for(owner: object, client: Any, settings: Settings, codec: Codec) -> Replica:
    """The replica of map ``owner``: a dropped map's of the same client, table and key (the same stored map; the
    other settings may differ), else a new one; kept for the next map when ``owner`` is dropped in turn."""
    table = Table(client, settings, package_logger(type(owner)))
    stored = (
        id(client),
        settings.table_name,
        settings.table_key,
        settings.key_field_name,
        settings.value_field_name,
    )
    replica = _dropped.pop(stored, None) if REUSE else None
    if replica is None:
        replica = Replica(table, settings, codec)
    else:
        replica.table, replica.settings = table, settings
    weakref.finalize(owner, _keep, stored, replica).atexit = False
    return replica


def _keep(stored: tuple[int, str, str, str, str], replica: Replica) -> None:
    """A map was dropped (garbage): keep its replica for the next map of the same stored map, if it holds one.
    (No lock: a finalizer may run in any thread, inside any allocation; a dict store is atomic.)"""
    if replica.head is not None and replica.legacy is None:
        _dropped[stored] = replica
