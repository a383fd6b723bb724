#!/usr/bin/env python3
"""Verify built layers: ``python tools/layers/verify.py [--out build/layers]``.

Checks each zip listed in manifest.json against what Lambda and this project need, without trusting the builder:

* layout: only regular files under ``python/``, core files only in the site-packages of a supported Python,
  none of what the runtime ships (boto3...), no bytecode, no RECORD, no zstandard cffi backend;
* determinism attributes: sorted entries, 1980-01-01 timestamps, modes 0o644/0o755, no extra fields;
* every ``.so``: ELF e_machine of the layer's architecture and the CPython ABI of the directory it sits in, so a
  wrong wheel cannot slip in as an ImportError that only shows at cold start;
* sizes against Lambda's limits (50 MB zipped for direct upload, 250 MB unzipped);
* an import smoke test in a clean interpreter (``-I -S``: no site-packages, so no boto3 and nothing installed
  leaks in) for every Python and architecture this machine can run. It fails when msgpack would fall back to
  pure Python or zstandard to cffi, round-trips a map through the codec, and checks that importing did not
  import boto3 (the runtime's copy is loaded lazily, on first DynamoDB call).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from build import (
    ARCHES,
    DEFAULT_OUT,
    DROPPED_DIRS,
    DROPPED_DIST_INFO,
    DROPPED_SUFFIXES,
    PYTHONS,
    RUNTIME_PROVIDED,
    UNUSED,
    UNZIPPED_LIMIT,
    ZIP_EPOCH,
    ZIPPED_LIMIT,
    elf_machine,
    find_python,
    sha256,
)

HOST_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
EXTENSION = re.compile(r"\.cpython-(?P<abi>3\d+)-(?P<triplet>[\w-]+)\.so$")
#: Precompiled bytecode (build.precompile): only in __pycache__, only for a supported CPython.
PYC = re.compile(r"/__pycache__/[^/]+\.cpython-(?P<tag>3\d+)\.pyc$")
SITE = re.compile(r"^python/lib/python(?P<version>3\.\d+)/site-packages/(?P<rest>.+)$")

CORE_SMOKE = r"""
import importlib.metadata, json, sys
root = sys.argv[1]
sys.path[:0] = [root]
import msgpack._cmsgpack  # raises the real ImportError (wrong machine, ABI, glibc) instead of a silent fallback
import aws_lambda_persistence, msgpack, zstandard
from aws_lambda_persistence._msgpack import MsgpackZstdCodec
assert msgpack.Packer.__module__ == "msgpack._cmsgpack", "msgpack fell back to pure Python"
assert zstandard.backend == "cext", f"zstandard backend is {zstandard.backend}"
for module in (aws_lambda_persistence, msgpack, zstandard):
    assert module.__file__.startswith(root), f"{module.__name__} imported from {module.__file__}"
codec = MsgpackZstdCodec()
value = {"n": 1, "t": (1, 2), "s": {3}, "b": b"\x00" * 1000, 10**30: None}
body = codec.join([codec.encode_entry(k, v) for k, v in value.items()])
assert codec.decode(codec.compress(body), len(body)) == value
assert "boto3" not in sys.modules, "importing the package imported boto3"
print(json.dumps({"python": sys.version.split()[0], "msgpack": msgpack.version, "zstandard": zstandard.__version__,
                  "package": importlib.metadata.version("aws-lambda-persistence")}))
"""

LITE_SMOKE = r"""
import importlib.metadata, json, sys
root = sys.argv[1]
sys.path[:0] = [root]
import aws_lambda_persistence_lite
from aws_lambda_persistence_lite._pickle import PickleCodec
assert aws_lambda_persistence_lite.__file__.startswith(root), aws_lambda_persistence_lite.__file__
codec = PickleCodec()
value = {"n": 1, "t": (1, 2), "s": {3}}
body = codec.join([codec.encode_entry(k, v) for k, v in value.items()])
assert codec.decode(codec.compress(body), len(body)) == value
assert "boto3" not in sys.modules, "importing the package imported boto3"
print(json.dumps({"python": sys.version.split()[0],
                  "package": importlib.metadata.version("aws-lambda-persistence-lite")}))
"""


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    smoke: list[str] = field(default_factory=list)  # one line per import test run
    skipped: list[str] = field(default_factory=list)  # combinations this machine cannot run

    @property
    def ok(self) -> bool:
        return not self.problems


def check_entries(layer: dict[str, Any], zf: zipfile.ZipFile, pythons: list[str]) -> list[str]:
    """Layout, attributes and native code of one zip."""
    problems: list[str] = []
    where = layer["file"]
    names = [info.filename for info in zf.infolist()]
    if names != sorted(names):
        problems.append(f"{where}: entries are not sorted")
    if len(set(names)) != len(names):
        problems.append(f"{where}: duplicate entries")
    arch = ARCHES[layer["architectures"][0]] if layer["kind"] == "core" else None
    found: dict[str, set[str]] = {p: set() for p in pythons}
    for info in zf.infolist():
        name = info.filename
        parts = name.split("/")
        mode = info.external_attr >> 16
        if parts[0] != "python" or ".." in parts or name.startswith("/") or info.is_dir():
            problems.append(f"{where}: {name} is not a file under python/")
            continue
        if (
            info.date_time != ZIP_EPOCH
            or info.extra
            or stat.S_IMODE(mode) not in (0o644, 0o755)
            or not stat.S_ISREG(mode)
        ):
            problems.append(f"{where}: {name} has a timestamp, mode {oct(mode)} or extra field that varies")
        if compiled := PYC.search(name):
            site_version = SITE.match(name)
            tag = compiled["tag"]
            if site_version and site_version["version"].replace(".", "") != tag:
                problems.append(f"{where}: {name} is compiled for cpython-{tag}, not python{site_version['version']}")
            elif tag not in {p.replace(".", "") for p in PYTHONS}:
                problems.append(f"{where}: {name} is compiled for an unsupported Python")
            continue
        if (
            DROPPED_DIRS.intersection(parts)
            or name.endswith(DROPPED_SUFFIXES)
            or parts[-1] in DROPPED_DIST_INFO
            or any(p.search(name) for p in UNUSED)
        ):
            problems.append(f"{where}: {name} should have been left out")
        if layer["kind"] == "lite":
            if not re.match(r"^python/aws_lambda_persistence_lite(-[^/]+\.dist-info)?/", name):
                problems.append(f"{where}: unexpected {name} in the lite layer")
            if name.endswith(".so"):
                problems.append(f"{where}: native code {name} in the pure-Python layer")
            continue
        site = SITE.match(name)
        if not site or site["version"] not in found:
            problems.append(f"{where}: {name} is outside the site-packages of a supported Python")
            continue
        rest = site["rest"]
        top = rest.split("/")[0]
        if top.removesuffix(".py") in RUNTIME_PROVIDED:
            problems.append(f"{where}: {name} is already in the Lambda runtime")
        found[site["version"]].add(top)
        if name.endswith(".so") and arch is not None:
            data = zf.read(info)
            machine = elf_machine(data)
            if machine != arch.e_machine:
                problems.append(f"{where}: {name} is ELF machine {machine}, not {arch.e_machine} ({arch.machine})")
            tag = EXTENSION.search(name)
            expected = site["version"].replace(".", "")
            if not name.endswith(".abi3.so") and (not tag or tag["abi"] != expected or tag["triplet"] != arch.triplet):
                problems.append(f"{where}: {name} is not built for cpython-{expected}-{arch.triplet}")
    if layer["kind"] == "core":
        for python, tops in found.items():
            missing = {"aws_lambda_persistence", "aws_lambda_persistence_lite", "msgpack", "zstandard"} - tops
            if missing:
                problems.append(f"{where}: python{python} lacks {sorted(missing)}")
    return problems


def smoke(exe: str, code: str, path: Path) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            [exe, "-I", "-S", "-c", code, str(path)], capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return False, "timed out"
    return done.returncode == 0, (done.stdout.strip() if done.returncode == 0 else done.stderr.strip())


def smoke_layer(layer: dict[str, Any], zip_path: Path, report: Report, pythons: list[str]) -> None:
    runs: list[tuple[str, str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="layer-smoke-") as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        for python in pythons:
            label = f"{layer['file']} python{python}"
            if layer["kind"] == "core" and ARCHES[layer["architectures"][0]].machine != HOST_MACHINE:
                report.skipped.append(f"{label}: needs an {layer['architectures'][0]} machine")
                continue
            exe = find_python(python)
            if exe is None:
                report.skipped.append(f"{label}: no python{python} on this machine")
                continue
            path = (
                Path(tmp, "python", "lib", f"python{python}", "site-packages")
                if layer["kind"] == "core"
                else Path(tmp, "python")
            )
            runs.append((label, exe, path))
        code = CORE_SMOKE if layer["kind"] == "core" else LITE_SMOKE
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            results = list(pool.map(lambda run: smoke(run[1], code, run[2]), runs))
    for (label, _, _), (ok, detail) in zip(runs, results, strict=True):
        if ok:
            report.smoke.append(f"{label}: {detail}")
        else:
            report.problems.append(f"{label}: import smoke test failed:\n{detail}")


def verify(out: Path = DEFAULT_OUT, run_smoke: bool = True) -> Report:
    report = Report()
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        report.problems.append(f"{manifest_path} is missing: build first")
        return report
    manifest = json.loads(manifest_path.read_text())
    pythons = manifest["pythons"]
    for layer in manifest["layers"]:
        zip_path = out / layer["file"]
        if not zip_path.exists():
            report.problems.append(f"{zip_path} is missing")
            continue
        if sha256(zip_path) != layer["sha256"]:
            report.problems.append(f"{layer['file']}: SHA-256 differs from the manifest")
        size = zip_path.stat().st_size
        with zipfile.ZipFile(zip_path) as zf:
            unzipped = sum(info.file_size for info in zf.infolist())
            report.problems += check_entries(layer, zf, pythons)
        if size > ZIPPED_LIMIT:
            report.problems.append(f"{layer['file']}: {size} bytes zipped, over the {ZIPPED_LIMIT} upload limit")
        if unzipped > UNZIPPED_LIMIT:
            report.problems.append(f"{layer['file']}: {unzipped} bytes unzipped, over Lambda's {UNZIPPED_LIMIT}")
        if run_smoke:
            smoke_layer(layer, zip_path, report, pythons)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory with manifest.json and the zips")
    parser.add_argument("--no-smoke", action="store_true", help="skip the import smoke tests")
    args = parser.parse_args(argv)
    report = verify(args.out, run_smoke=not args.no_smoke)
    for line in report.smoke:
        print(f"ok      {line}")
    for line in report.skipped:
        print(f"skipped {line}")
    for line in report.problems:
        print(f"FAILED  {line}", file=sys.stderr)
    print("verify: " + ("all checks passed" if report.ok else f"{len(report.problems)} problem(s)"))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
