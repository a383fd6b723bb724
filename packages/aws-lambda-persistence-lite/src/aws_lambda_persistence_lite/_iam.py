"""The least-privilege IAM policy for one map, as printed in errors and the README."""

from __future__ import annotations

from typing import Any

from ._config import Settings

#: Every DynamoDB action the library may call. Reads need GetItem and (for maps over 400 KB) BatchGetItem;
#: TransactWriteItems is authorised through PutItem/DeleteItem/ConditionCheckItem on the table.
ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
    "dynamodb:CreateTable",
    "dynamodb:TagResource",
)


def policy(settings: Settings, *, own_rows_only: bool = True) -> dict[str, Any]:
    """An IAM policy granting this map's actions on its table, limited to its own rows by default.

    ``dynamodb:LeadingKeys`` restricts item actions to hash keys equal to the map's key or its shard keys,
    so one function cannot read or write another function's map in a shared table.
    """
    table_arn = f"arn:aws:dynamodb:*:*:table/{settings.table_name}"
    item_actions = [
        a for a in ACTIONS if a not in ("dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:TagResource")
    ]
    item_statement: dict[str, Any] = {
        "Sid": "PersistentMapItems",
        "Effect": "Allow",
        "Action": item_actions,
        "Resource": table_arn,
    }
    if own_rows_only:
        item_statement["Condition"] = {
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [settings.table_key, f"{settings.table_key}#alp#*"]}
        }
    return {
        "Version": "2012-10-17",
        "Statement": [
            item_statement,
            {
                "Sid": "PersistentMapTable",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:TagResource"],
                "Resource": table_arn,
            },
        ],
    }


def permission_message(settings: Settings, action: str) -> str:
    import json

    return (
        f"DynamoDB denied {action} on table {settings.table_name!r}. The function's IAM role needs this "
        f"least-privilege policy:\n{json.dumps(policy(settings), indent=2)}"
    )
