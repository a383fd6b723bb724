"""Reading what is stored: 1.0.0 items, the other package's maps, hostile pickles and damaged items."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import TABLE, stored_item


def put_legacy(
    client: Any,
    key: str,
    payload: bytes,
    table: str = TABLE,
    key_field: str = "key",
    value_field: str = "value",
) -> None:
    """Write an item exactly as aws-lambda-persistence 1.0.0 does: a pickled dict as Binary in ``value``, in a
    table with a string hash key (created, with 1.0.0's 1/1 capacity, if missing)."""
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": key_field, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key_field, "KeyType": "HASH"}],
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
        )
    client.put_item(TableName=table, Item={key_field: {"S": key}, value_field: {"B": payload}})


class TestVersion1Items:
    LEGACY: ClassVar[dict[str, Any]] = {
        "last_run": dt.datetime(2023, 5, 1, 12, 0),
        "count": 3,
        "tags": {"a", "b"},
        "t": (1, 2),
        "empty": b"",  # protocol 2 saves it as a call to bytes()
        "raw": b"\x00\xff",
    }

    @pytest.mark.parametrize("protocol", [2, 4, pickle.DEFAULT_PROTOCOL])
    def test_loads_and_upgrades(self, aws: Any, pkg: Any, table_key: str, protocol: int) -> None:
        """A 1.0.0 item loads in both packages; the next write upgrades it to the current format."""
        put_legacy(aws, table_key, pickle.dumps(self.LEGACY, protocol=protocol))
        data = pkg.PersistentMap()
        assert data.to_dict() == self.LEGACY and data.version == 0
        data["count"] += 1
        item = stored_item(aws, table_key)
        assert item is not None and item["alp_fmt"] == {"N": "2"}
        assert pkg.PersistentMap().to_dict() == {**self.LEGACY, "count": 4}

    def test_empty_map_created_by_1_0_0(self, aws: Any, pkg: Any, table_key: str) -> None:
        """1.0.0 wrote an empty pickled dict when it created its table."""
        put_legacy(aws, table_key, pickle.dumps({}))
        assert pkg.PersistentMap().to_dict() == {}

    @pytest.mark.fresh_dynamodb
    def test_custom_1_0_0_field_names(self, aws: Any, pkg: Any, table_key: str) -> None:
        put_legacy(aws, "m", pickle.dumps({"x": 1}), table="Custom", key_field="pk", value_field="data")
        data = pkg.PersistentMap(table_name="Custom", table_key="m", key_field_name="pk", value_field_name="data")
        assert data["x"] == 1

    def test_malicious_pickle_is_refused(self, aws: Any, pkg: Any, table_key: str, tmp_path: Path) -> None:
        """A pickle that would call os.system is refused before anything runs; no empty map either."""
        marker = tmp_path / "pwned"

        class Exploit:
            def __reduce__(self) -> Any:
                return os.system, (f"touch {marker}",)

        put_legacy(aws, table_key, pickle.dumps({"x": Exploit()}))
        with pytest.raises(pkg.UnsafeDataError) as raised:
            pkg.PersistentMap()
        assert "system" in str(raised.value) and table_key in str(raised.value)
        assert not marker.exists()

    @pytest.mark.parametrize(
        "target",
        [
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("subprocess", "Popen"),
            ("posix", "system"),
            ("builtins", "__import__"),
        ],
    )
    def test_globals_outside_the_allow_list(self, aws: Any, pkg: Any, table_key: str, target: tuple[str, str]) -> None:
        module, name = target
        payload = b"\x80\x04c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x001\x85R."
        put_legacy(aws, table_key, payload)
        with pytest.raises(pkg.UnsafeDataError, match=name):
            pkg.PersistentMap()

    def test_bytearray_bomb_is_refused(self, aws: Any, pkg: Any, table_key: str) -> None:
        """bytearray(10**12) in a stored pickle would allocate a terabyte; only contents are accepted."""
        payload = b"\x80\x04cbuiltins\nbytearray\nJ\x00\x10\xa5\xd4\x85R."
        put_legacy(aws, table_key, payload)
        with pytest.raises(pkg.StoredDataError):
            pkg.PersistentMap()

    @pytest.mark.parametrize(
        "payload",
        [
            b"\x80\x04N" + b"r" + (1 << 24).to_bytes(4, "little") + b"0}.",  # LONG_BINPUT: memo of 16M slots
            b"(dp" + str(1 << 24).encode() + b"\n.",  # PUT (protocol 0): the same, as text
            b"\x80\x04\x8e" + (1 << 30).to_bytes(8, "little") + b"abc",  # BINBYTES8: claims 1 GiB
        ],
        ids=["LONG_BINPUT", "PUT", "BINBYTES8"],
    )
    def test_memory_bombs_are_refused_before_loading(self, aws: Any, pkg: Any, table_key: str, payload: bytes) -> None:
        """A few stored bytes that would make the unpickler allocate gigabytes (CPython gh-115952)."""
        put_legacy(aws, table_key, payload)
        with pytest.raises(pkg.CorruptDataError, match="refused before loading"):
            pkg.PersistentMap()

    def test_exponential_sharing_is_refused(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A 600-byte pickle of a value with 2**60 leaves (each list holds the previous one twice)."""
        value: list[Any] = ["leaf"]
        for _ in range(60):
            value = [value, value]
        put_legacy(aws, table_key, pickle.dumps({"bomb": value}))
        with pytest.raises(pkg.CorruptDataError, match="shares values"):
            pkg.PersistentMap()

    def test_modest_sharing_loads(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Honest sharing (one list referenced from two places) loads, and is kept shared by the lite package."""
        shared = list(range(100))
        put_legacy(aws, table_key, pickle.dumps({"a": [shared, shared], "b": shared}))
        data = pkg.PersistentMap()
        assert data.to_dict() == {"a": [shared, shared], "b": shared}
        data["c"] = 1
        assert pkg.PersistentMap().to_dict() == {"a": [shared, shared], "b": shared, "c": 1}

    def test_damaged_pickle(self, aws: Any, pkg: Any, table_key: str) -> None:
        put_legacy(aws, table_key, pickle.dumps({"a": 1})[:-3])
        with pytest.raises(pkg.CorruptDataError, match=table_key):
            pkg.PersistentMap()

    def test_pickle_of_something_else_than_a_dict(self, aws: Any, pkg: Any, table_key: str) -> None:
        put_legacy(aws, table_key, pickle.dumps([1, 2]))
        with pytest.raises(pkg.StoredDataError, match="dict"):
            pkg.PersistentMap()


class TestBetweenPackages:
    def test_core_reads_lite(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        lite.PersistentMap(a={1, 2}, when=dt.date(2020, 1, 1))
        assert core.PersistentMap().to_dict() == {"a": {1, 2}, "when": dt.date(2020, 1, 1)}

    def test_core_reads_lite_with_shared_values(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        """Lite keeps shared references; the full package reads them as copies and writes trees."""
        shared = [1, 2, 3]
        lite.PersistentMap(a=[shared, shared])
        data = core.PersistentMap()
        assert data.to_dict() == {"a": [shared, shared]}
        data["b"] = 1
        assert lite.PersistentMap().to_dict() == {"a": [shared, shared], "b": 1}

    def test_lite_refuses_core_with_advice(
        self, aws: Any, lite: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Never a silent empty map: the lite package alone says which package to install."""
        from aws_lambda_persistence_lite import _codec

        monkeypatch.delitem(_codec._decoders, "msgpack+zstd", raising=False)  # as where core is not installed
        lite.PersistentMap(a=1)
        item = stored_item(aws, table_key)
        assert item is not None
        item["alp_codec"] = {"S": "msgpack+zstd"}
        aws.put_item(TableName=TABLE, Item=item)
        with pytest.raises(lite.UnsupportedFormatError, match="pip install aws-lambda-persistence"):
            lite.PersistentMap()

    def test_lite_writes_over_core_only_after_reading(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        """A core map written, then rewritten by core from a lite map: the codec follows the writer."""
        lite.PersistentMap(a=1)
        data = core.PersistentMap()
        data["b"] = 2
        assert stored_item(aws, table_key)["alp_codec"] == {"S": "msgpack+zstd"}  # type: ignore[index]


class TestDamagedItems:
    def write(self, pkg: Any) -> Any:
        pkg.PersistentMap(a=1, b="x" * 100)
        return pkg

    def patch(self, client: Any, key: str, **attributes: Any) -> None:
        item = stored_item(client, key)
        assert item is not None
        item.update(attributes)
        for name, value in list(item.items()):
            if value is None:
                del item[name]
        client.put_item(TableName=TABLE, Item=item)

    def test_flipped_byte(self, aws: Any, pkg: Any, table_key: str) -> None:
        self.write(pkg)
        blob = bytearray(stored_item(aws, table_key)["value"]["B"])  # type: ignore[index]
        blob[len(blob) // 2] ^= 0xFF
        self.patch(aws, table_key, value={"B": bytes(blob)})
        with pytest.raises(pkg.CorruptDataError) as raised:
            pkg.PersistentMap()
        assert raised.value.table == TABLE and raised.value.key == table_key
        assert "integrity" in str(raised.value)

    def test_wrong_size_claim(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A head that lies about the decoded size cannot make the reader allocate more."""
        self.write(pkg)
        self.patch(aws, table_key, alp_raw={"N": str(10**15)})
        with pytest.raises(pkg.CorruptDataError):
            pkg.PersistentMap()

    def test_missing_attribute(self, aws: Any, pkg: Any, table_key: str) -> None:
        self.write(pkg)
        self.patch(aws, table_key, alp_codec=None)
        with pytest.raises(pkg.CorruptDataError, match="malformed"):
            pkg.PersistentMap()

    def test_newer_format(self, aws: Any, pkg: Any, table_key: str) -> None:
        self.write(pkg)
        self.patch(aws, table_key, alp_fmt={"N": "99"})
        with pytest.raises(pkg.UnsupportedFormatError, match="upgrade"):
            pkg.PersistentMap()

    def test_unknown_codec(self, aws: Any, pkg: Any, table_key: str) -> None:
        self.write(pkg)
        self.patch(aws, table_key, alp_codec={"S": "cbor+brotli"})
        with pytest.raises(pkg.UnsupportedFormatError, match="cbor"):
            pkg.PersistentMap()

    def test_value_not_binary(self, aws: Any, pkg: Any, table_key: str) -> None:
        put_legacy(aws, table_key, b"")
        self.patch(aws, table_key, value={"S": "text"})
        with pytest.raises(pkg.CorruptDataError, match="Binary"):
            pkg.PersistentMap()

    def test_damaged_map_is_not_overwritten(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Nothing replaces a damaged map behind the user's back: it stays as found until repaired."""
        self.write(pkg)
        self.patch(aws, table_key, alp_dig={"B": b"0" * 16})
        before = stored_item(aws, table_key)
        with pytest.raises(pkg.CorruptDataError):
            pkg.PersistentMap(new=1)
        assert stored_item(aws, table_key) == before
