"""Stored items of every DynamoDB type and of every size up to DynamoDB's item ceiling, in place of any attribute of
a real map's head or shards (issue #11): a cold load, run in a child interpreter, ends in the map or a
StoredDataError within the read bound FORMAT.md promises (2 s of CPU, 256 MB), never a crash, a hang or another
exception. The in-process fuzz of tests/fuzz/test_hostile.py draws small values; this draws large ones."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import package_codec
from tests.fuzz.isolated import READ_CPU_SECONDS, READ_MEMORY_MB, Items, outcomes
from tests.fuzz.test_hostile import HEAD_ATTRIBUTES, SHAPES, written

pytestmark = pytest.mark.timeout(600)
STORED_ERRORS = ("CorruptDataError", "UnsafeDataError", "UnsupportedFormatError", "StoredDataError")
ITEM_CEILING = 400 * 1024  # DynamoDB's item size limit: the largest attribute a server hands back
SIZES = [0, 1, 17, 118, 4_000, 30_000, ITEM_CEILING - 1_000]
KINDS = ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"]


def element(kind: str, size: int, rng: random.Random) -> Any:
    """One DynamoDB attribute value of ``kind`` about ``size`` bytes (a list or set: ``size`` elements' worth)."""
    if kind == "S":
        return {"S": "".join(rng.choice("ab:0123456789\u00e9\U0001f600") for _ in range(size // 2))}
    if kind == "N":
        digits = "".join(rng.choice("0123456789") for _ in range(max(1, min(size, 40))))
        return {"N": rng.choice(["", "-"]) + digits + rng.choice(["", "E+125", "E-130", ".5"])}
    if kind == "B":
        return {"B": rng.randbytes(size) if rng.random() < 0.5 else bytes(size)}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    count = max(1, size // 40)
    inner = rng.choice(["S", "N", "B"])
    if kind in ("SS", "NS", "BS"):
        members = {next(iter(element(kind[0], 30, rng).values())) for _ in range(count)}
        return {kind: sorted(members, key=repr)}
    parts = [element(inner if rng.random() < 0.9 else "L", 30, rng) for _ in range(count)]
    if kind == "L":
        return {"L": parts}
    return {"M": {f"k{i}": part for i, part in enumerate(parts)}}


def log_like_a_writer_that_ignores_room(head: Any, pkg: Any, size: int, rng: random.Random) -> None:
    """Give ``head`` a log of ``size`` bytes' worth of well-framed records in the map's codec, each setting one key
    (all under one id, or each its own), with the version and room such a log implies: what a writer that
    ignored alp_room would leave. The reader replays every record (a log longer than the version is refused at
    once, which would not test the replay)."""
    from aws_lambda_persistence_lite._room import charge

    from tests.fuzz.framing import frame_record

    entry = bytes(package_codec(pkg).encode_entry(f"k{rng.randrange(50)}", "v" * 10))
    same_id = rng.random() < 0.5
    records = [frame_record((0 if same_id else i).to_bytes(8, "big"), [(1, entry)]) for i in range(size // 60)]
    head["alp_log"] = {"L": [{"B": r} for r in records]}
    stored = head.get("alp_ver", {}).get("N", "")  # (an earlier change of the case may have removed or retyped it)
    head["alp_ver"] = {"N": str((int(stored) if stored.isdigit() else 0) + len(records))}
    head["alp_room"] = {"N": str(max(-409_600, 4_000 - sum(map(charge, records))))}


mutations = st.lists(
    st.tuples(
        st.sampled_from([*HEAD_ATTRIBUTES, "shard value", "log records"]),
        st.sampled_from(KINDS) | st.none(),
        st.sampled_from(SIZES),
        st.integers(0, 2**32),
    ),
    min_size=1,
    max_size=2,
)


def mutate(pkg: Any, items: Items, changes: list[tuple[str, str | None, int, int]]) -> Items:
    """``items`` with each change applied: an attribute removed (kind None) or replaced by a value of ``kind``
    and size; "shard value" replaces the value of every shard item, "log records" the log with records."""
    for name, kind, size, seed in changes:
        rng = random.Random(seed)
        if name == "log records":
            log_like_a_writer_that_ignores_room(items["m"], pkg, size, rng)
            continue
        targets = [items["m"]] if name != "shard value" else [item for key, item in items.items() if key != "m"]
        attribute = "value" if name == "shard value" else name
        for item in targets:
            if kind is None:
                item.pop(attribute, None)
            else:
                item[attribute] = element(kind, size, rng)
    return items


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(sorted(SHAPES)), mutations), min_size=6, max_size=6))
@example([("small", [("alp_garbage", "SS", 30_000, 0)])] * 6)
@example(
    [
        ("flushed", [("alp_log", "L", ITEM_CEILING - 1_000, 1)]),
        ("large", [("shard value", "B", ITEM_CEILING - 1_000, 2)]),
        ("manifest", [("alp_ids", "L", ITEM_CEILING - 1_000, 3)]),
        ("small", [("log records", None, ITEM_CEILING - 1_000, 4)]),
        ("inline", [("alp_inl", "B", ITEM_CEILING - 1_000, 5)]),
        ("small", [("alp_codec", "S", ITEM_CEILING - 1_000, 6)]),
    ]
)
def test_any_attribute_of_any_type_and_size(pkg: Any, loads: list[tuple[str, list[Any]]]) -> None:
    """Six maps, each changed by one or two such attributes, loaded in one child: each ends in the map or a
    StoredDataError within the read bound (outcomes() fails the test otherwise)."""
    cases = [("items", pkg.__name__, mutate(pkg, written(pkg, shape), changes)) for shape, changes in loads]
    for (_, outcome), (shape, changes) in zip(outcomes(cases, memory_mb=2048), loads, strict=True):
        assert outcome == "returned dict" or outcome.startswith(STORED_ERRORS), (shape, changes, outcome)


def test_the_read_bound_is_measured() -> None:
    """The bound that every child case above is held to is measured, not assumed: an honest 40 MB map is beyond a
    bound of 8 MB, and within the real one."""
    from aws_lambda_persistence_lite._pickle import PickleCodec

    body = bytes(PickleCodec().encode_entry("k", "x" * (40 << 20)))
    with pytest.raises(pytest.fail.Exception, match="beyond the read bound"):
        outcomes([("decode", "pickle", body)], read_bound=(READ_CPU_SECONDS, 8))
    ((_, outcome),) = outcomes([("decode", "pickle", body)], read_bound=(READ_CPU_SECONDS, READ_MEMORY_MB))
    assert outcome == "returned dict"
