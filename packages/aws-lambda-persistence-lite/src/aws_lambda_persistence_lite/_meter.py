"""What DynamoDB work costs: the one meter of calls, items, bytes and capacity units.

The library fills a :class:`Usage` per load and per write (``last_load``, ``last_commit``); the command line
shows the same figures. Capacity units are computed from item sizes by DynamoDB's published billing rules, so
they are right on every endpoint (moto and DynamoDB Local report placeholders for some calls);
``reported_units`` keeps what DynamoDB itself returned, where it did. Nothing here does I/O.
"""

from __future__ import annotations

import math

from ._limits import READ_UNIT_BYTES, WRITE_UNIT_BYTES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any

    #: An item as the low-level client sees it: attribute name -> {type: value}.
    Item = dict[str, dict[str, Any]]


class Usage:
    """What one load or one write cost: DynamoDB calls, items and bytes moved, capacity units.

    ``capacity_units`` follows DynamoDB's rules (1 write unit per KB, double in a transaction; a delete or an
    overwrite costs the larger item; 1 read unit per 4 KB, strongly consistent). Deleting an old shard is counted
    at full shard size, an upper bound. ``reported_units`` is what DynamoDB itself returned
    (ReturnConsumedCapacity), where it did. A write's figures include every attempt it made.
    """

    __slots__ = ("bytes", "calls", "capacity_units", "items", "reported_units")

    def __init__(self) -> None:
        self.calls = 0
        self.items = 0
        self.bytes = 0
        self.capacity_units = 0.0
        self.reported_units: float | None = None

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("calls", "items", "bytes", "capacity_units", "reported_units")
        )
        return f"Usage({fields})"

    def read(self, size: int) -> None:
        """One item of ``size`` bytes read strongly consistently."""
        self.items += 1
        self.bytes += size
        self.capacity_units += read_units(size)

    def reported(self, response: dict[str, Any]) -> None:
        """Add the ConsumedCapacity a response carries (one entry, or one per table)."""
        consumed = response.get("ConsumedCapacity")
        for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            if "CapacityUnits" in entry:
                self.reported_units = (self.reported_units or 0.0) + float(entry["CapacityUnits"])

    def snapshot(self) -> tuple[int, int, float]:
        """(items, bytes, units), to undo an attempt that wrote nothing (see ``restore``)."""
        return self.items, self.bytes, self.capacity_units

    def restore(self, snapshot: tuple[int, int, float]) -> None:
        self.items, self.bytes, self.capacity_units = snapshot


def write_units(size: int, transactional: bool) -> float:
    """Write capacity units for writing (or deleting) an item of ``size`` bytes."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES)) * (2 if transactional else 1)


def read_units(size: int) -> float:
    """Read capacity units for a strongly consistent read of ``size`` bytes."""
    return max(1, math.ceil(size / READ_UNIT_BYTES))


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
