"""Run hostile decoding and encoding in a child interpreter, under time and memory limits, so that a crash
(SIGSEGV from an overflowed C stack), a hang or a runaway allocation fails one test instead of killing the run.

``outcomes(cases)`` sends picklable cases to one child, which runs :func:`run_case` on each and prints one line per
case: the name of the exception raised and its message, or ``returned <type>``, the CPU it took and how far the
child's peak memory had grown. Every case that reads stored bytes is held to the bound FORMAT.md promises
("Reading stored bytes is bounded"): READ_CPU_SECONDS of CPU and READ_MEMORY_MB above what the child held before.
"""

from __future__ import annotations

import copy
import ctypes
import datetime as dt
import gc
import importlib
import os
import pickle
import resource
import subprocess
import sys
import time
from typing import Any

import pytest

#: FORMAT.md's bound for reading one stored item of up to 400 KB (beyond what the decoded map itself needs).
READ_CPU_SECONDS = 2.0
READ_MEMORY_MB = 256
READING = frozenset({"decode", "load", "items"})
#: One case for :func:`run_case`, its action first.
Case = tuple[Any, ...]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


Items = dict[str, dict[str, Any]]


class Unbounded(Exception):
    """A reader asked for far more items than any honest map has: a stored claim talked it into unbounded work."""


class FakeTable:
    """A DynamoDB client that serves fixed items to GetItem and BatchGetItem (no I/O, so fuzzing is fast).

    ``heads``: heads served in turn to successive GetItems (the last one from then on), standing for a map that
    a structural commit changes between two reads. Counts head reads; raises Unbounded past KEY_BOUND keys."""

    KEY_BOUND = 2_000

    def __init__(self, items: Items, heads: list[dict[str, Any]] | None = None) -> None:
        self.items = items
        self.heads = heads or []
        self.head_reads = 0
        self.keys_asked = 0

    def get_item(self, *, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.head_reads += 1
        if Key["key"]["S"] == "m" and self.heads:
            return {"Item": copy.deepcopy(self.heads[min(self.head_reads, len(self.heads)) - 1])}
        item = self.items.get(Key["key"]["S"])
        return {"Item": copy.deepcopy(item)} if item is not None else {}

    def batch_get_item(self, *, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        self.keys_asked += len(request["Keys"])
        if self.keys_asked > self.KEY_BOUND:
            raise Unbounded(f"the reader asked for {self.keys_asked} items")
        found = [copy.deepcopy(self.items[k["key"]["S"]]) for k in request["Keys"] if k["key"]["S"] in self.items]
        return {"Responses": {table: found}}


def _package(name: str) -> Any:
    return importlib.import_module(name)


def _codec(name: str) -> Any:
    if name == "pickle":
        from aws_lambda_persistence_lite._pickle import PickleCodec

        return PickleCodec()
    from aws_lambda_persistence._msgpack import MsgpackZstdCodec

    return MsgpackZstdCodec()


def nested(kinds: str, depth: int, leaf: Any = 1) -> Any:
    """A value nested ``depth`` levels deep, built iteratively from the inside out: ``kinds`` cycles through
    l (list), t (tuple), d (dict) and s (a frozenset; a tuple where what it holds is not hashable)."""
    value, hashable = leaf, True
    for level in range(depth):
        kind = kinds[level % len(kinds)]
        if kind == "s" and hashable:
            value = frozenset([value])
        elif kind in "st":
            value = (value,)
        else:
            value, hashable = [value] if kind == "l" else {0: value}, False
    return value


def run_case(case: Case) -> Any:
    """What a child runs. ("decode", codec, body): compress ``body`` and decode it; ("load", body): the 1.0.0
    reader; ("items", package, items): a cold load of map 'm' of ``package`` from stored ``items``; ("encode",
    codec, key spec, value spec): encode an entry; ("round-trip", codec, key spec, value spec): encode, decode, and
    say whether the decoded entry encodes the same ("same"). A spec is a value, or ("nested", kinds, depth[, leaf]),
    built in the child (a deep value cannot be pickled over)."""
    action, *rest = case

    def build(spec: Any) -> Any:
        return nested(*spec[1:]) if type(spec) is tuple and spec and spec[0] == "nested" else spec

    if action == "decode":
        codec = _codec(rest[0])
        return codec.decode(codec.compress(rest[1]), len(rest[1]))
    if action == "items":  # a cold load: a new container, which holds no dropped map to take over
        importlib.import_module("aws_lambda_persistence_lite._reuse")._dropped.clear()
        return _package(rest[0]).PersistentMap.open(client=FakeTable(rest[1]), table_key="m").to_dict()
    if action == "load":
        from aws_lambda_persistence_lite._pickle import loads_restricted

        return loads_restricted(rest[0])
    if action == "round-trip":  # write, read back, and compare what the read value encodes to
        codec = _codec(rest[0])
        entry = codec.encode_entry(build(rest[1]), build(rest[2]))
        body = codec.join([entry])
        ((key, value),) = codec.decode(codec.compress(body), len(body)).items()
        return "same" if codec.encode_entry(key, value) == entry else "different"
    codec = _codec(rest[0])
    return codec.encode_entry(build(rest[1]), build(rest[2]))


def _limits(memory_mb: int, cpu_seconds: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))

    return apply


_CHILD = """
import pickle, sys, time
from tests.fuzz.isolated import peak_since, run_case, warm_up
cases = pickle.loads(sys.stdin.buffer.read())
warm_up(cases)
for case in cases:
    mark = peak_since(None)
    began = time.process_time()
    try:
        result = run_case(case)
        outcome = f"returned {type(result).__name__}" + (f" {result}" if type(result) is str else "")
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}".replace(chr(10), " ")[:1000]
    cpu = time.process_time() - began
    result = exc = None
    print(f"{cpu:.3f} {peak_since(mark):.1f} {outcome}", flush=True)
"""


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def peak_since(mark: int | None) -> float:
    """With no mark: give back what earlier cases freed (else a case reusing it would look free), reset the peak
    resident size (Linux's clear_refs) and return the resident size now, in KB. With one: how many MB the peak
    since then rose above it."""
    if mark is None:
        gc.collect()
        ctypes.CDLL(None).malloc_trim(0)  # (glibc keeps freed memory resident otherwise)
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return _status("VmRSS")
    return (_status("VmHWM") - mark) / 1024


def warm_up(cases: list[tuple[Any, ...]]) -> None:
    """Import what the cases use before measuring (an import is not part of what a read costs)."""
    from aws_lambda_persistence_lite._pickle import loads_restricted

    for action, *rest in cases:
        if action in ("decode", "encode", "round-trip"):
            codec = _codec(rest[0])
            body = codec.join([codec.encode_entry("k", (1, {2}, dt.datetime.now(dt.timezone.utc)))])
            codec.decode(codec.compress(body), len(body))
        elif action == "items":
            _package(rest[0])
    loads_restricted(pickle.dumps({"k": 1}))


def outcomes(
    cases: list[Case],
    *,
    seconds: int = 60,
    memory_mb: int = 1024,
    read_bound: tuple[float, float] = (READ_CPU_SECONDS, READ_MEMORY_MB),
) -> list[tuple[float, str]]:
    """(CPU seconds, outcome) of each case, run in one child interpreter limited to ``memory_mb`` of address
    space and ``seconds`` of CPU (and twice that of wall clock). The test fails when the child does not finish,
    or when a case that reads stored bytes takes more CPU seconds or MB of memory than ``read_bound`` (the one
    FORMAT.md promises)."""
    began = time.monotonic()
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=pickle.dumps(cases),
            capture_output=True,
            cwd=ROOT,
            timeout=2 * seconds,
            preexec_fn=_limits(memory_mb, seconds),
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: no answer after {time.monotonic() - began:.0f} s")
    lines = child.stdout.decode().splitlines()
    if child.returncode != 0 or len(lines) != len(cases):
        signal = f"killed by signal {-child.returncode}" if child.returncode < 0 else f"exit {child.returncode}"
        pytest.fail(
            f"child {signal} after {len(lines)} of {len(cases)} cases; last: {lines[-1:]}; "
            f"stderr: {child.stderr.decode()[-800:]}"
        )
    results = []
    for case, line in zip(cases, lines, strict=True):
        cpu, grown, outcome = line.split(" ", 2)
        if case[0] in READING and (float(cpu) > read_bound[0] or float(grown) > read_bound[1]):
            pytest.fail(f"beyond the read bound: {cpu} s of CPU, {grown} MB more memory; {outcome[:200]}")
        results.append((float(cpu), outcome))
    return results
