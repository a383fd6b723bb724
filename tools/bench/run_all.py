"""Run every benchmark in tools/bench and write tools/bench/RESULTS.md.

Why: one command that reproduces the published numbers, and a results file that says how they were produced
(the command, the date, the machine, the versions), since timings mean little without that context. Each
benchmark runs in its own interpreter (import_time.py needs fresh ones anyway) and prints markdown on stdout;
its progress goes to stderr, passed through. Numbers are indicative: the servers are local emulators
(moto, DynamoDB Local), not DynamoDB, and other processes may share the machine.

    python tools/bench/run_all.py [--no-local]

versus_1_0_0.py also needs PyPI once: it creates .cache/bench-1.0.0-venv with aws-lambda-persistence 1.0.0.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, log

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
BENCHMARKS = [
    "import_time.py", "layer_import.py", "storage.py", "increments.py", "versus_1_0_0.py", "writes.py", "decoding.py"
]  # fmt: skip
#: The benchmarks that run against DynamoDB Local too (and take --no-local).
USE_DYNAMODB_LOCAL = {"storage.py", "increments.py", "versus_1_0_0.py", "writes.py"}
#: Arguments other than the defaults, for the figures the READMEs show (tools/figures.py copies them from here):
#: issue 10's 1,000 sets on maps of 20 KB to 64 MB and three rounds of increments (about 30 minutes); decoding
#: at 2 MB, the size up to which FORMAT.md bounds a read, and at 8 MB.
ARGUMENTS = {
    "writes.py": ["--sizes", "20K,1M,16M,64M", "--sets", "1000", "--increment-runs", "3"],
    "decoding.py": ["--sizes", "2,8"],
}
#: Section titles other than the script's name (the arguments are added).
TITLES = {
    "versus_1_0_0.py": "versus 1.0.0",
    "decoding.py": "Reading costs, honest and hostile",
    "writes.py": "Writes, refreshes and increments",
}
VERSIONS = [
    "aws-lambda-persistence",
    "aws-lambda-persistence-lite",
    "boto3",
    "botocore",
    "moto",
    "msgpack",
    "zstandard",
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def java_version() -> str:
    java = shutil.which("java")
    if java is None:
        return "not installed"
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return (proc.stderr or proc.stdout).splitlines()[0] if (proc.stderr or proc.stdout) else "unknown"


def library_source() -> str:
    """A fingerprint of the library's source as benchmarked: it may change between runs."""
    files = sorted((ROOT / "packages").glob("*/src/**/*.py"))
    fingerprint = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    newest = datetime.fromtimestamp(max(f.stat().st_mtime for f in files), timezone.utc)
    return (
        f"{len(files)} files under packages/*/src, sha256 {fingerprint}, newest modified {newest:%Y-%m-%d %H:%M:%S} UTC"
    )


def machine() -> list[str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- CPUs: {os.cpu_count()} (nproc: {len(os.sched_getaffinity(0))}), {cpu_model()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}",
        f"- Java (DynamoDB Local): {java_version()}",
        "- Versions: " + ", ".join(f"{name} {version(name)}" for name in VERSIONS),
        f"- Library source: {library_source()}",
        f"- Load average (1/5/15 min) when the run started: {load}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-local", action="store_true", help="skip DynamoDB Local even if it is installed")
    args = parser.parse_args()

    command = shlex.join([sys.executable, *sys.argv])
    started = datetime.now(timezone.utc)
    header, source = machine(), library_source()
    sections, durations = [], []
    for name in BENCHMARKS:
        extra = ARGUMENTS.get(name, []) + (["--no-local"] if args.no_local and name in USE_DYNAMODB_LOCAL else [])
        log(f"run_all: {name}")
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(HERE / name), *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True
        )
        durations.append(f"{name} {time.perf_counter() - began:.0f} s")
        title = f"{TITLES[name]} (`{shlex.join([name, *ARGUMENTS.get(name, [])])}`)" if name in TITLES else name
        sections.append(f"## {title}\n\n{proc.stdout.strip()}\n")

    if library_source() != source:
        header.append("- **Warning: the library's source changed during the run**: " + library_source())
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Produced by `{command}` (from the repository root) on {started:%Y-%m-%d %H:%M} UTC, "
            f"in {', '.join(durations)}.",
            "",
            *header,
            "",
            "Indicative numbers only: DynamoDB is emulated on 127.0.0.1 (moto's server runs in a thread of the "
            "benchmark's own process; DynamoDB Local in a JVM), the machine has few cores and may be shared with "
            "other jobs, and each figure comes from a handful of runs. Compare rows with each other, not with AWS.",
            "",
            *sections,
        ]
    )
    RESULTS.write_text(text)
    log(f"run_all: wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
