"""Tagged JSON (the command line tool's file format): lossless for every value a map can hold."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
import zoneinfo
from typing import Any

import pytest
from aws_lambda_persistence_lite import _tagged_json as tagged
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.codecs.test_types import VALUES, same

ZONES = ["UTC", "America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kathmandu"]
offsets = st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59))
timezones = st.one_of(
    st.none(),
    st.builds(dt.timezone, offsets),
    st.builds(dt.timezone, offsets, st.text(min_size=1, max_size=5)),
    st.sampled_from(ZONES).map(zoneinfo.ZoneInfo),
)
folds = st.integers(0, 1)
datetimes = st.builds(lambda d, tz, f: d.replace(tzinfo=tz, fold=f), st.datetimes(), timezones, folds)
times = st.builds(lambda t, tz, f: t.replace(tzinfo=tz, fold=f), st.times(), timezones, folds)
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)  # lone surrogates included
ints = st.one_of(st.integers(), st.integers(-(2**200), 2**200), st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1]))

# Hashable values (keys and set elements) exclude nan, which is not equal to itself.
hashable_atoms = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False),
    st.complex_numbers(allow_nan=False),
    texts,
    st.binary(max_size=8),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.dates(),
    times,
    datetimes,
    st.timedeltas(),
)
hashables = st.recursive(
    hashable_atoms,
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=3)),
    max_leaves=6,
)
atoms = st.one_of(
    hashable_atoms,
    st.floats(),
    st.complex_numbers(),
    st.decimals(),
    st.binary(max_size=8).map(bytearray),
    st.sampled_from(["$int", "$", "a\ud800"]),
)
values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.dictionaries(texts, inner, max_size=4),
        st.dictionaries(hashables, inner, max_size=4),
    ),
    max_leaves=20,
)


def exact(a: Any, b: Any) -> bool:
    """``same`` from the type tests, extended to sets (element by element, types included) and complex."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (set, frozenset)):
        return len(a) == len(b) and all(any(exact(x, y) for y in b) for x in a)
    if isinstance(a, complex):
        return exact(a.real, b.real) and exact(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(exact(x, y) and exact(a[x], b[y]) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    return same(a, b)


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
