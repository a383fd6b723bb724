"""What DynamoDB work costs: the one meter of calls, items, bytes and capacity units.

The library fills a :class:`Usage` per load and per write (``last_load``, ``last_commit``); the command line
shows the same figures. Capacity units are computed from item sizes by DynamoDB's published billing rules, so
they are right on every endpoint (moto and DynamoDB Local report placeholders for some calls);
``reported_units`` keeps what DynamoDB itself returned, where it did. :class:`CallMeter` sees the same calls from
the wire (botocore's event hooks on a client): every call's bytes, DynamoDB's own ConsumedCapacity, and the same
rules for what DynamoDB does not report right; the benchmarks measure with it, 1.0.0 included. Only
:class:`CallMeter` talks to botocore, and only through the client it is attached to.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ._limits import READ_UNIT_BYTES, WRITE_UNIT_BYTES

if TYPE_CHECKING:
    from collections.abc import Callable

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
    if kind in ("SS", "BS", "NS"):
        return sum(_value_size({kind[0]: v}) for v in inner) + 3
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _value_size(v) for name, v in inner.items())
    return 1  # BOOL, NULL


#: Operations whose items a CallMeter sizes as read.
_READS = ("GetItem", "BatchGetItem", "TransactGetItems")


class Call:
    """One DynamoDB call as a :class:`CallMeter` saw it. ``units``: capacity units as billed, DynamoDB's own
    ConsumedCapacity, or computed by the rules above where the meter has what it needs and the server misreports
    (reads without a report; TransactWriteItems with a ``sizer``); ``reported``: DynamoDB's figure alone."""

    __slots__ = (
        "ended", "error", "item_bytes", "items_read", "op", "read_units", "received", "reported", "request", "sent",
        "started", "units",
    )  # fmt: skip

    def __init__(self, op: str, started: float) -> None:
        self.op, self.started, self.ended = op, started, started
        self.sent = self.received = self.item_bytes = self.items_read = 0
        self.units = self.read_units = 0.0  # read_units: by the rules, whatever DynamoDB reported
        self.reported: float | None = None
        self.error: str | None = None
        self.request: dict[str, Any] | None = None  # the call's parameters (``requests=True``)


def _typed_size(item: Any) -> int:
    """item_size of an item in DynamoDB's typed form; 0 for anything else (a hook sees what the server sent)."""
    try:
        return item_size(item)
    except (AttributeError, TypeError, ValueError):
        return 0


class CallMeter:
    """Every DynamoDB call of the clients attached to it (``attach``, or ``attach_everywhere`` for every client
    any botocore session creates from then on): bytes sent (every attempt) and received, items and bytes read,
    DynamoDB's ConsumedCapacity (the meter asks for it), and units as billed. ``sizer``, an unmetered client,
    lets it bill a TransactWriteItems by the rules (each item at the larger of its size before and after, twice),
    reading every item the transaction touches before and after it; DynamoDB Local misreports those.
    ``sizes=False`` records operations, errors and times only, leaving requests as they are: the least CPU in
    the metered process (a contended benchmark's workers). ``consumed=False`` does not ask for ConsumedCapacity
    (a comparison with a caller that does not ask sends the caller's requests unchanged)."""

    def __init__(self, *, requests: bool = False, sizer: Any = None, sizes: bool = True, consumed: bool = True) -> None:
        self.calls: list[Call] = []
        self.requests = requests
        self.sizer = sizer
        self.sizes = sizes
        self.consumed = consumed
        #: Seconds the hooks spent sizing transactions (a caller timing calls subtracts them).
        self.excluded = 0.0
        self._key_names: dict[str, list[str]] = {}

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        if self.sizes:
            events.register("before-parameter-build.dynamodb", self._before_build)
        events.register("before-call.dynamodb", self._before_call)
        events.register("after-call.dynamodb", self._after_call)
        return client

    def attach_everywhere(self) -> Callable[[], None]:
        """Attach to every DynamoDB client created from now on, in any botocore session of this process (1.0.0
        makes a boto3 resource per write). Returns what stops that."""
        import botocore.session

        original = botocore.session.Session.create_client
        meter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            return meter.attach(client) if client.meta.service_model.service_name == "dynamodb" else client

        def stop() -> None:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]
        return stop

    def mark(self) -> int:
        """Where the calls from now on begin in ``calls``."""
        return len(self.calls)

    def counts(self, since: int = 0) -> Counter[str]:
        """Calls by operation, and failed calls by error code, from ``since`` on."""
        found = Counter(call.op for call in self.calls[since:])
        found.update(call.error for call in self.calls[since:] if call.error)
        return found

    def _before_build(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self.consumed and "ReturnConsumedCapacity" in model.input_shape.members:
            params["ReturnConsumedCapacity"] = "TOTAL"
        if self.requests or model.name in _READS:
            context["meter_request"] = params
        if model.name == "TransactWriteItems" and self.sizer is not None:
            began = time.perf_counter()
            context["meter_before"] = [self._sized(action) for action in params.get("TransactItems", [])]
            self.excluded += time.perf_counter() - began

    def _sized(self, action: dict[str, Any]) -> tuple[str, str, Item, int, int | None]:
        """(kind, table, key, size before, size after when the request says it) of one transaction action."""
        kind, body = next(iter(action.items()))
        table = body["TableName"]
        if kind == "Put":
            names = self._key_names.get(table)
            if names is None:
                schema = self.sizer.describe_table(TableName=table)["Table"]["KeySchema"]
                names = self._key_names[table] = [k["AttributeName"] for k in schema]
            key = {name: body["Item"][name] for name in names}
        else:
            key = body["Key"]
        return kind, table, key, self._size_of(table, key), item_size(body["Item"]) if kind == "Put" else None

    def _size_of(self, table: str, key: Item) -> int:
        found = self.sizer.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item_size(found) if found else 0

    def _before_call(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        call = context["meter_call"] = Call(model.name, time.perf_counter())
        body = params.get("body")
        call.sent = len(body) if isinstance(body, (bytes, str)) else 0

    def _after_call(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        call: Call = context.get("meter_call") or Call(model.name, time.perf_counter())
        call.ended = time.perf_counter()
        call.error = parsed.get("Error", {}).get("Code")
        if not self.sizes:
            self.calls.append(call)
            return
        call.sent *= 1 + int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        call.received = len(http_response.content or b"")
        request = context.get("meter_request") or {}
        call.request = request if self.requests else None
        consumed = parsed.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        if entries:  # (moto returns an empty list for some batch and transactional calls)
            call.reported = sum(float(e.get("CapacityUnits", 0)) for e in entries)
            call.units = call.reported
        if call.error is None:
            self._bill(call, model.name, parsed, request, context)
        self.calls.append(call)

    def _bill(self, call: Call, op: str, parsed: dict[str, Any], request: dict[str, Any], context: Any) -> None:
        """Items and bytes read, by the rules; a transaction's units by the rules when a sizer saw its items."""
        read: list[tuple[Item, float]] = []  # (item, read units per 4 KB)
        missed = 0.0  # read units of a GetItem that found nothing: DynamoDB bills it as a read of 1 unit
        if op == "GetItem" and parsed.get("Item"):
            read.append((parsed["Item"], 1.0 if request.get("ConsistentRead") else 0.5))
        elif op == "GetItem":
            missed = 1.0 if request.get("ConsistentRead") else 0.5
        elif op == "BatchGetItem":
            for table, found in parsed.get("Responses", {}).items():
                consistent = request.get("RequestItems", {}).get(table, {}).get("ConsistentRead")
                read += [(item, 1.0 if consistent else 0.5) for item in found]
        elif op == "TransactGetItems":
            read += [(r["Item"], 2.0) for r in parsed.get("Responses", []) if r.get("Item")]
        elif parsed.get("Attributes"):  # what a write returned
            call.item_bytes += _typed_size(parsed["Attributes"])
        sizes = [(_typed_size(item), factor) for item, factor in read]
        call.items_read = len(sizes)
        call.item_bytes += sum(size for size, _ in sizes)
        call.read_units = missed + sum(read_units(size) * factor for size, factor in sizes)
        if call.reported is None and op in _READS:
            call.units = call.read_units
        if op == "TransactWriteItems" and "meter_before" in context:
            began = time.perf_counter()
            units = 0.0
            for kind, table, key, before, put in context["meter_before"]:
                after = self._size_of(table, key) if kind == "Update" else put or 0
                units += write_units(max(before, after) if kind in ("Put", "Update") else before, True)
            call.units = units
            self.excluded += time.perf_counter() - began
