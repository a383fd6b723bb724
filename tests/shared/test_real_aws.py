"""Checks that only real DynamoDB can answer: its item size limit, its transaction limits and its billing.

The whole shared suite runs on real AWS with ``ALP_TEST_BACKEND=aws`` (tests/conftest.py: one uniquely named
on-demand table per session, deleted at the end). These tests run only there: moto and DynamoDB Local neither
enforce every limit nor bill. Cost: well under a cent of on-demand capacity.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import TEST_BACKEND, all_keys

pytestmark = [
    pytest.mark.aws,
    pytest.mark.skipif(TEST_BACKEND != "aws", reason="real-AWS checks: run with ALP_TEST_BACKEND=aws and credentials"),
]


def test_sharded_map_within_real_limits(aws: Any, pkg: Any, table_key: str) -> None:
    """A 1.5 MB map is split into items that real DynamoDB accepts (400 KB each, 4 MB per transaction), and
    a cold load reads it back; replacing it deletes the old shards."""
    data = pkg.PersistentMap(a=1)
    data["blob"] = os.urandom(1_500_000)
    assert pkg.PersistentMap()["blob"] == data["blob"]
    data["blob"] = os.urandom(1_200_000)
    assert pkg.PersistentMap()["blob"] == data["blob"]
    shards = {k for k in all_keys(aws) if k.startswith(f"{table_key}#alp-shard#")}
    assert len(shards) >= 3
    assert len({key.split("#")[2] for key in shards}) == 1  # one generation: the replaced one was deleted


def test_capacity_we_count_is_what_dynamodb_bills(aws: Any, pkg: Any, table_key: str) -> None:
    """The write units the library computes from item sizes never undercount what DynamoDB bills
    (ConsumedCapacity), and overcount by at most one unit per item written (its size estimate is conservative)."""
    data = pkg.PersistentMap(a=1)
    for value in ("x" * 3000, os.urandom(600_000)):  # inline (one PutItem), then sharded (a transaction)
        data["b"] = value
        usage = data.last_commit
        assert usage.reported_units is not None
        assert usage.reported_units <= usage.capacity_units <= usage.reported_units + 2 * usage.items
