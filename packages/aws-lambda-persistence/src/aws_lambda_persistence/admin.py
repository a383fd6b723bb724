"""Whole stored maps, for tools: ``aws_lambda_persistence_lite.admin`` (see there), with this package's map class.

Maps read are this package's ``PersistentMap``, so ``rewrite`` writes them with msgpack+zstd unless told otherwise.
"""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_persistence_lite import admin as _lite
from aws_lambda_persistence_lite._public import claim
from aws_lambda_persistence_lite.admin import MapInfo, SegmentInfo, describe, list_maps, rewrite, watch

from . import PersistentMap, Settings

__all__ = ["MapInfo", "SegmentInfo", "default_codec", "describe", "list_maps", "read", "rewrite", "watch"]


def default_codec(map_class: type[PersistentMap[Any, Any]] = PersistentMap) -> str:
    """The codec ``map_class`` writes new maps with: msgpack+zstd for this package's."""
    return _lite.default_codec(map_class)


def read(
    target: Settings | str, *, client: Any = None, map_class: type[PersistentMap[Any, Any]] = PersistentMap
) -> PersistentMap[Any, Any] | None:
    """``aws_lambda_persistence_lite.admin.read``, as this package's ``PersistentMap``."""
    return cast("PersistentMap[Any, Any] | None", _lite.read(target, client=client, map_class=map_class))


claim(__name__, __all__, globals())  # MapInfo and SegmentInfo, named after this module (see _public)
