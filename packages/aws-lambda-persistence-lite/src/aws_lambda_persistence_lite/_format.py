"""The stored format (FORMAT.md): head and shard items, their attribute names, and their validation.

This module turns items as the DynamoDB low-level client sees them into a :class:`Head` and back. It does
no I/O and never guesses: an item it cannot account for is a CorruptDataError naming table and key.
"""

from __future__ import annotations

try:  # hashlib's own blake2b, without hashlib loading OpenSSL at import (about 4 ms of a cold start)
    from _blake2 import blake2b
except ImportError:  # an interpreter without the _blake2 module
    from hashlib import blake2b

from ._config import Settings
from ._errors import CorruptDataError, StoredDataError, UnsupportedFormatError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    Item = dict[str, dict[str, Any]]
else:
    from ._record import NamedTuple

#: The version of the stored format this package writes (FORMAT.md). 1.0.0's items are format 1.
FORMAT_VERSION = 2

FMT = "alp_fmt"
CODEC = "alp_codec"
VER = "alp_ver"
RAW = "alp_raw"
DIGEST = "alp_dig"
GEN = "alp_gen"
SHARDS = "alp_shards"
GARBAGE = "alp_garbage"
COMMIT = "alp_cid"
PREVIOUS = "alp_prev"

#: Commit ids a head remembers: its own and the previous ones, so that a writer whose response was lost can tell
#: its commit was applied even after other containers committed on top of it.
HISTORY = 8

#: The codec name of 1.0.0's items: a plain pickle of the whole dict, uncompressed.
LEGACY_CODEC = "pickle-1.0.0"


def digest(blob: bytes) -> bytes:
    """Integrity check of a whole blob, and identity of one map entry (16-byte BLAKE2b)."""
    return blake2b(blob, digest_size=16).digest()


def shard_digest(chunk: bytes) -> bytes:
    """Integrity check of one shard (8-byte BLAKE2b)."""
    return blake2b(chunk, digest_size=8).digest()


def shard_key(table_key: str, gen: str, index: int) -> str:
    """The hash key of shard ``index`` of generation ``gen``. Shards are never overwritten in place."""
    return f"{table_key}#alp-shard#{gen}#{index}"


def garbage_entry(gen: str, count: int) -> str:
    return f"{gen}:{count}"


def garbage_keys(table_key: str, entries: frozenset[str]) -> list[str]:
    """Shard keys named by the head's garbage list (shards of generations that are no longer live)."""
    keys: list[str] = []
    for entry in sorted(entries):
        gen, _, count = entry.rpartition(":")
        keys.extend(shard_key(table_key, gen, i) for i in range(int(count)))
    return keys


class Head(NamedTuple):
    """What the head item says about the stored map."""

    version: int
    codec: str | None = None
    raw_size: int = 0
    digest: bytes = b""
    blob: bytes | None = None
    gen: str | None = None
    shard_digests: tuple[bytes, ...] = ()
    garbage: frozenset[str] = frozenset()
    legacy: bool = False
    #: Unique per commit: tells a writer whether the stored head is its own (after a lost response) or another's
    #: with the same contents.
    commit_id: str = ""
    #: The ids of the commits before this one, newest first (at most HISTORY - 1).
    previous: tuple[str, ...] = ()
    #: The head item's size as stored (DynamoDB bills an overwrite at the larger of old and new item).
    stored_size: int = 0

    @property
    def empty(self) -> bool:
        """True when the head holds no map (a placeholder left by an unfinished first commit)."""
        return self.codec is None

    @property
    def commits(self) -> tuple[str, ...]:
        """This head's commit id and the previous ones, newest first: the commits it is known to contain."""
        return (self.commit_id, *self.previous) if self.commit_id else self.previous

    def shard_keys(self, table_key: str) -> list[str]:
        assert self.gen is not None
        return [shard_key(table_key, self.gen, i) for i in range(len(self.shard_digests))]

    def own_garbage(self) -> str | None:
        """This head's live shards as a garbage entry, for the commit that replaces them."""
        return garbage_entry(self.gen, len(self.shard_digests)) if self.gen else None


def _bad(settings: Settings, why: str) -> CorruptDataError:
    return CorruptDataError(
        f"the map stored in table {settings.table_name!r} under key {settings.table_key!r} is unreadable: {why}",
        table=settings.table_name,
        key=settings.table_key,
    )


def parse_head(item: Item, settings: Settings) -> Head:
    """Read a head item (format 2, a 1.0.0 item, or a placeholder) into a Head."""
    try:
        value = item.get(settings.value_field_name)
        if FMT not in item:
            # A 1.0.0 item, or a placeholder claimed by an unfinished first commit of a large map; either may
            # carry the version and garbage list that a large commit claims before it writes its shards.
            version = int(item[VER]["N"]) if VER in item else 0
            garbage = frozenset(item.get(GARBAGE, {}).get("SS", ()))
            if value is None and VER in item:
                return Head(version=version, garbage=garbage, stored_size=item_size(item))
            if value is None or "B" not in value:
                raise _bad(settings, f"attribute {settings.value_field_name!r} is missing or not Binary")
            blob = bytes(value["B"])
            return Head(
                stored_size=item_size(item),
                version=version,
                codec=LEGACY_CODEC,
                raw_size=len(blob),
                digest=digest(blob),
                blob=blob,
                garbage=garbage,
                legacy=True,
            )
        fmt = int(item[FMT]["N"])
        if fmt > FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"the map in table {settings.table_name!r} under key {settings.table_key!r} was written in stored "
                f"format {fmt}; this package reads formats up to {FORMAT_VERSION}: upgrade aws-lambda-persistence",
                table=settings.table_name,
                key=settings.table_key,
            )
        shards = tuple(bytes(s["B"]) for s in item.get(SHARDS, {}).get("L", ()))
        head = Head(
            version=int(item[VER]["N"]),
            codec=item[CODEC]["S"],
            raw_size=int(item[RAW]["N"]),
            digest=bytes(item[DIGEST]["B"]),
            blob=bytes(value["B"]) if value is not None else None,
            gen=item[GEN]["S"] if GEN in item else None,
            shard_digests=shards,
            garbage=frozenset(item.get(GARBAGE, {}).get("SS", ())),
            commit_id=item[COMMIT]["S"] if COMMIT in item else "",
            previous=_commit_ids(bytes(item[PREVIOUS]["B"])) if PREVIOUS in item else (),
            stored_size=item_size(item),
        )
    except StoredDataError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(settings, f"malformed head item ({type(exc).__name__}: {exc})") from None
    if (head.blob is None) == (head.gen is None) or (head.gen is not None and not shards):
        raise _bad(settings, "head item has neither an inline blob nor a shard list (or both)")
    return head


def head_item(settings: Settings, head: Head) -> Item:
    """The head item that stores ``head`` (inline blob or shard list)."""
    assert head.codec is not None
    item: Item = {
        settings.key_field_name: {"S": settings.table_key},
        FMT: {"N": str(FORMAT_VERSION)},
        CODEC: {"S": head.codec},
        VER: {"N": str(head.version)},
        RAW: {"N": str(head.raw_size)},
        DIGEST: {"B": head.digest},
        COMMIT: {"S": head.commit_id},
    }
    if head.blob is not None:
        item[settings.value_field_name] = {"B": head.blob}
    else:
        assert head.gen is not None
        item[GEN] = {"S": head.gen}
        item[SHARDS] = {"L": [{"B": d} for d in head.shard_digests]}
    if head.garbage:
        item[GARBAGE] = {"SS": sorted(head.garbage)}
    if head.previous:
        item[PREVIOUS] = {"B": b"".join(bytes.fromhex(c) for c in head.previous)}
    return item


def _commit_ids(packed: bytes) -> tuple[str, ...]:
    """``alp_prev``: 8-byte commit ids, concatenated."""
    if len(packed) % 8:
        raise ValueError(f"{PREVIOUS} is {len(packed)} bytes, not a multiple of 8")
    return tuple(packed[i : i + 8].hex() for i in range(0, len(packed), 8))


def shard_item(settings: Settings, key: str, chunk: bytes) -> Item:
    return {settings.key_field_name: {"S": key}, settings.value_field_name: {"B": chunk}}


def item_size(item: Item) -> int:
    """Bytes DynamoDB counts for ``item``: names plus values (rounded up for numbers and list overhead)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode()) + _value_size(value)
    return total


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8", "surrogatepass"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        return len(inner) // 2 + 2
    if kind in ("SS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in inner) + 3
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    return 32
