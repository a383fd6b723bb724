"""Creating the table on first write, safely when several cold starts race to do it."""

from __future__ import annotations

import logging
from typing import Any

from ._capacity import created
from ._config import Settings
from ._log import LITE


def create_table(client: Any, settings: Settings, log: logging.Logger | None = None) -> None:
    """Create the map's table (hash key only, as 1.0.0 did) and wait until it is ACTIVE.

    Another container may be creating it at the same moment: ResourceInUseException just means we wait too.
    """
    arguments: dict[str, Any] = {
        "TableName": settings.table_name,
        "AttributeDefinitions": [{"AttributeName": settings.key_field_name, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": settings.key_field_name, "KeyType": "HASH"}],
        "BillingMode": settings.billing_mode,
        "Tags": [
            {"Key": "CreatedBy", "Value": "aws-lambda-persistence"},
            {"Key": "Description", "Value": "Persistent maps of AWS Lambda functions (aws-lambda-persistence)"},
        ],
    }
    if settings.billing_mode == "PROVISIONED":
        arguments["ProvisionedThroughput"] = {
            "ReadCapacityUnits": settings.read_capacity,
            "WriteCapacityUnits": settings.write_capacity,
        }
    log = log or logging.getLogger(LITE)
    log.info("creating DynamoDB table %s", settings.table_name)
    try:
        client.create_table(**arguments)
    except client.exceptions.ResourceInUseException:
        log.info("table %s is being created by another container; waiting for it", settings.table_name)
    else:
        created(settings)  # (its capacity is known: the capacity warning needs no DescribeTable)
    client.get_waiter("table_exists").wait(TableName=settings.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
