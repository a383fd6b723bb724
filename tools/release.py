#!/usr/bin/env python3
"""Build and check a release's Python distributions: ``python tools/release.py build --tag vX.Y.Z --out dist/``.

.github/workflows/release.yml runs exactly this (``hatch run release:build``) and uploads every file of ``--out`` to
PyPI; tests/packaging runs it too, so the release is tested up to the upload. For each package it builds the sdist
from the package's folder, then the wheel from that sdist (what pip does with an sdist from PyPI), with
``python -m build`` and this environment's hatchling (no isolation: nothing else is downloaded). Then it checks
what PyPI would refuse or show wrong: names and versions against the tag, LICENSE inside every archive, the
metadata (license expression, the full package's exact pin on the lite one, classifiers, URLs, a README that
renders with absolute links), that a wheel built straight from the folder has the same metadata, that the code
reports the version it is published as, and ``twine check --strict``.

``python tools/release.py version`` prints the version, read from the one place it is written.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "aws-lambda-persistence-lite": ROOT / "packages" / "aws-lambda-persistence-lite",
    "aws-lambda-persistence": ROOT / "packages" / "aws-lambda-persistence",
}
#: The one place the version is written; hatchling reads the same line ([tool.hatch.version] of both packages).
VERSION_FILE = PACKAGES["aws-lambda-persistence-lite"] / "src" / "aws_lambda_persistence_lite" / "__init__.py"
LICENSE = ROOT / "LICENSE"
LICENSE_EXPRESSION = "GPL-3.0-or-later"
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
URLS = ("Homepage", "Documentation", "Source", "Issues")


class ReleaseError(Exception):
    """A release that must not be uploaded: the message says why."""


def source_version() -> str:
    """The version both packages are released as."""
    found = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(encoding="utf-8"), re.MULTILINE)
    if not found:
        raise ReleaseError(f'no `__version__ = "..."` line in {VERSION_FILE}')
    return found.group(1)


def file_stem(name: str) -> str:
    return name.replace("-", "_")


def expected_files(version: str) -> set[str]:
    return {f"{file_stem(name)}-{version}{suffix}" for name in PACKAGES for suffix in (".tar.gz", "-py3-none-any.whl")}


def run(*cmd: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode:
        raise ReleaseError(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def archive_files(path: Path) -> dict[str, bytes]:
    """Every file of an sdist or wheel, by its path inside the archive."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            return {name: whl.read(name) for name in whl.namelist() if not name.endswith("/")}
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def metadata_file(path: Path, version: str) -> str:
    """Where an archive keeps its core metadata: the wheel's METADATA, the sdist's PKG-INFO."""
    stem = f"{path.name.split('-')[0]}-{version}"
    return f"{stem}.dist-info/METADATA" if path.suffix == ".whl" else f"{stem}/PKG-INFO"


def license_file(path: Path, version: str) -> str:
    """Where LICENSE must be: PEP 639's .dist-info/licenses/ in a wheel, beside pyproject.toml in an sdist."""
    stem = f"{path.name.split('-')[0]}-{version}"
    return f"{stem}.dist-info/licenses/LICENSE" if path.suffix == ".whl" else f"{stem}/LICENSE"


def readme_problems(description: str) -> list[str]:
    """The README as PyPI renders it (readme_renderer): it must render, and link only to absolute URLs."""
    import readme_renderer.markdown

    html = readme_renderer.markdown.render(description)
    if html is None:
        return ["the README does not render as Markdown"]
    links = re.findall(r'(?:href|src)="([^"]*)"', html)  # anchors of its own headings start with "#"
    bad = [link for link in links if not link.startswith(("https://", "#"))]
    return [f"relative link {link!r} in the README (broken on PyPI)" for link in bad]


def metadata_problems(name: str, version: str, text: str) -> list[str]:
    """What is wrong in one archive's core metadata, validated as PyPI validates it (packaging)."""
    from packaging.metadata import Metadata

    meta = Metadata.from_email(text, validate=True)
    problems = readme_problems(meta.description or "")
    if (meta.name, str(meta.version)) != (name, version):
        problems.append(f"name and version {meta.name} {meta.version}, expected {name} {version}")
    if meta.metadata_version != "2.4":
        problems.append(f"Metadata-Version {meta.metadata_version}: expected 2.4 (core-metadata-version)")
    if meta.license_expression != LICENSE_EXPRESSION or meta.license_files != ["LICENSE"]:
        problems.append(f"License-Expression {meta.license_expression}, License-File {meta.license_files}")
    classifiers = meta.classifiers or []
    if any(c.startswith("License ::") for c in classifiers):
        problems.append("a license classifier beside License-Expression (PEP 639 forbids both)")
    python = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    pythons = {found.group(1) for found in map(python.fullmatch, classifiers) if found}
    if pythons != set(PYTHONS):
        problems.append(f"Python classifiers {sorted(pythons)}, expected {list(PYTHONS)}")
    urls = meta.project_urls or {}
    if missing := [label for label in URLS if not urls.get(label, "").startswith("https://")]:
        problems.append(f"Project-URL missing: {missing}")
    if not (meta.description_content_type or "").startswith("text/markdown"):
        problems.append(f"Description-Content-Type {meta.description_content_type}")
    pins = {str(r) for r in meta.requires_dist or [] if r.name in PACKAGES}
    if pins != ({f"aws-lambda-persistence-lite=={version}"} if name == "aws-lambda-persistence" else set()):
        problems.append(f"requirements on this project's packages: {sorted(pins)}")
    return problems


def archive_problems(path: Path, version: str) -> list[str]:
    name = next(n for n in PACKAGES if path.name.startswith(f"{file_stem(n)}-{version}"))
    files = archive_files(path)
    text = files[metadata_file(path, version)].decode()
    problems = [f"{path.name}: {p}" for p in metadata_problems(name, version, text)]
    if files.get(license_file(path, version)) != LICENSE.read_bytes():
        problems.append(f"{path.name}: {license_file(path, version)} is missing or differs from LICENSE")
    return problems


def folder_wheel_problems(out: Path, version: str) -> list[str]:
    """A wheel built straight from a package's folder must carry the same metadata as the one built from its sdist."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="release-wheel-") as tmp:
        for name, folder in PACKAGES.items():
            run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", tmp, str(folder))
            wheel = f"{file_stem(name)}-{version}-py3-none-any.whl"
            member = metadata_file(Path(wheel), version)
            if archive_files(Path(tmp, wheel))[member] != archive_files(out / wheel)[member]:
                problems.append(f"{wheel}: metadata built from the folder differs from the one built from the sdist")
    return problems


def runtime_problems(out: Path, version: str) -> list[str]:
    """``__version__`` and importlib.metadata, with only the built wheels on the path (``-I -S``: nothing else)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import importlib.metadata as m, aws_lambda_persistence as full, "
        "aws_lambda_persistence_lite as lite; print(full.__version__, lite.__version__, "
        "m.version('aws-lambda-persistence'), m.version('aws-lambda-persistence-lite'), full.__file__)"
    )
    with tempfile.TemporaryDirectory(prefix="release-import-") as tmp:
        for wheel in out.glob("*.whl"):
            with zipfile.ZipFile(wheel) as whl:
                whl.extractall(tmp)
        *versions, where = run(sys.executable, "-I", "-S", "-c", code, tmp).split()
        if not Path(where).resolve().is_relative_to(Path(tmp).resolve()):
            return [f"imported {where}, not the built wheel"]
    if versions != [version] * 4:
        return [f"at run time: __version__ and metadata {versions}, expected {version}"]
    return []


def build(out: Path, tag: str | None) -> list[Path]:
    """Build into ``out`` (which must be empty: the release uploads all it holds) and check; the built files."""
    version = source_version()
    if tag is not None and tag != f"v{version}":
        raise ReleaseError(f"tag {tag} does not match the version {version} ({VERSION_FILE.relative_to(ROOT)})")
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} is not empty: the release uploads everything in it")
    out.mkdir(parents=True, exist_ok=True)
    for folder in PACKAGES.values():
        run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(folder))
    files = sorted(out.iterdir())
    if {f.name for f in files} != expected_files(version):
        raise ReleaseError(f"built {[f.name for f in files]}, expected {sorted(expected_files(version))}")
    problems = [p for f in files for p in archive_problems(f, version)]
    problems += folder_wheel_problems(out, version) + runtime_problems(out, version)
    if problems:
        raise ReleaseError("\n".join(problems))
    run(sys.executable, "-m", "twine", "check", "--strict", *map(str, files))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build both packages' sdists and wheels into --out, and check them")
    build_cmd.add_argument("--tag", help="the release tag (vX.Y.Z): must name the version being built")
    build_cmd.add_argument("--out", type=Path, default=ROOT / "dist", help="an empty or missing directory (dist/)")
    commands.add_parser("version", help="print the version, read from the one place it is written")
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print(source_version())
            return 0
        files = build(args.out, args.tag)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    print(f"Built and checked {len(files)} files of version {source_version()} in {args.out}:")
    for f in files:
        print(f"  {f.name} ({f.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
