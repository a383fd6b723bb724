"""The demo (tools/demo.py) runs end to end: three simulated cold starts against moto's server reach counter 6."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo.py"


def test_demo_counts_across_cold_and_warm_invocations() -> None:
    # Where only the lite package is installed (hatch env "lite"), the demo runs with it.
    lite = importlib.util.find_spec("aws_lambda_persistence") is None
    command = [sys.executable, str(DEMO), *(["--lite"] if lite else [])]
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}  # always moto, never AWS
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "cold, map from DynamoDB" in output
    assert "warm, map from the Lambda cache" in output
    assert "invocations=6;" in output
    assert "counter reached 6" in output
