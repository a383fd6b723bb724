"""Caller mistakes and odd stored attributes (issue #11): each gets a clear error naming the problem, or is
handled; nothing is written by a call that fails, and nothing is committed twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import TABLE, Calls, create_table, flushed, patch, refused, stored_item, stored_keys


class TestReentrantChanges:
    @pytest.mark.parametrize(
        "inner",
        [
            pytest.param(lambda m: m.increment("n"), id="increment"),
            pytest.param(lambda m: m.__setitem__("x", 1), id="set"),
            pytest.param(lambda m: m.pop("n"), id="pop"),
            pytest.param(lambda m: m.mutate(lambda d: d.clear()), id="mutate"),
            pytest.param(lambda m: m.save(), id="save"),
        ],
    )
    def test_changing_the_map_from_inside_mutate_is_refused(
        self, aws: Any, pkg: Any, table_key: str, calls: Calls, inner: Any
    ) -> None:
        """The function given to mutate() runs once per attempt: a change it made to the map itself would be
        committed on every attempt. Refused before anything is written, and the map works on."""
        data = pkg.PersistentMap(n=1)
        other = pkg.PersistentMap()
        attempts = []

        def function(d: dict[str, Any]) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                other.increment("n", 10)  # (another container commits: the first attempt loses)
            inner(data)

        calls.clear()
        with pytest.raises(RuntimeError, match="inside the function given to mutate"):
            data.mutate(function)
        assert pkg.PersistentMap().to_dict() == {"n": 11}
        with data.batch(), pytest.raises(RuntimeError, match="inside the function given to mutate"):
            data.mutate(lambda d: data.increment("n"))
        data.increment("n")
        assert pkg.PersistentMap().to_dict() == {"n": 12}


class TestSetdefault:
    def test_setdefault_is_atomic_across_containers(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A stale container's setdefault() does not overwrite what another container set meanwhile: it returns
        that value (like pop(), conditional on the version it saw)."""
        a = pkg.PersistentMap(x=0)
        b = pkg.PersistentMap()
        b["k"] = "first"
        assert a.setdefault("k", "second") == "first"
        assert pkg.PersistentMap()["k"] == "first" == a["k"]
        calls.clear()
        assert a.setdefault("k", "third") == "first" and calls.names == []  # present: a read of this copy
        assert a.setdefault("new", [1]) == [1] and calls.names == ["UpdateItem"]
        assert pkg.PersistentMap()["new"] == [1]


class TestSettings:
    def test_max_age_nan_is_refused(self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """max_age=nan would never expire (no age exceeds NaN): refused, from an argument or the environment."""
        with pytest.raises(pkg.ConfigurationError, match=r"max_age must be a number of seconds >= 0.*nan"):
            pkg.PersistentMap.open(max_age=float("nan"))
        monkeypatch.setenv("PERSISTENCE_MAX_AGE", "nan")
        with pytest.raises(pkg.ConfigurationError, match="max_age"):
            pkg.PersistentMap()

    def test_empty_table_key_variable_is_named(self, aws: Any, pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PERSISTENCE_TABLE_KEY", "")
        with pytest.raises(pkg.ConfigurationError, match="PERSISTENCE_TABLE_KEY is set but empty"):
            pkg.PersistentMap()

    def test_table_key_too_long_for_shard_keys(self, aws: Any, pkg: Any, calls: Calls) -> None:
        """A shard's key is the table_key plus about 30 bytes, and DynamoDB keys hold 2,048: a longer table_key
        would fail only at the first sharded write, with DynamoDB's ValidationException. Refused up front."""
        with pytest.raises(pkg.ConfigurationError, match="table_key is 2,001 bytes long; at most 2,000"):
            pkg.PersistentMap(table_key="k" * 2_001)
        assert calls.names == []
        data = pkg.PersistentMap(table_key="é" * 1_000)  # 2,000 bytes: a sharded map still fits
        data.update({f"k{i}": "v" * 3_000 for i in range(3)})
        assert pkg.PersistentMap(table_key="é" * 1_000).to_dict() == data.to_dict()


class TestOddStoredAttributes:
    def test_shard_item_without_binary_value(self, aws: Any, pkg: Any, table_key: str) -> None:
        flushed(pkg)

        shard = sorted(stored_keys(aws, table_key) - {table_key})[0]
        item = stored_item(aws, shard)
        assert item is not None
        item["value"] = {"S": "not binary"}
        aws.put_item(TableName=TABLE, Item=item)
        refused(pkg, table_key, pkg.CorruptDataError, "lacks its binary 'value'")
        del item["value"]
        aws.put_item(TableName=TABLE, Item=item)
        refused(pkg, table_key, pkg.CorruptDataError, "lacks its binary 'value'")

    def test_unreadable_garbage_entries_are_kept_not_fatal(self, aws: Any, pkg: Any, table_key: str) -> None:
        """``alp_garbage`` entries this version cannot read (not ASCII digits, a stamp of 400 digits, no fields)
        are left alone: flushes go on and collect nothing for them (before: a raw ValueError or OverflowError)."""
        entries = ["0123456789abcdef:1:²", "0123456789abcdef:1:" + "9" * 400, "abc", "x:y"]
        pkg.PersistentMap(a=1)
        patch(aws, table_key, alp_garbage={"SS": entries})
        data = pkg.PersistentMap()
        for i in range(60):  # (9 KB of records: the 4 KB log is flushed twice)
            data[f"g{i % 20}"] = "w" * 150 + str(i)
        assert int((stored_item(aws, table_key) or {})["alp_ep"]["N"]) >= 2
        assert pkg.PersistentMap().to_dict() == data.to_dict()
        assert set(entries) <= set((stored_item(aws, table_key) or {})["alp_garbage"]["SS"])


class TestTableDeletedUnderAWriter:
    @pytest.mark.fresh_dynamodb  # (it deletes the table)
    def test_a_clear_error_and_nothing_written(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap(a=1)
        aws.delete_table(TableName=TABLE)
        with pytest.raises(pkg.ConfigurationError, match=f"'{TABLE}' .*'{table_key}' no longer exists"):
            data["b"] = 2
        assert data.to_dict() == {"a": 1}
        data.refresh()
        assert data.to_dict() == {}
        data["c"] = 3  # (a first write: the table is created again)
        assert pkg.PersistentMap().to_dict() == {"c": 3}


class TestATableOfAnotherSchema:
    @pytest.mark.fresh_dynamodb  # (it creates a table: with one shared table, PERSISTENCE_TABLE_NAME pins that one)
    @pytest.mark.parametrize(
        "schema",
        # (DynamoDB refuses a key of another type, or without the sort key, the same way; moto reads those)
        [("id", None), ("id", "sort")],
        ids=["another hash key", "and a sort key"],
    )
    def test_named_with_the_fix(self, aws: Any, pkg: Any, table_key: str, schema: tuple[str, str | None]) -> None:
        """Reads and writes on a table keyed otherwise than the library's: a ConfigurationError naming the table,
        the key attribute and what to set (before: botocore's raw ValidationException)."""
        name = f"Other{uuid.uuid4().hex[:8]}"
        key, sort_key = schema
        create_table(aws, name, key=key, sort_key=sort_key)
        try:
            attempts: list[Callable[[], Any]] = [
                lambda: pkg.PersistentMap(table_name=name),
                lambda: pkg.PersistentMap.open(table_name=name, lazy=True).__setitem__("a", 1),
            ]
            for attempt in attempts:
                with pytest.raises(
                    pkg.ConfigurationError,
                    match=f"'{name}' is keyed by .*not by a string hash key 'key'.*PERSISTENCE_KEY_FIELD_NAME",
                ):
                    attempt()
        finally:
            aws.delete_table(TableName=name)
