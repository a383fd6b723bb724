"""Format 3's fold (FORMAT.md, "Records" and "Reading"): partitions, then change records in sequence order.

A :class:`View` is what one container knows of a map: its values, each key's entry bytes (the change detector,
and what maintenance writes back without re-encoding: as stored, except for an entry holding a set, whose encoding
follows an iteration order that the decoded set need not share: ``Codec.read_entry``), each key's position in
insertion order, and the sequence number folded up to. Every container folds the same records in the same order,
so every container computes the same map. Nothing here does I/O; decoding goes through the codec the view is
given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import CorruptDataError
from ._records import ADD, CLEAR, DEL, SET, Entry, decode_record

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._codec import Codec

    #: The watermark that covers a key: ops at or below it are already in the key's partition.
    Floor = Callable[[Any], int]
    #: An op decoded: kind, key, value, entry bytes (key and value None for a CLEAR).
    Decoded = tuple[int, Any, Any, bytes]
    #: A partition's entry decoded: key, value, entry bytes, position in insertion order.
    Taken = tuple[Any, Any, bytes, tuple[int, int]]


class AddRefused:
    """The outcome of an ADD on a value that is not a number: nothing changed (the writer raises TypeError)."""

    __slots__ = ("held",)

    def __init__(self, held: Any) -> None:
        self.held = held


def is_number(value: Any) -> bool:
    return type(value) in (int, float)


class View:
    """One map as folded from stored segments and records."""

    __slots__ = ("encode", "positions", "raw", "read", "read_all", "seq", "values")

    def __init__(self, codec: Codec) -> None:
        self.read = codec.read_entry
        self.read_all = codec.read_entries
        self.encode = codec.encode_entry
        self.values: dict[Any, Any] = {}
        self.raw: dict[Any, bytes] = {}
        self.positions: dict[Any, tuple[int, int]] = {}
        #: Every record up to this sequence number is folded in.
        self.seq = 0

    def read_partition(self, entries: list[Entry], belongs: Callable[[Any], bool]) -> list[Taken]:
        """A partition's entries decoded and checked, the view unchanged: ``belongs`` says whether a key is one
        the partition may hold, and no key may appear twice."""
        taken: list[Taken] = []
        seen: dict[Any, None] = {}
        for (seq, index, _), (key, value, raw) in zip(entries, self.read_all([e.entry for e in entries]), strict=True):
            if not belongs(key) or key in seen:
                raise CorruptDataError(f"a partition holds key {key!r}, which belongs elsewhere or twice")
            seen[key] = None
            taken.append((key, value, raw, (seq, index)))
        return taken

    def take_partition(self, taken: list[Taken]) -> None:
        """Take a partition's entries as ``read_partition`` returned them (after ``drop`` of its keys)."""
        for key, value, raw, position in taken:
            self.values[key] = value
            self.raw[key] = raw
            self.positions[key] = position

    def drop(self, keys: Callable[[Any], bool]) -> None:
        """Forget the keys for which ``keys`` is true (before a fresher copy of their partition is taken)."""
        for key in [k for k in self.values if keys(k)]:
            self._remove(key)

    def order(self) -> None:
        """Put the keys in insertion order (by position). Needed last, once partitions were taken and their
        pending records folded: a key that a pending record adds may precede keys of a fresher partition."""
        ordered = sorted(self.values, key=self.positions.__getitem__)
        self.values = {k: self.values[k] for k in ordered}

    def apply(
        self, seq: int, record: bytes, floor: Floor | None = None, known: list[tuple[Any, Any]] | None = None
    ) -> list[Any]:
        """Fold one record at sequence number ``seq``; ops of keys whose ``floor`` is at or above ``seq`` are
        already in their partition and are skipped. ``known``: the (key, value) of each op, when the caller is the
        record's writer (it keeps the very objects it stored, and nothing is decoded). Returns per op what it
        left at its key (the new value of an ADD, an :class:`AddRefused` for an ADD on a non-number, else None)."""
        return self.fold(seq, self.read_record(record, known), floor)

    def read_record(self, record: bytes, known: list[tuple[Any, Any]] | None = None) -> list[Decoded]:
        """A record's ops decoded and checked, the view unchanged (an ADD's delta must be a number: the writer
        checked it, so anything else is damage)."""
        decoded: list[Decoded] = []
        for index, op in enumerate(decode_record(record)[1]):
            if op.kind == CLEAR:
                decoded.append((CLEAR, None, None, b""))
                continue
            key, value, raw = (*known[index], op.entry) if known is not None else self.read(op.entry)
            if op.kind == ADD and not is_number(value):
                raise CorruptDataError(f"an ADD on key {key!r} holds a {type(value).__name__}, not a number")
            decoded.append((op.kind, key, value, raw))
        return decoded

    def fold(self, seq: int, ops: list[Decoded], floor: Floor | None = None) -> list[Any]:
        """Fold a record's ops as ``read_record`` returned them (``apply`` without decoding; cannot fail)."""
        outcomes: list[Any] = []
        for index, (kind, key, value, raw) in enumerate(ops):
            outcomes.append(None)
            if kind == CLEAR:
                for k in [k for k in self.values if floor is None or floor(k) < seq]:
                    self._remove(k)
                continue
            if floor is not None and floor(key) >= seq:
                continue
            if kind == SET:
                self._set(key, value, raw, (seq, index))
            elif kind == DEL:
                self._remove(key)
            elif kind == ADD:
                current = self.values.get(key, 0)
                if not is_number(current):
                    outcomes[-1] = AddRefused(current)
                    continue
                total = current + value
                self._set(key, total, self.encode(key, total), (seq, index))
                outcomes[-1] = total
        self.seq = max(self.seq, seq)
        return outcomes

    def _set(self, key: Any, value: Any, entry: bytes, position: tuple[int, int]) -> None:
        if key not in self.values:
            self.positions[key] = position
        self.values[key] = value
        self.raw[key] = entry

    def _remove(self, key: Any) -> None:
        if key in self.values:
            del self.values[key], self.raw[key], self.positions[key]


__all__ = ["ADD", "CLEAR", "DEL", "SET", "AddRefused", "View"]
