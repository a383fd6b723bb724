#!/usr/bin/env python3
"""Build the AWS Lambda layers of aws-lambda-persistence without Docker: ``python tools/layers/build.py``.

Layers written to ``build/layers/`` (plus ``manifest.json`` with their SHA-256s):

* ``aws-lambda-persistence-<version>-x86_64.zip`` and ``...-arm64.zip``: the core package with msgpack and
  zstandard. **One zip per architecture, holding one ``python/lib/python3.X/site-packages/`` per Python version
  (3.10 to 3.14).** Lambda adds only the directory of the function's own runtime to ``sys.path``, so one layer
  version serves every Python runtime of its architecture: users choose an ARN by architecture alone and a
  runtime upgrade needs no layer change. The price is five copies of the stripped native extensions per zip
  (a few MB), far below Lambda's limits; one zip per (architecture, Python) pair would mean ten ARNs per region.
* ``aws-lambda-persistence-lite-<version>.zip``: the pure-Python lite package under ``python/``, for every
  runtime and architecture.

Native code comes from pinned manylinux wheels (tools/layers/requirements.txt) fetched with pip's ``--platform``
options, so no Docker or cross compiler is needed. Each Python version gets the manylinux tags its runtime's
glibc accepts. The packages of this repository are built as wheels. What every runtime already ships (boto3 and
its dependencies), bytecode, type stubs, RECORD files and zstandard's unused cffi backend are left out; shared
objects are stripped with the first strip tool that understands their machine.

Zips are deterministic (sorted entries, 1980-01-01 timestamps, fixed modes, no extra fields): building twice with
the same tools gives byte-identical files. zlib and the strip tool do affect the bytes, so the manifest names them.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "build" / "layers"
DEFAULT_CACHE = ROOT / ".cache" / "layers-wheels"
REQUIREMENTS = HERE / "requirements.txt"
CORE_SRC = ROOT / "packages" / "aws-lambda-persistence"
LITE_SRC = ROOT / "packages" / "aws-lambda-persistence-lite"

PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
#: glibc minor version of each Lambda runtime: Amazon Linux 2 (2.26) up to 3.11, Amazon Linux 2023 (2.34) after.
RUNTIME_GLIBC = {"3.10": 26, "3.11": 26, "3.12": 34, "3.13": 34, "3.14": 34}
#: Top-level modules every Lambda Python runtime already has: shipping them again only adds size and skew.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
RUNTIME_PROVIDED_DISTS = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "urllib3", "six"})
#: zstandard ships a cffi backend next to the C one; with the cffi module absent it is dead weight.
UNUSED = (re.compile(r"zstandard/_cffi\..*\.so$"), re.compile(r"zstandard/backend_cffi\.py$"))
DROPPED_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
DROPPED_SUFFIXES = (".pyc", ".pyo", ".pyi")
DROPPED_DIRS = frozenset({"__pycache__", "tests", "test"})

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIPPED_LIMIT = 50 * 1024 * 1024  # direct upload (publish_layer_version with ZipFile)
UNZIPPED_LIMIT = 250 * 1024 * 1024  # function plus all its layers, unzipped


@dataclass(frozen=True)
class Arch:
    """One Lambda architecture and how its machine code is recognised."""

    name: str  # Lambda's name: x86_64 or arm64
    machine: str  # wheel platform tag and uname: x86_64 or aarch64
    e_machine: int  # ELF header field
    triplet: str  # in extension file names and cross tool names

    def platforms(self, python: str) -> list[str]:
        """manylinux tags this runtime's glibc accepts, most specific first (pip prefers earlier tags)."""
        lowest = 17 if self.machine == "aarch64" else 5
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(RUNTIME_GLIBC[python], lowest - 1, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{alias}_{self.machine}" for minor, alias in legacy.items() if minor >= lowest]
        return tags


ARCHES = {
    a.name: a
    for a in (Arch("x86_64", "x86_64", 62, "x86_64-linux-gnu"), Arch("arm64", "aarch64", 183, "aarch64-linux-gnu"))
}


class BuildError(RuntimeError):
    pass


class DownloadError(BuildError):
    """pip could not fetch a wheel (offline, index down): tests skip on it rather than fail."""


@dataclass
class Staged:
    """The files of one zip, by archive path: (content, mode)."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    unstripped: int = 0  # bytes the shared objects had before stripping (the layers' READMEs show the saving)

    def add(self, name: str, data: bytes, mode: int) -> None:
        if name in self.files and self.files[name][0] != data:
            raise BuildError(f"two different files would be stored at {name}")
        self.files[name] = (data, mode)


# -- fetching and building wheels -----------------------------------------------------------------------------


def pinned() -> dict[str, str]:
    pins = {}
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input", "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def fetch_native(arch: Arch, python: str, cache: Path) -> list[Path]:
    """The pinned manylinux wheels for one (architecture, Python): from the cache, else from the index."""
    dest = cache / f"{arch.machine}-cp{python.replace('.', '')}"
    dest.mkdir(parents=True, exist_ok=True)
    base = [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        *(arg for tag in arch.platforms(python) for arg in ("--platform", tag)),
        "-r",
        str(REQUIREMENTS),
        "-d",
        str(dest),
    ]
    if _pip(*base, "--no-index", "--find-links", str(dest)).returncode != 0:
        online = _pip(*base)
        if online.returncode != 0:
            raise DownloadError(f"pip download for {arch.name} Python {python} failed:\n{online.stderr.strip()}")
    wheels = []
    for name, version in pinned().items():
        found = sorted(dest.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if len(found) != 1:
            raise BuildError(f"expected one {name} {version} wheel in {dest}, found {[p.name for p in found]}")
        wheels.append(found[0])
    return wheels


def build_own_wheels(dest: Path) -> dict[str, Path]:
    """Wheels of the two packages of this repository, keyed by distribution name."""
    # With hatchling importable, build without isolation: no download, so it works offline too.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    result = _pip("wheel", "--no-deps", *isolation, "-w", str(dest), str(LITE_SRC), str(CORE_SRC))
    if result.returncode != 0:
        raise BuildError(f"pip wheel of this repository's packages failed:\n{result.stderr.strip()}")
    wheels = {}
    for dist in ("aws_lambda_persistence_lite", "aws_lambda_persistence"):
        found = sorted(dest.glob(f"{dist}-*-py3-none-any.whl"))
        if len(found) != 1:
            raise BuildError(f"expected one {dist} wheel, found {[p.name for p in found]}")
        wheels[dist] = found[0]
    return wheels


# -- selecting files -------------------------------------------------------------------------------------------


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def kept_path(name: str) -> str | None:
    """Where a wheel member goes inside site-packages, or None when the layer leaves it out."""
    if name.endswith("/"):  # directory entries: the zip writer stores files only
        return None
    parts = name.split("/")
    if parts[0].endswith(".data"):  # purelib/platlib install into site-packages; scripts and headers are unused
        if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
            return None
        parts = parts[2:]
        name = "/".join(parts)
    top = parts[0]
    if top.endswith(".dist-info"):
        if top.split("-")[0] in RUNTIME_PROVIDED_DISTS or parts[-1] in DROPPED_DIST_INFO:
            return None
        return name
    if top.removesuffix(".py") in RUNTIME_PROVIDED or top.split(".")[0] in RUNTIME_PROVIDED:
        return None
    if DROPPED_DIRS.intersection(parts[:-1]) or name.endswith(DROPPED_SUFFIXES):
        return None
    if any(pattern.search(name) for pattern in UNUSED):
        return None
    return name


def wheel_members(wheel: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            target = kept_path(info.filename)
            if target is not None:
                yield target, zf.read(info)


# -- stripping -------------------------------------------------------------------------------------------------


def elf_machine(data: bytes) -> int | None:
    """e_machine of a 64-bit little-endian ELF file, or None when ``data`` is not one."""
    if len(data) < 20 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    return int.from_bytes(data[18:20], "little")


class Stripper:
    """Finds, per machine, a strip that really handles it: GNU strip refuses foreign ELF, llvm-strip does not."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tools: dict[str, str | None] = {}

    def candidates(self, arch: Arch) -> Iterable[str]:
        yield f"{arch.triplet}-strip"
        yield "llvm-strip"
        yield from sorted(
            {p.name for d in os.environ.get("PATH", "").split(os.pathsep) if d for p in Path(d).glob("llvm-strip-*")},
            reverse=True,
        )
        yield "strip"

    def _run(self, tool: str, data: bytes) -> bytes | None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "lib.so"
            path.write_bytes(data)
            try:
                done = subprocess.run([tool, "--strip-unneeded", str(path)], capture_output=True, check=False)
            except OSError:
                return None
            return path.read_bytes() if done.returncode == 0 else None

    def strip(self, arch: Arch, data: bytes) -> bytes:
        if not self.enabled:
            return data
        if arch.name not in self.tools:
            self.tools[arch.name] = None
            for candidate in self.candidates(arch):
                if (
                    shutil.which(candidate)
                    and (probe := self._run(candidate, data))
                    and elf_machine(probe) == arch.e_machine
                ):
                    self.tools[arch.name] = candidate
                    break
            else:
                print(
                    f"warning: no strip tool handles {arch.machine}; its shared objects stay unstripped",
                    file=sys.stderr,
                )
        tool = self.tools[arch.name]
        if tool is None:
            return data
        out = self._run(tool, data)
        if out is None or elf_machine(out) != arch.e_machine:
            raise BuildError(f"{tool} failed on a {arch.machine} shared object")
        return out

    def describe(self, arch: Arch) -> str | None:
        tool = self.tools.get(arch.name)
        if tool is None:
            return None
        version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
        lines = [line for line in version.splitlines() if line.strip()]
        return f"{tool}: {lines[0].strip()}" if lines else tool


# -- deterministic zips ----------------------------------------------------------------------------------------


@cache
def find_python(version: str) -> str | None:
    """A working interpreter of ``version``: $LAYERS_PYTHON_3_X, pythonX.Y on PATH, else a pyenv install."""
    candidates = [os.environ.get(f"LAYERS_PYTHON_{version.replace('.', '_')}"), shutil.which(f"python{version}")]
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for exe in filter(None, candidates):
        try:
            probe = subprocess.run(
                [exe, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return exe
    return None


#: Python 3.10's marshal writes reference flags that depend on refcounts, so its bytecode differs between two
#: builds; from 3.11 on it is reproducible. 3.10 functions compile the layer's modules at cold start instead.
PRECOMPILED = tuple(v for v in PYTHONS if v != "3.10")


def local_pythons() -> dict[str, str]:
    """The layer's Python versions that have an interpreter on this machine and can precompile reproducibly."""
    found = {version: find_python(version) for version in PRECOMPILED}
    return {version: path for version, path in found.items() if path}


def precompile(staged: Staged, prefix: str, version: str, interpreter: str) -> None:
    """Add ``__pycache__/*.cpython-3XY.pyc`` for every .py under ``prefix``, compiled by Python ``version``.

    /opt is read-only in Lambda, so without them every cold start compiles the modules again (measured: about
    15 ms for this library). unchecked-hash pycs are never checked against the source (no stat, no timestamps)
    and are the same bytes on every build.
    """
    sources = {
        name: data for name, (data, _) in staged.files.items() if name.startswith(prefix) and name.endswith(".py")
    }
    if not sources:
        return
    with tempfile.TemporaryDirectory(prefix="layers-pyc-") as tmp:
        root = Path(tmp)
        for name, data in sources.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        subprocess.run(
            [
                interpreter,
                "-I",
                "-m",
                "compileall",
                "-q",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
                tmp,
                "-p",
                "/opt",
                str(root / prefix),
            ],
            check=True,
            # a fixed hash seed: frozenset constants are marshalled in iteration order, which the seed decides
            env=dict(os.environ, SOURCE_DATE_EPOCH="315532800", PYTHONHASHSEED="0"),
        )
        tag = f"cpython-{version.replace('.', '')}"
        for pyc in sorted(root.rglob(f"*.{tag}.pyc")):
            staged.add(pyc.relative_to(root).as_posix(), pyc.read_bytes(), 0o644)


def write_zip(path: Path, staged: Staged) -> None:
    """Sorted entries, fixed timestamps and modes, no directory entries or extra fields: same input, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(staged.files):
            data, mode = staged.files[name]
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.create_system = 3  # Unix, so that external_attr carries the mode
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
    tmp = path.with_suffix(".zip.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_mode(name: str) -> int:
    return 0o755 if name.endswith(".so") else 0o644


# -- the layers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    name: str  # the Lambda layer name
    file: str
    kind: str  # "core" or "lite"
    architectures: tuple[str, ...]
    runtimes: tuple[str, ...]
    description: str


def layer_specs(version: str, arches: Iterable[str]) -> list[LayerSpec]:
    runtimes = tuple(f"python{p}" for p in PYTHONS)
    specs = [
        LayerSpec(
            f"aws-lambda-persistence-{a}",
            f"aws-lambda-persistence-{version}-{a}.zip",
            "core",
            (a,),
            runtimes,
            f"aws-lambda-persistence {version} with msgpack and zstandard ({a})",
        )
        for a in arches
    ]
    specs.append(
        LayerSpec(
            "aws-lambda-persistence-lite",
            f"aws-lambda-persistence-lite-{version}.zip",
            "lite",
            tuple(ARCHES),
            runtimes,
            f"aws-lambda-persistence-lite {version} (pure Python)",
        )
    )
    return specs


def stage_core(arch: Arch, own: dict[str, Path], native: dict[str, list[Path]], stripper: Stripper) -> Staged:
    staged = Staged()
    for python in PYTHONS:
        prefix = f"python/lib/python{python}/site-packages/"
        for wheel in [*own.values(), *native[python]]:
            for name, data in wheel_members(wheel):
                kept = data
                if name.endswith(".so"):
                    staged.unstripped += len(data)
                    kept = stripper.strip(arch, data)
                staged.add(prefix + name, kept, file_mode(name))
    for python, interpreter in local_pythons().items():
        precompile(staged, f"python/lib/python{python}/site-packages/", python, interpreter)
    return staged


def stage_lite(own: dict[str, Path]) -> Staged:
    staged = Staged()
    for name, data in wheel_members(own["aws_lambda_persistence_lite"]):
        staged.add("python/" + name, data, file_mode(name))
    for python, interpreter in local_pythons().items():
        precompile(staged, "python/", python, interpreter)
    return staged


def build(
    out: Path = DEFAULT_OUT,
    cache: Path = DEFAULT_CACHE,
    arches: Iterable[str] = tuple(ARCHES),
    strip: bool = True,
    jobs: int = 4,
) -> dict[str, Any]:
    """Build every layer into ``out`` and write ``out/manifest.json``; returns the manifest."""
    arches = list(arches)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [(ARCHES[a], p) for a in arches for p in PYTHONS]
    with tempfile.TemporaryDirectory(prefix="layers-wheels-") as tmp, ThreadPoolExecutor(max(1, jobs)) as pool:
        own_future = pool.submit(build_own_wheels, Path(tmp))
        fetched = dict(zip(pairs, pool.map(lambda pair: fetch_native(pair[0], pair[1], cache), pairs), strict=True))
        own = own_future.result()
        version = wheel_version(own["aws_lambda_persistence"])
        stripper = Stripper(strip)
        specs = layer_specs(version, arches)
        staged = {}
        for spec in specs:
            if spec.kind == "core":
                arch = ARCHES[spec.architectures[0]]
                staged[spec.file] = stage_core(arch, own, {p: fetched[arch, p] for p in PYTHONS}, stripper)
            else:
                staged[spec.file] = stage_lite(own)
        for spec in specs:
            write_zip(out / spec.file, staged[spec.file])

    layers = []
    for spec in specs:
        path = out / spec.file
        files = staged[spec.file].files
        entry: dict[str, Any] = {
            "name": spec.name,
            "file": spec.file,
            "kind": spec.kind,
            "sha256": sha256(path),
            "size": path.stat().st_size,
            "unzipped_size": sum(len(data) for data, _ in files.values()),
            "files": len(files),
            "unstripped_size": sum(len(d) for n, (d, _) in files.items() if not n.endswith(".so"))
            + staged[spec.file].unstripped,
            "architectures": list(spec.architectures),
            "runtimes": list(spec.runtimes),
            "description": spec.description,
            "license": "GPL-3.0-or-later",
        }
        if spec.kind == "core":
            arch = ARCHES[spec.architectures[0]]
            entry["strip"] = stripper.describe(arch)
            entry["wheels"] = {w.name: sha256(w) for p in PYTHONS for w in fetched[arch, p]}
        layers.append(entry)
    manifest = {
        "schema": 1,
        "version": version,
        "pythons": list(PYTHONS),
        "precompiled": sorted(local_pythons()),
        "builder": {"zlib": zlib.ZLIB_RUNTIME_VERSION, "python": platform.python_version()},
        "layers": layers,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default build/layers)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloaded wheels (default .cache/)")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES), help="only these architectures")
    parser.add_argument("--no-strip", action="store_true", help="keep shared objects as the wheels ship them")
    parser.add_argument("--no-verify", action="store_true", help="skip verify.py (layout, ELF, sizes, imports)")
    parser.add_argument("--jobs", type=int, default=4, help="parallel pip downloads")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out, args.cache, args.arch or tuple(ARCHES), strip=not args.no_strip, jobs=args.jobs)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for layer in manifest["layers"]:
        print(
            f"{layer['file']}: {layer['size'] / 1e6:.2f} MB zipped, {layer['unzipped_size'] / 1e6:.2f} MB "
            f"unzipped, {layer['files']} files, sha256 {layer['sha256']}"
        )
    if args.no_verify:
        return 0
    import verify  # a sibling module: this directory is on sys.path when run as a script

    return verify.main(["--out", str(args.out)])


if __name__ == "__main__":
    sys.exit(main())
