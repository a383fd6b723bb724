"""Import cost of both packages, and the wall time of a Lambda cold start's first load.

Why: a Lambda function imports this library on every cold start, and the import runs before the handler, on
the billed clock. The library imports boto3 lazily (only when a map first talks to DynamoDB), so its own
import should stay small; the first ``PersistentMap()`` then pays for boto3, its client and one GetItem.

1. Import cost: ``python -X importtime -c "import X"`` in fresh interpreters, repeated (median reported). The
   cost of the package is the cumulative time of its top-level import, including the standard-library and
   third-party modules it is first to import, minus boto3/botocore if they appear at all. For the full package
   the share of msgpack and zstandard is shown too, and for both the largest modules each package pulls in.
2. First cold load: a fresh interpreter imports the package, imports boto3, creates the shared client and runs
   ``PersistentMap()`` on an existing small map served by moto's server on 127.0.0.1; each phase is timed.

    python tools/bench/import_time.py [--runs 15] [--cold-runs 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

from common import PACKAGES, clean_env, log, median, ms, servers, table, use_endpoint

BOTO = ("boto3", "botocore")
CODEC_DEPENDENCIES = ("msgpack", "zstandard")
TOP_PULLED_IN = 6
OURS = tuple(PACKAGES.values())


def _in(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@dataclass
class ImportProfile:
    """One ``-X importtime`` run of ``import <module>``, in microseconds."""

    total: int = 0  # cumulative time of the top-level import of the module
    boto: int = 0  # cumulative time of boto3/botocore imports inside it (0: not imported)
    shares: dict[str, int] = field(default_factory=dict)  # cumulative time of each root in CODEC_DEPENDENCIES
    pulled_in: dict[str, int] = field(default_factory=dict)  # non-package modules imported by package modules

    @property
    def own(self) -> int:
        return self.total - self.boto


def profile_import(module: str, after: str = "", extra_env: dict[str, str] | None = None) -> ImportProfile:
    """Import ``module`` in a fresh interpreter under ``-X importtime`` and account for its tree. With ``after``
    (e.g. "boto3"), that is imported first: what ``module`` then adds is its cost in a real cold start, where
    boto3 (and the standard library modules boto3 loads) is always imported. ``extra_env`` is added to the
    interpreter's environment (layer_import.py points PYTHONPATH at a layer)."""
    code = f"import {after}; import {module}" if after else f"import {module}"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**clean_env(), **(extra_env or {})},
    )
    # Lines come children first, indented two spaces per level: read them backwards to see parents first.
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, microseconds, label = line[len("import time:") :].split("|")
        depth = (len(label) - len(label.lstrip()) - 1) // 2
        rows.append((depth, label.strip(), int(microseconds)))
    result = ImportProfile()
    stack: list[str] = []
    for depth, name, cumulative in reversed(rows):
        stack[depth:] = [name]
        ancestors = stack[:-1]
        if stack[0] != module:
            continue
        if depth == 0:
            result.total = cumulative
        elif _in(name, BOTO) and not any(_in(a, BOTO) for a in ancestors):
            result.boto += cumulative
        for root in CODEC_DEPENDENCIES:
            if _in(name, (root,)) and not any(_in(a, (root,)) for a in ancestors):
                result.shares[root] = result.shares.get(root, 0) + cumulative
        if depth and _in(ancestors[-1], OURS) and not _in(name, OURS):
            top = name.split(".")[0]
            result.pulled_in[top] = result.pulled_in.get(top, 0) + cumulative
    if not result.total:
        raise RuntimeError(f"no importtime line for {module}:\n{proc.stderr[-2000:]}")
    return result


# A simulated cold start: one fresh interpreter, each phase timed in-process.
COLD_START = """
import json, time
t0 = time.perf_counter()
import {module} as pkg
t1 = time.perf_counter()
import boto3, botocore.config
t2 = time.perf_counter()
from aws_lambda_persistence_lite._client import default_client
default_client()
t3 = time.perf_counter()
data = pkg.PersistentMap()
t4 = time.perf_counter()
assert data["greeting"] == "hello" and data.last_load.calls == 1, (dict(data), data.last_load)
print(json.dumps({{"import": t1 - t0, "boto3": t2 - t1, "client": t3 - t2, "load": t4 - t3, "total": t4 - t0}}))
"""

SMALL_MAP = {"greeting": "hello", "counter": 41, "recent": [f"request-{i}" for i in range(20)]}


def cold_start(module: str, endpoint: str, table_key: str) -> dict[str, float]:
    """Run one simulated cold start; returns the seconds of each phase and of the whole process."""
    env = clean_env(endpoint, PERSISTENCE_TABLE_KEY=table_key)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", COLD_START.format(module=module)], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"cold start of {module} failed:\n{proc.stderr}")
    phases: dict[str, float] = json.loads(proc.stdout)
    phases["process"] = wall
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per package for -X importtime")
    parser.add_argument("--cold-runs", type=int, default=7, help="simulated cold starts per package")
    args = parser.parse_args()

    profiles: dict[str, list[ImportProfile]] = defaultdict(list)
    after_boto3: dict[str, list[ImportProfile]] = defaultdict(list)
    for module in PACKAGES.values():  # compile and cache the bytecode first, as an installed package has it
        profile_import(module)
    for run in range(args.runs):  # interleaved, so that background load hits both packages alike
        log(f"import_time: -X importtime run {run + 1}/{args.runs}")
        for label, module in PACKAGES.items():
            profiles[label].append(profile_import(module))
            after_boto3[label].append(profile_import(module, after="boto3"))

    rows = []
    for label, module in PACKAGES.items():
        runs = profiles[label]
        boto_seen = sum(1 for p in runs if p.boto)
        shares = [
            f"{root} {ms(median(p.shares.get(root, 0) for p in runs) / 1e6)}"
            for root in CODEC_DEPENDENCIES
            if any(root in p.shares for p in runs)
        ]
        rows.append(
            [
                f"`{module}` ({label})",
                ms(median(p.own for p in runs) / 1e6),
                ms(median(p.own for p in after_boto3[label]) / 1e6),
                f"{ms(min(p.own for p in runs) / 1e6)} to {ms(max(p.own for p in runs) / 1e6)}",
                "no" if not boto_seen else f"yes, in {boto_seen}/{len(runs)} runs (subtracted)",
                ", ".join(shares) or "—",
            ]
        )
    print(f'### Import time (`python -X importtime -c "import X"`, median of {args.runs} fresh interpreters)\n')
    print(
        table(
            [
                "package",
                "import (median)",
                "after `import boto3`",
                "min to max",
                "boto3/botocore imported?",
                "msgpack / zstandard share",
            ],
            rows,
        )
    )
    print("\nLargest modules each package is first to import (median cumulative time, included above):\n")
    pulled_rows = []
    for label in PACKAGES:
        names = {name for p in profiles[label] for name in p.pulled_in}
        medians = {name: median(p.pulled_in.get(name, 0) for p in profiles[label]) for name in names}
        top = sorted(medians.items(), key=lambda kv: -kv[1])[:TOP_PULLED_IN]
        pulled_rows.append([label, ", ".join(f"{name} {ms(us / 1e6)}" for name, us in top)])
    print(table(["package", "modules"], pulled_rows, left=2))

    log("import_time: simulated cold starts against moto's server")
    with servers(local=False) as found:
        _, endpoint = found[0]
        use_endpoint(endpoint)
        import importlib

        cold: dict[str, list[dict[str, float]]] = defaultdict(list)
        keys = {}
        for label, module in PACKAGES.items():
            keys[label] = f"bench-cold-{label}-{time.time_ns()}"
            importlib.import_module(module).PersistentMap.open(SMALL_MAP, table_key=keys[label])
        for _ in range(args.cold_runs):
            for label, module in PACKAGES.items():
                cold[label].append(cold_start(module, endpoint, keys[label]))

    phases = ["import", "boto3", "client", "load", "total", "process"]
    print(f"\n### First cold load (fresh interpreter, moto server on 127.0.0.1, median of {args.cold_runs})\n")
    print(
        table(
            [
                "package",
                "import package",
                "import boto3",
                "create client",
                "`PersistentMap()` (GetItem + decode)",
                "total in-process",
                "whole process (incl. interpreter start/exit)",
            ],
            [[label, *(ms(median(run[p] for run in cold[label])) for p in phases)] for label in PACKAGES],
        )
    )
    print(
        "\n`import boto3` and `create client` are what the library's lazy boto3 import defers to the first "
        "load; `PersistentMap()` is one GetItem of a map of a few hundred bytes plus decoding."
    )


if __name__ == "__main__":
    main()
