"""Import cost of each package from its Lambda layer, with the bytecode the layer ships and without it.

Why: Lambda extracts layers to ``/opt``, which is read-only, so a module without a ``.pyc`` in the layer is
compiled again on every cold start. tools/layers/build.py ships bytecode for the runtimes it can; this measures
what that saves. The layers are built from the current source (this machine's architecture only) into a
temporary directory, extracted once as built and once with every ``__pycache__`` removed, and imported the way
Lambda imports them: the layer's directory first on ``sys.path`` (PYTHONPATH), boto3 already imported (every
runtime has it and the function imports it first in practice), no bytecode written (PYTHONDONTWRITEBYTECODE
stands in for the read-only ``/opt``).

    python tools/bench/layer_import.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from common import PACKAGES, ROOT, log, median, ms, table
from import_time import profile_import

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())


def build(out: Path) -> list[dict[str, object]]:
    """Build the layers for this machine's architecture into ``out``; return the manifest's layer entries."""
    command = [sys.executable, str(ROOT / "tools" / "layers" / "build.py"), "--out", str(out), "--no-verify"]
    subprocess.run([*command, "--arch", str(HOST_ARCH)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    layers: list[dict[str, object]] = json.loads((out / "manifest.json").read_text())["layers"]
    return layers


def extract(zip_path: Path, into: Path, bytecode: bool) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(into)
    if not bytecode:
        for cache in sorted(into.rglob("__pycache__")):
            shutil.rmtree(cache)


def site_dir(root: Path, kind: str) -> Path:
    """The directory Lambda's ``python3.X`` runtime puts on sys.path for this layer."""
    return root / "python" if kind == "lite" else root / "python" / "lib" / f"python{PYTHON}" / "site-packages"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per layer and variant")
    args = parser.parse_args()
    if HOST_ARCH is None:
        raise SystemExit(f"no Lambda architecture for this machine ({platform.machine()})")

    with tempfile.TemporaryDirectory(prefix="alp-layer-bench-") as tmp:
        work = Path(tmp)
        log("layer_import: building the layers from the current source")
        layers = build(work / "layers")
        variants: dict[tuple[str, bool], Path] = {}
        precompiled: dict[str, bool] = {}
        for layer in layers:
            kind = str(layer["kind"])
            for bytecode in (True, False):
                root = work / f"{kind}-{'pyc' if bytecode else 'source'}"
                extract(work / "layers" / str(layer["file"]), root, bytecode)
                variants[kind, bytecode] = site_dir(root, kind)
            precompiled[kind] = any(variants[kind, True].rglob("*.pyc"))

        def env(path: Path) -> dict[str, str]:
            return {"PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}

        for (kind, _), path in variants.items():  # the layer's copy is what gets imported, not the installed one
            origin = subprocess.run(
                [sys.executable, "-c", f"import {PACKAGES[kind]} as m; print(m.__file__)"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **env(path)},
            ).stdout.strip()
            if not origin.startswith(str(path)):
                raise RuntimeError(f"{PACKAGES[kind]} was imported from {origin}, not from the layer at {path}")

        timings: dict[tuple[str, bool], list[float]] = {key: [] for key in variants}
        for run in range(args.runs):  # interleaved, so that background load hits every variant alike
            log(f"layer_import: run {run + 1}/{args.runs}")
            for (kind, bytecode), path in variants.items():
                profile = profile_import(PACKAGES[kind], after="boto3", extra_env=env(path))
                timings[kind, bytecode].append(profile.own / 1e6)

    rows = []
    for kind, has_bytecode in precompiled.items():
        with_pyc, without = median(timings[kind, True]), median(timings[kind, False])
        shipped = "yes" if has_bytecode else f"no (no bytecode for Python {PYTHON} in this build)"
        rows.append([f"{kind} layer", shipped, ms(with_pyc), ms(without), f"{without / with_pyc:.1f}x"])
    print(
        f"### Import from the layer, after `import boto3` (Python {PYTHON}, {HOST_ARCH}, median of {args.runs} "
        "fresh interpreters, no bytecode written)\n"
    )
    print(
        table(
            ["layer", "bytecode in the layer", "as built", "with every `__pycache__` removed", "cost of compiling"],
            rows,
        )
    )
    print(
        "\n*As built* is what a cold start pays with the layer as published; the next column is what it would "
        "pay if the layer shipped sources only (Lambda's /opt is read-only: nothing compiled is kept). "
        "The core layer's time includes msgpack and zstandard, which it also carries."
    )


if __name__ == "__main__":
    main()
