"""Checked by mypy --strict (``hatch run lint:check``), never run: what the public API's types promise a user."""

from __future__ import annotations

from typing import Any

import aws_lambda_persistence
import aws_lambda_persistence_lite
from aws_lambda_persistence import PersistentMap
from typing_extensions import assert_type


def generic_maps() -> None:
    counts: PersistentMap[str, int] = PersistentMap()
    assert_type(counts["a"], int)
    assert_type(counts.get("a"), int | None)
    assert_type(counts.to_dict(), dict[str, int])
    assert_type(counts.popitem(), tuple[str, int])
    assert_type(counts.mutate(lambda d: d.get("a", 0) + 1), int)
    assert_type(list(counts), list[str])
    counts["b"] = 2
    counts["c"] = "three"  # type: ignore[assignment]
    with counts.batch() as same:
        assert_type(same, PersistentMap[str, int])
    opened = PersistentMap[str, float].open(table_name="t", max_age=5.0, lazy=True, codec="msgpack+zstd")
    assert_type(opened, PersistentMap[str, float])
    lite = aws_lambda_persistence_lite.PersistentMap[int, str].open()
    assert_type(lite[1], str)
    PersistentMap.open(table_nam="typo")  # type: ignore[call-arg]  # (a typo in a setting is caught)


def handler_decorator() -> None:
    @PersistentMap[str, int].handler()
    def handler(event: dict[str, Any], context: object, data: PersistentMap[str, int]) -> int:
        return data["n"]

    assert_type(handler({}, None), int)
    PersistentMap.handler(table_name=3)  # type: ignore[arg-type]  # (the settings of open(), checked)


def errors_and_settings() -> None:
    assert_type(aws_lambda_persistence.CODECS, tuple[str, ...])
    assert issubclass(aws_lambda_persistence.ConflictError, aws_lambda_persistence.PersistenceError)
