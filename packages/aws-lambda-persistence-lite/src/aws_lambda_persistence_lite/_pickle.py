"""The lite codec: pickle protocol 5, compressed, read back only through an allow-listed unpickler.

Pickle is what 1.0.0 stored, and it is in every Python; but a pickle can name any callable, so a map
from a table that someone else can write to could run code. The unpickler here resolves only the
classes of the shared value model (``_values``) and refuses everything else with UnsafeDataError;
the pickler refuses, before anything is sent, any value the unpickler would later refuse.
"""

from __future__ import annotations

import datetime
import importlib
import io
import pickle
import zlib
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ._codec import Codec
from ._compression import (
    ZLIB_MAX_RATIO,
    ZSTD_MAX_RATIO,
    decompress_bounded,
    has_stdlib_zstd,
    stdlib_zstd_compress,
    stdlib_zstd_decompress,
    zlib_decompress,
)
from ._errors import CorruptDataError, UnsafeDataError, UnsupportedValueError, undecodable
from ._model import KINDS, ZONE_CLASSES
from ._pickle_bounds import ExpansionError, NestingError, check_expansion, scan, weigh
from ._values import (
    MAX_NESTING,
    check_decoded,
    find_unsupported,
    label,
    nesting,
    supported,
    too_deep,
    unsupported_error,
)

T = TypeVar("T")

PROTOCOL = 5


def _bytearray(*args: Any) -> bytearray:
    # bytearray(n) would allocate n bytes; a stored pickle may only rebuild one from its contents: bytes (protocol
    # 3+), or latin-1 text (protocols 0-2). Other codecs are refused: some decode in quadratic time (punycode).
    contents = (len(args) == 1 and type(args[0]) is bytes) or (
        len(args) == 2 and type(args[0]) is str and args[1] == "latin-1"
    )
    if args and not contents:
        raise UnsafeDataError("stored pickle calls bytearray() with something other than its contents")
    return bytearray(*args)


def _bytes(*args: Any) -> bytes:
    # Protocol 2 saves b"" as bytes(); bytes(n) would allocate n bytes, so only contents are accepted.
    if len(args) > 1 or (args and type(args[0]) is not bytes):
        raise UnsafeDataError("stored pickle calls bytes() with something other than its contents")
    return bytes(*args)


def _latin1(text: str, encoding: str = "") -> bytes:
    # Protocols 0-2 store bytes as _codecs.encode(text, 'latin1'); other codecs (zlib_codec...) are refused.
    if type(text) is not str or encoding != "latin1":
        raise UnsafeDataError("stored pickle calls _codecs.encode() with something other than latin1 text")
    return text.encode("latin1")


def _zoneinfo(key: str) -> datetime.tzinfo:
    import zoneinfo  # only maps that hold zone-aware datetimes pay for this import

    return zoneinfo.ZoneInfo(key)


class _AllowedFunction:
    """An allow-listed function as the unpickler hands it out: callable, but no BUILD can change it. (BUILD on a
    plain function would set its attributes, ``__defaults__`` included, for the whole process; the classes on
    the list are immutable types, or UUID, whose ``__setstate__`` needs an instance.)"""

    __slots__ = ("_function",)
    _function: Callable[..., Any]

    def __init__(self, function: Callable[..., Any]) -> None:
        object.__setattr__(self, "_function", function)

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)

    def __setstate__(self, state: Any) -> None:
        raise UnsafeDataError("stored pickle tries to change an allow-listed function (BUILD): refused")

    def __setattr__(self, name: str, value: Any) -> None:
        raise UnsafeDataError("stored pickle tries to change an allow-listed function: refused")


#: (module, name) -> what the unpickler may resolve it to; None: that very class, imported when first needed. The
#: classes of the value model that pickles name to rebuild a value (``_model``'s ``named`` rows) and the time-zone
#: classes; bytes and bytearray (protocols 0-2 rebuild them by a call) only from their contents; _codecs.encode
#: (how protocols 0-2 store bytes) only for latin-1. Nothing else is ever imported or called.
_ALLOWED: dict[tuple[str, str], Callable[..., Any] | None] = {
    **{(kind.type.__module__, kind.type.__qualname__): None for kind in KINDS if kind.named},
    **dict.fromkeys(ZONE_CLASSES),
    ("builtins", "bytes"): _AllowedFunction(_bytes),
    ("builtins", "bytearray"): _AllowedFunction(_bytearray),
    ("_codecs", "encode"): _AllowedFunction(_latin1),
    ("zoneinfo", "ZoneInfo"): _AllowedFunction(_zoneinfo),
}


def _resolve(module: str, name: str) -> Any:
    if module == "__builtin__":  # protocol 0-2 pickles name Python 2's module
        module = "builtins"
    try:
        target = _ALLOWED[(module, name)]
    except KeyError:
        raise UnsafeDataError(
            f"refused to load {module}.{name} from a stored pickle: only plain data types are allowed, "
            "and a pickle naming anything else could run code"
        ) from None
    return getattr(importlib.import_module(module), name) if target is None else target


class _Refused(Exception):
    pass


def _reduce(obj: Any) -> tuple[Any, type]:
    """The pickler's gate for an instance: (how to reduce it, the class its reduction names). Plain data pickles
    normally, ZoneInfo by key, anything else is refused."""
    kind = type(obj)
    if kind.__module__ == "zoneinfo" and kind.__name__ == "ZoneInfo":
        import zoneinfo  # the stdlib reduces ZoneInfo through getattr(), which the unpickler must never allow

        return (zoneinfo.ZoneInfo, (obj.key,)), zoneinfo.ZoneInfo
    if supported(kind) or kind is datetime.timezone:
        return NotImplemented, kind
    raise _Refused(kind)


class _Pickler(pickle.Pickler):
    #: The class that the instance just reduced names as its constructor: pickle saves it next. It is the only class
    #: let through; a class stored as a value would come back as a callable.
    constructor: type | None = None
    #: Whether a tzinfo was pickled: one may only be a datetime's or time's (checked after pickling: the pickler
    #: does not say where an object sits, and a second reference to one is never shown here).
    zoned = False

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            if obj is not self.constructor:
                raise _Refused(obj)
            self.constructor = None
            return NotImplemented
        reduction, self.constructor = _reduce(obj)
        self.zoned = self.zoned or (self.constructor.__module__, self.constructor.__name__) in ZONE_CLASSES
        return reduction


class _Unpickler(pickle.Unpickler):
    #: Whether the pickle named any class (only what it builds that way can lie outside the value model: the class
    #: itself, a tzinfo on its own, a UUID whose ``int`` BUILD set to anything), and whether it built a set that
    #: way (a set's encoding follows its iteration order: see Codec.read_entry).
    resolved = made_sets = False

    def find_class(self, module: str, name: str) -> Any:
        target = _resolve(module, name)
        self.resolved = True
        self.made_sets = self.made_sets or target in (set, frozenset)
        return target


def loads_restricted(data: bytes) -> Any:
    """Unpickle one object through the allow-list and the bounds of ``_pickle_bounds`` (used for 1.0.0 items, and
    for single entries)."""
    pickles = _bounded(scan, data)
    shares = bool(pickles) and pickles[0][2]
    if shares:
        _bounded(weigh, data[: pickles[0][1]])
    unpickler = _Unpickler(io.BytesIO(data))
    value = unpickler.load()
    if shares:
        _bounded(check_expansion, value, len(data))
    if unpickler.resolved:  # a 1.0.0 map, or one (key, value) pair: what they hold must be in the value model
        pairs = value.items() if type(value) is dict else [value] if type(value) is tuple and len(value) == 2 else []
        for key, item in pairs:
            check_decoded(key, item)
    return value


def _bounded(check: Callable[..., T], *args: Any) -> T:
    """Run a check of ``_pickle_bounds`` on stored data: what it refuses is CorruptDataError."""
    try:
        return check(*args)
    except (ExpansionError, NestingError) as exc:
        raise CorruptDataError(f"stored pickle refused: {exc}") from None


class PickleCodec(Codec):
    """pickle protocol 5 entries, compressed with zlib (or zstd where the interpreter has compression.zstd)."""

    name: ClassVar[str] = "pickle5+zlib"
    entry_format: ClassVar[str] = "pickle5"
    max_ratio: ClassVar[int] = ZLIB_MAX_RATIO

    def encode_entry(self, key: Any, value: Any) -> bytes:
        buffer = io.BytesIO()
        pickler = _Pickler(buffer, PROTOCOL)
        try:
            pickler.dump((key, value))
        except Exception as exc:  # _Refused, PicklingError, TypeError, RecursionError...: the value cannot be stored
            raise unsupported_error(key, value, exc) from None
        entry = buffer.getvalue()
        if pickler.zoned and (find_unsupported(value, "") or find_unsupported(key, "")):
            raise unsupported_error(key, value)  # a tzinfo on its own: outside the value model, readers refuse it
        # What the reader would refuse must not be written. Shared containers (memo GETs, opcodes h and j) are
        # rare, and tuples nested deeper than MAX_NESTING need as many bytes: these tests keep the scan off the
        # common path.
        if len(entry) > MAX_NESTING or b"h" in entry or b"j" in entry:
            try:
                if scan(entry)[0][2]:
                    weigh(entry)
                    check_expansion((key, value), len(entry))
            except NestingError:
                raise too_deep(key, value, MAX_NESTING, frozenset({tuple})) from None
            except ExpansionError as exc:
                if nesting(value, "")[1] is None:  # a cycle: say so, as the full package does
                    raise unsupported_error(key, value) from None
                raise UnsupportedValueError(
                    f"cannot store the value at [{key!r}]: {exc}; store copies instead of repeated references",
                    path=f"[{key!r}]",
                ) from None
        return entry

    def join(self, entries: list[bytes]) -> bytes:
        return b"".join(entries)

    def compress(self, body: bytes) -> bytes:
        return zlib.compress(body, 6)

    def _decompress(self, blob: bytes, limit: int) -> bytes:
        return zlib_decompress(blob, limit)

    def read(self, entry: bytes) -> tuple[Any, Any, bool]:
        """(key, value, whether it holds a set) of one stored entry: one pickle, through every bound."""
        with undecodable("pickle"):
            pickles = _bounded(scan, entry)
            if len(pickles) != 1:
                raise CorruptDataError(f"a stored entry holds {len(pickles)} pickles, not one")
            _, _, shares, sets = pickles[0]
            if shares:
                _bounded(weigh, entry)
            unpickler = _Unpickler(io.BytesIO(entry))
            pair = unpickler.load()
            if type(pair) is not tuple or len(pair) != 2:
                raise CorruptDataError("stored pickle entry is not a (key, value) pair")
            if shares:
                _bounded(check_expansion, pair, len(entry))
            if unpickler.resolved:
                check_decoded(*pair)
        return pair[0], pair[1], sets or unpickler.made_sets

    def decompress(self, blob: bytes, raw_size: int) -> bytes:
        return decompress_bounded(self._decompress, blob, raw_size, self.max_ratio)

    def decode(self, blob: bytes, raw_size: int) -> dict[Any, Any]:
        return self._decode(blob, raw_size, entries=False)[0]

    def decode_entries(self, blob: bytes, raw_size: int) -> tuple[dict[Any, Any], list[memoryview]]:
        """Each entry's bytes are its pickle as stored (scan() delimits them), except for an entry holding a set:
        that one is pickled again, since a set's pickle follows its iteration order, which the set the unpickler
        builds need not share (nor a set in another process: str hashes are seeded per process)."""
        return self._decode(blob, raw_size, entries=True)

    def _decode(self, blob: bytes, raw_size: int, *, entries: bool) -> tuple[dict[Any, Any], list[memoryview]]:
        body = decompress_bounded(self._decompress, blob, raw_size, self.max_ratio)
        view = memoryview(body)
        stream = io.BytesIO(body)
        result: dict[Any, Any] = {}
        stored: list[memoryview] = []
        with undecodable("pickle"):
            pickles = _bounded(scan, body)
            for start, end, shares, _ in pickles:
                if shares:
                    _bounded(weigh, body[start:end])
            for start, end, shares, sets in pickles:
                unpickler = _Unpickler(stream)  # one unpickler per entry: each pickle numbers its memo from 0
                entry = unpickler.load()
                if type(entry) is not tuple or len(entry) != 2:
                    raise CorruptDataError("stored pickle entry is not a (key, value) pair")
                if stream.tell() != end:
                    raise CorruptDataError(f"stored pickle entry at byte {start} does not end where its STOP is")
                if shares:
                    _bounded(check_expansion, entry, end - start)
                key, value = entry
                if unpickler.resolved:
                    check_decoded(key, value)
                count = len(result)
                result[key] = value
                if len(result) == count:
                    raise CorruptDataError(f"stored map holds the key {label(key)} twice")
                if entries:
                    again = sets or unpickler.made_sets
                    stored.append(memoryview(self.again(key, value)) if again else view[start:end])
        return result, stored


class StdlibZstdPickleCodec(PickleCodec):
    """Python 3.14+: the same entries compressed with the standard library's zstd."""

    name: ClassVar[str] = "pickle5+zstd"
    max_ratio: ClassVar[int] = ZSTD_MAX_RATIO

    @classmethod
    def usable(cls) -> bool:
        return has_stdlib_zstd()

    def compress(self, body: bytes) -> bytes:
        return stdlib_zstd_compress(body)

    def _decompress(self, blob: bytes, limit: int) -> bytes:
        return stdlib_zstd_decompress(blob, limit)
