"""Builds the layers once per session (twice, for the determinism test) with the real builder.

The tools live in tools/layers/ (scripts, not a package), so they are imported from there. Wheels are cached
under .cache/layers-wheels/, so only the first run downloads; without network the build tests skip.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "layers"
sys.path.insert(0, str(TOOLS))

import build  # noqa: E402

if Path(build.__file__).resolve().parent != TOOLS:  # another distribution named "build" was imported first
    raise ImportError(f"tests/layers imported {build.__file__} instead of {TOOLS / 'build.py'}")


def _build(out: Path) -> Path:
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed in this environment: the layer builder runs pip download")
    try:
        build.build(out)
    except build.DownloadError as exc:
        pytest.skip(f"pip cannot download the manylinux wheels (no network?): {exc}")
    return out


@pytest.fixture(scope="session")
def builder() -> ModuleType:
    return build


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build/layers/ of a fresh build: the zips and manifest.json."""
    return _build(tmp_path_factory.mktemp("layers-first"))


@pytest.fixture(scope="session")
def rebuilt(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, independent build into another directory."""
    return _build(tmp_path_factory.mktemp("layers-second"))
