"""Run hostile decoding and encoding in a child interpreter, under time and memory limits, so that a crash
(SIGSEGV from an overflowed C stack), a hang or a runaway allocation fails one test instead of killing the run.

``outcomes(cases)`` sends picklable cases to one child, which runs :func:`run_case` on each and prints one line per
case: the name of the exception raised and its message, or ``returned <type>``, and how long it took.
"""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import time
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def run_case(case: tuple[Any, ...]) -> Any:
    """What a child runs. ("decode", codec, body): compress ``body`` and decode it; ("load", body): the 1.0.0
    reader; ("encode", codec, key spec, value spec): encode an entry; ("round-trip", codec, key spec, value spec):
    encode, decode, and say whether the decoded entry encodes the same ("same"). A spec is a value, or ("nested",
    kinds, depth[, leaf]), built in the child (a deep value cannot be pickled over)."""
    action, *rest = case

    def build(spec: Any) -> Any:
        return nested(*spec[1:]) if type(spec) is tuple and spec and spec[0] == "nested" else spec

    if action == "decode":
        codec = _codec(rest[0])
        return codec.decode(codec.compress(rest[1]), len(rest[1]))
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
from tests.fuzz.isolated import run_case
for case in pickle.loads(sys.stdin.buffer.read()):
    began = time.process_time()
    try:
        result = run_case(case)
        outcome = f"returned {type(result).__name__}" + (f" {result}" if type(result) is str else "")
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}".replace(chr(10), " ")[:1000]
    print(f"{time.process_time() - began:.3f} {outcome}", flush=True)
"""


def outcomes(cases: list[tuple[Any, ...]], *, seconds: int = 60, memory_mb: int = 1024) -> list[tuple[float, str]]:
    """(CPU seconds, outcome) of each case, run in one child interpreter limited to ``memory_mb`` of address
    space and ``seconds`` of CPU (and twice that of wall clock); the test fails when the child does not finish."""
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
    return [(float(cpu), outcome) for cpu, outcome in (line.split(" ", 1) for line in lines)]
