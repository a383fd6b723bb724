"""The dict API of 1.0.0 and what each call costs in DynamoDB: every change persisted, writes counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import TABLE, TEST_BACKEND, Calls, all_keys, stored_item


class TestDictAPI:
    def test_behaves_like_a_dict(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Every dict method works, and each change is what a cold load sees."""
        data = pkg.PersistentMap()
        model: dict[Any, Any] = {}
        steps: list[Callable[[Any], Any]] = [
            lambda m: m.__setitem__("a", 1),
            lambda m: m.update({"b": 2}, c=3),
            lambda m: m.setdefault("d", [4]),
            lambda m: m.setdefault("a", 99),
            lambda m: m.pop("b"),
            lambda m: m.pop("missing", None),
            lambda m: m.__delitem__("c"),
            lambda m: m.popitem(),
            lambda m: m.update([("x", 1), ("y", 2)]),
            lambda m: m.__ior__({"z": 3}),
        ]
        for step in steps:
            assert step(data) == step(model)
            assert data == model
            assert pkg.PersistentMap().to_dict() == model
            assert list(pkg.PersistentMap()) == list(model)
        assert data.get("x") == 1 and data.get("nope", 5) == 5
        assert list(data.keys()) == list(model.keys())
        assert list(data.items()) == list(model.items())
        assert list(data.values()) == list(model.values())
        assert len(data) == len(model) and "x" in data and "nope" not in data
        assert repr(data) == repr(model)
        assert data | {"q": 1} == model | {"q": 1}
        assert {"q": 1} | data == {"q": 1} | model
        data.clear()
        assert pkg.PersistentMap().to_dict() == {}

    def test_popitem_is_lifo_like_dict(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap({"a": 1, "b": 2})
        assert data.popitem() == ("b", 2)
        with pytest.raises(KeyError):
            pkg.PersistentMap.open(table_key="empty-map").popitem()

    def test_missing_key_raises_key_error(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap()
        with pytest.raises(KeyError):
            data["nope"]
        with pytest.raises(KeyError):
            del data["nope"]

    def test_to_dict_is_a_plain_copy(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap(a=1)
        copy = data.to_dict()
        copy["b"] = 2
        assert type(copy) is dict and "b" not in data

    def test_constructor_data_merges_into_stored_map(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """PersistentMap({...}) and PersistentMap(k=v) merge into what is stored, with one read and one write."""
        pkg.PersistentMap(a=1)
        calls.clear()
        data = pkg.PersistentMap({"b": 2}, c=3)
        assert calls.names == ["GetItem", "UpdateItem"]
        assert pkg.PersistentMap().to_dict() == {"a": 1, "b": 2, "c": 3} == data


class TestWrites:
    def test_cold_load_is_one_get_item(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A cold start of an existing small map costs exactly one strongly consistent GetItem."""
        pkg.PersistentMap(a=1, b=[1, 2])
        calls.clear()
        data = pkg.PersistentMap()
        assert calls.names == ["GetItem"]
        assert data.last_load.calls == 1

    @pytest.mark.fresh_dynamodb
    def test_missing_table_is_not_created_by_reads(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Reading a map whose table does not exist yet gives an empty map and creates nothing."""
        data = pkg.PersistentMap()
        assert data.to_dict() == {} and calls.names == ["GetItem"]
        assert aws.list_tables()["TableNames"] == []

    @pytest.mark.fresh_dynamodb
    def test_empty_map_is_not_written(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Until something is stored, no item exists (1.0.0 wrote an empty one)."""
        pkg.PersistentMap().update({})
        pkg.PersistentMap().clear()
        assert aws.list_tables()["TableNames"] == []

    @pytest.mark.fresh_dynamodb
    def test_first_write_creates_the_table(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """The table is created on first write: hash key only, tagged, provisioned within the free tier."""
        pkg.PersistentMap()["a"] = 1
        assert calls.names == ["GetItem", "PutItem", "CreateTable", "DescribeTable", "PutItem"]
        table = aws.describe_table(TableName="AWSLambdaPersistence")["Table"]
        assert table["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
        assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 5
        if TEST_BACKEND != "dynamodb-local":  # "Tagging is not currently supported in DynamoDB Local"
            tags = aws.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
            assert {"Key": "CreatedBy", "Value": "aws-lambda-persistence"} in tags

    @pytest.mark.fresh_dynamodb
    def test_billing_mode_is_configurable(self, aws: Any, pkg: Any, table_key: str) -> None:
        pkg.PersistentMap.open(billing_mode="PAY_PER_REQUEST")["a"] = 1
        table = aws.describe_table(TableName="AWSLambdaPersistence")["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    def test_concurrent_table_creation(self, aws: Any, pkg: Any, lite: Any, table_key: str) -> None:
        """Two cold starts racing to create the table: the loser waits for it instead of failing."""
        from aws_lambda_persistence_lite._client import default_client
        from aws_lambda_persistence_lite._config import Settings
        from aws_lambda_persistence_lite._table import create_table

        settings = Settings.resolve({})
        create_table(default_client(), settings)
        create_table(default_client(), settings)  # ResourceInUseException inside, handled
        pkg.PersistentMap()["a"] = 1
        assert pkg.PersistentMap()["a"] == 1

    def test_each_mutation_is_one_append(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Set, delete, update and clear each cost one UpdateItem that appends a record to the head's log."""
        data = pkg.PersistentMap(seed=0)
        for mutate in (
            lambda: data.__setitem__("a", 1),
            lambda: data.__delitem__("a"),
            lambda: data.update(x=1, y=2, z=3),
            data.clear,
        ):
            calls.clear()
            mutate()
            assert calls.names == ["UpdateItem"]

    @pytest.mark.slow  # (700 increments: 30-60 s on moto in-process; test-more runs it)
    def test_a_counter_fills_and_empties_the_log(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Hundreds of tiny records (a counter's) fill the head's log; the flushes that empty it stay within
        DynamoDB's 4 KB expression limit (which moto does not enforce), and a cold load counts every one."""
        from aws_lambda_persistence_lite._client import default_client

        expressions: list[str] = []

        def record(params: dict[str, Any], **_: Any) -> None:
            items = [params, *(a.get("Update", {}) for a in params.get("TransactItems", []))]
            expressions.extend(i[e] for i in items for e in ("UpdateExpression", "ConditionExpression") if e in i)

        default_client().meta.events.register("provide-client-params.dynamodb", record)
        data = pkg.PersistentMap()
        for _ in range(700):
            data.increment("n")
        assert sum("REMOVE" in e for e in expressions) >= 3  # the log filled and was flushed, more than once
        assert max(len(e.encode()) for e in expressions) <= 4096
        assert pkg.PersistentMap()["n"] == 700

    def test_a_value_identical_to_a_stale_copy_is_written(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A set leaves the value it sets, even one equal to this container's copy: another container may have
        changed the key since (skipping the write would lose this later set)."""
        a = pkg.PersistentMap(n=5, nested={"a": [1, 2]})
        b = pkg.PersistentMap()
        b.update(n=6, nested={})
        a["n"] = 5
        a.update(nested={"a": [1, 2]})
        assert pkg.PersistentMap().to_dict() == {"n": 5, "nested": {"a": [1, 2]}} == a

    @pytest.mark.parametrize(
        ("before", "after"),
        [(5, 5.0), (True, 1), (1, True), ((1, 2), [1, 2]), (0.0, -0.0)],
        ids=["int to float", "bool to int", "int to bool", "tuple to list", "zero sign"],
    )
    def test_equal_but_different_is_a_write(
        self, aws: Any, pkg: Any, table_key: str, calls: Calls, before: Any, after: Any
    ) -> None:
        """Values that compare equal but differ in type (or sign) are changes, stored exactly."""
        data = pkg.PersistentMap(v=before)
        calls.clear()
        data["v"] = after
        assert calls.names == ["UpdateItem"]
        assert repr(pkg.PersistentMap()["v"]) == repr(after)

    def test_batch_writes_once(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Inside batch() changes only touch memory (and are readable); one write at exit."""
        data = pkg.PersistentMap(a=1)
        calls.clear()
        with data.batch():
            data["b"] = 2
            del data["a"]
            data.update(c=3)
            assert data.increment("n") == 1
            with data.batch():
                data["d"] = 4
            assert data.to_dict() == {"b": 2, "c": 3, "n": 1, "d": 4}
            assert calls.names == []
        assert calls.names == ["UpdateItem"]
        assert pkg.PersistentMap().to_dict() == {"b": 2, "c": 3, "n": 1, "d": 4}

    def test_batch_that_raises_writes_nothing(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        data = pkg.PersistentMap(a=1)
        calls.clear()

        def failing_block() -> None:
            with data.batch():
                data["a"] = 2
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            failing_block()
        assert calls.names == [] and data.to_dict() == {"a": 1}

    def test_a_batch_that_raises_discards_in_place_edits(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Inside a block, a value read from the map is the block's own copy: an in-place edit is the block's
        change, discarded with it (the container's copy keeps the stored value)."""
        data = pkg.PersistentMap(l=[1], m={"x": {"y": [2]}})

        def failing_block() -> None:
            with data.batch():
                data["l"].append(9)
                data.get("m")["x"]["y"].append(9)
                assert data["l"] == [1, 9]  # (the same copy, read again)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            failing_block()
        assert data.to_dict() == {"l": [1], "m": {"x": {"y": [2]}}} == pkg.PersistentMap().to_dict()

    def test_a_batch_commits_in_place_edits_at_its_exit(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """What a block edited in place is committed with its other changes (one write); values only read, or
        replaced or deleted afterwards in the block, add nothing."""
        data = pkg.PersistentMap(l=[1], r=[5], gone=[6], kept=[7])
        calls.clear()
        with data.batch():
            data["l"].append(2)
            data["gone"].append(0)
            del data["gone"]
            data["kept"].append(0)
            data["kept"] = [8]
            assert data["r"] == [5]
            data["n"] = 1
        assert calls.names == ["UpdateItem"]
        expected = {"l": [1, 2], "r": [5], "kept": [8], "n": 1}
        assert data.to_dict() == expected == pkg.PersistentMap().to_dict()
        calls.clear()
        with data.batch():
            assert data["l"] == [1, 2] and [*data.values()] == [[1, 2], [5], [8], 1]
        assert calls.names == []  # (read only: nothing to write)

    def test_nested_in_place_changes_need_save(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """data['l'].append(x) changes memory only; save() persists it, detected exactly. Other writes do not
        (a write costs what it changes: finding in-place edits means encoding every value, which only save() does)."""
        data = pkg.PersistentMap(l=[1])
        data["l"].append(2)
        assert pkg.PersistentMap()["l"] == [1]
        calls.clear()
        data.save()
        assert calls.names == ["UpdateItem"]
        assert pkg.PersistentMap()["l"] == [1, 2]
        calls.clear()
        data.save()
        assert calls.names == []
        data["l"].append(3)
        data["other"] = 1
        assert pkg.PersistentMap()["l"] == [1, 2]
        data.save()
        assert pkg.PersistentMap()["l"] == [1, 2, 3]

    def test_stored_item_layout(self, aws: Any, pkg: Any, table_key: str) -> None:
        """What is in DynamoDB: the map's head under its key, with format, codec, version, the log of its two
        changes, and a segment-table check; a small map is its head alone."""
        data = pkg.PersistentMap(a=1)
        data["b"] = 2
        item = stored_item(aws, table_key)
        assert item is not None
        assert item["key"] == {"S": table_key}
        assert item["alp_fmt"] == {"N": "3"}
        assert item["alp_ver"] == {"N": "2"}
        assert item["alp_codec"]["S"] == data._codec.name
        assert len(item["alp_log"]["L"]) == 2
        assert len(item["alp_dig"]["B"]) == 16
        assert {k for k in all_keys(aws) if k.startswith(table_key)} == {table_key}
        assert data.version == 2

    def test_aws_lambda_persistence_1_0_0_refuses_the_item_loudly(self, aws: Any, pkg: Any, table_key: str) -> None:
        """1.0.0 unpickles ``value``: it must fail with a message saying what to do, never read an empty map (and
        then overwrite this one with it)."""
        import pickle

        pkg.PersistentMap(a=1)
        item = stored_item(aws, table_key)
        assert item is not None
        with pytest.raises(ValueError, match=r"2\.x stored this map; 1\.0\.0 cannot read it: upgrade this function"):
            pickle.loads(item["value"]["B"])


def nested_list(depth: int) -> list[Any]:
    """``[[...[1]...]]``: ``depth`` lists, built iteratively."""
    value: list[Any] = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def innermost(value: list[Any]) -> list[Any]:
    """The innermost list of ``nested_list`` (walked iteratively: == and repr recurse)."""
    while type(value[0]) is list:
        value = value[0]
    return value


class TestCallerMistakes:
    @pytest.mark.parametrize(
        "delta",
        ["1", b"1", None, True, [1], __import__("decimal").Decimal(1), __import__("enum").IntEnum("E", "A").A],
        ids=["str", "bytes", "None", "bool", "list", "Decimal", "IntEnum"],
    )
    def test_increment_by_a_non_number(self, aws: Any, pkg: Any, table_key: str, calls: Calls, delta: Any) -> None:
        """A delta that is not exactly an int or float is refused with a TypeError naming the key and the fix,
        before anything is written (stored, an ADD of a str would add nothing), in a batch too."""
        data = pkg.PersistentMap(n=1)
        calls.clear()
        message = r"cannot increment 'n' by .*: the delta must be an int or float, not .*; convert it first"
        with pytest.raises(TypeError, match=message):
            data.increment("n", delta)
        with data.batch():
            with pytest.raises(TypeError, match=message):
                data.increment("n", delta)
            data.increment("n", 2)
        assert calls.names == ["UpdateItem"]
        assert pkg.PersistentMap()["n"] == data["n"] == 3

    @pytest.mark.parametrize(
        "key",
        [float("nan"), complex(0, float("nan")), __import__("decimal").Decimal("NaN"), ("a", (1, float("nan")))],
        ids=["float", "complex", "Decimal", "in a tuple"],
    )
    def test_a_nan_key_is_refused(self, aws: Any, pkg: Any, table_key: str, calls: Calls, key: Any) -> None:
        """A NaN equals nothing, itself included: stored, the key could never be found, overwritten or deleted
        (each load makes a new NaN; a delete after another container's commit deleted nothing). Refused before
        anything is written, by every kind of change; a NaN as a value is fine."""
        data = pkg.PersistentMap(n=float("nan"))
        calls.clear()
        changes: list[Callable[[], Any]] = [
            lambda: data.__setitem__(key, 1),
            lambda: data.update({key: 1}),
            lambda: data.increment(key),
            lambda: data.mutate(lambda d: d.__setitem__(key, 1)),
        ]
        for change in changes:
            with pytest.raises(pkg.UnsupportedValueError, match="a NaN equals nothing"):
                change()
        assert calls.names == [] and list(data) == ["n"] and list(pkg.PersistentMap()) == ["n"]

    def test_mutate_a_value_nested_as_deep_as_the_map_stores(self, aws: Any, pkg: Any, table_key: str) -> None:
        """copy.deepcopy gives up at about 490 levels; mutate() works on values as deep as the map stores (the full
        package: 1,000 levels). The lite package's pickler follows as many levels as the stack has room for (about
        500 on Python 3.10-3.11), and mutate() calls it a few frames deeper than a set: at that very edge, a clear
        UnsupportedValueError naming the depth, never RecursionError."""
        from aws_lambda_persistence_lite._values import MAX_NESTING

        data = pkg.PersistentMap()
        for edge in range(MAX_NESTING, 0, -5):  # the deepest the map stores, from this stack
            try:
                data["edge"] = nested_list(edge)
                break
            except pkg.UnsupportedValueError:
                continue
        full = pkg.__name__ == "aws_lambda_persistence"
        assert edge >= (MAX_NESTING if full else 400)
        refused = ""
        try:
            data.mutate(lambda d: innermost(d["edge"]).append(2))
        except pkg.UnsupportedValueError as exc:
            refused = str(exc)
        assert not refused or (not full and f"nested {edge} levels deep" in refused), refused
        del data["edge"]
        data["deep"] = nested_list(edge if full else edge - 20)

        def change(d: dict[Any, Any]) -> int:
            innermost(d["deep"]).append(2)
            return len(d)

        assert data.mutate(change) == 1
        assert innermost(data["deep"]) == [1, 2]
        assert innermost(pkg.PersistentMap()["deep"]) == [1, 2]


class TestConfiguration:
    @pytest.mark.fresh_dynamodb
    def test_defaults(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap()
        s = data.settings
        assert (s.table_name, s.table_key, s.key_field_name, s.value_field_name) == (
            "AWSLambdaPersistence",
            table_key,
            "key",
            "value",
        )

    @pytest.mark.fresh_dynamodb
    def test_arguments_configure(self, aws: Any, pkg: Any, table_key: str) -> None:
        data = pkg.PersistentMap(table_name="Other", table_key="k1", key_field_name="pk", value_field_name="blob")
        data["a"] = 1
        item = aws.get_item(TableName="Other", Key={"pk": {"S": "k1"}})["Item"]
        assert "blob" in item
        assert (
            pkg.PersistentMap(table_name="Other", table_key="k1", key_field_name="pk", value_field_name="blob")["a"]
            == 1
        )

    @pytest.mark.fresh_dynamodb  # reads a table of another name
    def test_environment_wins_over_arguments(
        self, aws: Any, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PERSISTENCE_TABLE_KEY", "from-env")
        monkeypatch.setenv("PERSISTENCE_TABLE_NAME", "EnvTable")
        data = pkg.PersistentMap(table_key="from-arg", table_name="ArgTable")
        assert (data.settings.table_key, data.settings.table_name) == ("from-env", "EnvTable")

    def test_reserved_words_as_data(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Reserved words are settings as keywords, but plain data as positional dict keys or after creation."""
        data = pkg.PersistentMap({"table_name": "not a setting"})
        data["table_key"] = "also data"
        assert data.settings.table_name == TABLE
        assert pkg.PersistentMap().to_dict() == {"table_name": "not a setting", "table_key": "also data"}
        assert set(pkg.RESERVED_WORDS) == {"table_name", "table_key", "key_field_name", "value_field_name"}

    @pytest.mark.fresh_dynamodb
    def test_mix_of_settings_and_data(self, aws: Any, pkg: Any, table_key: str) -> None:
        with pytest.raises(pkg.MixOfConfigAndMapArgsPassed) as raised:
            pkg.PersistentMap(table_key="x", foo="bar")
        assert "PERSISTENCE_TABLE_KEY" in str(raised.value) and "update(" in str(raised.value)
        assert aws.list_tables()["TableNames"] == []

    def test_missing_table_key(self, aws: Any, pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
        with pytest.raises(pkg.ConfigurationError, match="PERSISTENCE_TABLE_KEY"):
            pkg.PersistentMap()

    @pytest.mark.parametrize(
        ("setting", "value"), [("table_name", "x"), ("value_field_name", "alp_x"), ("key_field_name", "")]
    )
    @pytest.mark.fresh_dynamodb  # a shared table is set by PERSISTENCE_TABLE_NAME, which wins
    def test_invalid_settings(self, aws: Any, pkg: Any, table_key: str, setting: str, value: str) -> None:
        with pytest.raises(pkg.ConfigurationError, match=setting):
            pkg.PersistentMap(**{setting: value})

    def test_endpoint_from_environment(
        self, moto_server: str, pkg: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AWS_ENDPOINT_URL_DYNAMODB points the library at a local DynamoDB (here moto's server)."""
        import boto3

        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
        pkg.PersistentMap()["a"] = 1
        direct = boto3.client("dynamodb", endpoint_url=moto_server)
        assert stored_item(direct, table_key, table="AWSLambdaPersistence") is not None
