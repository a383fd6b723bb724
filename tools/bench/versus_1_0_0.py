"""aws-lambda-persistence 2.0 (core and lite) against 1.0.0 from PyPI, scenario by scenario, on the same local
DynamoDB.

Why: 2.0 claims cheaper writes, no 400 KB ceiling, no lost updates and cheap cold starts compared with 1.0.0;
this measures each claim against the released 1.0.0, with the same data, the same servers and the same table.

How: both distributions import as ``aws_lambda_persistence``, so 1.0.0 lives in its own virtual environment,
``.cache/bench-1.0.0-venv``, created here on first run (``python -m venv`` from the same base interpreter, then
``pip install aws-lambda-persistence==1.0.0 boto3==<the boto3 version 2.0 runs with>``). 2.0 core and lite run in
this interpreter (the dev venv). Every scenario runs in a fresh subprocess of the right interpreter (this file with
``--worker SPEC``), which prints its results as JSON on its last stdout line. DynamoDB calls are counted by
the library's meter (``_meter.CallMeter``: botocore hooks, request bytes per attempt, responses after each call),
registered on every DynamoDB client created in the worker (``botocore.session.Session.create_client`` is wrapped:
1.0.0 creates its clients from boto3's default session, 2.0 from a session of its own, so one wrapper sees both).
Capacity units are computed from the items in the requests by DynamoDB's rules (a standard write is 1 WCU per KB,
a transactional one 2; a read 1 RCU per 4 KB when strongly consistent, half that when not); ConsumedCapacity is
shown where the server returned it (2.0 asks for it, 1.0.0 does not).

The table ``AWSLambdaPersistence`` (hash key ``key``, type S, on-demand) is created by this script on each server
before anything runs, so that neither library's table-creation path is measured and both use the same table
(each map has its own ``table_key``). Servers: moto's (in a thread of this process) and, where installed,
DynamoDB Local.

    python tools/bench/versus_1_0_0.py [--no-local] [--largest-max-mb 64]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / ".cache" / "bench-1.0.0-venv"
TABLE = "AWSLambdaPersistence"
KB, MB = 1024, 1 << 20
SMALL_MAP = {"greeting": "hello", "counter": 41, "recent": [f"request-{i}" for i in range(20)]}
WRITE_SIZES = [20 * KB, 256 * KB, 1 * MB]  # JSON-like maps for the single-key writes; 256 KB: 1.0.0 still fits
LARGE = [("json-like", 1 * MB), ("random", 1 * MB), ("json-like", 16 * MB), ("random", 16 * MB)]
WRITES = 5
BOTO = ("boto3", "botocore")


# ---------------------------------------------------------------------------------------------------------------
# Worker side: runs in the 1.0.0 venv or in the 2.0 interpreter; imports nothing but the standard library (and the
# benchmark's data generators) before the scenario asks for the package under test.
# ---------------------------------------------------------------------------------------------------------------


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item (the library's rules, in aws_lambda_persistence_lite._meter)."""
    from common import item_size as size_of  # (with the library's source on the path, also in 1.0.0's venv)

    return size_of(item)


def _writes_of(operation: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, bool]]:
    """(kind, item or None, transactional) for every item a write request puts, updates or deletes.

    An UpdateItem's resulting item is not in the request: its key and new values are counted (a lower bound).
    """
    if operation == "PutItem":
        return [("put", request["Item"], False)]
    if operation == "UpdateItem":
        return [("update", {**request["Key"], **request.get("ExpressionAttributeValues", {})}, False)]
    if operation == "DeleteItem":
        return [("delete", None, False)]
    found: list[tuple[str, dict[str, Any] | None, bool]] = []
    if operation == "BatchWriteItem":
        for requests in request["RequestItems"].values():
            for r in requests:
                put = r.get("PutRequest")
                found.append(("put", put["Item"], False) if put else ("delete", None, False))
    elif operation == "TransactWriteItems":
        for action in request["TransactItems"]:
            if "Put" in action:
                found.append(("put", action["Put"]["Item"], True))
            elif "Update" in action:
                u = action["Update"]
                found.append(("update", {**u["Key"], **u.get("ExpressionAttributeValues", {})}, True))
            elif "Delete" in action:
                found.append(("delete", None, True))
    return found


READS = ("GetItem", "BatchGetItem")
WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
CONFLICTS = ("ConditionalCheckFailedException", "TransactionCanceledException")


class Meter:
    """The library's meter (aws_lambda_persistence_lite._meter.CallMeter, the one the library, its command line and
    every benchmark use) on every DynamoDB client created from now on, in any botocore session of this process,
    with this benchmark's summary. In 1.0.0's venv the library's source is put last on the path (common.py): it
    adds that one package and shadows nothing."""

    def __init__(self, keep_bodies: bool = True) -> None:
        from common import CallMeter  # (with the library's source on the path, also in 1.0.0's venv)

        self.meter = CallMeter(requests=keep_bodies, consumed=False)  # (requests as each library sends them)
        self.meter.attach_everywhere()
        self.calls = self.meter.calls

    def mark(self) -> int:
        return self.meter.mark()

    def summary(self, since: int = 0) -> dict[str, Any]:
        calls = self.calls[since:]
        result: dict[str, Any] = {
            "calls": len(calls),
            "ops": dict(Counter(c.op for c in calls)),
            "sent": sum(c.sent for c in calls),
            "received": sum(c.received for c in calls),
            "written": 0,
            "deleted": 0,
            "item_bytes": 0,
            "wcu": 0.0,
            "rcu": sum(c.read_units for c in calls),
            "items_read": sum(c.items_read for c in calls),
            "reported_wcu": None,
            "reported_rcu": None,
            "conflicts": sum(1 for c in calls if c.error in CONFLICTS),
            "errors": dict(Counter(c.error for c in calls if c.error)),
        }
        for c in calls:
            if c.reported is not None:
                which = "reported_rcu" if c.op in READS else "reported_wcu"
                result[which] = (result[which] or 0) + c.reported
            if c.request is None or c.error or c.op not in WRITE_OPERATIONS:
                continue
            for kind, item, transactional in _writes_of(c.op, c.request):
                size = item_size(item) if item is not None else KB  # a deleted item's size is not in the request
                result["deleted" if kind == "delete" else "written"] += 1
                result["item_bytes"] += size if item is not None else 0
                result["wcu"] += max(1, math.ceil(size / KB)) * (2 if transactional else 1)
        return result


def _quiet_library() -> None:
    import logging

    # 2.0 logs a warning for commits above the free tier's 25 WCU: the large maps here do that on purpose.
    logging.getLogger("aws_lambda_persistence").setLevel(logging.ERROR)


def _error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = response["Error"].get("Message") or f"HTTP {status}, no message (request body too large?)"
        return f"{response['Error'].get('Code')}: {message}"[:160]
    return f"{type(exc).__name__}: {exc}"[:160]


def _dataset(kind: str, target: int) -> tuple[dict[str, Any], int]:
    from storage import data_size, json_like, random_bytes

    data = json_like(target) if kind == "json-like" else random_bytes(target)
    return data, data_size(data)


def _package_info(pkg: Any) -> dict[str, Any]:
    import importlib.metadata

    return {
        "file": pkg.__file__,
        "version": getattr(pkg, "__version__", None) or importlib.metadata.version("aws-lambda-persistence"),
        "boto3": importlib.metadata.version("boto3"),
    }


def work_cold(spec: dict[str, Any]) -> dict[str, Any]:
    """``import`` then ``PersistentMap()`` on an existing small map (PERSISTENCE_TABLE_KEY), each timed."""
    t0 = time.perf_counter()
    pkg = importlib.import_module(spec["module"])
    t1 = time.perf_counter()
    meter = Meter() if spec.get("count") else None
    t2 = time.perf_counter()
    data = pkg.PersistentMap()
    t3 = time.perf_counter()
    assert data["greeting"] == "hello", dict(data)
    result: dict[str, Any] = {"import": t1 - t0, "load": t3 - t2, "total": t1 - t0 + t3 - t2}
    if meter:
        result["meter"] = meter.summary()
        result["package"] = _package_info(pkg)
    return result


def work_seed(spec: dict[str, Any]) -> dict[str, Any]:
    pkg = importlib.import_module(spec["module"])
    pkg.PersistentMap(table_key=spec["table_key"]).update(spec["data"])
    return {"package": _package_info(pkg)}


def work_read(spec: dict[str, Any]) -> dict[str, Any]:
    pkg = importlib.import_module(spec["module"])
    return {"value": pkg.PersistentMap(table_key=spec["table_key"]).get(spec["name"])}


def work_writes(spec: dict[str, Any]) -> dict[str, Any]:
    """For each size: store a JSON-like map, then time and meter ``WRITES`` single-key writes on it."""
    _quiet_library()
    meter = Meter()
    pkg = importlib.import_module(spec["module"])
    results = []
    for target in spec["sizes"]:
        data, nbytes = _dataset("json-like", target)
        row: dict[str, Any] = {"target": target, "size": nbytes}
        m = pkg.PersistentMap(table_key=f"{spec['prefix']}-{target}")
        mark = meter.mark()
        try:
            m.update(data)
        except Exception as exc:
            row["error"] = _error(exc)
            results.append(row)
            continue
        row["store"] = meter.summary(mark)
        row["writes"] = []
        for i in range(WRITES):
            mark = meter.mark()
            started = time.perf_counter()
            m["last-request"] = f"request-{i}"
            seconds = time.perf_counter() - started
            row["writes"].append({**meter.summary(mark), "seconds": seconds})
        results.append(row)
    return {"rows": results}


def work_large(spec: dict[str, Any]) -> dict[str, Any]:
    """Commit a whole map to a new key, then cold-load it with a new map object; meter and time both."""
    _quiet_library()
    meter = Meter()
    pkg = importlib.import_module(spec["module"])
    pkg.PersistentMap(table_key=f"{spec['prefix']}-warm-up").update({"warm": "up"})  # connection, not measured
    results = []
    for kind, target in spec["datasets"]:
        data, nbytes = _dataset(kind, target)
        row: dict[str, Any] = {"kind": kind, "target": target, "size": nbytes}
        key = f"{spec['prefix']}-{kind}-{target}"
        writer = pkg.PersistentMap(table_key=key)
        mark = meter.mark()
        started = time.perf_counter()
        try:
            writer.update(data)
        except Exception as exc:
            row["error"] = _error(exc)
            row["commit"] = meter.summary(mark)
            results.append(row)
            continue
        row["commit_s"] = time.perf_counter() - started
        row["commit"] = meter.summary(mark)
        mark = meter.mark()
        started = time.perf_counter()
        reader = pkg.PersistentMap(table_key=key)
        row["load_s"] = time.perf_counter() - started
        row["load"] = meter.summary(mark)
        row["equal"] = dict(reader) == data
        results.append(row)
        del writer, reader, data
    return {"rows": results}


def _round_trips(pkg: Any, key: str, data: dict[str, Any]) -> str | None:
    """None when ``data`` is stored and read back equal by a new map object; else why not."""
    try:
        pkg.PersistentMap(table_key=key).update(data)
        back = pkg.PersistentMap(table_key=key)
    except Exception as exc:
        return _error(exc)
    return None if dict(back) == data else "read back differs"


def work_largest(spec: dict[str, Any]) -> dict[str, Any]:
    """Grow the map along a ladder up to ``max``; after the first failure, bisect down to ``precision`` bytes."""
    _quiet_library()
    pkg = importlib.import_module(spec["module"])
    kind, precision = spec["kind"], spec["precision"]
    probes: list[tuple[int, bool]] = []
    good, bad, failure = 0, None, None

    def probe(target: int) -> bool:
        nonlocal failure
        data, nbytes = _dataset(kind, target)
        why = _round_trips(pkg, f"{spec['prefix']}-{len(probes)}", data)
        probes.append((nbytes, why is None))
        if why is not None:
            failure = failure or why
        return why is None

    for target in spec["ladder"]:
        if probe(target):
            good = target
        else:
            bad = target
            break
    while bad is not None and bad - good > precision:
        middle = (good + bad) // 2
        if probe(middle):
            good = middle
        else:
            bad = middle
    largest = max((n for n, ok in probes if ok), default=0)
    smallest_failed = min((n for n, ok in probes if not ok), default=None)
    return {"largest": largest, "failed": smallest_failed, "failure": failure, "probes": len(probes)}


def work_increments(spec: dict[str, Any]) -> dict[str, Any]:
    """One simulated container: ``count`` read-modify-writes of ``n``, started when the parent says "go"."""
    _quiet_library()
    meter = Meter(keep_bodies=False)
    pkg = importlib.import_module(spec["module"])
    key, count, mode = spec["table_key"], spec["count"], spec["mode"]
    conflict_error = getattr(pkg, "ConflictError", None)
    data = pkg.PersistentMap(table_key=key)
    mark = meter.mark()
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    start, gave_up = time.monotonic(), 0
    for _ in range(count):
        while True:
            try:
                if mode == "assign":  # a warm container: its own copy, as a handler would use it
                    data["n"] = data.get("n", 0) + 1
                elif mode == "assign-fresh":  # a new map (a fresh read) for every increment
                    data = pkg.PersistentMap(table_key=key)
                    data["n"] = data.get("n", 0) + 1
                elif mode == "increment":
                    data.increment("n")
                elif mode == "mutate":
                    data.mutate(lambda d: d.__setitem__("n", d.get("n", 0) + 1))
                break
            except Exception as exc:
                if conflict_error is None or not isinstance(exc, conflict_error):
                    raise
                gave_up += 1  # every attempt lost: nothing was written, so trying again is safe
    return {"start": start, "end": time.monotonic(), "meter": meter.summary(mark), "gave_up": gave_up}


WORKERS = {
    "cold": work_cold,
    "seed": work_seed,
    "read": work_read,
    "writes": work_writes,
    "large": work_large,
    "largest": work_largest,
    "increments": work_increments,
}


# ---------------------------------------------------------------------------------------------------------------
# Parent side: runs in the 2.0 interpreter, starts the servers and the workers, prints markdown.
# ---------------------------------------------------------------------------------------------------------------


class Impl:
    def __init__(self, label: str, python: str, module: str) -> None:
        self.label, self.python, self.module = label, python, module

    def env(self, endpoint: str | None = None, **extra: str) -> dict[str, str]:
        from common import clean_env

        env = clean_env(endpoint, **extra)
        if self.label == "1.0.0":  # nothing from the dev environment may shadow the venv's packages
            env.pop("PYTHONPATH", None)
        return env

    def run(self, spec: dict[str, Any], endpoint: str | None = None, **extra: str) -> dict[str, Any]:
        proc = subprocess.run(
            [self.python, str(Path(__file__).resolve()), "--worker", json.dumps({**spec, "module": self.module})],
            stdout=subprocess.PIPE,
            text=True,
            env=self.env(endpoint, **extra),
            cwd=ROOT,
            check=False,
        )
        if proc.returncode:
            raise RuntimeError(f"{self.label}: worker {spec['scenario']} exited with code {proc.returncode}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result


STARTED = time.monotonic()


def progress(message: str) -> None:
    from common import log

    log(f"versus [{time.monotonic() - STARTED:.0f} s]: {message}")


def ensure_venv() -> str:
    """The 1.0.0 venv's python, created and filled on first use (same base interpreter, same boto3 as 2.0)."""
    python = VENV / "bin" / "python"
    check = "import importlib.metadata as m, aws_lambda_persistence as p; print(m.version('aws-lambda-persistence'))"
    if python.exists():
        proc = subprocess.run([python, "-c", check], capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip() == "1.0.0":
            return str(python)
    import importlib.metadata

    progress(f"creating {VENV.relative_to(ROOT)} with aws-lambda-persistence==1.0.0 from PyPI")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pinned = f"boto3=={importlib.metadata.version('boto3')}"
    quiet = sys.stderr  # (pip's output: stdout carries only the results)
    if subprocess.run([*pip, "aws-lambda-persistence==1.0.0", pinned], check=False, stdout=quiet).returncode:
        progress(f"{pinned} not installable, installing the newest boto3 instead")
        subprocess.run([*pip, "aws-lambda-persistence==1.0.0", "boto3"], check=True, stdout=quiet)
    subprocess.run([python, "-c", check], check=True, capture_output=True)
    return str(python)


def create_table(endpoint: str) -> None:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


# -- import time --------------------------------------------------------------------------------------------------


def _in(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def import_profile(impl: Impl) -> tuple[float, float, bool]:
    """(package alone, package then boto3, did the package import boto3) in seconds, from one -X importtime."""
    proc = subprocess.run(
        [impl.python, "-X", "importtime", "-c", f"import {impl.module}; import boto3"],
        capture_output=True,
        text=True,
        check=True,
        env=impl.env(),
        cwd=ROOT,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "[us]" not in line:
            _, microseconds, label = line[len("import time:") :].split("|")
            rows.append(((len(label) - len(label.lstrip()) - 1) // 2, label.strip(), int(microseconds)))
    total = boto_inside = boto3_after = 0
    stack: list[str] = []
    for depth, name, cumulative in reversed(rows):  # parents before children
        stack[depth:] = [name]
        if depth == 0 and name == impl.module:
            total = cumulative
        elif depth == 0 and name == "boto3":
            boto3_after = cumulative
        elif stack[0] == impl.module and _in(name, BOTO) and not any(_in(a, BOTO) for a in stack[:-1]):
            boto_inside += cumulative
    return (total - boto_inside) / 1e6, (total + boto3_after) / 1e6, boto_inside > 0


# -- the scenarios, parent side -----------------------------------------------------------------------------------


def increments_run(impl: Impl, endpoint: str, mode: str, processes: int, count: int) -> dict[str, Any]:
    key = f"versus-increments-{impl.label}-{mode}-{time.time_ns()}".replace(" ", "-")
    impl.run({"scenario": "seed", "table_key": key, "data": {"n": 0}}, endpoint)
    spec = json.dumps({"scenario": "increments", "module": impl.module, "table_key": key, "count": count, "mode": mode})
    workers = [
        subprocess.Popen(
            [impl.python, str(Path(__file__).resolve()), "--worker", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=impl.env(endpoint),
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    for w in workers:  # a barrier across interpreters: every worker has loaded its map before any starts
        assert w.stdout is not None
        assert w.stdout.readline().strip() == "ready", f"{impl.label}: a worker failed before its increments"
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    reports = []
    for w in workers:
        out, _ = w.communicate(timeout=600)
        assert w.returncode == 0, f"{impl.label}: increments worker exited with code {w.returncode}"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    final = impl.run({"scenario": "read", "table_key": key, "name": "n"}, endpoint)["value"]
    ops: Counter[str] = Counter()
    for r in reports:
        ops.update(r["meter"]["ops"])
    return {
        "final": final,
        "expected": processes * count,
        "wall": max(r["end"] for r in reports) - min(r["start"] for r in reports),
        "calls": sum(r["meter"]["calls"] for r in reports),
        "ops": dict(ops),
        "conflicts": sum(r["meter"]["conflicts"] for r in reports),
        "gave_up": sum(r["gave_up"] for r in reports),
    }


def largest_ladder(args: argparse.Namespace) -> list[int]:
    top = args.largest_max_mb * MB
    return [s for s in (256 * KB, 1 * MB, 8 * MB) if s < top] + [top]


def run_backend(
    impls: list[Impl], backend: str, endpoint: str, args: argparse.Namespace, results: dict[str, Any]
) -> None:
    from common import median, use_endpoint

    use_endpoint(endpoint)
    create_table(endpoint)
    stamp = time.time_ns()

    progress(f"{backend}: cold starts")
    for impl in impls:
        key = f"versus-cold-{impl.label}-{stamp}".replace(" ", "-")
        seeded = impl.run({"scenario": "seed", "table_key": key, "data": SMALL_MAP}, endpoint)
        results["packages"][impl.label] = seeded["package"]
        counted = impl.run({"scenario": "cold", "count": True}, endpoint, PERSISTENCE_TABLE_KEY=key)
        runs = []
        for _ in range(args.cold_runs):
            started = time.perf_counter()
            run = impl.run({"scenario": "cold"}, endpoint, PERSISTENCE_TABLE_KEY=key)
            run["process"] = time.perf_counter() - started
            runs.append(run)
        results["cold"].append(
            {
                "backend": backend,
                "impl": impl.label,
                "meter": counted["meter"],
                **{p: median(r[p] for r in runs) for p in ("import", "load", "total", "process")},
            }
        )

    for impl in impls:
        progress(f"{backend}: single-key writes, {impl.label}")
        prefix = f"versus-writes-{impl.label}-{stamp}".replace(" ", "-")
        rows = impl.run({"scenario": "writes", "sizes": WRITE_SIZES, "prefix": prefix}, endpoint)["rows"]
        results["writes"] += [{"backend": backend, "impl": impl.label, **row} for row in rows]

    for impl in impls:
        progress(f"{backend}: 1 MB and 16 MB maps, {impl.label}")
        prefix = f"versus-large-{impl.label}-{stamp}".replace(" ", "-")
        rows = impl.run({"scenario": "large", "datasets": LARGE, "prefix": prefix}, endpoint)["rows"]
        results["large"] += [{"backend": backend, "impl": impl.label, **row} for row in rows]

    ladder = largest_ladder(args)
    for impl in impls:
        for kind in ("json-like", "random"):
            progress(f"{backend}: largest {kind} map, {impl.label}")
            prefix = f"versus-largest-{impl.label}-{kind}-{stamp}".replace(" ", "-")
            spec = {"scenario": "largest", "kind": kind, "ladder": ladder, "precision": KB, "prefix": prefix}
            found = impl.run(spec, endpoint)
            results["largest"].append({"backend": backend, "impl": impl.label, "kind": kind, **found})

    for impl in impls:
        modes = ["assign"] if impl.label == "1.0.0" else ["assign", "increment"]
        if backend == results["cold"][0]["backend"]:  # the extra patterns on the first server only (time)
            modes.append("assign-fresh" if impl.label == "1.0.0" else "mutate")
        for mode in modes:
            progress(f"{backend}: {args.processes} x {args.count} increments, {impl.label}, {mode}")
            run = increments_run(impl, endpoint, mode, args.processes, args.count)
            results["increments"].append({"backend": backend, "impl": impl.label, "mode": mode, **run})


# -- reporting ----------------------------------------------------------------------------------------------------


def _ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" if n > 1 else name for name, n in ops.items()) or "—"


def _wcu(meter: dict[str, Any]) -> str:
    from common import units

    return units(round(meter["wcu"], 1))


def _reported(value: float | None) -> str:
    from common import units

    return units(None if value is None else round(value, 1))


def _items(meter: dict[str, Any]) -> str:
    return f"{meter['written']}" + (f" (+{meter['deleted']} deleted)" if meter["deleted"] else "")


ASSIGN = "`data['n'] = data.get('n', 0) + 1`"
MODES = {
    "assign": f"{ASSIGN}, one map per process (warm container)",
    "assign-fresh": f"new `PersistentMap()` then {ASSIGN}, every time",
    "increment": "`data.increment('n')`",
    "mutate": "`data.mutate(lambda d: d.__setitem__('n', d.get('n', 0) + 1))`",
}


def report(results: dict[str, Any], impls: list[Impl], args: argparse.Namespace) -> None:
    from common import ms, size, table

    labels = [i.label for i in impls]
    packages = results["packages"]
    print(
        "Same scenarios, same data and the same local DynamoDB table for the three: *1.0.0* is "
        "`aws-lambda-persistence==1.0.0` from PyPI in `.cache/bench-1.0.0-venv` "
        f"(boto3 {packages.get('1.0.0', {}).get('boto3', '?')}); *2.0 core* / *2.0 lite* are this repository's "
        f"packages (boto3 {packages.get('2.0 core', {}).get('boto3', '?')}); one Python ({sys.version.split()[0]}). "
        f"The table `{TABLE}` (hash key `key`, S) was created on-demand by the benchmark before any run, so neither "
        "library's creation path (1.0.0: 1/1 provisioned and a waiter; 2.0: 5/5) is measured; the emulators "
        "enforce no throughput, so the capacity mode changes nothing here. Every figure comes from a fresh "
        "subprocess per scenario; calls, bytes and items are counted by botocore hooks on every DynamoDB client "
        "(the libraries' own accounting is not used). *Bytes sent* = HTTP request bodies (DynamoDB JSON, binary "
        "base64-encoded, so about 4/3 of the item bytes), retries included. *WCU calc* = from the items in the "
        "requests: 1 per KB per item, 2 in a transaction, a deleted item counted as 1 KB (its size is not in the "
        "request, so sharded rewrites cost more than shown); *reported* = ConsumedCapacity returned by the "
        "server (only 2.0 asks for it; moto's figures are not size-based). 1 MB = 1 MiB.\n"
    )

    # Summary, from the first backend (moto).
    first = results["cold"][0]["backend"]
    print(f"### Summary ({first})\n")
    print(table(["metric", *labels], summary_rows(results, labels, first, args)))
    print()

    print("### Cold start: `PersistentMap()` on an existing small map, in a fresh process\n")
    print(
        f"Median of {args.cold_runs} fresh processes. *import* = `import aws_lambda_persistence[_lite]` (1.0.0 "
        "imports boto3 there; 2.0 imports it lazily, inside the first `PersistentMap()`, which also creates the "
        "client); *whole process* includes interpreter start-up and exit. Calls counted in one extra run.\n"
    )
    print(
        table(
            [
                "backend",
                "package",
                "DynamoDB calls",
                "operations",
                "bytes received",
                "RCU calc",
                "import",
                "`PersistentMap()`",
                "import + `PersistentMap()`",
                "whole process",
            ],
            [
                [
                    c["backend"],
                    c["impl"],
                    c["meter"]["calls"],
                    _ops(c["meter"]["ops"]),
                    size(c["meter"]["received"]),
                    f"{c['meter']['rcu']:g}",
                    ms(c["import"]),
                    ms(c["load"]),
                    ms(c["total"]),
                    ms(c["process"]),
                ]
                for c in results["cold"]
            ],
            left=2,
        )
    )
    print(
        "\n1.0.0 reads with an eventually consistent GetItem (half the RCU) after a DescribeTable; 2.0 with one "
        "strongly consistent GetItem.\n"
    )

    print("### Single-key write (`data['last-request'] = ...`) on a loaded JSON-like map\n")
    print(
        f"{WRITES} writes per map; calls: the most any write made; bytes, items and WCU: of the last write; time: "
        "median. 1.0.0 re-pickles and rewrites the whole map as one item on every write and creates a new boto3 "
        "resource (and client) for it; 2.0 writes the whole compressed map with one conditional PutItem.\n"
    )
    rows = []
    for w in results["writes"]:
        if "error" in w:
            rows.append(
                [w["backend"], w["impl"], size(w["size"]), "cannot store", "—", "—", "—", "—", "—", "—", w["error"]]
            )
            continue
        last = w["writes"][-1]
        rows.append(
            [
                w["backend"],
                w["impl"],
                size(w["size"]),
                max(x["calls"] for x in w["writes"]),
                _ops(last["ops"]),
                size(last["sent"]),
                size(last["item_bytes"]),
                _wcu(last),
                _reported(last["reported_wcu"]),
                ms(statistics.median(x["seconds"] for x in w["writes"])),
                "",
            ]
        )
    print(
        table(
            [
                "backend",
                "package",
                "map size",
                "calls per write",
                "operations",
                "bytes sent",
                "item bytes",
                "WCU calc",
                "WCU reported",
                "time per write",
                "note",
            ],
            rows,
            left=2,
        )
    )
    print()

    print("### Capacity units per single-key write\n")
    print(
        "From the rows above. *Writes/s in the free tier* = 25 WCU / WCU per write: how often a function can "
        "write this map on a provisioned table within the always-free 25 WCU (throttled above).\n"
    )
    rows = []
    for w in results["writes"]:
        if w["backend"] != first:
            continue
        if "error" in w:
            rows.append([w["impl"], size(w["size"]), "cannot store", "—", "—"])
            continue
        last = w["writes"][-1]
        rows.append(
            [
                w["impl"],
                size(w["size"]),
                _wcu(last),
                _reported(last["reported_wcu"]),
                f"{25 / last['wcu']:.2g}" if last["wcu"] else "—",
            ]
        )
    print(
        table(
            ["package", "map size", "WCU per write (calc)", f"WCU reported ({first})", "writes/s in the free tier"],
            rows,
            left=1,
        )
    )
    print()

    print("### 1 MB and 16 MB maps: first commit of the whole map, then a cold load by a new map object\n")
    print(
        "Commit = `update(data)` on a new, empty map (the calls that opened it are not counted); cold load = "
        "`PersistentMap(table_key=...)` in the same process (client warm for 2.0; 1.0.0 creates a new resource "
        "anyway). *cannot store* = the commit failed; the error is DynamoDB's.\n"
    )
    rows = []
    for r in results["large"]:
        head = [r["backend"], r["impl"], r["kind"], size(r["size"])]
        if "error" in r:
            sent = f"{size(r['commit']['sent'])} (rejected)"
            rows.append([*head, "cannot store", r["commit"]["calls"], sent, "—", "—", "—", "—", "—", "—", r["error"]])
            continue
        c, ld = r["commit"], r["load"]
        rows.append(
            [
                *head,
                _items(c),
                c["calls"],
                size(c["sent"]),
                _wcu(c),
                _reported(c["reported_wcu"]),
                ms(r["commit_s"]),
                f"{ld['calls']} ({_ops(ld['ops'])})",
                f"{ld['rcu']:g}",
                ms(r["load_s"]),
                "" if r["equal"] else "**read back differs**",
            ]
        )
    print(
        table(
            [
                "backend",
                "package",
                "data",
                "size",
                "items written",
                "commit calls",
                "bytes sent",
                "WCU calc",
                "WCU reported",
                "commit time",
                "cold-load calls",
                "RCU calc",
                "cold-load time",
                "note",
            ],
            rows,
            left=3,
        )
    )
    print()

    print("### Largest map stored (round-trips: written, then read back equal by a new map object)\n")
    print(
        f"The size grows along {', '.join(size(s) for s in largest_ladder(args))} and, after the first failure, is "
        "bisected to within 1 KB. JSON-like size = `len(json.dumps(map))`; random = bytes of `os.urandom` values "
        f"(64 KB each). Nothing above {size(args.largest_max_mb * MB)} is tried.\n"
    )
    rows = []
    for r in results["largest"]:
        largest = size(r["largest"]) if r["failed"] is not None else f">= {size(r['largest'])}"
        rows.append(
            [
                r["backend"],
                r["impl"],
                r["kind"],
                largest,
                size(r["failed"]) if r["failed"] is not None else "—",
                r["probes"],
                r["failure"] or "",
            ]
        )
    print(
        table(
            ["backend", "package", "data", "largest stored", "smallest failed", "probes", "first error"], rows, left=3
        )
    )
    print()

    print(f"### Increments under contention: {args.processes} processes x {args.count} read-modify-writes of `n`\n")
    print(
        "Each process (a fresh interpreter, like a Lambda container) loads the map, waits for the others, then "
        f"runs the pattern {args.count} times; a new map object then reads `n`. *conflicts* = conditional writes "
        "the server refused (2.0 retries them); *ConflictError* = increments whose every attempt lost (retried "
        "by the benchmark). 1.0.0 has no `increment()`. The last pattern of each package runs on the first "
        "server only.\n"
    )
    print(
        table(
            [
                "backend",
                "package",
                "pattern",
                "final `n`",
                "expected",
                "lost",
                "DynamoDB calls",
                "conflicts",
                "ConflictError",
                "wall time",
            ],
            [
                [
                    r["backend"],
                    r["impl"],
                    MODES[r["mode"]],
                    r["final"],
                    r["expected"],
                    r["expected"] - r["final"],
                    r["calls"],
                    r["conflicts"],
                    r["gave_up"],
                    ms(r["wall"]),
                ]
                for r in results["increments"]
            ],
            left=3,
        )
    )
    print()

    print('### Import time (`python -X importtime -c "import X; import boto3"`)\n')
    print(
        f"Median of {args.import_runs} fresh interpreters per package, interleaved. *Package alone* = the "
        "package's cumulative import time minus the boto3/botocore imports inside it (1.0.0 imports boto3 at "
        "import time; 2.0 does not); *with boto3* = the package, then `import boto3` (what a cold start pays "
        "before its first DynamoDB call; boto3's own figure is included in 1.0.0's package).\n"
    )
    rows = []
    for label in labels:
        runs = results["imports"][label]
        rows.append(
            [
                label,
                ms(statistics.median(r[0] for r in runs)),
                ms(statistics.median(r[1] for r in runs)),
                "yes" if any(r[2] for r in runs) else "no",
            ]
        )
    print(table(["package", "package alone", "with boto3", "imports boto3 itself?"], rows))


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def summary_rows(results: dict[str, Any], labels: list[str], backend: str, args: argparse.Namespace) -> list[list[str]]:
    from common import ms, size

    def cell(fn: Any, rows: str, **match: Any) -> list[str]:
        out = []
        for label in labels:
            r = _find(results[rows], backend=backend, impl=label, **match)
            out.append(fn(r) if r is not None else "—")
        return out

    def write(r: dict[str, Any], what: str) -> str:
        if "error" in r:
            return "cannot store"
        last = r["writes"][-1]
        return {"calls": str(max(x["calls"] for x in r["writes"])), "bytes": size(last["sent"]), "wcu": _wcu(last)}[
            what
        ]

    def large(r: dict[str, Any]) -> str:
        if "error" in r:
            return "cannot store"
        return f"{_items(r['commit'])} items, {ms(r['commit_s'])} / {ms(r['load_s'])}"

    def largest(r: dict[str, Any]) -> str:
        return size(r["largest"]) if r["failed"] is not None else f">= {size(r['largest'])}"

    def lost(mode: str) -> list[str]:
        out = []
        for label in labels:
            r = _find(results["increments"], backend=backend, impl=label, mode=mode)
            out.append(f"{r['expected'] - r['final']} of {r['expected']}" if r else "—")
        return out

    imports = results["imports"]
    contention = f"{args.processes} x {args.count}"
    return [
        ["import, package alone", *(ms(statistics.median(r[0] for r in imports[x])) for x in labels)],
        ["import, with boto3", *(ms(statistics.median(r[1] for r in imports[x])) for x in labels)],
        ["cold start: DynamoDB calls of `PersistentMap()`", *cell(lambda r: str(r["meter"]["calls"]), "cold")],
        ["cold start: import + `PersistentMap()`", *cell(lambda r: ms(r["total"]), "cold")],
        ["calls per single-key write (20 KB map)", *cell(lambda r: write(r, "calls"), "writes", target=20 * KB)],
        ["bytes sent per write (20 KB map)", *cell(lambda r: write(r, "bytes"), "writes", target=20 * KB)],
        ["WCU per write (20 KB map)", *cell(lambda r: write(r, "wcu"), "writes", target=20 * KB)],
        ["WCU per write (1 MB JSON-like map)", *cell(lambda r: write(r, "wcu"), "writes", target=MB)],
        ["largest JSON-like map", *cell(largest, "largest", kind="json-like")],
        ["largest random-bytes map", *cell(largest, "largest", kind="random")],
        ["16 MB JSON-like: items, commit / cold load", *cell(large, "large", kind="json-like", target=16 * MB)],
        [f"increments lost, {contention} `d['n'] = d.get('n', 0) + 1`", *lost("assign")],
        [f"increments lost, {contention} atomic (`increment()`)", *lost("increment")],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-local", action="store_true", help="skip DynamoDB Local even if it is installed")
    parser.add_argument("--largest-max-mb", type=int, default=64, help="largest map size tried (default: 64)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per cold-start figure")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters per import-time figure")
    parser.add_argument("--count", type=int, default=50, help="increments per process (default: 50)")
    parser.add_argument("--processes", type=int, default=4, help="concurrent processes (default: 4)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["scenario"]](spec)), flush=True)
        return

    from common import servers

    started, load = time.time(), os.getloadavg()
    impls = [
        Impl("1.0.0", ensure_venv(), "aws_lambda_persistence"),
        Impl("2.0 core", sys.executable, "aws_lambda_persistence"),
        Impl("2.0 lite", sys.executable, "aws_lambda_persistence_lite"),
    ]
    results: dict[str, Any] = {
        "packages": {},
        "cold": [],
        "writes": [],
        "large": [],
        "largest": [],
        "increments": [],
        "imports": {i.label: [] for i in impls},
    }
    for n in range(args.import_runs):
        progress(f"-X importtime run {n + 1}/{args.import_runs}")
        for impl in impls:
            results["imports"][impl.label].append(import_profile(impl))
    with servers(local=not args.no_local) as found:
        for backend, endpoint in found:
            run_backend(impls, backend, endpoint, args, results)
    for label, info in results["packages"].items():
        expected = "1.0.0" if label == "1.0.0" else "2."
        assert str(info["version"]).startswith(expected), f"{label} ran {info}"

    from run_all import cpu_model, java_version

    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    command = shlex.join([Path(sys.executable).as_posix(), str(shown), *sys.argv[1:]])
    print(
        f"Produced by `{command}` (from the repository root) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, in {time.time() - started:.0f} s, on "
        f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()} on {platform.platform()}, "
        f"DynamoDB Local on {java_version()}. Load average (1 min) {load[0]:.2f} at the start and "
        f"{os.getloadavg()[0]:.2f} at the end: other jobs (test suites) may share the machine, so timings are "
        "indicative; calls, items, bytes and capacity units are not affected.\n"
    )
    report(results, impls, args)


if __name__ == "__main__":
    main()
