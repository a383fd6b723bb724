"""The codec contract: how a map becomes bytes and back, and the registry of known codecs.

A map is encoded entry by entry (one key and its value), so that the map can tell exactly which
top-level keys changed by comparing per-entry digests, and re-apply only its own changes after a
concurrent write. A codec must never decode without a size bound: every ``decode`` gets the
decoded size the head item declared, capped by ``MAX_DECODED_BYTES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from ._errors import UnsupportedFormatError

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

    @abstractmethod
    def encode_entry(self, key: Any, value: Any) -> bytes:
        """Encode one entry; raises UnsupportedValueError naming the key path of a bad value."""

    @abstractmethod
    def join(self, entries: list[bytes]) -> bytes:
        """Concatenate encoded entries into the map's body (uncompressed)."""

    @abstractmethod
    def compress(self, body: bytes) -> bytes:
        """Compress a body into the blob that is stored."""

    @abstractmethod
    def decode(self, blob: bytes, raw_size: int) -> dict[Any, Any]:
        """Decompress (to at most ``raw_size`` bytes) and decode a blob back into a dict."""


_decoders: dict[str, Callable[[], Codec]] = {}


def register(name: str, factory: Callable[[], Codec]) -> None:
    """Make blobs written by codec ``name`` readable (a package registers the codecs it can decode)."""
    _decoders[name] = factory


def codec_for(name: str) -> Codec:
    """The codec that decodes blobs written by ``name``, or UnsupportedFormatError saying what to install."""
    factory = _decoders.get(name)
    if factory is None:
        hint = _FOREIGN.get(name, "it was written by a newer version of aws-lambda-persistence; upgrade it")
        raise UnsupportedFormatError(f"cannot decode a map stored with codec {name!r}: {hint}")
    return factory()
