"""Checks that only real DynamoDB can answer: its item size limit, its transaction limits and its billing.

The whole DynamoDB suite (every test using the ``aws`` fixture) runs on real AWS with ``ALP_TEST_BACKEND=aws``
(tests/conftest.py: one uniquely named on-demand table per session, deleted at the end). These tests run only
there: moto and DynamoDB Local neither enforce every limit nor bill. Cost: well under a cent of on-demand capacity.
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


def test_large_values_within_real_limits(aws: Any, pkg: Any, table_key: str) -> None:
    """A 1.5 MB value is written as a run split into items that real DynamoDB accepts (400 KB each, 4 MB per
    transaction), and a cold load reads it back, also after it was replaced."""
    data = pkg.PersistentMap(a=1)
    data["blob"] = os.urandom(1_500_000)
    assert pkg.PersistentMap()["blob"] == data["blob"]
    data["blob"] = os.urandom(1_200_000)
    assert pkg.PersistentMap()["blob"] == data["blob"]
    segments = {k for k in all_keys(aws) if k.startswith(f"{table_key}#alp#")}
    assert len(segments) >= 4


def test_capacity_we_count_is_what_dynamodb_bills(aws: Any, pkg: Any, table_key: str) -> None:
    """The write units the library computes from item sizes never undercount what DynamoDB bills
    (ConsumedCapacity), and overcount by at most one unit per item written (its size estimate is conservative)."""
    data = pkg.PersistentMap(a=1)
    for value in ("x" * 300, os.urandom(600_000)):  # an append (UpdateItem), then a large write (a transaction)
        data["b"] = value
        usage = data.last_commit
        assert usage.reported_units is not None
        assert usage.reported_units <= usage.capacity_units <= usage.reported_units + 2 * usage.items
