"""Nothing is lost on failure: a write that fails raises, and DynamoDB and memory stay as they were."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Calls, Faults, stored_item

DENIED = "User: arn:aws:sts::123:assumed-role/fn is not authorized to perform: dynamodb:{} on resource: table"


class TestFailedWrites:
    @pytest.mark.parametrize(
        ("code", "error"),
        [
            ("AccessDeniedException", "MissingAWSIAMPermissions"),
            ("ProvisionedThroughputExceededException", "ClientError"),
            ("InternalServerError", "ClientError"),
            ("ValidationException", "ClientError"),
        ],
        ids=["access denied", "throttled after retries", "5xx after retries", "rejected"],
    )
    def test_failed_put_changes_nothing(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, code: str, error: str
    ) -> None:
        data = pkg.PersistentMap(a=1)
        before = stored_item(aws, table_key)
        faults.error(
            "UpdateItem", code, times=10, message=DENIED.format("UpdateItem"), status=500 if "Internal" in code else 400
        )
        expected = getattr(pkg, error, ClientError)
        with pytest.raises(expected):
            data["a"] = 2
        with pytest.raises(expected):
            data.update(b=1, c=2)
        with pytest.raises(expected):
            data.clear()
        assert data.to_dict() == {"a": 1}
        assert stored_item(aws, table_key) == before
        faults.plan.clear()
        data["a"] = 3  # later writes work
        assert pkg.PersistentMap().to_dict() == {"a": 3}

    def test_network_failure(self, aws: Any, pkg: Any, table_key: str, faults: Faults) -> None:
        from botocore.exceptions import EndpointConnectionError

        data = pkg.PersistentMap(a=1)

        def drop(name: str) -> Any:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

        faults.plan.append((lambda name, seen: name == "UpdateItem", drop))
        with pytest.raises(EndpointConnectionError):
            data["a"] = 2
        assert data["a"] == 1
        faults.plan.clear()
        assert pkg.PersistentMap()["a"] == 1

    def test_access_denied_message(self, aws: Any, pkg: Any, table_key: str, faults: Faults) -> None:
        """The error names the denied action and prints the least-privilege policy for this map."""
        faults.error("GetItem", "AccessDeniedException", message=DENIED.format("GetItem"))
        with pytest.raises(pkg.MissingAWSIAMPermissions) as raised:
            pkg.PersistentMap()
        message = str(raised.value)
        assert raised.value.action == "dynamodb:GetItem"
        assert "dynamodb:GetItem" in message and "dynamodb:LeadingKeys" in message and table_key in message
        assert isinstance(raised.value, PermissionError)

    def test_transient_throttle_is_retried_by_botocore(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, calls: Calls
    ) -> None:
        """One throttled UpdateItem is retried by botocore's standard mode; the write succeeds."""
        data = pkg.PersistentMap(a=1)
        faults.error("UpdateItem", "ProvisionedThroughputExceededException", times=1)
        data["a"] = 2
        assert pkg.PersistentMap()["a"] == 2

    def test_lost_response_after_applied_write(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """The write is applied but its response never arrives: one read of the head finds this commit's id
        stored, so the call succeeds and memory equals what is stored (no second write)."""
        from aws_lambda_persistence_lite._client import default_client

        data = pkg.PersistentMap(a=1)
        state = {"lost": False}

        def lose_first_response(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
            if model.name == "UpdateItem" and not state["lost"]:
                state["lost"] = True
                raise ConnectionResetError("connection reset after the write was applied")

        client = default_client()
        client.meta.events.register("after-call.dynamodb.UpdateItem", lose_first_response)
        calls.clear()
        data["a"] = 2
        client.meta.events.unregister("after-call.dynamodb.UpdateItem", lose_first_response)
        assert calls.names == ["UpdateItem", "GetItem"]
        assert data.to_dict() == {"a": 2} == pkg.PersistentMap().to_dict()

    def test_failed_write_that_was_not_applied(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A transport failure before the write reached DynamoDB: the confirming read shows another head, so
        the error is raised and nothing changed."""
        from aws_lambda_persistence_lite._client import default_client

        data = pkg.PersistentMap(a=1)

        def fail_before_sending(model: Any, **_: Any) -> None:
            if model.name == "UpdateItem":
                raise ConnectionResetError("connection reset before the request was sent")

        client = default_client()
        client.meta.events.register("before-call.dynamodb.UpdateItem", fail_before_sending)
        with pytest.raises(ConnectionResetError):
            data["a"] = 2
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", fail_before_sending)
        assert data.to_dict() == {"a": 1} == pkg.PersistentMap().to_dict()
