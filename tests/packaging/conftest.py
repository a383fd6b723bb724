"""The release's distributions, built once per test worker by tools/release.py: the command release.yml runs.

tools/ holds scripts, not a package, so release.py is loaded from its file (under its own name: tests/layers puts
tools/layers on sys.path, where a module named ``build`` lives, and nothing here imports pypa's ``build``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "tools" / "release.py"


def load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alp_release_tool", RELEASE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def release() -> ModuleType:
    return load_release()


@pytest.fixture(scope="session")
def version(release: ModuleType) -> str:
    return str(release.source_version())


def release_build(*args: str) -> subprocess.CompletedProcess[str]:
    """``python tools/release.py build ARGS`` (``hatch run release:build ARGS`` runs exactly this)."""
    for needed in ("twine", "readme_renderer", "hatchling"):  # the release env's tools (not in the lite env)
        pytest.importorskip(needed)
    return subprocess.run(
        [sys.executable, str(RELEASE), "build", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory, version: str) -> Path:
    """The four files a release uploads, built and checked for the tag naming the current version."""
    out = tmp_path_factory.mktemp("release") / "dist"
    proc = release_build("--tag", f"v{version}", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out
