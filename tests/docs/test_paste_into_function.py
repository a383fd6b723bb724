"""1.0.0's "copy the package into your function" path: the lite source tree next to a handler just works."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import aws_lambda_persistence_lite

HANDLER = """
import sys
from aws_lambda_persistence_lite import PersistentMap, __file__ as where

def lambda_handler(event, context):
    global data
    if "data" not in globals():
        data = PersistentMap()
    data["n"] = data.get("n", 0) + 1
    return data["n"], where, sorted(m for m in sys.modules if m.split(".")[0] in ("msgpack", "zstandard"))
"""

RUN = """
import os, sys
from moto import mock_aws
with mock_aws():
    sys.path.insert(0, os.getcwd())
    import handler
    print(handler.lambda_handler({}, None))
    print(handler.lambda_handler({}, None))
"""


def test_source_tree_copied_next_to_a_handler(tmp_path: Path) -> None:
    """The copied directory is what gets imported, needs no msgpack/zstandard, and persists the map."""
    source = Path(aws_lambda_persistence_lite.__file__).parent
    shutil.copytree(source, tmp_path / "aws_lambda_persistence_lite", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "handler.py").write_text(HANDLER)
    env = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "pasted",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUN], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("(1, ") and second.startswith("(2, ")
    assert str(tmp_path) in first
    assert first.endswith("[])")
