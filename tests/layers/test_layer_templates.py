"""The CloudFormation templates under layers/: cfn-lint clean, and the example's policy is the library's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LAYERS = Path(__file__).resolve().parents[2] / "layers"
TEMPLATES = sorted(LAYERS.glob("*.yaml"))


def test_templates_exist() -> None:
    assert {p.name for p in TEMPLATES} >= {"layers.yaml", "example-app.yaml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint(template: Path) -> None:
    pytest.importorskip("cfnlint", reason="cfn-lint is not installed (hatch run layers:test installs it)")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def load(name: str) -> Any:
    decode = pytest.importorskip("cfnlint.decode", reason="cfn-lint parses the templates' short-form tags")
    template, matches = decode.decode_str((LAYERS / name).read_text())
    assert not matches
    return template


def test_layer_versions_declare_runtimes_and_architectures() -> None:
    resources = load("layers.yaml")["Resources"]
    layers = {
        r["Properties"]["LayerName"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::LayerVersion"
    }
    assert {name: props["CompatibleArchitectures"] for name, props in layers.items()} == {
        "aws-lambda-persistence-x86_64": ["x86_64"],
        "aws-lambda-persistence-arm64": ["arm64"],
        "aws-lambda-persistence-lite": ["x86_64", "arm64"],
    }
    for props in layers.values():
        assert props["CompatibleRuntimes"] == [f"python3.{minor}" for minor in range(10, 15)]
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersionPermission"]
    assert len(permissions) == 3
    assert all(p["Condition"] == "IsPublic" and p["Properties"]["Principal"] == "*" for p in permissions)


def test_example_policy_limits_the_function_to_its_own_rows() -> None:
    from aws_lambda_persistence_lite import Settings, policy

    resources = load("example-app.yaml")["Resources"]
    statements = resources["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    items = next(s for s in statements if s["Sid"] == "PersistentMapItems")
    expected = policy(Settings(table_key="fn"))["Statement"][0]
    assert items["Action"] == expected["Action"]
    function_name = resources["Function"]["Properties"]["FunctionName"]["Fn::Sub"]
    assert items["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == [
        {"Fn::Sub": function_name},
        {"Fn::Sub": function_name + "#alp#*"},
    ]
    table = resources["Table"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "key", "AttributeType": "S"}]
    assert not any(s["Resource"] == "*" for s in statements)
