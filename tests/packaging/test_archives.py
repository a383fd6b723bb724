"""What a release uploads, read back from the archives themselves (not through tools/release.py's own checks): the
four files, LICENSE inside each, the metadata PyPI shows, and wheels that do not depend on where they were built."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT, release_build

PACKAGES = {
    "aws-lambda-persistence-lite": "aws_lambda_persistence_lite",
    "aws-lambda-persistence": "aws_lambda_persistence",
}
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]
GITHUB = "https://github.com/gene1wood/aws-lambda-persistence"


def members(path: Path) -> dict[str, bytes]:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            return {n: whl.read(n) for n in whl.namelist()}
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def archive(dist: Path, name: str, version: str, kind: str) -> Path:
    stem = f"{PACKAGES[name]}-{version}"
    return dist / (f"{stem}.tar.gz" if kind == "sdist" else f"{stem}-py3-none-any.whl")


def metadata(path: Path, version: str) -> Message:
    stem = f"{path.name.split('-')[0]}-{version}"
    name = f"{stem}.dist-info/METADATA" if path.suffix == ".whl" else f"{stem}/PKG-INFO"
    return HeaderParser().parsestr(members(path)[name].decode())


def test_the_release_is_exactly_both_sdists_and_wheels(dist: Path, version: str) -> None:
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        f"{stem}-{version}{end}" for stem in PACKAGES.values() for end in (".tar.gz", "-py3-none-any.whl")
    )


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
@pytest.mark.parametrize("name", list(PACKAGES))
def test_archive(dist: Path, version: str, name: str, kind: str) -> None:
    path = archive(dist, name, version, kind)
    files = members(path)
    stem = f"{PACKAGES[name]}-{version}"
    where = f"{stem}.dist-info/licenses/LICENSE" if kind == "wheel" else f"{stem}/LICENSE"
    assert files[where] == (ROOT / "LICENSE").read_bytes()

    meta = metadata(path, version)
    assert (meta["Name"], meta["Version"], meta["Metadata-Version"]) == (name, version, "2.4")
    assert (meta["License-Expression"], meta.get_all("License-File")) == ("GPL-3.0-or-later", ["LICENSE"])
    classifiers = meta.get_all("Classifier") or []
    assert not [c for c in classifiers if c.startswith("License ::")]  # License-Expression replaces them (PEP 639)
    assert [
        c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")
    ] == PYTHONS
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Issues"}
    assert all(u.startswith(GITHUB) for u in urls.values())
    assert meta["Author-email"] == "Gene Wood <gene_wood@cementhorizon.com>"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload() == (ROOT / "packages" / name / "README.md").read_text()
    pins = [r for r in meta.get_all("Requires-Dist") or [] if r.startswith("aws-lambda-persistence")]
    assert pins == ([f"aws-lambda-persistence-lite=={version}"] if name == "aws-lambda-persistence" else [])


@pytest.mark.parametrize("name", list(PACKAGES))
def test_a_wheel_built_from_the_sdist_alone_is_the_released_wheel(
    dist: Path, version: str, name: str, tmp_path: Path
) -> None:
    """Unpacked away from the repository, the sdist has no sibling lite folder: the version and the pin come from its
    PKG-INFO, and hatchling's wheels are reproducible, so the wheel is the released one byte for byte."""
    with tarfile.open(archive(dist, name, version, "sdist")) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    source = tmp_path / "src" / f"{PACKAGES[name]}-{version}"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(tmp_path / "out"), str(source)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    wheel = archive(dist, name, version, "wheel")
    assert (tmp_path / "out" / wheel.name).read_bytes() == wheel.read_bytes()


def test_the_tag_must_name_the_version(tmp_path: Path) -> None:
    proc = release_build("--tag", "v0.0.0", "--out", str(tmp_path / "dist"))
    assert proc.returncode == 1
    assert "tag v0.0.0 does not match the version" in proc.stderr
    assert not (tmp_path / "dist").exists()


def test_the_output_directory_must_be_empty(tmp_path: Path) -> None:
    """The workflow uploads everything in dist/: a file left from another build must stop the release."""
    (tmp_path / "stale-0.1.tar.gz").write_bytes(b"")
    proc = release_build("--out", str(tmp_path))
    assert proc.returncode == 1
    assert "is not empty" in proc.stderr


def test_the_checks_refuse_what_pypi_would_show_wrong(release: ModuleType, version: str) -> None:
    """tools/release.py's metadata check on broken metadata: a relative README link, a missing pin, a license
    classifier beside License-Expression."""
    for needed in ("packaging", "readme_renderer"):
        pytest.importorskip(needed)
    text = (
        f"Metadata-Version: 2.4\nName: aws-lambda-persistence\nVersion: {version}\n"
        "License-Expression: GPL-3.0-or-later\n"
        "License-File: LICENSE\nClassifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)\n"
        "Description-Content-Type: text/markdown\n\nSee [the README](../../README.md).\n"
    )
    problems = "\n".join(release.metadata_problems("aws-lambda-persistence", version, text))
    assert "relative link '../../README.md'" in problems
    assert "a license classifier beside License-Expression" in problems
    assert "requirements on this project's packages: []" in problems
    assert "Project-URL missing" in problems
