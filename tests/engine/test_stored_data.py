"""What is stored (FORMAT.md) and reading it back: the head and segment items, 1.0.0 items and their upgrade,
the other package's maps, hostile pickles and damaged items, through DynamoDB (moto by default)."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aws_lambda_persistence_lite._codec import codec_for
from aws_lambda_persistence_lite._compression import has_stdlib_zstd
from aws_lambda_persistence_lite._head import HEAD_BUDGET, LEGACY_TRAP
from aws_lambda_persistence_lite._meter import item_size
from aws_lambda_persistence_lite._records import (
    PARTITION,
    RUN,
    SHARD_BYTES,
    decode_record,
    decode_table,
    digest,
)
from aws_lambda_persistence_lite._records import segment_digest as shard_digest
from aws_lambda_persistence_lite._state import segment_key

from tests.conftest import (
    HAS_CORE,
    TABLE,
    Calls,
    apply_ops,
    flushed,
    package_codec,
    patch,
    put_legacy,
    refused,
    stored_item,
    stored_keys,
)


def segment_keys(table_key: str, segments: list[Any]) -> set[str]:
    return {segment_key(table_key, s.sid, i) for s in segments for i in range(s.shards)}


def logged(item: dict[str, Any]) -> dict[Any, Any]:
    """The map that the records in a head's log make alone, decoded by the codec the head names."""
    codec = codec_for(item["alp_codec"]["S"])
    data: dict[Any, Any] = {}
    for element in item["alp_log"]["L"]:
        apply_ops(data, decode_record(element["B"])[1], codec)
    return data


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
        """A 1.0.0 item loads in both packages (through the pickle allow-list); the first write replaces it with a
        format-3 head whose log holds every key, so that the map no longer depends on the 1.0.0 pickle."""
        put_legacy(aws, table_key, pickle.dumps(self.LEGACY, protocol=protocol))
        data = pkg.PersistentMap()
        assert data.to_dict() == self.LEGACY and data.version == 0
        data["count"] += 1
        item = stored_item(aws, table_key)
        assert item is not None and item["alp_fmt"] == {"N": "3"}
        assert item["value"] == {"B": LEGACY_TRAP}  # the 1.0.0 pickle is gone
        assert logged(item) == {**self.LEGACY, "count": 4}
        assert stored_keys(aws, table_key) == {table_key}  # a small map: one head item
        assert pkg.PersistentMap().to_dict() == {**self.LEGACY, "count": 4}

    def test_large_1_0_0_item_is_upgraded_in_one_large_write(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A 1.0.0 map too large for the head's log becomes the map's partitions, written with the new head; every
        key is kept, in order, and the head stays small."""
        legacy = {f"k{i}": random.Random(i).randbytes(3_000) for i in range(60)}  # ~180 KB, incompressible
        put_legacy(aws, table_key, pickle.dumps(legacy, protocol=4))
        data = pkg.PersistentMap()
        data["new"] = 1
        item = stored_item(aws, table_key)
        assert item is not None and item["alp_fmt"] == {"N": "3"} and item_size(item) <= HEAD_BUDGET
        segments = decode_table(item["alp_seg"]["B"])
        assert segments and all(s.kind == PARTITION and s.c == 1 for s in segments)  # (watermark 1: the migration)
        assert stored_keys(aws, table_key) == {table_key} | segment_keys(table_key, segments)
        assert list(pkg.PersistentMap().to_dict().items()) == [*legacy.items(), ("new", 1)]

    def test_1_0_0_cannot_read_a_format_3_map(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A 1.0.0 container reading a map 2.x wrote fails loudly, before it could replace the map: its
        pickle.loads of ``value`` raises ValueError saying to upgrade (small maps, and maps flushed many times)."""
        data = pkg.PersistentMap(a=1)
        for stage in ("small", "flushed"):
            if stage == "flushed":
                for i in range(250):
                    data[f"k{i % 40}"] = "x" * 100 + str(i)
            item = stored_item(aws, table_key)
            assert item is not None
            with pytest.raises(ValueError, match=r"1\.0\.0 cannot read it: upgrade this function"):
                pickle.loads(item["value"]["B"])  # exactly what 1.0.0 does with the item it reads
        assert item is not None and "alp_seg" in item  # (the second stage did flush)

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


class TestStoredItems:
    """What a map looks like in DynamoDB (FORMAT.md, "Items" and "Head item")."""

    def test_a_small_map_is_one_head_item(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A few writes: one head item holding every record in its log, no segment, and the 1.0.0 trap."""
        data = pkg.PersistentMap(a=1, text="x" * 50)
        data["b"] = [1, 2]
        del data["a"]
        data.increment("n", 3)
        item = stored_item(aws, table_key)
        assert item is not None and stored_keys(aws, table_key) == {table_key}
        assert item["alp_fmt"] == {"N": "3"}
        assert item["alp_codec"] == {"S": pkg.PersistentMap.open(lazy=True).codec}
        assert item["alp_ver"] == {"N": "4"} and item["alp_ep"] == {"N": "0"}  # four records, no structural commit
        log = [element["B"] for element in item["alp_log"]["L"]]
        assert len(log) == 4
        assert "alp_ids" not in item and len({r[:8] for r in log}) == 4  # (ids of logged records: their first bytes)
        assert "alp_seg" not in item and item["alp_dig"] == {"B": digest(b"")}  # an empty segment table
        assert item["value"] == {"B": LEGACY_TRAP}
        assert int(item["alp_room"]["N"]) >= 0 and item_size(item) <= HEAD_BUDGET
        assert logged(item) == {"text": "x" * 50, "b": [1, 2], "n": 3}
        assert pkg.PersistentMap().to_dict() == {"text": "x" * 50, "b": [1, 2], "n": 3}

    def test_flushes_store_segments_the_head_lists(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Hundreds of 100-byte sets flush the log into immutable segment items at ``table_key#alp#<sid>#<i>``;
        the head lists exactly the segments stored (nothing orphaned, nothing missing), each shard matches its
        digest, and the head stays within its 4,000-byte budget throughout."""
        data = pkg.PersistentMap()
        epochs = set()
        for i in range(300):
            data[f"k{i % 60}"] = "x" * 100 + str(i)
            item = stored_item(aws, table_key) or {}
            assert item and item_size(item) <= HEAD_BUDGET
            epochs.add(int(item["alp_ep"]["N"]))
        assert item["alp_ver"] == {"N": "300"} and len(epochs) > 5  # many flushes, each one structural commit
        assert item["alp_dig"] == {"B": digest(item["alp_seg"]["B"])}
        segments = decode_table(item["alp_seg"]["B"])
        assert {s.kind for s in segments} <= {PARTITION, RUN} and any(s.kind == PARTITION for s in segments)
        keys = stored_keys(aws, table_key)
        assert keys == {table_key} | segment_keys(table_key, segments)
        assert all(re.fullmatch(re.escape(table_key) + r"#alp#[0-9a-f]{16}#\d+", k) for k in keys - {table_key})
        for s in segments:
            if s.shards:
                shards = [stored_item(aws, segment_key(table_key, s.sid, i)) or {} for i in range(s.shards)]
                blob = b"".join(shard["value"]["B"] for shard in shards)
                assert len(blob) == s.blob_size and shard_digest(blob) == s.digest
        expected = {f"k{i % 60}": "x" * 100 + str(i) for i in range(240, 300)}
        assert pkg.PersistentMap().to_dict() == expected == data.to_dict()

    def test_a_small_map_lives_in_its_head(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A small map flushed many times keeps its one partition inline (``alp_inl``, shard count 0) and no run:
        one item in DynamoDB, and a cold load is one GetItem. Grown past what the head can hold, the partition
        moves to a shard item and ``alp_inl`` goes; the map reads the same throughout."""
        data = pkg.PersistentMap()
        for i in range(300):
            data[f"k{i % 40}"] = "x" * 30 + str(i)
        item = stored_item(aws, table_key)
        assert item is not None and int(item["alp_ep"]["N"]) > 3  # flushed more than once
        (partition,) = decode_table(item["alp_seg"]["B"])
        assert partition.kind == PARTITION and partition.shards == 0 and partition.depth == 0
        assert (
            len(item["alp_inl"]["B"]) == partition.blob_size and shard_digest(item["alp_inl"]["B"]) == partition.digest
        )
        assert stored_keys(aws, table_key) == {table_key} and item_size(item) <= HEAD_BUDGET
        calls.clear()
        assert pkg.PersistentMap().to_dict() == data.to_dict()
        assert calls.names == ["GetItem"]

        rng = random.Random(5)
        for i in range(60):  # incompressible values: the partition outgrows the head
            data[f"r{i}"] = rng.randbytes(40).hex()
        item = stored_item(aws, table_key)
        assert item is not None and "alp_inl" not in item
        segments = decode_table(item["alp_seg"]["B"])
        assert all(s.shards for s in segments if s.blob_size)
        assert stored_keys(aws, table_key) == {table_key} | segment_keys(table_key, segments)
        assert pkg.PersistentMap().to_dict() == data.to_dict()

    def test_a_large_change_is_a_run_of_its_own(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A change too large for the log (here 500 KB, incompressible) is a run segment in shards of at most
        SHARD_BYTES, committed with the head; the log does not hold it."""
        data = pkg.PersistentMap(a=1)
        blob = random.Random(3).randbytes(500_000)
        data["blob"] = blob
        item = stored_item(aws, table_key)
        assert item is not None and item["alp_ver"] == {"N": "2"} and item_size(item) <= HEAD_BUDGET
        segments = decode_table(item["alp_seg"]["B"])  # (the log's earlier records may be flushed with it)
        (run,) = [s for s in segments if (s.kind, s.lo, s.hi) == (RUN, 2, 2)]
        assert run.shards == -(-run.blob_size // SHARD_BYTES) == 2 and run.raw_size > 500_000
        assert stored_keys(aws, table_key) == {table_key} | segment_keys(table_key, segments)
        assert "blob" not in logged(item)
        assert pkg.PersistentMap().to_dict() == {"a": 1, "blob": blob}


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

    def test_codec_is_chosen_when_opening(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        """``open(codec=...)`` writes a new map with that codec; a stored map keeps its codec whichever package or
        codec opens it, and either package reads every codec this process has."""
        assert core.CODECS == lite.CODECS == ("pickle5+zlib", "pickle5+zstd", "msgpack+zstd")
        data = core.PersistentMap.open(codec="pickle5+zlib")
        data["a"] = (1, dt.date(2020, 1, 1))
        assert data.codec == "pickle5+zlib" and (stored_item(aws, table_key) or {})["alp_codec"] == {
            "S": "pickle5+zlib"
        }
        again = core.PersistentMap()  # (the full package's default is msgpack+zstd: the stored map's codec wins)
        again["b"] = 2
        assert again.codec == "pickle5+zlib" and (stored_item(aws, table_key) or {})["alp_codec"] == {
            "S": "pickle5+zlib"
        }
        other = lite.PersistentMap.open(table_key=table_key + "-m", codec="msgpack+zstd")
        other["s"] = {1}
        assert lite.PersistentMap.open(table_key=table_key + "-m").to_dict() == {"s": {1}}
        assert core.PersistentMap.open(table_key=table_key + "-m").codec == "msgpack+zstd"
        assert lite.PersistentMap().to_dict() == {"a": (1, dt.date(2020, 1, 1)), "b": 2}

    def test_unknown_or_unusable_codec_is_a_configuration_error(
        self, aws: Any, pkg: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from aws_lambda_persistence_lite import _codec

        with pytest.raises(pkg.ConfigurationError, match="unknown codec 'json'; known codecs: pickle5"):
            pkg.PersistentMap.open(codec="json")
        monkeypatch.setitem(_codec._WHERE, "msgpack+zstd", (("aws_lambda_persistence_absent", "Codec"),))
        _codec._class_for.cache_clear()
        with pytest.raises(pkg.ConfigurationError, match="pip install aws-lambda-persistence"):
            pkg.PersistentMap.open(codec="msgpack+zstd")

    def test_lite_refuses_core_with_advice(
        self, aws: Any, lite: Any, table_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Never a silent empty map: the lite package alone says which package to install."""
        from aws_lambda_persistence_lite import _codec

        # as where the full package is not installed
        monkeypatch.setitem(_codec._WHERE, "msgpack+zstd", (("aws_lambda_persistence_absent", "Codec"),))
        _codec._class_for.cache_clear()
        lite.PersistentMap(a=1)
        item = stored_item(aws, table_key)
        assert item is not None
        item["alp_codec"] = {"S": "msgpack+zstd"}
        aws.put_item(TableName=TABLE, Item=item)
        with pytest.raises(lite.UnsupportedFormatError, match="pip install aws-lambda-persistence"):
            lite.PersistentMap()

    def test_core_writes_over_lite(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        """A lite map that the full package then writes to stays readable by both packages, and the head names
        the codec of every entry it holds."""
        lite.PersistentMap(a=1)
        data = core.PersistentMap()
        data["b"] = 2
        item = stored_item(aws, table_key)
        assert item is not None and logged(item) == {"a": 1, "b": 2}  # decoded by the codec the head names
        assert lite.PersistentMap().to_dict() == {"a": 1, "b": 2} == core.PersistentMap().to_dict()


class TestDamagedItems:
    """Damaged stored items, found by a cold reader: a StoredDataError subclass naming table and key, never another
    exception and never a wrong or empty map."""

    def test_flipped_byte_in_a_segment(self, aws: Any, pkg: Any, table_key: str) -> None:
        flushed(pkg)
        shard = sorted(stored_keys(aws, table_key) - {table_key})[0]
        item = stored_item(aws, shard)
        assert item is not None
        blob = bytearray(item["value"]["B"])
        blob[len(blob) // 2] ^= 0xFF
        item["value"] = {"B": bytes(blob)}
        aws.put_item(TableName=TABLE, Item=item)
        refused(pkg, table_key, pkg.CorruptDataError, "integrity")

    def test_damaged_segment_table(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The table's digest is checked before the table is used."""
        flushed(pkg)
        table = bytearray((stored_item(aws, table_key) or {})["alp_seg"]["B"])
        table[-1] ^= 0x01
        patch(aws, table_key, alp_seg={"B": bytes(table)})
        refused(pkg, table_key, pkg.CorruptDataError, "integrity")

    def test_missing_segment(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A shard gone while the head still lists it: the reader reads the head again (a structural commit may
        have replaced the segment) and, the head being the same, reports the damage."""
        flushed(pkg)
        shard = sorted(stored_keys(aws, table_key) - {table_key})[0]
        aws.delete_item(TableName=TABLE, Key={"key": {"S": shard}})
        calls.clear()
        refused(pkg, table_key, pkg.CorruptDataError, re.escape(table_key))
        assert 2 <= calls.count("GetItem") <= 3

    def test_missing_attribute(self, aws: Any, pkg: Any, table_key: str) -> None:
        pkg.PersistentMap(a=1)
        patch(aws, table_key, alp_codec=None)
        refused(pkg, table_key, pkg.CorruptDataError, "malformed")

    @pytest.mark.parametrize(
        "attributes",
        [
            pytest.param({"alp_ver": {"S": "1"}}, id="alp_ver-S"),
            pytest.param({"alp_ver": {"N": "1.5"}}, id="alp_ver-fraction"),
            pytest.param({"alp_ver": {"N": "-1"}}, id="alp_ver-negative"),
            pytest.param({"alp_ep": {"S": "0"}}, id="alp_ep-S"),
            pytest.param({"alp_ep": {"N": "-1"}}, id="alp_ep-negative"),
            pytest.param({"alp_room": {"B": b"1"}}, id="alp_room-B"),
            pytest.param({"alp_codec": {"N": "1"}}, id="alp_codec-N"),
            pytest.param({"alp_dig": {"S": "x"}}, id="alp_dig-S"),
            pytest.param({"alp_dig": None}, id="alp_dig-missing"),
            pytest.param({"alp_seg": {"S": "x"}}, id="alp_seg-S"),
            pytest.param({"alp_log": {"L": [{"S": "record"}]}}, id="alp_log-element-S"),
            pytest.param({"alp_ids": {"L": [{"B": b"short"}]}}, id="alp_ids-short"),
            pytest.param({"alp_ids": {"BS": [b"12345678"]}}, id="alp_ids-BS"),
            pytest.param({"alp_fmt": {"S": "3"}}, id="alp_fmt-S"),
            pytest.param({"alp_log": {"S": "x"}}, id="alp_log-S"),
            pytest.param({"alp_log": None}, id="alp_log-missing"),
            pytest.param({"alp_log": {"L": [{"B": b"12345678"}, {"L": []}]}}, id="alp_log-element-L"),
            pytest.param({"alp_ids": {"S": "x"}}, id="alp_ids-S"),
            pytest.param({"alp_ids": {"SS": ["12345678"]}}, id="alp_ids-SS"),
            pytest.param({"alp_garbage": {"N": "3"}}, id="alp_garbage-N"),
            pytest.param({"alp_garbage": {"BS": [b"x"]}}, id="alp_garbage-BS"),
            pytest.param({"alp_ver": None}, id="alp_ver-missing"),
            pytest.param({"alp_ver": {"N": str(2**63)}}, id="alp_ver-too-large"),
            pytest.param({"alp_ep": None}, id="alp_ep-missing"),
            pytest.param({"alp_room": None}, id="alp_room-missing"),
            pytest.param({"alp_room": {"N": "400000"}}, id="alp_room-beyond-the-head-budget"),
            pytest.param({"alp_room": {"N": "-1000000"}}, id="alp_room-below-an-item"),
            pytest.param({"alp_codec": {"S": ""}}, id="alp_codec-empty"),
            pytest.param({"alp_codec": {"S": "x" * 65}}, id="alp_codec-too-long"),
            pytest.param({"alp_codec": {"S": "pickle5+zlib\n"}}, id="alp_codec-control-character"),
            pytest.param({"alp_dig": {"B": b""}}, id="alp_dig-empty"),
        ],
    )  # fmt: skip
    def test_wrong_types_and_values(self, aws: Any, pkg: Any, table_key: str, attributes: dict[str, Any]) -> None:
        """Every head attribute is checked for its type and range: damage is refused, never read as a default
        (an absent or mistyped log read as empty would be an empty map)."""
        pkg.PersistentMap(a=1, b=2)
        patch(aws, table_key, **attributes)
        refused(pkg, table_key, pkg.CorruptDataError)

    def test_wrong_type_is_named(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The error names the attribute and what it should be."""
        pkg.PersistentMap(a=1)
        patch(aws, table_key, alp_log={"S": "x"})
        refused(pkg, table_key, pkg.CorruptDataError, r"alp_log is damaged: it should be a list \(L\)")
        patch(aws, table_key, alp_log=None)
        refused(pkg, table_key, pkg.CorruptDataError, r"alp_log is missing: it should be a list \(L\)")
        patch(aws, table_key, alp_log={"L": []}, alp_room={"N": "5000"})
        refused(pkg, table_key, pkg.CorruptDataError, r"alp_room is damaged: it should be an integer \(N\) in")

    @pytest.mark.parametrize("absent", ["alp_ids", "alp_garbage", "alp_seg"])
    def test_optional_attributes_may_be_absent(self, aws: Any, pkg: Any, table_key: str, absent: str) -> None:
        """FORMAT.md lets a head omit alp_ids (no ids), alp_garbage (no claims) and alp_seg (no segments)."""
        pkg.PersistentMap(a=1, b=2)
        item = stored_item(aws, table_key)
        assert item is not None and "alp_seg" not in item
        patch(aws, table_key, **{absent: None})
        assert pkg.PersistentMap().to_dict() == {"a": 1, "b": 2}

    def test_newer_format(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A head from a later version names the fix: upgrade."""
        pkg.PersistentMap(a=1)
        patch(aws, table_key, alp_fmt={"N": "4"})
        refused(pkg, table_key, pkg.UnsupportedFormatError, "upgrade aws-lambda-persistence")

    def test_format_2_head(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A head exactly as format 2 stored it (2.0's unreleased format) is refused, not read as empty, and not
        overwritten by a write."""
        codec = package_codec(pkg)
        body = codec.join([codec.encode_entry("a", 1)])
        blob = codec.compress(body)
        pkg.PersistentMap(x=0)  # (creates the table)
        format_2 = {
            "key": {"S": table_key},
            "alp_fmt": {"N": "2"},
            "alp_codec": {"S": codec.name},
            "alp_ver": {"N": "3"},
            "alp_raw": {"N": str(len(body))},
            "alp_dig": {"B": digest(blob)},
            "alp_cid": {"S": "0" * 16},
            "value": {"B": blob},
        }
        aws.put_item(TableName=TABLE, Item=format_2)
        before = stored_item(aws, table_key)
        assert before is not None and before["alp_fmt"] == {"N": "2"}
        refused(pkg, table_key, pkg.UnsupportedFormatError, "format 2")
        with pytest.raises(pkg.UnsupportedFormatError):
            pkg.PersistentMap(new=1)
        assert stored_item(aws, table_key) == before

    def test_unknown_codec(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A codec this package does not know is named in the error, not guessed."""
        pkg.PersistentMap(a=1)
        patch(aws, table_key, alp_codec={"S": "cbor+brotli"})
        refused(pkg, table_key, pkg.UnsupportedFormatError, f"table '{TABLE}' under key .* 'cbor")
        with pytest.raises(pkg.UnsupportedFormatError) as raised:  # also where a head comes back from a write
            pkg.PersistentMap(new=1)
        assert (raised.value.table, raised.value.key) == (TABLE, table_key)

    @pytest.mark.skipif(HAS_CORE or has_stdlib_zstd(), reason="the full package or Python 3.14+ reads pickle5+zstd")
    def test_codec_this_interpreter_lacks(self, aws: Any, lite: Any, table_key: str) -> None:
        """A lite map compressed with Python 3.14's zstd, read by the lite package alone on an older Python: the
        error names the map and the fix (run in the lite-only environment)."""
        lite.PersistentMap(a=1)
        patch(aws, table_key, alp_codec={"S": "pickle5+zstd"})
        refused(lite, table_key, lite.UnsupportedFormatError, "under key .*Python 3.14")

    def test_value_not_binary(self, aws: Any, pkg: Any, table_key: str) -> None:
        put_legacy(aws, table_key, b"")
        patch(aws, table_key, value={"S": "text"})
        refused(pkg, table_key, pkg.CorruptDataError, "Binary")

    @pytest.mark.parametrize("shape", ["small", "flushed"])
    def test_damaged_map_is_not_overwritten(self, aws: Any, pkg: Any, table_key: str, shape: str) -> None:
        """Nothing replaces a damaged map behind the user's back: it stays as found until repaired."""
        if shape == "small":
            pkg.PersistentMap(a=1, b="x" * 100)
        else:
            flushed(pkg)
        patch(aws, table_key, alp_dig={"B": b"0" * 16})
        before = stored_item(aws, table_key)
        with pytest.raises(pkg.CorruptDataError):
            pkg.PersistentMap(new=1)
        assert stored_item(aws, table_key) == before

    @pytest.mark.parametrize("damage", ["digest", "table"])
    def test_write_onto_a_head_damaged_since_loading(self, aws: Any, pkg: Any, table_key: str, damage: str) -> None:
        """A container that loaded the map before it was damaged (its table's digest, or the table's bytes): its
        write is refused and changes nothing (the append is pinned to the table it verified)."""
        data = pkg.PersistentMap(a=1, b="x" * 100)
        table = (stored_item(aws, table_key) or {}).get("alp_seg", {"B": b""})["B"]
        patch(
            aws,
            table_key,
            **({"alp_dig": {"B": b"0" * 16}} if damage == "digest" else {"alp_seg": {"B": table + b"x"}}),
        )
        before = stored_item(aws, table_key)
        with pytest.raises(pkg.CorruptDataError):
            data["new"] = 1
        assert stored_item(aws, table_key) == before


class TestTablesThatClaimTooMuch:
    """A head may list segments whose shards do not exist, or claim sizes no map has: a reader finds out in a
    call or two, never by asking for thousands of shards (before: 15 s for 30,000)."""

    def claiming(self, aws: Any, table_key: str, runs: int, blob: int) -> None:
        from aws_lambda_persistence_lite._records import Segment, encode_table

        listed = (stored_item(aws, table_key) or {}).get("alp_seg")
        table = decode_table(listed["B"]) if listed else []
        shards = -(-blob // SHARD_BYTES)
        extra = [Segment(RUN, f"{i:016x}", bytes(8), blob, blob, shards, 0, 1, 1) for i in range(runs)]
        encoded = encode_table([*table, *extra])
        patch(aws, table_key, alp_seg={"B": encoded}, alp_dig={"B": digest(encoded)})

    def test_missing_shards_cost_a_call_or_two(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        pkg.PersistentMap(a=1)
        self.claiming(aws, table_key, runs=5, blob=400_000_000)  # (5,125 shards, none stored)
        calls.clear()
        refused(pkg, table_key, pkg.CorruptDataError, "lacks a shard item")
        assert calls.count("BatchGetItem") <= 4

    def test_a_table_claiming_more_than_a_map_holds(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        pkg.PersistentMap(a=1)
        self.claiming(aws, table_key, runs=3, blob=1_000_000_000)
        calls.clear()
        refused(pkg, table_key, pkg.CorruptDataError, "claims .* bytes, more than any map holds")
        assert calls.names == ["GetItem"]
