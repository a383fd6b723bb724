"""The publisher against moto's Lambda API: publishes, records, and skips unchanged zips."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

mock_aws = pytest.importorskip("moto", reason="moto is not installed").mock_aws
import publish  # noqa: E402

REGIONS = ["us-east-1", "eu-central-1"]


def fake_build(out: Path, content: bytes = b"x = 1\n") -> dict[str, Any]:
    """A manifest and small zips shaped like build.py's, so these tests need no download."""
    out.mkdir(parents=True, exist_ok=True)
    layers = []
    for name, archs in (
        ("aws-lambda-persistence-x86_64", ["x86_64"]),
        ("aws-lambda-persistence-arm64", ["arm64"]),
        ("aws-lambda-persistence-lite", ["x86_64", "arm64"]),
    ):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr(zipfile.ZipInfo(f"python/{name.replace('-', '_')}.py"), content + name.encode())
        (out / f"{name}.zip").write_bytes(buffer.getvalue())
        layers.append(
            {
                "name": name,
                "file": f"{name}.zip",
                "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                "architectures": archs,
                "runtimes": ["python3.12", "python3.13"],
                "license": "GPL-3.0-or-later",
                "description": f"{name} test",
            }
        )
    manifest = {"schema": 1, "version": "2.0.0", "layers": layers}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto's Lambda API with dummy credentials (not tests/conftest.py's ``aws``, which ALP_TEST_BACKEND moves)."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.mark.usefixtures("mocked_aws")
def test_publish_records_and_skips_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    out, record = tmp_path / "build", tmp_path / "published.json"
    manifest = fake_build(out)
    args = ["--out", str(out), "--record", str(record), "--public", "--region", ",".join(REGIONS)]
    assert publish.main(args) == 0
    first = capsys.readouterr().out
    assert first.count("published  ") == 6
    assert "| aws-lambda-persistence-lite | x86_64, arm64 | eu-central-1 | `arn:aws:lambda:eu-central-1:" in first

    table = json.loads(record.read_text())
    release = table["releases"]["2.0.0"]
    for layer in manifest["layers"]:
        entry = release[layer["name"]]
        assert entry["sha256"] == layer["sha256"]
        assert set(entry["regions"]) == set(REGIONS)
        assert entry["regions"]["us-east-1"]["arn"].endswith(f":layer:{layer['name']}:1")

    client = boto3.client("lambda", region_name="us-east-1")
    version = client.get_layer_version(LayerName="aws-lambda-persistence-arm64", VersionNumber=1)
    sha = manifest["layers"][1]["sha256"]
    assert version["Content"]["CodeSha256"] == base64.b64encode(bytes.fromhex(sha)).decode()
    assert version["CompatibleArchitectures"] == ["arm64"]
    policy = client.get_layer_version_policy(LayerName="aws-lambda-persistence-arm64", VersionNumber=1)
    assert '"Principal":"*"' in policy["Policy"].replace(" ", "")

    # Same zips again: nothing is published, the table is unchanged.
    assert publish.main(args) == 0
    assert capsys.readouterr().out.count("unchanged  ") == 6
    assert json.loads(record.read_text()) == table
    assert len(client.list_layer_versions(LayerName="aws-lambda-persistence-lite")["LayerVersions"]) == 1

    # Rebuilt zips with new content: a second version of each, in each region.
    fake_build(out, content=b"x = 2\n")
    assert publish.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("published ") for line in lines) == 6
    table = json.loads(record.read_text())
    assert table["releases"]["2.0.0"]["aws-lambda-persistence-lite"]["regions"]["us-east-1"]["version"] == 2


@pytest.mark.usefixtures("mocked_aws")
def test_only_changed_layers_are_republished(tmp_path: Path) -> None:
    out = tmp_path / "build"
    manifest = fake_build(out)
    _, _, first = publish.publish(out, ["us-east-1"])
    assert all(r.new for r in first)
    lite = next(x for x in manifest["layers"] if x["name"] == "aws-lambda-persistence-lite")
    data = b"PK-changed-" + (out / lite["file"]).read_bytes()
    (out / lite["file"]).write_bytes(data)
    lite["sha256"] = hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    _, _, second = publish.publish(out, ["us-east-1"])
    assert {r.layer: (r.new, r.version) for r in second} == {
        "aws-lambda-persistence-x86_64": (False, 1),
        "aws-lambda-persistence-arm64": (False, 1),
        "aws-lambda-persistence-lite": (True, 2),
    }


def test_refuses_a_zip_that_differs_from_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "build"
    fake_build(out)
    (out / "aws-lambda-persistence-lite.zip").write_bytes(b"tampered")
    with pytest.raises(publish.PublishError, match="does not match manifest"):
        publish.load_layers(out)


@pytest.mark.usefixtures("mocked_aws")
def test_dry_run_publishes_nothing(tmp_path: Path) -> None:
    import boto3

    out = tmp_path / "build"
    fake_build(out)
    _, _, results = publish.publish(out, ["us-east-1"], dry_run=True)
    assert all(r.new and r.arn == "(dry run)" for r in results)
    assert boto3.client("lambda", region_name="us-east-1").list_layers()["Layers"] == []
