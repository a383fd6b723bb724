"""The one meter (``_meter``): what the library counts for a load or a write (``Usage``) is what a CallMeter sees
on the wire, transactions are billed by DynamoDB's rules, and a counting-only meter leaves requests alone."""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
import pytest
from aws_lambda_persistence_lite import PersistentMap
from aws_lambda_persistence_lite._meter import CallMeter, item_size, read_units

# (Its table is the default one, so it cannot run where tests share a table of their own.)
pytestmark = pytest.mark.moto_only
TABLE = "AWSLambdaPersistence"


def metered(meter: CallMeter, aws: Any) -> Any:
    return meter.attach(boto3.client("dynamodb", endpoint_url=aws.meta.endpoint_url))


def test_the_library_and_the_meter_agree(aws: Any, table_key: str) -> None:
    """A write and a cold load: the calls, bytes read and read units the library reports are the meter's."""
    meter = CallMeter()
    client = metered(meter, aws)
    data = PersistentMap[str, Any].open(client=client, table_key=table_key)
    data.update({f"k{i}": "x" * 300 for i in range(40)})
    mark = meter.mark()
    data["one"] = 1
    assert len(meter.calls[mark:]) == data.last_commit.calls
    mark = meter.mark()
    fresh = PersistentMap[str, Any].open(client=client, table_key=table_key)
    assert fresh["one"] == 1
    reads = meter.calls[mark:]
    assert len(reads) == fresh.last_load.calls
    assert sum(c.item_bytes for c in reads) == fresh.last_load.bytes > 0
    assert sum(c.read_units for c in reads) == fresh.last_load.capacity_units
    assert all(c.sent > 0 and c.received > 0 and c.ended >= c.started for c in reads)


def test_transactions_are_billed_by_the_rules(aws: Any, table_key: str) -> None:
    """With a sizer, each item of a TransactWriteItems costs 2 units per KB of the larger of its size before and
    after it (what DynamoDB bills; DynamoDB Local reports otherwise)."""
    PersistentMap[str, int].open(client=aws, table_key=table_key)["x"] = 1  # the table exists
    key = {"key": {"S": f"{table_key}-a"}}
    aws.put_item(TableName=TABLE, Item={**key, "v": {"B": bytes(1_500)}})
    aws.put_item(TableName=TABLE, Item={"key": {"S": f"{table_key}-c"}, "v": {"B": b"1"}})
    meter = CallMeter(sizer=aws)
    client = metered(meter, aws)
    new: dict[str, dict[str, Any]] = {"key": {"S": f"{table_key}-b"}, "v": {"B": bytes(3_000)}}
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": new}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key,
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"B": bytes(2_500)}},
                }
            },
            {"Delete": {"TableName": TABLE, "Key": {"key": {"S": f"{table_key}-c"}}}},
        ]
    )
    ((call,),) = [meter.calls]
    assert item_size(new) < 3 * 1024
    assert call.op == "TransactWriteItems" and call.units == 2 * 3 + 2 * 3 + 2 * 1
    assert meter.excluded > 0  # the sizer's reads, for a caller that times the call


def test_counting_only(aws: Any, table_key: str) -> None:
    """sizes=False: operations and error codes, nothing sized, no ConsumedCapacity asked for."""
    PersistentMap[str, int].open(client=aws, table_key=table_key)["x"] = 1
    meter = CallMeter(sizes=False)
    client = metered(meter, aws)
    client.get_item(TableName=TABLE, Key={"key": {"S": table_key}})
    with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=TABLE,
            Item={"key": {"S": table_key}},
            ConditionExpression="attribute_not_exists(#k)",
            ExpressionAttributeNames={"#k": "key"},
        )
    counts = meter.counts()
    assert counts == {"GetItem": 1, "PutItem": 1, "ConditionalCheckFailedException": 1}
    assert all(c.reported is None and c.item_bytes == 0 and c.units == 0 for c in meter.calls)


def test_attach_everywhere_until_stopped(aws: Any) -> None:
    meter = CallMeter()
    stop = meter.attach_everywhere()
    try:
        boto3.client("dynamodb", endpoint_url=aws.meta.endpoint_url).list_tables()
    finally:
        stop()
    boto3.client("dynamodb", endpoint_url=aws.meta.endpoint_url).list_tables()
    assert [c.op for c in meter.calls] == ["ListTables"]


def test_read_units_by_the_rules() -> None:
    assert [read_units(n) for n in (0, 1, 4096, 4097)] == [1, 1, 1, 2]


def test_a_read_that_finds_nothing_is_billed(aws: Any, table_key: str) -> None:
    """DynamoDB bills a GetItem that finds nothing as a read of one unit (half when eventually consistent), as
    the library counts it; ``consumed=False`` sends requests as the caller made them (no ConsumedCapacity)."""
    PersistentMap[str, int].open(client=aws, table_key=table_key)["x"] = 1
    meter = CallMeter(consumed=False)
    client = metered(meter, aws)
    missing = {"key": {"S": f"{table_key}-missing"}}
    client.get_item(TableName=TABLE, Key=missing, ConsistentRead=True)
    client.get_item(TableName=TABLE, Key=missing)
    assert [c.read_units for c in meter.calls] == [1.0, 0.5]
    assert [c.items_read for c in meter.calls] == [0, 0]
    assert all(c.reported is None for c in meter.calls)
