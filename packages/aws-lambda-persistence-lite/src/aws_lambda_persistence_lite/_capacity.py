"""The capacity warning: once per container and table, when this container writes to a provisioned table faster
than the table's provisioned write capacity.

A provisioned table absorbs bursts from its burst capacity (up to 300 seconds of unused capacity) and then
throttles: writes slow down as botocore retries them, and a function's duration grows. That is worth one warning
with the measured rate; an on-demand table (or one whose mode cannot be read) gets none. The rate is this
container's write units over the last second, by DynamoDB's billing rules (``Usage``). The table's mode and
capacity are known when this container created the table; otherwise they are read once per container
(DescribeTable, in the policy for table creation), and only once the rate passes DESCRIBE_ABOVE.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import Settings
    from ._dynamodb import Table
    from ._meter import Usage

#: Seconds of writes the rate is measured over.
WINDOW = 1.0
#: Write units per second above which an existing table's capacity is read: what this library provisions a table
#: it creates with (a first write alone can cost that much; most maps never write so fast).
DESCRIBE_ABOVE = 5.0
_lock = threading.Lock()
_recent: dict[str, collections.deque[tuple[float, float]]] = {}
#: Provisioned write capacity by table (None: on demand, or unknown), read once per container.
_provisioned: dict[str, int | None] = {}
_warned: set[str] = set()


def watch_capacity(table: Table, usage: Usage) -> None:
    """Note a commit's write units; warn (once per table) when the last second's exceed the table's capacity."""
    now = time.monotonic()
    with _lock:
        window = _recent.setdefault(table.name, collections.deque())
        window.append((now, usage.capacity_units))
        while window[0][0] < now - WINDOW:
            window.popleft()
        rate = sum(units for _, units in window)
        if table.name in _warned or (table.name not in _provisioned and rate <= DESCRIBE_ABOVE):
            return
        known = table.name in _provisioned
    if not known:  # (the call outside the lock: other threads' commits do not wait for it)
        capacity = _write_capacity(table)
        with _lock:
            _provisioned.setdefault(table.name, capacity)
    with _lock:
        capacity = _provisioned[table.name]
        if capacity is None or rate <= capacity or table.name in _warned:
            return
        _warned.add(table.name)
    table.log.warning(
        "table %r: this container wrote %.0f write units in the last second, more than the %d the table is "
        "provisioned with: once its burst capacity is spent, DynamoDB throttles these writes (botocore retries "
        "them, slower). Give the table more write capacity, or on-demand billing (billing_mode=PAY_PER_REQUEST "
        "for a table the library creates).",
        table.name,
        rate,
        capacity,
    )


def _write_capacity(table: Table) -> int | None:
    """The table's provisioned write capacity; None for an on-demand table, or when it cannot be read."""
    try:
        description = table.client.describe_table(TableName=table.name)["Table"]
    except Exception as exc:  # (a policy without DescribeTable, a network error: no warning, nothing else)
        table.log.debug("table %r: its capacity mode is unknown (%r): no capacity warning", table.name, exc)
        return None
    if description.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST":
        return None
    units = description.get("ProvisionedThroughput", {}).get("WriteCapacityUnits")
    return units if isinstance(units, int) and units > 0 else None


def created(settings: Settings) -> None:
    """This container created the map's table: its capacity is the settings' (no DescribeTable needed)."""
    with _lock:
        provisioned = settings.billing_mode == "PROVISIONED"
        _provisioned[settings.table_name] = settings.write_capacity if provisioned else None
