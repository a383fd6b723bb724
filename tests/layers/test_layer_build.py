"""The built layers: layout, native code, sizes, determinism and imports in clean interpreters."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import build
import pytest
import verify

pytestmark = pytest.mark.slow
EXTENSION = r"python/lib/python3\.(\d+)/site-packages/(\w+)/(\w+)\.cpython-3(\d+)-([\w-]+)\.so"


def manifest(out: Path) -> dict[str, Any]:
    written: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return written


def test_manifest_lists_every_layer(built: Path, builder: ModuleType) -> None:
    layers = {layer["name"]: layer for layer in manifest(built)["layers"]}
    assert set(layers) == {
        "aws-lambda-persistence-x86_64",
        "aws-lambda-persistence-arm64",
        "aws-lambda-persistence-lite",
    }
    assert layers["aws-lambda-persistence-lite"]["architectures"] == ["x86_64", "arm64"]
    for layer in layers.values():
        assert layer["runtimes"] == [f"python3.{minor}" for minor in range(10, 15)]
        assert builder.sha256(built / layer["file"]) == layer["sha256"]


def test_verifier_passes_without_smoke(built: Path) -> None:
    report = verify.verify(built, run_smoke=False)
    assert report.problems == []


def test_every_shared_object_is_for_its_machine_and_abi(built: Path, builder: ModuleType) -> None:
    seen = set()
    for layer in manifest(built)["layers"]:
        with zipfile.ZipFile(built / layer["file"]) as zf:
            names = zf.namelist()
            assert all(name.startswith("python/") for name in names)
            for name in names:
                if not name.endswith(".so"):
                    continue
                assert layer["kind"] == "core", name
                arch = builder.ARCHES[layer["architectures"][0]]
                match = re.fullmatch(EXTENSION, name)
                assert match, name
                assert match[1] == match[4], f"{name}: ABI differs from its site-packages"
                assert match[5] == arch.triplet
                assert builder.elf_machine(zf.read(name)) == {"x86_64": 62, "arm64": 183}[arch.name]
                seen.add((arch.name, match[1], match[2], match[3]))
    # Exactly the two C extensions used, for each of 2 architectures x 5 Pythons; no cffi backend.
    assert {(m, ext) for _, _, m, ext in seen} == {("msgpack", "_cmsgpack"), ("zstandard", "backend_c")}
    assert len(seen) == 2 * 5 * 2


def test_runtime_packages_and_noise_are_left_out(built: Path) -> None:
    for layer in manifest(built)["layers"]:
        with zipfile.ZipFile(built / layer["file"]) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                assert not {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"} & set(parts)
                assert not name.endswith((".pyo", ".pyi"))
                if name.endswith(".pyc"):  # only bytecode the build compiled itself, tagged for its Python
                    assert parts[-2] == "__pycache__" and ".cpython-3" in parts[-1], name
                assert parts[-1] != "RECORD"
                assert "cffi" not in parts[-1], name


def test_modules_are_precompiled_for_every_local_python(built: Path, builder: ModuleType) -> None:
    """/opt is read-only in Lambda: without shipped bytecode every cold start compiles the modules again."""
    import importlib.util

    for layer in manifest(built)["layers"]:
        with zipfile.ZipFile(built / layer["file"]) as zf:
            names = set(zf.namelist())
        for version in builder.local_pythons():
            site = f"python/lib/python{version}/site-packages/" if layer["kind"] == "core" else "python/"
            sources = [n for n in names if n.startswith(site) and n.endswith(".py")]
            assert sources
            tag = f"cpython-{version.replace('.', '')}"
            for source in sources:
                cached = importlib.util.cache_from_source(source).rsplit(".cpython-", 1)[0] + f".{tag}.pyc"
                assert cached in names, f"{layer['file']}: no bytecode for {source} ({tag})"


def test_sizes_are_within_lambda_limits(built: Path, builder: ModuleType) -> None:
    for layer in manifest(built)["layers"]:
        path = built / layer["file"]
        with zipfile.ZipFile(path) as zf:
            unzipped = sum(info.file_size for info in zf.infolist())
        assert path.stat().st_size == layer["size"] <= builder.ZIPPED_LIMIT
        assert unzipped == layer["unzipped_size"] <= builder.UNZIPPED_LIMIT
        if layer["kind"] == "core":  # stripped: the wheels' debug info alone is over 100 MB per architecture
            assert unzipped < 20 * 1024 * 1024


def test_two_builds_are_byte_identical(built: Path, rebuilt: Path) -> None:
    first = sorted(p.name for p in built.iterdir())
    assert first == sorted(p.name for p in rebuilt.iterdir())
    for name in first:
        assert (built / name).read_bytes() == (rebuilt / name).read_bytes(), name


def test_zip_entries_are_normalised(built: Path) -> None:
    for layer in manifest(built)["layers"]:
        with zipfile.ZipFile(built / layer["file"]) as zf:
            infos = zf.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 in (0o100644, 0o100755)
            assert info.extra == b""


def test_import_smoke_in_clean_interpreters(built: Path) -> None:
    report = verify.verify(built)
    assert report.problems == []
    if not report.smoke:
        pytest.skip(f"no layer can run on this machine: {report.skipped}")
    core_runs = [line for line in report.smoke if "aws-lambda-persistence-2" in line]
    assert core_runs or verify.HOST_MACHINE not in ("x86_64", "aarch64")


def test_smoke_fails_loudly_without_the_msgpack_extension(built: Path, tmp_path: Path) -> None:
    """A layer whose _cmsgpack does not load must fail, not run msgpack's pure-Python fallback."""
    host = {"x86_64": "x86_64", "aarch64": "arm64"}.get(verify.HOST_MACHINE)
    python = next((p for p in manifest(built)["pythons"] if build.find_python(p)), None)
    if host is None or python is None:
        pytest.skip("no runnable interpreter for this machine's layer")
    layer = next(x for x in manifest(built)["layers"] if x["architectures"] == [host])
    with zipfile.ZipFile(built / layer["file"]) as zf:
        zf.extractall(tmp_path)
    site = tmp_path / "python" / "lib" / f"python{python}" / "site-packages"
    for so in (site / "msgpack").glob("_cmsgpack*.so"):
        so.unlink()
    ok, detail = verify.smoke(build.find_python(python) or "", verify.CORE_SMOKE, site)
    assert not ok
    assert "_cmsgpack" in detail


def test_verifier_rejects_foreign_machine_code(built: Path, tmp_path: Path) -> None:
    """An x86_64 extension renamed into the arm64 layer is caught by its ELF header, not by its name."""
    layers = {x["name"]: x for x in manifest(built)["layers"]}
    x86, arm = layers["aws-lambda-persistence-x86_64"], layers["aws-lambda-persistence-arm64"]
    with zipfile.ZipFile(built / x86["file"]) as zf:
        x86_so = next(zf.read(n) for n in zf.namelist() if n.endswith(".so") and "python3.12" in n)
    bad = tmp_path / arm["file"]
    with zipfile.ZipFile(built / arm["file"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".so") and "python3.12" in info.filename and "_cmsgpack" in info.filename:
                data = x86_so
            dst.writestr(info, data)
    with zipfile.ZipFile(bad) as zf:
        problems = verify.check_entries(arm, zf, manifest(built)["pythons"])
    assert any("ELF machine 62" in p for p in problems), problems


def test_committed_sizes_are_those_of_a_fresh_build(built: Path) -> None:
    """layers/sizes.json, from which tools/figures.py writes the READMEs' layer figures, shows what this source
    builds to: the READMEs' tables rendered from either are the same (sizes to 10 kB, file counts exactly)."""
    from tools import figures

    fresh, committed = figures.summarize(manifest(built)), json.loads(figures.SIZES.read_text())
    if fresh["precompiled"] != committed["precompiled"]:
        pytest.skip(f"bytecode for {fresh['precompiled']} here, for {committed['precompiled']} in layers/sizes.json")
    for name in ("layers", "layer-sizes"):
        render = figures.RENDERERS[name]
        assert render(figures.Results(""), fresh) == render(figures.Results(""), committed), (
            "layers/sizes.json is stale: python3 tools/dev.py layers, then "
            "python3 tools/figures.py --layers build/layers/manifest.json"
        )
