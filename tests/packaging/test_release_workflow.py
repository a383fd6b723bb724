"""release.yml publishes what tools/release.py built and checked, from a tag, with trusted publishing only.

GitHub runs the workflow; what can go wrong in the file is checked here: its triggers, who gets an OIDC token, no
stored credential, and that the PyPI job uploads exactly the build job's dist/, built by the command tests run.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency there
    import tomli as tomllib

from .conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
BUILD_COMMAND = 'hatch run release:build --tag "$TAG" --out dist/'


def load(name: str) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    workflow: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load("release.yml")


def test_runs_on_version_tags_and_by_hand_only(workflow: dict[str, Any]) -> None:
    assert set(workflow["on"]) == {"push", "workflow_dispatch"}
    assert workflow["on"]["push"] == {"tags": ["v*"]}


def test_only_the_publishing_jobs_get_an_oidc_token(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    with_token = {name for name, job in workflow["jobs"].items() if job.get("permissions", {}).get("id-token")}
    assert with_token == {"pypi", "layers"}  # PyPI's trusted publishing; layers.yml's AWS role for its publish job
    assert workflow["jobs"]["pypi"]["permissions"] == {"id-token": "write"}


def test_no_stored_credential(workflow: dict[str, Any]) -> None:
    text = json.dumps(workflow)  # every key and value, comments left out
    assert not re.search(r"secrets\.|password|api[_-]?token", text, re.IGNORECASE)
    (publish,) = [s for s in workflow["jobs"]["pypi"]["steps"] if uses(s, "pypa/gh-action-pypi-publish")]
    assert publish["with"] == {"packages-dir": "dist/"}


def test_build_job_runs_the_tested_command(workflow: dict[str, Any]) -> None:
    """The workflow's command is the hatch script that runs ``python tools/release.py build``, as tests do."""
    steps = workflow["jobs"]["build"]["steps"]
    assert [s["run"] for s in steps if "release:build" in s.get("run", "")] == [BUILD_COMMAND]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["envs"]["release"]["scripts"]
    assert scripts["build"] == "python tools/release.py build {args}"
    (upload,) = [s for s in steps if uses(s, "actions/upload-artifact")]
    assert upload["with"]["path"] == "dist/"


def test_pypi_job_uploads_exactly_the_built_files_from_a_pushed_tag(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    pypi = jobs["pypi"]
    assert "build" in pypi["needs"] and "layers" in pypi["needs"]
    assert "github.event_name == 'push'" in pypi["if"] and "refs/tags/v" in pypi["if"]
    assert pypi["environment"]["name"] == "pypi"
    (upload,) = [s for s in jobs["build"]["steps"] if uses(s, "actions/upload-artifact")]
    download, publish = pypi["steps"]  # nothing else: no checkout, no build of its own
    assert uses(download, "actions/download-artifact") and uses(publish, "pypa/gh-action-pypi-publish")
    assert download["with"] == {"name": upload["with"]["name"], "path": "dist/"}


def test_layers_come_from_the_layers_workflow_published_once(workflow: dict[str, Any]) -> None:
    """release.yml calls layers.yml after the build job checked the tag; layers.yml publishes only when called so."""
    layers_job = workflow["jobs"]["layers"]
    assert layers_job["uses"] == "./.github/workflows/layers.yml"
    assert layers_job["needs"] == "build"
    assert layers_job["with"] == {"publish": "${{ github.event_name == 'push' }}"}
    layers = load("layers.yml")
    assert "tags" not in (layers["on"]["push"] or {})  # a tag's layers are published by release.yml alone
    assert layers["on"]["workflow_call"]["inputs"]["publish"]["default"] is False
    assert layers["jobs"]["publish"]["if"] == "inputs.publish"
