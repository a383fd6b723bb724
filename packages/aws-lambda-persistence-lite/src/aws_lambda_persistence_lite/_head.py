"""Format 3's head item (FORMAT.md, "Head item"): its attributes, its size bound, and its validation.

Turns a head item as the low-level client returns it into a :class:`Head` and back. Stored items are hostile
until verified: the segment table's digest is checked before the table is parsed, every attribute's type is
checked, and anything unexpected is a CorruptDataError naming table and key. Nothing here does I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ._codec import available
from ._config import Settings
from ._errors import CorruptDataError, StoredDataError, UnsupportedFormatError, about_map
from ._limits import DYNAMODB_ITEM_LIMIT
from ._meter import item_size
from ._records import INLINE_MAX, MANIFEST, RECORD_ID_BYTES, Segment, decode_table, digest, encode_table

if TYPE_CHECKING:
    from ._meter import Item

FORMAT = 3
FMT, CODEC, VER, EPOCH, LOG, ROOM, IDS, TABLE, TABLE_DIGEST, INLINE, GARBAGE = (
    "alp_fmt",
    "alp_codec",
    "alp_ver",
    "alp_ep",
    "alp_log",
    "alp_room",
    "alp_ids",
    "alp_seg",
    "alp_dig",
    "alp_inl",
    "alp_garbage",
)

#: The head never exceeds this (DynamoDB's count of names and values): an update of it costs at most 4 WCU.
HEAD_BUDGET = 4_000
#: The head's own segment list (``alp_seg``) stays within this; a larger table goes into a manifest segment, so
#: that the log keeps its room whatever the map's size (FORMAT.md, "Manifest").
TABLE_MAX = 1_600
#: Ids of flushed records a head remembers, so that botocore's retry of an applied append is recognised.
FLUSHED_IDS = 16

#: What 1.0.0 finds in ``value``: a pickle of ``int(MESSAGE)``, whose load raises ValueError with the message.
#: (1.0.0 unpickles ``value`` with pickle.loads; ``builtins.int`` is all this pickle names, and nothing runs.)
LEGACY_MESSAGE = "aws-lambda-persistence 2.x stored this map; 1.0.0 cannot read it: upgrade this function"
LEGACY_TRAP = (
    b"\x80\x02cbuiltins\nint\nX" + len(LEGACY_MESSAGE).to_bytes(4, "little") + LEGACY_MESSAGE.encode() + b"\x85R."
)


class Head(NamedTuple):
    """What a format-3 head item says."""

    codec: str
    version: int = 0
    epoch: int = 0
    log: tuple[bytes, ...] = ()
    room: int = 0
    #: Ids of the newest flushed records (``alp_ids``) and of the records in the log, in sequence order.
    ids: tuple[bytes, ...] = ()
    #: The map's segments. Until a reader resolves the manifest (``Replica``), what the head lists, manifest
    #: included; after, the manifest's segments and the head's others.
    table: tuple[Segment, ...] = ()
    #: What the head's ``alp_seg`` lists: a manifest first, if any, then segments added since.
    listed: tuple[Segment, ...] = ()
    #: The inline partition's blob (``alp_inl``), or b"" (checked against the table when the map is read).
    inline: bytes = b""
    garbage: frozenset[str] = frozenset()
    #: The item's size as stored (DynamoDB bills an update at the larger of the item before and after).
    stored_size: int = 0

    @property
    def manifest(self) -> Segment | None:
        """The manifest segment the head lists (FORMAT.md, "Manifest"), if any."""
        return self.listed[0] if self.listed and self.listed[0].kind == MANIFEST else None

    @property
    def first_logged(self) -> int:
        """Sequence number of the log's first record."""
        return self.version - len(self.log) + 1


class UnreadableCodec(UnsupportedFormatError):
    """A sound head whose codec this package cannot decode: tools still show what the head says (``head``)."""

    def __init__(self, message: str, *, table: str, key: str, head: Head) -> None:
        super().__init__(message, table=table, key=key)
        self.head = head


def parse(item: Item, settings: Settings) -> Head:
    """Read a format-3 head item (the caller has checked ``alp_fmt``). Every attribute must have exactly its type
    and range (FORMAT.md, "Head item"): damage read as a default (a missing log as an empty one) would be a wrong
    map. Only ``alp_ids``, ``alp_seg``, ``alp_inl`` and ``alp_garbage`` may be absent (heads omit them when
    empty)."""
    try:
        fmt = _number(item, FMT, 0, COUNTER_MAX)
        if fmt != FORMAT:
            raise about_map(
                UnsupportedFormatError,
                settings.table_name,
                settings.table_key,
                f"was written in stored format {fmt}; this package reads format {FORMAT} and 1.0.0 items: "
                + ("upgrade aws-lambda-persistence" if fmt > FORMAT else "rewrite it with this version"),
            )
        codec = _attribute(item, CODEC, "S")
        if not 0 < len(codec) <= CODEC_NAME_MAX or not set(codec) <= _CODEC_CHARACTERS:
            raise _Malformed(CODEC, "a codec name (S: up to 64 ASCII letters, digits and '+-._')")
        table_bytes = bytes(_attribute(item, TABLE, "B", optional=True) or b"")
        if digest(table_bytes) != bytes(_attribute(item, TABLE_DIGEST, "B")):
            raise bad(settings, "its segment table fails its integrity check")
        log = _binaries(_attribute(item, LOG, "L"), LOG)
        ids = _binaries(_attribute(item, IDS, "L", optional=True) or (), IDS)
        garbage = _attribute(item, GARBAGE, "SS", optional=True) or ()
        inline = bytes(_attribute(item, INLINE, "B", optional=True) or b"")
        if len(inline) > INLINE_MAX:
            raise _Malformed(INLINE, f"binary (B) of at most {INLINE_MAX:,} bytes")
        if not all(len(i) == RECORD_ID_BYTES for i in ids):
            raise _Malformed(IDS, f"a list (L) of {RECORD_ID_BYTES}-byte record ids (B)")
        if not all(type(entry) is str for entry in garbage):
            raise _Malformed(GARBAGE, _KINDS["SS"])
        head = Head(
            codec=codec,
            version=_number(item, VER, 0, COUNTER_MAX),
            epoch=_number(item, EPOCH, 0, COUNTER_MAX),
            log=log,
            room=_number(item, ROOM, -DYNAMODB_ITEM_LIMIT, HEAD_BUDGET),
            ids=ids + tuple(record[:RECORD_ID_BYTES] for record in log),
            table=_table(table_bytes),
            listed=_table(table_bytes),
            inline=inline,
            garbage=frozenset(garbage),
            stored_size=item_size(item),
        )
    except _Malformed as exc:
        raise bad(settings, f"malformed head item: {exc}") from None
    except StoredDataError as exc:
        if exc.table:
            raise
        raise bad(settings, str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(settings, f"malformed head item ({type(exc).__name__}: {exc})") from None
    if head.version < len(log):
        raise bad(settings, f"its log holds {len(log)} records, more than its version ({head.version})")
    try:
        available(codec, table=settings.table_name, key=settings.table_key)
    except UnsupportedFormatError as exc:
        raise UnreadableCodec(str(exc), table=settings.table_name, key=settings.table_key, head=head) from None
    return head


def appended(head: Head, attributes: Item, settings: Settings) -> Head:
    """``head`` after a pinned append, from what the append returned (``UPDATED_NEW``: the log, ``alp_ver`` and
    ``alp_room``). The pin (FORMAT.md, "Commits", 2) held the segment table, so the rest of the head is
    ``head``'s: structural commits, the only writers of the other attributes, all replace the table."""
    try:
        if attributes.keys() != {LOG, VER, ROOM}:
            raise _Malformed(LOG, "returned by an append with alp_ver and alp_room only")
        log = _binaries(_attribute(attributes, LOG, "L"), LOG)
        version = _number(attributes, VER, 0, COUNTER_MAX)
        room = _number(attributes, ROOM, -DYNAMODB_ITEM_LIMIT, HEAD_BUDGET)
    except _Malformed as exc:
        raise bad(settings, f"malformed head item: {exc}") from None
    if not len(log) <= version or version <= head.version:
        raise bad(settings, f"an append returned version {version} and {len(log)} records after {head.version}")
    stored = head.stored_size - _changing_size(head.version, head.room, head.log)
    return head._replace(
        version=version,
        log=log,
        room=room,
        ids=stored_ids(head) + tuple(record[:RECORD_ID_BYTES] for record in log),
        stored_size=stored + _changing_size(version, room, log),
    )


def stored_ids(head: Head) -> tuple[bytes, ...]:
    """The ids ``alp_ids`` holds (those of flushed records): ``head.ids`` less the log's."""
    return head.ids[: len(head.ids) - len(head.log)]


def _changing_size(version: int, room: int, log: tuple[bytes, ...]) -> int:
    """What an append changes of the head's size (``alp_ver``, ``alp_room``, ``alp_log``), as ``item_size`` counts."""
    return item_size({VER: {"N": str(version)}, ROOM: {"N": str(room)}}) + len(LOG) + 3 + sum(len(r) + 1 for r in log)


#: Counters (``alp_fmt``, ``alp_ver``, ``alp_ep``) stay below 2**63: a change per nanosecond would take 292 years.
COUNTER_MAX = 2**63 - 1
#: The longest codec name a head may hold (those in use have 12 characters), and the characters names use.
CODEC_NAME_MAX = 64
_CODEC_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._")
#: What each DynamoDB type is called in errors, and the Python types the client returns for it.
_KINDS = {
    "S": "a string (S)",
    "N": "an integer (N)",
    "B": "binary (B)",
    "L": "a list (L) of binary records (B)",
    "BS": "a binary set (BS)",
    "SS": "a string set (SS)",
}
_BINARY = (bytes, bytearray, memoryview)
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "S": str,
    "N": str,
    "B": _BINARY,
    "L": (list, tuple),
    "BS": (list, tuple, set, frozenset),
    "SS": (list, tuple, set, frozenset),
}


class _Malformed(Exception):
    """An attribute missing or not of its type (``parse`` turns it into a CorruptDataError naming the map)."""

    def __init__(self, name: str, should: str, *, missing: bool = False) -> None:
        super().__init__(f"attribute {name} is {'missing' if missing else 'damaged'}: it should be {should}")


def _attribute(item: Item, name: str, kind: str, *, optional: bool = False) -> Any:
    """What attribute ``name`` holds, which must be of DynamoDB type ``kind`` (None: absent, and ``optional``)."""
    value = item.get(name)
    if value is None:
        if optional:
            return None
        raise _Malformed(name, _KINDS[kind], missing=True)
    return _typed(value, kind, name)


def _typed(value: Any, kind: str, name: str) -> Any:
    """What an attribute value (as the low-level client returns it) holds, if it is of DynamoDB type ``kind``."""
    if type(value) is not dict or len(value) != 1 or not isinstance(value.get(kind), _PYTHON_TYPES[kind]):
        raise _Malformed(name, _KINDS[kind])
    return value[kind]


def _binaries(entries: Any, name: str) -> tuple[bytes, ...]:
    """The values of a list (L) attribute whose every element must be binary (B)."""
    found: list[bytes] = []
    for entry in entries:
        value = entry.get("B") if type(entry) is dict and len(entry) == 1 else None
        if not isinstance(value, _BINARY):
            raise _Malformed(f"{name}[{len(found)}]", _KINDS["B"])
        found.append(bytes(value))
    return tuple(found)


def _number(item: Item, name: str, low: int, high: int) -> int:
    """An N attribute: an integer as DynamoDB spells one (digits, maybe a minus) within ``low..high``."""
    text = _attribute(item, name, "N")
    digits = text[1:] if text[:1] == "-" else text
    if not (0 < len(digits) <= 19 and digits.isascii() and digits.isdigit() and low <= int(text) <= high):
        raise _Malformed(name, f"an integer (N) in {low:,}..{high:,}")
    return int(text)


_last_table: tuple[bytes, tuple[Segment, ...]] = (b"", ())


def _table(table_bytes: bytes) -> tuple[Segment, ...]:
    """The parsed table; the last one is remembered, since every append returns the same table again."""
    global _last_table  # noqa: PLW0603
    if table_bytes != _last_table[0]:
        _last_table = (table_bytes, tuple(decode_table(table_bytes)) if table_bytes else ())
    return _last_table[1]


def build(settings: Settings, codec: str, *, version: int, epoch: int, log: list[bytes], table: list[Segment]) -> Item:
    """A complete head item (first write, large writes): room is what the head budget leaves the log."""
    table_bytes = encode_table(table) if table else b""
    item: Item = {
        settings.key_field_name: {"S": settings.table_key},
        settings.value_field_name: {"B": LEGACY_TRAP},
        FMT: {"N": str(FORMAT)},
        CODEC: {"S": codec},
        VER: {"N": str(version)},
        EPOCH: {"N": str(epoch)},
        LOG: {"L": [{"B": r} for r in log]},
        TABLE_DIGEST: {"B": digest(table_bytes)},
        ROOM: {"N": "0"},
    }
    if table_bytes:
        item[TABLE] = {"B": table_bytes}
    item[ROOM] = {"N": str(room(item, settings))}
    return item


def room(item: Item, settings: Settings) -> int:
    """Bytes the log may still grow by: the head budget less everything the head holds, with margin for the
    counters growing a digit."""
    return HEAD_BUDGET - item_size(item) - 64


def table_attributes(table: list[Segment]) -> dict[str, Any]:
    """``alp_seg`` and ``alp_dig`` for a new table (absent ``alp_seg``: no segments)."""
    table_bytes = encode_table(table) if table else b""
    return {"table": {"B": table_bytes} if table_bytes else None, "digest": {"B": digest(table_bytes)}}


def bad(settings: Settings, why: str, kind: type[StoredDataError] = CorruptDataError) -> StoredDataError:
    return about_map(kind, settings.table_name, settings.table_key, f"is unreadable: {why}")


def named(settings: Settings, exc: StoredDataError) -> StoredDataError:
    """``exc``, raised where the map was not known (a parser, a codec), as the same error naming the map."""
    return exc if exc.table else bad(settings, str(exc), type(exc))


#: The codec name tools show for a 1.0.0 item: a plain pickle of the whole dict in ``value``, uncompressed.
LEGACY_CODEC = "pickle-1.0.0"


def segment_shards(item: Item) -> int:
    """Shard items a cold load of this head reads besides the head: those of every segment its table lists (0 for
    an item without a table, with one that does not parse, or with a manifest, whose count it does not know)."""
    try:
        listed = decode_table(bytes(item[TABLE]["B"])) if TABLE in item else []
        return 0 if any(s.kind == MANIFEST for s in listed) else sum(s.shards for s in listed)
    except (StoredDataError, KeyError, TypeError, ValueError):
        return 0
