"""The handlers users copy run as their documents say: the README's example, the lite README's, and the function
of layers/example-app.yaml, each executed as written across simulated Lambda containers. And every shell command
the documents show works as written: each is run here, or names the test or workflow that runs it."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.DOTALL)


def readme_handler(written_out: bool = False) -> str:
    """The README's handler: the first Python example of its "How to use it" section (with the decorator), or that
    example followed by the second, which writes the same function out (and continues the first's imports)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## How to use it") : readme.index("### Concurrent containers")]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) >= 2, "README.md: the handler, and the same written out, under 'How to use it'"
    return blocks[0] + blocks[1] if written_out else blocks[0]


def template_function_code() -> str:
    """The inline code (ZipFile) of the example stack's function."""
    text = (ROOT / "layers" / "example-app.yaml").read_text()
    found = re.search(r"\n( +)ZipFile: \|\n((?:\1  .*\n|\n)+)", text)
    assert found, "layers/example-app.yaml: no inline function code"
    return textwrap.dedent(found.group(2))


def container(code: str, pkg: Any) -> dict[str, Any]:
    """A fresh Lambda container: the module's code run in a namespace of its own, importing ``pkg``."""
    source = code.replace("from aws_lambda_persistence import", f"from {pkg.__name__} import")
    namespace: dict[str, Any] = {"__name__": "lambda_function"}
    exec(compile(source, "handler.py", "exec"), namespace)  # the documented code itself, as Lambda would run it
    return namespace


class TestReadmeHandler:
    @pytest.mark.parametrize("written_out", [False, True], ids=["decorator", "written-out"])
    def test_counts_invocations_across_containers(
        self, aws: Any, pkg: Any, table_key: str, capsys: Any, written_out: bool
    ) -> None:
        code = readme_handler(written_out)
        first, second = container(code, pkg), container(code, pkg)
        results = [
            first["lambda_handler"]({}, None),
            first["lambda_handler"]({}, None),  # warm
            second["lambda_handler"]({}, None),  # another container, cold
        ]
        assert results == [{"invocations": 1}, {"invocations": 2}, {"invocations": 3}]
        assert capsys.readouterr().out.count("last run at") == 2
        stored = pkg.PersistentMap()
        assert stored["invocations"] == 3
        assert type(stored["last_run"]) is dt.datetime and stored["last_run"].tzinfo is dt.timezone.utc


class TestLiteReadme:
    def test_example_stores_a_datetime(self, aws: Any, lite: Any, table_key: str) -> None:
        (example,) = python_blocks(ROOT / "packages" / "aws-lambda-persistence-lite" / "README.md")
        container(example, lite)
        assert type(lite.PersistentMap()["last_run"]) is dt.datetime


class TestExampleStack:
    def test_function_code_remembers_its_last_run(self, aws: Any, core: Any, table_key: str) -> None:
        first, second = container(template_function_code(), core), container(template_function_code(), core)
        assert first["handler"]({}, None) == {"previous_run": None, "invocations": 1}
        written_by_first = core.PersistentMap()["last_run"]
        assert second["handler"]({}, None) == {"previous_run": written_by_first.isoformat(), "invocations": 2}


# -- every shell command the documents show --------------------------------------------------------------------

DOCUMENTS = [ROOT / "README.md", ROOT / "layers" / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]
#: Inline code in a sentence is a command when it starts with one of these and has arguments.
PROGRAMS = {"python", "python3", "hatch", ".bootstrap/bin/hatch", "pip", "aws", "aws-lambda-persistence"}

#: How each documented command is verified. "run": run as written, from the repository root; "run: OTHER": run
#: OTHER instead (its --help, a harmless variant); "test: PATH::NAME": that test runs it or what it runs; "ci: PATH:
#: TEXT": that workflow runs TEXT; "manual: WHY": not runnable here. Every command must be listed: a command
#: added to a document fails test_every_documented_command_says_how_it_is_verified until it is.
#: (the README's try-out, run word for word)
SHELL = "test: tests/docs/test_readme_shell.py::"

COMMANDS = {
    # README.md: Quick start, Install, Performance, Development
    "python3 tools/dev.py demo": "test: tests/docs/test_demo.py::test_demo_counts_across_cold_and_warm_invocations",
    "python3 tools/dev.py test": "ci: .github/workflows/ci.yml: python tools/dev.py test",
    "python3 tools/dev.py test-more": "ci: .github/workflows/ci.yml: python tools/dev.py test-more",
    "python3 tools/dev.py lint": "ci: .github/workflows/ci.yml: python tools/dev.py lint",
    "python3 tools/dev.py bench": "run: python tools/bench/run_all.py --help",
    "python3 tools/dev.py layers": "test: tests/layers/test_layer_build.py::test_manifest_lists_every_layer",
    "python3 tools/figures.py": "test: tests/docs/test_figures.py::test_readmes_show_their_sources_figures",
    "python3 tools/dev.py local": SHELL + "test_the_printed_lines_are_the_readme_lines",
    "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:PORT": SHELL + "test_the_printed_lines_are_the_readme_lines",
    "export AWS_ACCESS_KEY_ID=testing": SHELL + "test_the_printed_lines_are_the_readme_lines",
    "export AWS_SECRET_ACCESS_KEY=testing": SHELL + "test_the_printed_lines_are_the_readme_lines",
    "export AWS_REGION=us-east-1": SHELL + "test_the_printed_lines_are_the_readme_lines",
    "export AWS_DEFAULT_REGION=us-east-1": SHELL + "test_the_printed_lines_are_the_readme_lines",
    "export AWS_LAMBDA_FUNCTION_NAME=my-function": SHELL + "test_the_printed_lines_are_the_readme_lines",
    ".bootstrap/bin/hatch run demo:python -c 'import handler; print(handler.lambda_handler(dict(), None))'": (
        SHELL + "test_the_readme_handler_runs_unchanged_in_the_second_shell"
    ),
    ".bootstrap/bin/hatch run demo:aws-lambda-persistence show my-function --pretty": (
        SHELL + "test_the_readme_handler_runs_unchanged_in_the_second_shell"
    ),
    "python3 tools/dev.py demo --endpoint http://127.0.0.1:PORT": (
        SHELL + "test_the_demo_runs_against_that_server_with_no_credentials"
    ),
    "pip install ./packages/aws-lambda-persistence-lite ./packages/aws-lambda-persistence": (
        SHELL + "test_the_install_from_a_clone"
    ),
    "pip install ./packages/aws-lambda-persistence-lite": SHELL + "test_the_install_from_a_clone",
    "python3 -m venv .venv && .venv/bin/pip install ./packages/aws-lambda-persistence-lite "
    "./packages/aws-lambda-persistence": SHELL + "test_the_install_from_a_clone",
    "pip install aws-lambda-persistence": "manual: installs the release from PyPI",
    "pip install aws-lambda-persistence-lite": "manual: installs the release from PyPI",
    "aws lambda update-function-configuration --layers ARN": "manual: needs an AWS account and a function",
    "python -m aws_lambda_persistence": "run: python -m aws_lambda_persistence --help",
    "python -m aws_lambda_persistence policy my-function": "run",
    "hatch run ...": "manual: stands for the hatch commands of the README",
    ".bootstrap/bin/hatch run ...": "manual: stands for the hatch commands of the README",
    "hatch run test-dynamodb-local": "ci: .github/workflows/ci.yml: python tools/dev.py test-more",
    "hatch run test-shared-table": "ci: .github/workflows/ci.yml: python tools/dev.py test-more",
    "hatch run test-aws": "ci: .github/workflows/real-aws.yml: hatch run test-aws",
    # README.md: Command line (each against DynamoDB: tests/cli runs them on moto)
    "aws-lambda-persistence list": "test: tests/cli/test_cli.py::test_lists_heads_not_segments_nor_blobs",
    "aws-lambda-persistence show my-function [--pretty]": "test: tests/cli/test_cli.py::test_show_pretty",
    "aws-lambda-persistence get my-function last_run": "test: tests/cli/test_cli.py::test_get",
    "aws-lambda-persistence set my-function count 5": "test: tests/cli/test_cli.py::test_set",
    "aws-lambda-persistence delete my-function count": "test: tests/cli/test_cli.py::test_delete_asks_first",
    "aws-lambda-persistence export my-function map.json": "test: tests/cli/test_cli.py::test_round_trip_is_identical",
    "aws-lambda-persistence import my-function map.json": "test: tests/cli/test_cli.py::test_round_trip_is_identical",
    "aws-lambda-persistence migrate [--dry-run]": "test: tests/cli/test_cli.py::test_migrates_1_0_0_items",
    "aws-lambda-persistence migrate": "test: tests/cli/test_cli.py::test_migrates_1_0_0_items",
    "aws-lambda-persistence policy my-function": "run",
    "aws-lambda-persistence info my-function": "test: tests/cli/test_cli.py::test_info",
    # layers/README.md
    ".bootstrap/bin/hatch run layers:verify": (
        "test: tests/layers/test_layer_build.py::test_verifier_passes_without_smoke"
    ),
    ".bootstrap/bin/hatch run layers:test": "ci: .github/workflows/layers.yml: hatch run layers:test",
    "python3 tools/figures.py --layers build/layers/manifest.json": (
        "test: tests/docs/test_figures.py::test_layers_option_takes_a_builds_figures"
    ),
    ".bootstrap/bin/hatch run layers:publish --region us-east-1,eu-west-1 [--public] [--dry-run]": (
        "test: tests/layers/test_layer_publish.py::test_dry_run_publishes_nothing"
    ),
    ".bootstrap/bin/hatch run layers:lint": "test: tests/layers/test_layer_templates.py::test_cfn_lint",
    "aws lambda update-function-configuration --function-name my-function --layers "
    "arn:aws:lambda:<region>:<account>:layer:aws-lambda-persistence-arm64:<version>": (
        "manual: needs an AWS account and a function"
    ),
    "aws cloudformation deploy --template-file layers/example-app.yaml --stack-name alp-example --capabilities "
    "CAPABILITY_IAM --parameter-overrides LayerArn=<core layer ARN> Architecture=arm64": (
        "manual: needs an AWS account (the template passes cfn-lint in tests/layers/test_layer_templates.py)"
    ),
}


def documented_commands() -> set[str]:
    """The commands of every sh/bash/console block (comments and prompts dropped, continuation lines joined) and
    the inline code of sentences that starts with one of PROGRAMS."""
    found = set()
    for document in DOCUMENTS:
        text = document.read_text()
        for block in re.findall(r"```(?:sh|bash|console|shell)\n(.*?)```", text, flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                found.add(" ".join(re.sub(r"^\$ |(^|\s)#.*", "", line).split()))
        for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL)):
            if len(words := span.split()) > 1 and words[0] in PROGRAMS:
                found.add(" ".join(words))
    return found - {""}


def what_it_runs(command: str) -> list[str]:
    """What is wrong with the tools a command names: a tools/dev.py command or hatch script that does not exist,
    a script file that is missing."""
    from tools import dev

    pyproject = (ROOT / "pyproject.toml").read_text()

    def hatch_script(name: str) -> str | None:
        env, _, script = name.rpartition(":")
        section = re.search(
            rf"^\[tool\.hatch\.envs\.{env or 'default'}\.scripts\]\n(.*?)(^\[|\Z)", pyproject, re.S | re.M
        )
        found = section and re.search(rf'^"?{re.escape(script)}"? = ', section[1], re.M)
        return None if found else f"no hatch script {name} in pyproject.toml"

    words = command.split()
    if words[1:2] == ["tools/dev.py"]:
        if words[2] not in dev.COMMANDS:
            return [f"tools/dev.py has no command {words[2]}"]
        return [problem for scripts in dev.COMMANDS[words[2]] if (problem := hatch_script(scripts[0]))]
    if words[0].endswith("hatch") and words[1] == "run" and words[2] != "...":
        program = words[2].rpartition(":")[2]  # (a program of the environment: python or the packages' commands)
        if program in ("python", "aws-lambda-persistence", "aws-lambda-persistence-lite"):
            return []
        return [problem] if (problem := hatch_script(words[2])) else []
    if words[0].startswith("python") and words[1].endswith(".py") and not (ROOT / words[1]).is_file():
        return [f"no file {words[1]}"]
    return []


def test_every_documented_command_says_how_it_is_verified() -> None:
    unlisted = sorted(documented_commands() - set(COMMANDS))
    assert not unlisted, "say how each is verified in COMMANDS (tests/docs/test_docs.py):\n" + "\n".join(unlisted)


def test_every_listed_command_is_documented() -> None:
    assert sorted(set(COMMANDS) - documented_commands()) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_documented_command_works(command: str) -> None:
    how, _, detail = COMMANDS[command].partition(": ")
    assert what_it_runs(command) == []
    if how == "run":
        full = "aws_lambda_persistence" in command.replace("-", "_")
        if full and importlib.util.find_spec("aws_lambda_persistence") is None:
            pytest.skip("the full package is not installed here")
        proc = subprocess.run(
            detail or command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    elif how == "test":
        path, _, name = detail.partition("::")
        assert re.search(rf"def {name}\(", (ROOT / path).read_text()), f"{path} has no test {name}"
    elif how == "ci":
        path, _, step = detail.partition(": ")
        assert step in (ROOT / path).read_text(), f"{path} does not run {step}"
    else:
        assert how == "manual" and detail, COMMANDS[command]
