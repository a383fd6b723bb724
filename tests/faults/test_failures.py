"""Nothing is lost on failure: a write that fails raises, and DynamoDB and memory stay as they were."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.conftest import Calls, stored_item
from tests.faults.injection import ALWAYS, DROP, LOSE, SERVER_ERROR, Fault, Faults, denied, error, throttled


class TestFailedWrites:
    @pytest.mark.parametrize(
        ("fault", "raised"),
        [
            (denied("UpdateItem"), "MissingAWSIAMPermissions"),
            (throttled("UpdateItem"), "ClientError"),
            (SERVER_ERROR, "ClientError"),
            (error("ValidationException", "One or more parameter values were invalid"), "ClientError"),
        ],
        ids=["access denied", "throttled after retries", "5xx after retries", "rejected"],
    )
    def test_failed_put_changes_nothing(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, fault: Fault, raised: str
    ) -> None:
        data = pkg.PersistentMap(a=1)
        before = stored_item(aws, table_key)
        faults.on("UpdateItem", fault, times=ALWAYS)
        expected = getattr(pkg, raised, ClientError)
        with pytest.raises(expected):
            data["a"] = 2
        with pytest.raises(expected):
            data.update(b=1, c=2)
        with pytest.raises(expected):
            data.clear()
        assert data.to_dict() == {"a": 1}
        assert stored_item(aws, table_key) == before
        faults.reset()
        data["a"] = 3  # later writes work
        assert pkg.PersistentMap().to_dict() == {"a": 3}

    def test_failed_write_that_was_not_applied(self, aws: Any, pkg: Any, table_key: str, faults: Faults) -> None:
        """The connection fails on every attempt before the write reached DynamoDB: the confirming read shows
        another head, so botocore's error is raised, nothing changed, and later writes work."""
        data = pkg.PersistentMap(a=1)
        faults.on("UpdateItem", DROP, times=ALWAYS)
        with pytest.raises(ConnectionClosedError):
            data["a"] = 2
        assert data.to_dict() == {"a": 1} == pkg.PersistentMap().to_dict()
        faults.reset()
        data["a"] = 3
        assert pkg.PersistentMap()["a"] == 3

    def test_access_denied_message(self, aws: Any, pkg: Any, table_key: str, faults: Faults) -> None:
        """The error names the denied action and prints the least-privilege policy for this map."""
        faults.on("GetItem", denied("GetItem"))
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
        faults.on("UpdateItem", throttled("UpdateItem"))
        data["a"] = 2
        assert faults.fired("UpdateItem") == ["error:ProvisionedThroughputExceededException"]
        assert pkg.PersistentMap()["a"] == 2

    def test_lost_response_after_applied_write(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, calls: Calls
    ) -> None:
        """The write is applied but no response arrives (botocore gives up): one read of the head finds this
        commit's id stored, so the call succeeds and memory equals what is stored (no second write)."""
        data = pkg.PersistentMap(a=1)
        faults.on("UpdateItem", LOSE, times=ALWAYS)
        calls.clear()
        data["a"] = 2
        assert calls.names == ["UpdateItem", "GetItem"]
        assert faults.fired("UpdateItem") == ["lose"] * faults.attempts
        assert data.to_dict() == {"a": 2} == pkg.PersistentMap().to_dict()
