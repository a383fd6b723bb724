"""Tagged JSON (the command line tool's file format): lossless for every value a map can hold."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
import zoneinfo
from typing import Any

import pytest
from aws_lambda_persistence_lite import _tagged_json as tagged
from hypothesis import given, settings

from tests.values import VALUES, canonical, values


def exact(a: Any, b: Any) -> bool:
    """The same value, types included (tagged JSON writes every float NaN as "nan": no sign, no payload)."""
    return bool(canonical(a, any_nan=True) == canonical(b, any_nan=True))


@settings(max_examples=400, deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    """Any storable value, nested anyhow, comes back with equal value and identical types, and the text is
    strict JSON (no NaN/Infinity) that encodes as UTF-8."""
    text = tagged.dumps(value)
    text.encode("utf-8")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert exact(value, tagged.loads(text))


@pytest.mark.parametrize(("name", "value"), VALUES, ids=[n for n, _ in VALUES])
def test_known_values(name: str, value: Any) -> None:
    assert exact(value, tagged.loads(tagged.dumps(value, indent=2)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, 2.0, None, True, "x"]}, {"a": [1, 2.0, None, True, "x"]}),
        (2**60, {"$int": str(2**60)}),
        (float("-inf"), {"$float": "-inf"}),
        ((1,), {"$tuple": [1]}),
        ({1: 2}, {"$dict": [[1, 2]]}),
        ({"$x": 1}, {"$dict": [["$x", 1]]}),
        (b"\x00\x01", {"$bytes": "AAE="}),
        (decimal.Decimal("1.10"), {"$decimal": "1.10"}),
        (uuid.UUID(int=1), {"$uuid": "00000000-0000-0000-0000-000000000001"}),
        (dt.date(2024, 2, 29), {"$date": "2024-02-29"}),
        (dt.timedelta(days=-1, microseconds=5), {"$timedelta": [-1, 0, 5]}),
        (
            dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            {"$datetime": "2024-01-01T12:00:00", "tz": "+02:00"},
        ),
        (
            dt.time(1, tzinfo=dt.timezone(-dt.timedelta(seconds=90), "X")),
            {"$time": "01:00:00", "tz": {"offset": "-00:01:30", "name": "X"}},
        ),
        (
            dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
            {"$datetime": "2024-11-03T01:30:00", "tz": "America/New_York", "fold": 1},
        ),
    ],
)
def test_documented_shapes(value: Any, expected: Any) -> None:
    """The representation is the one the module docstring documents (it is a file format: it must not drift)."""
    assert tagged.encode(value) == expected


def test_huge_int_beyond_decimal_conversion_limit() -> None:
    value = -(7**20_000)
    assert tagged.encode(value)["$int"].startswith("-0x")
    assert tagged.loads(tagged.dumps(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        '{"$nope": 1}',
        '{"$tuple": [1], "$set": [1]}',
        '{"$tuple": 1}',
        '{"$date": "2024-02-30"}',
        '{"$set": [[1]]}',
        '{"$dict": [[1]]}',
        '{"$bytes": "***"}',
        '{"$datetime": "2024-01-01T00:00:00", "tz": "+25:00"}',
        '{"$datetime": "2024-01-01T00:00:00", "tz": "No/Such_Zone"}',
        '{"$datetime": "2024-01-01T00:00:00", "fold": 2}',
        '{"$tuple": [], "tz": "UTC"}',
        "{",
    ],
)
def test_invalid_input_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message; the type is the contract)
        tagged.loads(text)


def test_unsupported_type() -> None:
    with pytest.raises(TypeError, match="object"):
        tagged.encode([object()])
