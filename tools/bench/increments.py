"""Throughput of ``increment()`` on one map from 1, 2 and 4 concurrent processes, and what contention costs.

Why: ``increment()`` is the library's atomic read-modify-write across Lambda containers. Each is a blind append
to the map's log (stored format 3: no version condition), so concurrent increments do not conflict; an append
that finds the log full, or the head changed by another container's flush, catches up on the head returned with
the failed write and appends again. This measures how throughput and latency hold up as writers are added, and
checks that no increment is lost. (writes.py compares 8 processes with plain ``UpdateItem ADD``.)

Each process (multiprocessing ``spawn``, so a fresh interpreter like a Lambda container) opens its own map
object on the same ``table_key``, waits at a barrier, then calls ``increment("counter")`` N times. A botocore
``after-call`` hook in each process counts write calls, ConditionalCheckFailed responses (each one is a
conflict the library retried) and GetItem re-reads. Finally a new map object reads the counter, which must equal
processes x N. Servers: moto's (in a thread of this process) and, where installed, DynamoDB Local.

    python tools/bench/increments.py [--no-local] [--count 50] [--processes 1,2,4]
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from common import PACKAGES, CallMeter, log, median, ms, servers, table, use_endpoint

BARRIER_TIMEOUT = 120.0
#: The calls that commit (an increment's attempts): appends, flushes, first writes.
WRITES = ("PutItem", "UpdateItem", "TransactWriteItems")


def worker(module: str, endpoint: str, table_key: str, count: int, barrier: Any, results: Any) -> None:
    """One simulated container: ``count`` increments of the shared counter, timed after the barrier."""
    use_endpoint(endpoint)
    pkg = importlib.import_module(module)
    from aws_lambda_persistence_lite._client import default_client

    meter = CallMeter(sizes=False)  # operations and error codes: the least CPU in a contended process
    meter.attach(default_client())
    data = pkg.PersistentMap.open(table_key=table_key)
    since = meter.mark()  # only the increments count, not the initial load
    gave_up = 0
    latencies, attempts = [], []
    barrier.wait(BARRIER_TIMEOUT)
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable across the processes of one machine
    for _ in range(count):
        began, first = time.perf_counter(), meter.mark()
        while True:
            try:
                data.increment("counter")
                break
            except pkg.ConflictError:  # every attempt lost: nothing was written, so trying again is safe
                gave_up += 1
        latencies.append(time.perf_counter() - began)
        attempts.append(sum(1 for call in meter.calls[first:] if call.op in WRITES))
    results.put(
        {
            "start": start,
            "end": time.monotonic(),
            "latencies": latencies,
            "attempts": attempts,
            "calls": dict(meter.counts(since)),
            "gave_up": gave_up,
        }
    )


@dataclass
class Run:
    backend: str
    package: str
    processes: int
    count: int
    max_attempts: int  # the library's setting: commit attempts before ConflictError
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)  # write calls per increment
    calls: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    final: int = 0

    @property
    def total(self) -> int:
        return self.processes * self.count


def run(backend: str, label: str, endpoint: str, processes: int, count: int) -> Run:
    module = PACKAGES[label]
    table_key = f"bench-increments-{label}-{processes}-{time.time_ns()}"
    pm = importlib.import_module(module).PersistentMap
    seed = pm.open({"counter": 0}, table_key=table_key)  # also creates the table, outside the timing
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=worker, args=(module, endpoint, table_key, count, barrier, results))
        for _ in range(processes)
    ]
    for p in workers:
        p.start()
    reports = [results.get(timeout=BARRIER_TIMEOUT + 300) for _ in workers]
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0, f"a worker exited with code {p.exitcode}"
    result = Run(backend, label, processes, count, seed.settings.max_attempts)
    result.wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    for r in reports:
        result.latencies += r["latencies"]
        result.attempts += r["attempts"]
        result.calls.update(r["calls"])
        result.gave_up += r["gave_up"]
    result.final = pm.open(table_key=table_key)["counter"]
    assert result.final == result.total, f"{table_key}: counter is {result.final}, expected {result.total}"
    return result


def report(runs: list[Run]) -> None:
    count = runs[0].count
    print(f"### `increment()` throughput: processes x {count} increments of one counter in one map\n")
    print(
        "Wall time runs from the barrier to the last process's end. *conflicts* = ConditionalCheckFailed "
        "responses (each one a commit the library redid); *re-reads* = GetItem calls made while incrementing "
        "(0 when the server returns the winner's item with the failed write); *ConflictError* = increments "
        "whose every attempt lost (retried by the benchmark); *max attempts* = most write calls one increment "
        f"needed (the library's `max_attempts` setting was {runs[0].max_attempts}). Final counter = processes x "
        "increments, asserted.\n"
    )
    rows = []
    for r in runs:
        conflicts = r.calls["ConditionalCheckFailedException"]
        rows.append(
            [
                r.backend,
                r.package,
                r.processes,
                r.total,
                ms(r.wall),
                f"{r.total / r.wall:.0f}",
                ms(median(r.latencies)),
                ms(statistics.quantiles(r.latencies, n=20)[-1]),
                ms(max(r.latencies)),
                sum(r.calls[name] for name in WRITES),
                f"{conflicts} ({conflicts / r.total:.2f}/incr)",
                max(r.attempts),
                r.calls["GetItem"],
                r.gave_up,
                r.final,
            ]
        )
    print(
        table(
            [
                "backend",
                "package",
                "processes",
                "increments",
                "wall time",
                "increments/s",
                "median latency",
                "p95 latency",
                "max latency",
                "write calls",
                "conflicts",
                "max attempts per increment",
                "re-reads",
                "ConflictError",
                "final counter",
            ],
            rows,
            left=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-local", action="store_true", help="skip DynamoDB Local even if it is installed")
    parser.add_argument("--count", type=int, default=50, help="increments per process (default: 50)")
    parser.add_argument("--processes", default="1,2,4", help="concurrent processes, comma-separated")
    args = parser.parse_args()

    runs = []
    with servers(local=not args.no_local) as found:
        for backend, endpoint in found:
            use_endpoint(endpoint)
            for label in PACKAGES:
                for processes in (int(n) for n in args.processes.split(",")):
                    log(f"increments: {backend}, {label}, {processes} process(es) x {args.count}")
                    runs.append(run(backend, label, endpoint, processes, args.count))
    report(runs)


if __name__ == "__main__":
    main()
