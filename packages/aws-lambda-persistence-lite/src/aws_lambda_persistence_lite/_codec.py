"""The codec contract: how a map becomes bytes and back, and the registry of known codecs.

A map is encoded entry by entry (one key and its value), so that the map can tell exactly which
top-level keys changed by comparing per-entry digests, and re-apply only its own changes after a
concurrent write. A codec's decoder hands back each entry's stored bytes along with the dict, so those
digests cost a load no encoding. A codec must never decode without a size bound: every ``decode`` gets the
decoded size the head item declared, capped by ``MAX_DECODED_BYTES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from ._errors import UnsupportedFormatError, about_map

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any, ClassVar

#: Codecs this package knows by name but cannot decode, with the fix to tell the user.
_FOREIGN: dict[str, str] = {
    "msgpack+zstd": "this map was written by the full package; install it: pip install aws-lambda-persistence",
}


class Codec(ABC):
    """Turns map entries into bytes and a stored blob back into a dict."""

    #: Stored in every head item (``alp_codec``); never reuse a name for a different encoding.
    name: ClassVar[str]
    #: How one entry is encoded, compression aside. Codecs of one entry format write identical entries: the bytes
    #: of an entry that one stored compare with those the other encodes (pickle5+zlib and pickle5+zstd do).
    entry_format: ClassVar[str]
    #: The most one byte of a blob can decompress to, by the compression format itself: a head claiming a larger
    #: raw size is damaged, and is refused before anything is allocated.
    max_ratio: ClassVar[int]

    @abstractmethod
    def encode_entry(self, key: Any, value: Any) -> bytes:
        """Encode one entry; raises UnsupportedValueError naming the key path of a bad value."""

    @abstractmethod
    def join(self, entries: list[bytes]) -> bytes:
        """Concatenate encoded entries into the map's body (uncompressed)."""

    @abstractmethod
    def compress(self, body: bytes) -> bytes:
        """Compress a body into the blob that is stored."""

    def decode(self, blob: bytes, raw_size: int) -> dict[Any, Any]:
        """Decompress (to at most ``raw_size`` bytes) and decode a blob back into a dict."""
        return self.decode_entries(blob, raw_size)[0]

    @abstractmethod
    def decode_entry(self, entry: bytes) -> tuple[Any, Any]:
        """One stored entry (what ``encode_entry`` wrote) back to its key and value, through the same bounds and
        allow-lists as every read: CorruptDataError (or UnsafeDataError) for anything else."""

    @abstractmethod
    def read_entry(self, entry: bytes) -> tuple[Any, Any, bytes]:
        """:meth:`decode_entry`, and what ``encode_entry`` returns for that key and value in this process: the stored
        entry itself, except for one holding a set or frozenset, which is encoded again. A set's encoding follows
        its iteration order, which the set decoded need not share (str hashes are seeded per process, and the
        order depends on how the set was built): only these bytes tell an unchanged value from a changed one."""

    def read_entries(self, entries: list[bytes]) -> list[tuple[Any, Any, bytes]]:
        """:meth:`read_entry` of each entry (a partition's, on every cold load: codecs that can read many entries
        in one pass, through the same bounds, override it)."""
        return [self.read_entry(entry) for entry in entries]

    @abstractmethod
    def decompress(self, blob: bytes, raw_size: int) -> bytes:
        """Decompress a stored blob to exactly ``raw_size`` bytes, refusing anything larger."""

    @abstractmethod
    def decode_entries(self, blob: bytes, raw_size: int) -> tuple[dict[Any, Any], list[memoryview]]:
        """Decode a blob like :meth:`decode`, and also return each entry's encoding, in the dict's order: exactly
        what ``encode_entry`` returns for that key and value in this process, taken from the stored bytes where
        they are that (so a load derives entry digests without encoding anything again).

        Every decoded key and value is in the value model (``_values``: a stored item that names anything else is
        CorruptDataError, as is one that holds a key twice), so the map can write back whatever it read.
        """


_decoders: dict[str, Callable[[], Codec]] = {}


def register(name: str, factory: Callable[[], Codec]) -> None:
    """Make blobs written by codec ``name`` readable (a package registers the codecs it can decode)."""
    _decoders[name] = factory


#: Codecs made once in this process: what ``codec_for`` could make, it always can (``available`` skips the work).
_made: set[str] = set()


def codec_for(name: str, *, table: str = "", key: str = "") -> Codec:
    """The codec that decodes blobs written by ``name``, or UnsupportedFormatError saying what to install (and
    naming the map, given its ``table`` and ``key``)."""
    factory = _decoders.get(name)
    try:
        if factory is None:
            raise UnsupportedFormatError(
                _FOREIGN.get(name, "it was written by a newer version of aws-lambda-persistence; upgrade it")
            )
        codec = factory()  # (a codec this interpreter lacks raises UnsupportedFormatError with the fix)
    except UnsupportedFormatError as exc:
        if table or key:
            raise about_map(UnsupportedFormatError, table, key, f"was stored with codec {name!r}: {exc}") from None
        raise UnsupportedFormatError(f"cannot decode a map stored with codec {name!r}: {exc}") from None
    _made.add(name)
    return codec


def available(name: str, *, table: str, key: str) -> None:
    """UnsupportedFormatError naming the map unless this package can decode codec ``name`` (checked where a head
    is parsed, so that the error names the map whichever caller then asks ``codec_for``)."""
    if name not in _made:
        codec_for(name, table=table, key=key)
