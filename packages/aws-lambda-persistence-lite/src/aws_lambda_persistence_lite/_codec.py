"""The codec contract: how a map becomes bytes and back, and where each codec, known by name, is found.

A map is encoded entry by entry (one key and its value), so that the map can tell exactly which
top-level keys changed by comparing per-entry digests, and re-apply only its own changes after a
concurrent write. A codec's decoder hands back each entry's stored bytes along with the dict, so those
digests cost a load no encoding. A codec must never decode without a size bound: every ``decode`` gets the
decoded size the head item declared, capped by ``MAX_DECODED_BYTES``.
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ._compression import has_stdlib_zstd
from ._errors import CorruptDataError, UnsupportedFormatError, UnsupportedValueError, about_map


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

    @classmethod
    def usable(cls) -> bool:
        """Whether this interpreter has what the codec needs (a codec found by name may depend on the Python)."""
        return True

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
    def read(self, entry: bytes) -> tuple[Any, Any, bool]:
        """One stored entry (what ``encode_entry`` wrote) back to its key and value, and whether it holds a set,
        through the same bounds and allow-lists as every read: CorruptDataError (or UnsafeDataError) for anything
        else."""

    def decode_entry(self, entry: bytes) -> tuple[Any, Any]:
        """One stored entry back to its key and value (see :meth:`read`)."""
        key, value, _ = self.read(entry)
        return key, value

    def read_entry(self, entry: bytes) -> tuple[Any, Any, bytes]:
        """:meth:`decode_entry`, and what ``encode_entry`` returns for that key and value in this process: the stored
        entry itself, except for one holding a set or frozenset, which is encoded again. A set's encoding follows
        its iteration order, which the set decoded need not share (str hashes are seeded per process, and the
        order depends on how the set was built): only these bytes tell an unchanged value from a changed one."""
        key, value, sets = self.read(entry)
        return key, value, self.again(key, value) if sets else entry

    def again(self, key: Any, value: Any) -> bytes:
        """A decoded entry encoded again (see :meth:`read_entry`); what cannot be (nested past what this Python's
        encoder follows) is damaged data, here, not a bad value of the caller's."""
        try:
            return self.encode_entry(key, value)
        except UnsupportedValueError as exc:
            raise CorruptDataError(f"stored entry cannot be written back: {exc}") from None

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


#: Every codec by name: where its class lives, and what to do where it cannot be imported. Looked up only when a
#: map stored with it is met or asked for (``open(codec=...)``), so what a process can read depends on what is
#: installed, never on which package was imported first. (The lite package imports the full one only here, from a
#: function: at import time the full package imports the lite one, never the reverse.)
_WHERE: dict[str, tuple[tuple[str, str], ...]] = {
    "pickle5+zlib": (("aws_lambda_persistence_lite._pickle", "PickleCodec"),),
    "pickle5+zstd": (
        ("aws_lambda_persistence_lite._pickle", "StdlibZstdPickleCodec"),  # Python 3.14+: the standard library's zstd
        ("aws_lambda_persistence._zstd_pickle", "ZstdPickleCodec"),  # any Python, with the full package's zstandard
    ),
    "msgpack+zstd": (("aws_lambda_persistence._msgpack", "MsgpackZstdCodec"),),
}
_FIX: dict[str, str] = {
    "pickle5+zstd": "it needs Python 3.14+ or the full package; install it: pip install aws-lambda-persistence",
    "msgpack+zstd": "this map was written by the full package; install it: pip install aws-lambda-persistence",
}
#: The names ``PersistentMap.open(codec=...)`` accepts.
CODECS = tuple(_WHERE)


@functools.cache
def _class_for(name: str) -> type[Codec]:
    """The class of codec ``name`` in this process (UnsupportedFormatError with the fix when none can be had)."""
    broken: ImportError | None = None
    for module, attribute in _WHERE.get(name, ()):
        try:
            found: type[Codec] = getattr(importlib.import_module(module), attribute)
        except ImportError as exc:  # (the full package, or msgpack or zstandard, is not installed)
            if exc.name and not f"{module}.".startswith(f"{exc.name}."):  # its package is there, not what it imports
                broken = exc
            continue
        if found.usable():
            return found
    fix = _FIX.get(name, "it was written by a newer version of aws-lambda-persistence; upgrade it")
    if broken is not None:  # installed, yet it does not import: "install it" would send the user round in circles
        reason = f"{type(broken).__name__}: {broken}"
        fix = f"{fix.partition(';')[0]}, and the full package is installed but does not import ({reason}); reinstall it"
    raise UnsupportedFormatError(fix)


def codec_for(name: str, *, table: str = "", key: str = "") -> Codec:
    """A codec that reads and writes maps stored with codec ``name``, or UnsupportedFormatError saying what to
    install (and naming the map, given its ``table`` and ``key``)."""
    return _class(name, table, key)()


def available(name: str, *, table: str, key: str) -> None:
    """UnsupportedFormatError naming the map unless this process can decode codec ``name`` (checked where a head
    is parsed, so that the error names the map whichever caller then asks ``codec_for``)."""
    _class(name, table, key)


def _class(name: str, table: str, key: str) -> type[Codec]:
    try:
        return _class_for(name)
    except UnsupportedFormatError as exc:
        if table or key:
            raise about_map(UnsupportedFormatError, table, key, f"was stored with codec {name!r}: {exc}") from None
        raise UnsupportedFormatError(f"cannot read or write codec {name!r}: {exc}") from None


def lite_default() -> str:
    """The codec the lite package writes new maps with: pickle5+zstd where the standard library has zstd (Python
    3.14+), else pickle5+zlib."""
    return "pickle5+zstd" if has_stdlib_zstd() else "pickle5+zlib"
