"""The sources of the packaging: one place for the version, the GPL's text beside every package, READMEs that work
on PyPI, and the version the code reports."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.docs.test_docs import container, python_blocks

from .conftest import ROOT, load_release

RELEASE = load_release()
VERSION = RELEASE.source_version()
PACKAGE_DIRS = sorted((ROOT / "packages").iterdir())

#: Files that may state the version without reading it: records of what was measured on a given build, and test
#: data. Any other file that writes it is a second source, which the next release would leave behind.
VERSION_RECORDS = {
    "packages/aws-lambda-persistence-lite/src/aws_lambda_persistence_lite/__init__.py",  # the source itself
    "tools/bench/RESULTS.md",  # benchmark runs, each naming the versions it measured
    "layers/README.md",  # sizes measured on a build, named after its zips
    "layers/sizes.json",  # the figures of the last layer build (tools/figures.py), named after its zips
    "tests/layers/test_layer_publish.py",  # a sample manifest for the publisher
}


def tracked_files() -> list[str]:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listing = [git, "ls-files", "--cached", "--others", "--exclude-standard"]  # new files too, not the ignored ones
    return subprocess.run(listing, cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()


def test_the_version_is_written_in_one_place() -> None:
    literal = re.compile(rf"(?<![\w.]){re.escape(VERSION)}(?![\w.])")
    stating = []
    for name in tracked_files():
        path = ROOT / name
        if name in VERSION_RECORDS or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        stating += [
            f"{name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if literal.search(line)
        ]
    assert not stating, f"{VERSION} written outside {RELEASE.VERSION_FILE.relative_to(ROOT)}:\n" + "\n".join(stating)


def test_both_packages_and_the_workspace_read_it() -> None:
    """hatchling's dynamic version, for each; the full package's pin comes from hatch_build.py (test_archives)."""
    for project in [ROOT, *PACKAGE_DIRS]:
        text = (project / "pyproject.toml").read_text()
        assert re.search(r'^dynamic = \[[^]]*"version"', text, re.MULTILINE), project
        found = re.search(r'^\[tool\.hatch\.version\]\npath = "([^"]+)"', text, re.MULTILINE)
        assert found and (project / found.group(1)).resolve() == RELEASE.VERSION_FILE, project


@pytest.mark.parametrize("module", ["aws_lambda_persistence_lite", "aws_lambda_persistence"])
def test_the_installed_code_reports_its_distribution_version(module: str) -> None:
    """In this environment (editable installs of the workspace); the built wheels are checked by tools/release.py."""
    try:
        package = importlib.import_module(module)
    except ImportError:
        pytest.skip(f"{module} is not installed here")
    assert package.__version__ == importlib.metadata.version(module.replace("_", "-")) == VERSION


def test_license_is_the_gpl_v3_everywhere() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007")
    assert "END OF TERMS AND CONDITIONS" in text and "How to Apply These Terms to Your New Programs" in text
    for package in PACKAGE_DIRS:  # PEP 639: license-files are relative to the package's own pyproject.toml
        assert (package / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes(), package
        assert 'license-files = ["LICENSE"]' in (package / "pyproject.toml").read_text()


@pytest.mark.parametrize("package", PACKAGE_DIRS, ids=lambda p: p.name)
def test_package_readme_works_on_pypi(package: Path) -> None:
    """PyPI shows the README alone: every link and image must be absolute, and it must render as PyPI renders it."""
    text = (package / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)", text) + re.findall(r'(?:src|href)="([^"]+)"', text)
    assert targets, "no links: the README should lead to the project"
    assert [t for t in targets if not t.startswith("https://")] == []
    renderer = pytest.importorskip("readme_renderer.markdown")
    html = renderer.render(text)
    assert html is not None and "PersistentMap" in html


def test_full_readme_example_runs(aws: Any, core: Any, table_key: str) -> None:
    (example,) = python_blocks(ROOT / "packages" / "aws-lambda-persistence" / "README.md")
    first, second = container(example, core), container(example, core)
    assert first["lambda_handler"]({}, None) == {"invocations": 1}
    assert second["lambda_handler"]({}, None) == {"invocations": 2}  # another container, cold
