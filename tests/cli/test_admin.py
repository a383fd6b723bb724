"""The public API for whole stored maps (``admin``, both packages): what it says of small, sharded, 1.0.0, damaged
and foreign maps, what it reads, and a rewrite that never overwrites a concurrent writer."""

from __future__ import annotations

import importlib
import pickle
import random
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TABLE, all_keys, stored_item

KB = 1024


@pytest.fixture
def admin(pkg: Any) -> Any:
    return importlib.import_module(pkg.__name__ + ".admin")


def put_1_0_0(aws: Any, pkg: Any, key: str, value: dict[str, Any]) -> bytes:
    """A 1.0.0 item (a pickled dict in ``value``) beside a map of ``pkg``'s (which creates the table)."""
    pkg.PersistentMap.open(table_key=f"{key}-table")["a"] = 1
    blob = pickle.dumps(value)
    aws.put_item(TableName=TABLE, Item={"key": {"S": key}, "value": {"B": blob}})
    return blob


def set_attribute(aws: Any, key: str, name: str, value: dict[str, Any]) -> None:
    aws.update_item(
        TableName=TABLE,
        Key={"key": {"S": key}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": name},
        ExpressionAttributeValues={":v": value},
    )


class TestDescribe:
    def test_a_small_map_is_its_head(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        """One change in the head's log, no segment; by key (one GetItem) or from the map read, the same facts."""
        data = pkg.PersistentMap.open(table_key=table_key)
        data.update({"a": 1, "b": "x" * 1000})
        info = admin.describe(table_key)
        assert (info.format, info.codec, info.version, info.epoch) == (3, data.codec, 1, 0)
        assert info.key == table_key and info.table == TABLE and info.error is None
        assert info.log_records == 1 and info.segments == () and info.segment_bytes == 0
        assert info.stored_bytes == info.head_bytes > info.log_bytes > 1000 == len("x" * 1000)
        assert info.decoded_bytes == info.log_bytes and 0 < info.log_room < 4000
        assert admin.describe(admin.read(table_key)) == info == admin.describe(data)

    def test_a_sharded_map_lists_its_segments(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        pkg.PersistentMap.open(table_key=table_key)["blob"] = random.Random(1).randbytes(500 * KB)
        info = admin.describe(table_key)
        (partition,) = info.segments
        assert partition.kind == "partition" and partition.shards == 2 and partition.watermark == 1
        assert partition.level is None and partition.stored_bytes > 500 * KB
        assert info.stored_bytes == info.head_bytes + partition.stored_bytes
        assert {key for key in all_keys(aws) if key.startswith(table_key + "#")} == {
            f"{table_key}#alp#{partition.sid}#{i}" for i in range(2)
        }

    def test_a_1_0_0_item(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        blob = put_1_0_0(aws, pkg, table_key, {"x": 1})
        info = admin.describe(table_key)
        assert (info.format, info.codec, info.version, info.log_records) == (1, "pickle-1.0.0", 0, None)
        assert info.decoded_bytes == len(blob) and info.stored_bytes == info.head_bytes > len(blob)
        assert admin.read(table_key) == {"x": 1} and admin.describe(admin.read(table_key)) == info

    def test_a_damaged_head_says_why(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        """Its numbers and the reason, not an exception (a listing goes on past it); reading it raises."""
        pkg.PersistentMap.open(table_key=table_key)["a"] = 1
        set_attribute(aws, table_key, "alp_ver", {"N": "1.5"})
        info = admin.describe(table_key)
        assert (info.format, info.version, info.log_records) == (3, None, None) and "alp_ver" in info.error
        with pytest.raises(pkg.CorruptDataError, match="alp_ver"):
            admin.read(table_key)

    def test_a_codec_this_package_lacks(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        """A sound head of an unknown codec is described in full; its entries are what cannot be read."""
        pkg.PersistentMap.open(table_key=table_key)["a"] = 1
        set_attribute(aws, table_key, "alp_codec", {"S": "cbor+brotli"})
        info = admin.describe(table_key)
        assert info.codec == "cbor+brotli" and info.error is None and info.log_records == 1
        with pytest.raises(pkg.UnsupportedFormatError, match="cbor"):
            admin.read(table_key)

    def test_nothing_stored(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        usage = pkg.Usage()
        assert admin.describe(table_key, usage=usage) is None and admin.read(table_key) is None  # (no table yet)
        pkg.PersistentMap.open(table_key="other")["a"] = 1
        assert admin.describe(table_key, usage=usage) is None and admin.read(table_key) is None
        assert usage.calls == 2


class TestRead:
    def test_settings_are_used_as_given(
        self, aws: Any, pkg: Any, admin: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A key from a listing is read, not the map PERSISTENCE_TABLE_KEY names (which ``open`` would read)."""
        pkg.PersistentMap.open(table_key="named")["a"] = 1
        pkg.PersistentMap.open(table_key=table_key)["a"] = 2
        monkeypatch.setenv("PERSISTENCE_TABLE_KEY", table_key)
        settings = pkg.Settings.resolve({})._replace(table_key="named")
        assert admin.read(settings) == {"a": 1} and admin.read("named") == {"a": 2}
        assert type(admin.read(settings)) is pkg.PersistentMap

    def test_the_full_package_reads_as_its_own_class(self, aws: Any, core: Any, lite: Any) -> None:
        core_admin, lite_admin = (importlib.import_module(p.__name__ + ".admin") for p in (core, lite))
        lite.PersistentMap.open(table_key="m")["a"] = 1
        data = core_admin.read("m")
        assert type(data) is core.PersistentMap and data.codec == lite.PersistentMap.open(lazy=True).codec
        assert core_admin.default_codec() == "msgpack+zstd" and core_admin.__all__ == lite_admin.__all__


class TestRewrite:
    def test_moves_a_map_to_another_codec(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        """Same entries (types and order), the sequence continued, the old segments deleted."""
        from aws_lambda_persistence_lite import admin

        data = lite.PersistentMap.open(table_key=table_key)
        data.update({"blob": random.Random(2).randbytes(500 * KB), "t": (1, b"\x00"), "n": 1})
        old = {key for key in all_keys(aws) if key.startswith(table_key + "#")}
        read = admin.read(table_key)
        assert read is not None
        new = admin.rewrite(read, "msgpack+zstd")
        assert new is not None and (new.codec, new.version, new.epoch) == ("msgpack+zstd", 2, 1)
        assert admin.describe(table_key) == new
        assert list(core.PersistentMap.open(table_key=table_key).items()) == list(data.to_dict().items())
        assert not old & all_keys(aws)
        data["m"] = 2  # a container holding the old map follows it
        assert lite.PersistentMap.open(table_key=table_key)["m"] == 2 and data.codec == "msgpack+zstd"

    def test_upgrades_a_1_0_0_item_with_the_packages_codec(
        self, aws: Any, pkg: Any, admin: Any, table_key: str
    ) -> None:
        put_1_0_0(aws, pkg, table_key, {"x": {1, 2}})
        new = admin.rewrite(admin.read(table_key))
        assert (new.format, new.version, new.codec) == (3, 1, admin.default_codec())
        assert pkg.PersistentMap.open(table_key=table_key) == {"x": {1, 2}}

    def test_a_concurrent_write_wins(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        """Conditional on the head it was read at: a change committed meanwhile makes it write nothing, and the
        change is kept (nothing is lost either way)."""
        pkg.PersistentMap.open(table_key=table_key)["a"] = 1
        data = admin.read(table_key)
        pkg.PersistentMap.open(table_key=table_key)["b"] = 2  # another container, meanwhile
        before = stored_item(aws, table_key)
        assert admin.rewrite(data, "pickle5+zlib") is None
        assert stored_item(aws, table_key) == before
        assert pkg.PersistentMap.open(table_key=table_key) == {"a": 1, "b": 2}

    def test_a_1_0_0_item_converted_meanwhile(self, aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
        put_1_0_0(aws, pkg, table_key, {"x": 1})
        data = admin.read(table_key)
        pkg.PersistentMap.open(table_key=table_key)["y"] = 2  # a 2.x function writes it in format 3
        assert admin.rewrite(data) is None
        assert pkg.PersistentMap.open(table_key=table_key) == {"x": 1, "y": 2}

    def test_dry_run_writes_nothing(self, aws: Any, pkg: Any, admin: Any, table_key: str, calls: Any) -> None:
        pkg.PersistentMap.open(table_key=table_key)["a"] = 1
        data = admin.read(table_key)
        calls.clear()
        assert admin.rewrite(data, "pickle5+zlib", dry_run=True) is None and calls.names == []
        with pytest.raises(pkg.UnsupportedFormatError, match="cbor"):
            admin.rewrite(data, "cbor+brotli")


@pytest.mark.fresh_dynamodb
class TestListMaps:
    def test_heads_and_1_0_0_items_not_segments(self, aws: Any, pkg: Any, admin: Any, calls: Any) -> None:
        """One Scan: a row per map (a damaged head's says why), none for segment items or items of no map."""
        pkg.PersistentMap.open(table_key="large")["blob"] = random.Random(3).randbytes(500 * KB)
        put_1_0_0(aws, pkg, "old", {"x": 1})  # (and the map "old-table")
        pkg.PersistentMap.open(table_key="bad")["a"] = 1
        set_attribute(aws, "bad", "alp_ver", {"N": "-7"})
        aws.put_item(TableName=TABLE, Item={"key": {"S": "not-a-map"}, "other": {"S": "x"}})
        calls.clear()
        found = {info.key: info for info in admin.list_maps()}
        assert calls.names == ["Scan"] and set(found) == {"large", "old", "old-table", "bad"}
        assert found["large"] == admin.describe("large")
        assert found["old"].format == 1 and found["old"].stored_bytes is None  # (its value is not fetched)
        assert found["bad"].error is not None and found["bad"].version == -7

    def test_custom_fields(self, aws: Any, pkg: Any, admin: Any) -> None:
        fields = {"table_name": "Custom", "key_field_name": "pk", "value_field_name": "data"}
        pkg.PersistentMap.open(table_key="m", **fields)["a"] = 1
        settings = pkg.Settings.resolve({"table_key": "*", **fields})
        assert [info.key for info in admin.list_maps(settings)] == ["m"]


def test_watch_reports_what_dynamodb_moves(aws: Any, pkg: Any, admin: Any, table_key: str) -> None:
    """A cold read of a sharded map: the head (with the 2 shards still to come), then its shards; a first write: its
    head item, as it is sent."""
    pkg.PersistentMap.open(table_key=table_key)["blob"] = random.Random(4).randbytes(500 * KB)
    seen: list[tuple[int, int, int]] = []
    with admin.watch(lambda *args: seen.append(args)):
        admin.read(table_key)
    assert [(items, more) for items, _, more in seen] == [(1, 2), (2, 0)] and seen[1][1] > 500 * KB
    seen.clear()
    with admin.watch(lambda *args: seen.append(args)):
        pkg.PersistentMap.open(table_key=f"{table_key}-new")["n"] = 1
    [(items, nbytes, more)] = seen
    assert items == 1 and 0 < nbytes < 4 * KB and more == 0
    admin.read(table_key)
    assert len(seen) == 1  # (the block's end stopped it)


@pytest.mark.fresh_dynamodb
def test_the_readme_example_runs(aws: Any, pkg: Any, lite: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's example, as written, on a lite map: the full package's rewrites it in its own codec."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Whole maps from Python") :]
    found = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert found, "README.md: no Python example under 'Whole maps from Python'"
    lite.PersistentMap.open(table_key="my-function")["a"] = 1
    namespace: dict[str, Any] = {}
    exec(found.group(1).replace("from aws_lambda_persistence import", f"from {pkg.__name__} import"), namespace)
    assert capsys.readouterr().out.startswith("my-function 3 ")
    rewritten = namespace["info"].codec != namespace["admin"].default_codec()
    assert (namespace.get("new") is not None) is rewritten is (pkg is not lite)
