"""Helpers shared by the benchmarks in tools/bench: paths, a fake AWS environment, local DynamoDB servers and
markdown tables.

Every benchmark talks only to DynamoDB servers on 127.0.0.1 (moto's server and, where it is installed, AWS's
DynamoDB Local), started by ``tools/servers.py``; the repository root is put on ``sys.path`` here so that the
scripts work when run as ``python tools/bench/X.py`` from the repository root.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
#: The library's meter (aws_lambda_persistence_lite._meter) measures every benchmark, 1.0.0's too: its source goes
#: last on the path, so that in 1.0.0's virtual environment it adds that one package and shadows nothing.
LITE_SOURCE = str(ROOT / "packages" / "aws-lambda-persistence-lite" / "src")
if LITE_SOURCE not in sys.path:
    sys.path.append(LITE_SOURCE)

from aws_lambda_persistence_lite._meter import CallMeter, item_size  # noqa: E402  (needs LITE_SOURCE)

from tools import servers as local_servers  # noqa: E402  (needs ROOT on sys.path)

#: What the benchmarks import from here: the library's meter too, since only this module puts it on the path.
__all__ = [
    "ROOT",
    "LITE_SOURCE",
    "PACKAGES",
    "FAKE_AWS",
    "CallMeter",
    "item_size",
    "log",
    "clean_env",
    "use_endpoint",
    "servers",
    "median",
    "table",
    "ms",
    "size",
    "units",
]

#: The two distributions, by import name, with the short label used in the tables.
PACKAGES = {"core": "aws_lambda_persistence", "lite": "aws_lambda_persistence_lite"}

#: Dummy credentials and a region: the local servers accept anything, and nothing may reach real AWS.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the markdown results."""
    print(message, file=sys.stderr, flush=True)


def clean_env(endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without any AWS_* or PERSISTENCE_* setting, plus fake credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PERSISTENCE_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure as installed: bytecode cached, not compiled per process
    env.update(FAKE_AWS)
    if endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    env.update(extra)
    return env


def use_endpoint(endpoint: str) -> None:
    """Point this process (and the library's shared client, which is cached per endpoint) at ``endpoint``."""
    env = clean_env(endpoint)
    os.environ.clear()
    os.environ.update(env)


@contextlib.contextmanager
def servers(local: bool = True) -> Iterator[list[tuple[str, str]]]:
    """Start moto's server and, when ``local`` and installed, DynamoDB Local; yield [(name, url), ...]."""
    with contextlib.ExitStack() as stack:
        found = [("moto server", stack.enter_context(local_servers.moto_server()))]
        if local:
            try:
                found.append(("DynamoDB Local", stack.enter_context(local_servers.dynamodb_local())))
            except local_servers.ServerUnavailable as unavailable:
                log(f"DynamoDB Local skipped: {unavailable}")
        yield found


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> str:
    """A markdown table; the first ``left`` columns are left-aligned, the others right-aligned (numbers)."""
    align = [":---"] * left + ["---:"] * (len(headers) - left)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def size(n: float) -> str:
    """Bytes in binary units: 1 MB here means 1 MiB (1,048,576 bytes)."""
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def units(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"
