"""The handlers users copy run as their documents say: the README's example, the lite README's, and the function
of layers/example-app.yaml, each executed as written across simulated Lambda containers."""

from __future__ import annotations

import datetime as dt
import re
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
