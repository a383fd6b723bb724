"""The command line tool, every command, both packages, against moto in-process (one run as a real process).

Commands run through each package's ``__main__.main(argv)``; stdout and stderr are captured by pytest.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TABLE, all_keys, package_codec, put_legacy, stored_item
from tests.faults.injection import Faults, denied
from tests.values import VALUES, canonical

KB = 1024
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")

#: The table-wide commands (list, migrate) and the fixed map names here need a table of their own: these tests
#: skip where tests share one table (real AWS). The engine under them runs there through the rest of the suite.
pytestmark = pytest.mark.fresh_dynamodb


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.fixture
def cli(aws: Any, pkg: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The package's command, with stdin that is not a terminal (as in CI and scripts)."""
    main = importlib.import_module(pkg.__name__ + ".__main__").main
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return lambda *argv: _run(main, capsys, *argv)


def where_calls_went() -> str:
    """How an error names the DynamoDB it asked: the test backend's endpoint, or moto in-process's region."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    return f"at endpoint {endpoint}" if endpoint else "in region us-east-1"


def one_line_error(result: Result, code: int = 1) -> str:
    """The error of a failed command: the expected exit code, one line on stderr, no traceback."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if ": warning: " not in line]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("aws-lambda-persistence")
    return lines[0]


def opened(pkg: Any, key: str, **settings: Any) -> Any:
    return pkg.PersistentMap.open(table_key=key, **settings)


class TestList:
    def test_lists_heads_not_segments_nor_blobs(self, cli: Cli, pkg: Any, aws: Any) -> None:
        """Small, segmented and 1.0.0 maps each get a row, and so does a head this version cannot read (saying so);
        segment items (key + value, like 1.0.0 items) do not; the Scan never fetches values."""
        opened(pkg, "small")["a"] = 1
        opened(pkg, "large")["blob"] = random.Random(0).randbytes(500 * KB)
        put_legacy(aws, "old", pickle.dumps({"x": 1}))
        v2 = {"key": {"S": "v2"}, "value": {"B": b"x"}, "alp_fmt": {"N": "2"}, "alp_ver": {"N": "4"}}
        aws.put_item(TableName=TABLE, Item={**v2, "alp_codec": {"S": "pickle5+zlib"}})
        assert [k for k in all_keys(aws) if k.startswith("large#alp#")]  # the run holding the blob: 2 items
        scans: list[dict[str, Any]] = []
        from aws_lambda_persistence_lite._client import default_client

        default_client().meta.events.register(
            "before-parameter-build.dynamodb.Scan", lambda params, **_: scans.append(params)
        )
        result = cli("list")
        assert result.code == 0, result
        lines = result.out.splitlines()
        assert lines[0].split() == ["KEY", "VERSION", "FORMAT", "CODEC", "STORAGE", "SIZE"]
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert set(rows) == {"small", "large", "old", "v2"}
        codec = pkg.PersistentMap.open(lazy=True).codec
        assert rows["small"][1:5] == ["1", "3", codec, "head"]  # the one change is in the head's log
        assert rows["large"][1:6] == ["1", "3", codec, "1", "segment"]
        assert rows["old"][1:] == ["0", "1", "pickle-1.0.0", "inline", "-"]
        assert rows["v2"][1:] == ["4", "2", "pickle5+zlib", "unreadable", "-"]
        projection = scans[0]["ProjectionExpression"]
        names = scans[0]["ExpressionAttributeNames"]
        assert "value" not in {names[n.strip()] for n in projection.split(",")}

        rows_json = {r["key"]: r for r in json.loads(cli("list", "--json").out)}
        large, small = rows_json["large"], rows_json["small"]
        assert large["segments"] == 1 and large["shards"] == 2 and large["size"] > 500 * KB
        # the head's size, its value (the 1.0.0 trap, not fetched by the Scan) included
        binary = sum(len(v["B"]) for v in (stored_item(aws, "small") or {}).values() if "B" in v)
        assert small["segments"] == 0 and small["log"] == 1 and binary < small["size"] < 4000
        assert rows_json["old"]["size"] is None and "format 2" in rows_json["v2"]["error"]

    def test_missing_table_is_one_line(self, cli: Cli) -> None:
        line = one_line_error(cli("list", "--table", "NoSuchTable"))
        assert f"table 'NoSuchTable' (from --table) does not exist {where_calls_went()}" in line


class TestShowGetSetDelete:
    def test_show_json_is_exact(self, cli: Cli, pkg: Any, lite: Any) -> None:
        """show prints tagged JSON that reads back as the same map, types included."""
        from aws_lambda_persistence_lite import _tagged_json

        values = dict(VALUES)
        opened(pkg, "m").update(values)
        result = cli("show", "m")
        assert result.code == 0, result
        assert canonical(values) == canonical(_tagged_json.loads(result.out))
        assert cli("show", "m", "--json").out == result.out

    def test_show_pretty(self, cli: Cli, pkg: Any) -> None:
        opened(pkg, "m").update({"t": (1, 2), "s": "x"})
        assert cli("show", "m", "--pretty").out == "{'t': (1, 2), 's': 'x'}\n"

    def test_show_missing_map(self, cli: Cli, pkg: Any) -> None:
        opened(pkg, "other")["a"] = 1
        line = one_line_error(cli("show", "nope"))
        assert "no map is stored under key 'nope'" in line and "list" in line

    def test_show_empty_map_is_not_missing(self, cli: Cli, aws: Any) -> None:
        put_legacy(aws, "empty", pickle.dumps({}))
        assert cli("show", "empty").out == "{}\n"

    def test_get(self, cli: Cli, pkg: Any) -> None:
        opened(pkg, "m").update({"a": {1, 2}, 5: "int key"})
        assert json.loads(cli("get", "m", "a").out) == {"$set": [1, 2]}
        assert cli("get", "m", "5", "--json-name").out == '"int key"\n'
        assert cli("get", "m", "a", "--pretty").out == "{1, 2}\n"
        assert "has no entry 'b'" in one_line_error(cli("get", "m", "b"))
        assert "--json-name" in one_line_error(cli("get", "m", "{", "--json-name"))

    def test_set(self, cli: Cli, pkg: Any) -> None:
        """VALUE is tagged JSON, plain JSON, or (--string) text; each set is one commit."""
        assert cli("set", "m", "n", "5").code == 0
        assert cli("set", "m", "t", '{"$tuple": [1, {"$bytes": "AAE="}]}').code == 0
        assert cli("set", "m", "d", '{"a": [1.0, null]}').code == 0
        assert cli("set", "m", "s", "hello", "--string").code == 0
        result = cli("set", "m", "7", '"seven"', "--json-name")
        assert result.code == 0 and "version 5" in result.err
        data = opened(pkg, "m")
        assert canonical(data.to_dict()) == canonical(
            {"n": 5, "t": (1, b"\x00\x01"), "d": {"a": [1.0, None]}, "s": "hello", 7: "seven"}
        )
        assert data.version == 5
        line = one_line_error(cli("set", "m", "s", "hello"))
        assert "not JSON" in line and "--string" in line
        assert "unknown tag" in one_line_error(cli("set", "m", "x", '{"$nope": 1}'))

    def test_delete_asks_first(self, cli: Cli, pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a terminal and without --yes, nothing is deleted (exit 2); on a terminal, the answer counts."""
        opened(pkg, "m").update({"a": 1, "b": 2, "c": 3})
        line = one_line_error(cli("delete", "m", "a"), code=2)
        assert "--yes" in line
        assert cli("delete", "m", "a", "--yes").code == 0
        monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
        declined = cli("delete", "m", "b")  # (a real terminal echoes the answer's newline after the question)
        assert declined.code == 1 and "[y/N] " in declined.err and "error: aborted; nothing was changed" in declined.err
        monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
        result = cli("delete", "m", "b")
        assert result.code == 0 and "[y/N]" in result.err
        assert opened(pkg, "m").to_dict() == {"c": 3}
        assert "has no entry 'zz'" in one_line_error(cli("delete", "m", "zz", "--yes"))


class TestExportImport:
    def test_round_trip_is_identical(self, cli: Cli, pkg: Any, tmp_path: Path, calls: Any) -> None:
        """export -> import (into another key, and over a changed map) gives the same map, types and order."""
        values: dict[Any, Any] = {**dict(VALUES), ("tuple", "key"): 1, None: "none key", "$dollar": "s"}
        opened(pkg, "src").update(values)
        path = tmp_path / "map.json"
        result = cli("export", "src", str(path))
        assert result.code == 0, result
        assert "reading" not in result.err  # no progress line unless on a terminal or asked for
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["aws-lambda-persistence-export"] == 1 and document["key"] == "src"
        assert document["version"] == 1

        assert cli("import", "dst", str(path)).code == 0  # an empty map: nothing to lose, no question
        assert canonical(values) == canonical(opened(pkg, "dst").to_dict())

        changed = opened(pkg, "src")
        changed.update({"extra": 1, "str": "changed"})
        calls.clear()
        assert cli("import", "src", str(path), "--yes").code == 0
        restored = opened(pkg, "src")
        assert canonical(values) == canonical(restored.to_dict())
        assert restored.version == 3  # one commit: one change record
        assert [name for name in calls.names if name in WRITES] in (["UpdateItem"], ["TransactWriteItems"])

    def test_import_asks_before_replacing(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        path = tmp_path / "map.json"
        path.write_text('{"a": 1}', encoding="utf-8")  # plain JSON is accepted too
        opened(pkg, "m")["keep"] = 1
        assert "--yes" in one_line_error(cli("import", "m", str(path)), code=2)
        assert opened(pkg, "m").to_dict() == {"keep": 1}
        assert cli("import", "m", str(path), "-y").code == 0
        assert opened(pkg, "m").to_dict() == {"a": 1}

    def test_export_to_stdout_and_overwrite(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        opened(pkg, "m")["a"] = (1,)
        result = cli("export", "m", "-")
        assert json.loads(result.out)["map"] == {"a": {"$tuple": [1]}}
        path = tmp_path / "exists.json"
        path.write_text("keep", encoding="utf-8")
        assert "--yes" in one_line_error(cli("export", "m", str(path)), code=2)
        assert path.read_text(encoding="utf-8") == "keep"
        assert cli("export", "m", str(path), "--yes").code == 0
        assert "missing" in one_line_error(cli("export", "missing", str(tmp_path / "x.json")))

    def test_bad_files(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        opened(pkg, "m")["a"] = 1
        assert "cannot read" in one_line_error(cli("import", "m", str(tmp_path / "none.json")))
        (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
        assert "not tagged JSON" in one_line_error(cli("import", "m", str(tmp_path / "bad.json")))
        (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
        assert "not a map" in one_line_error(cli("import", "m", str(tmp_path / "list.json")))
        assert "cannot write" in one_line_error(cli("export", "m", str(tmp_path / "no" / "dir.json")))

    def test_large_map_shows_progress(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        """A sharded map crosses export and import intact; --progress reports shards and bytes on stderr."""
        blob = random.Random(1).randbytes(600 * KB)
        opened(pkg, "big").update({"blob": blob})
        opened(pkg, "big")["n"] = 1  # (in the head's log: the map's items are the head and the blob's 2 shards)
        path = tmp_path / "big.json"
        result = cli("export", "big", str(path), "--progress")
        assert result.code == 0, result
        assert "reading big: 3/3 items" in result.err and "writing " in result.err
        result = cli("--progress", "import", "copy", str(path))
        assert result.code == 0, result
        assert "writing copy: 4 items" in result.err  # (the blob's partition, 2 shards, split from n's)
        assert opened(pkg, "copy").to_dict() == {"blob": blob, "n": 1}


class TestMigrate:
    def test_migrates_1_0_0_items(self, cli: Cli, pkg: Any, aws: Any) -> None:
        """1.0.0 items become format-3 maps of this package's codec; maps already in it are left as they are, and
        so are segment items (key + value, like 1.0.0 items) and heads of a format this version cannot read."""
        legacy = {"when": "2023", "n": 3, "tags": {"a"}}
        put_legacy(aws, "old-1", pickle.dumps(legacy))
        put_legacy(aws, "old-2", pickle.dumps({}, protocol=2))
        opened(pkg, "new")["a"] = 1
        opened(pkg, "large")["blob"] = random.Random(2).randbytes(500 * KB)
        aws.put_item(TableName=TABLE, Item={"key": {"S": "v2"}, "value": {"B": b"x"}, "alp_fmt": {"N": "2"}})
        untouched = {key: stored_item(aws, key) for key in all_keys(aws) if not key.startswith("old-")}

        dry = cli("migrate", "--dry-run")
        assert dry.code == 0 and dry.out.split() == ["old-1", "old-2"] and "2 maps to rewrite" in dry.err
        assert "--yes" in one_line_error(cli("migrate"), code=2)
        assert "alp_fmt" not in (stored_item(aws, "old-1") or {})

        result = cli("migrate", "--yes")
        assert result.code == 0, result
        assert "old-1: migrated: 3 entries, version 1" in result.out
        assert "old-2: migrated: 0 entries, version 1" in result.out
        codec = pkg.PersistentMap.open(lazy=True).codec
        for key in ("old-1", "old-2"):
            item = stored_item(aws, key) or {}
            assert item["alp_fmt"] == {"N": "3"} and item["alp_codec"] == {"S": codec}
        assert opened(pkg, "old-1").to_dict() == legacy
        assert opened(pkg, "old-2").to_dict() == {}
        assert {key: stored_item(aws, key) for key in untouched} == untouched
        assert cli("migrate", "--dry-run").out == ""

    @pytest.mark.parametrize("steps", [False, True], ids=["one-transaction", "in-steps"])
    def test_rewrites_maps_of_another_codec(
        self,
        aws: Any,
        core: Any,
        lite: Any,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        steps: bool,
    ) -> None:
        """The full package's migrate moves a lite map to msgpack+zstd: a new head that continues the sequence,
        the same entries (types and order), the old segments deleted. Too large for one transaction, the new run
        is put before the head (in steps)."""
        from aws_lambda_persistence.__main__ import main as core_main
        from aws_lambda_persistence_lite import _stored

        data = lite.PersistentMap.open(table_key="lite-map")
        data.update({"blob": random.Random(4).randbytes(500 * KB), "t": (1, b"\x00")})
        for i in range(60):  # enough changes to fill the head's log: a flush writes a partition
            data[f"k{i}"] = "v" * 40
        values = data.to_dict()
        claim = {":g": {"SS": ["00000000000000ff:1:0"]}}  # a large write in steps left a claim: a flush collects it
        aws.update_item(
            TableName=TABLE,
            Key={"key": {"S": "lite-map"}},
            UpdateExpression="ADD alp_garbage :g",
            ExpressionAttributeValues=claim,
        )
        old = stored_item(aws, "lite-map") or {}
        old_segments = {key for key in all_keys(aws) if key.startswith("lite-map#alp#")}
        assert old["alp_codec"] != {"S": "msgpack+zstd"} and len(old_segments) >= 3
        core.PersistentMap.open(table_key="core-map")["a"] = 1
        core_map = stored_item(aws, "core-map")
        if steps:
            monkeypatch.setattr(_stored, "TRANSACT_BUDGET", 100 * KB)

        dry = _run(core_main, capsys, "migrate", "--dry-run")
        assert dry.code == 0 and dry.out.split() == ["lite-map"]
        result = _run(core_main, capsys, "migrate", "--yes")
        version = int(old["alp_ver"]["N"]) + 1
        assert result.code == 0, result
        assert result.out == f"lite-map: migrated: {len(values)} entries, version {version}, codec msgpack+zstd\n"

        new = stored_item(aws, "lite-map") or {}
        assert new["alp_codec"] == {"S": "msgpack+zstd"} and new["alp_ver"] == {"N": str(version)}
        assert int(new["alp_ep"]["N"]) == int(old["alp_ep"]["N"]) + 1 and new["alp_garbage"] == claim[":g"]
        assert list(core.PersistentMap.open(table_key="lite-map").items()) == list(values.items())
        keys = all_keys(aws)
        assert not old_segments & keys
        assert [key for key in keys if key.startswith("lite-map#alp#")]  # the new run: too large for the log
        assert stored_item(aws, "core-map") == core_map
        assert _run(core_main, capsys, "migrate", "--dry-run").out == ""

    def test_concurrent_writer_is_not_overwritten(
        self, aws: Any, core: Any, lite: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A change committed between migrate's read and its write wins: the map is skipped, not rewritten."""
        from aws_lambda_persistence.__main__ import main as core_main
        from aws_lambda_persistence_lite import admin

        put_legacy(aws, "old", pickle.dumps({"a": 1}))
        lite.PersistentMap.open(table_key="m")["a"] = 1
        rewrite = admin.rewrite

        def racing(data: Any, *args: Any, **kwargs: Any) -> Any:
            lite.PersistentMap.open(table_key=data.settings.table_key)["b"] = 2  # another container, meanwhile
            return rewrite(data, *args, **kwargs)

        monkeypatch.setattr(admin, "rewrite", racing)
        result = _run(core_main, capsys, "migrate", "--yes")
        assert result.code == 0, result
        assert result.out.splitlines() == [
            f"{key}: skipped: another writer changed it meanwhile (run migrate again)" for key in ("m", "old")
        ]
        for key in ("m", "old"):
            assert lite.PersistentMap.open(table_key=key) == {"a": 1, "b": 2}
            assert (stored_item(aws, key) or {})["alp_codec"] == {"S": lite.PersistentMap.open(lazy=True).codec}

    def test_persistence_table_key_replaces_no_listed_map(
        self, cli: Cli, pkg: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The keys migrate rewrites come from the table: PERSISTENCE_TABLE_KEY, which wins in a function, replaces
        none of them (before, every map listed was read as the one it names, and rewritten with its entries)."""
        put_legacy(aws, "old-1", pickle.dumps({"x": 1}))
        put_legacy(aws, "old-2", pickle.dumps({"y": 2}))
        monkeypatch.setenv("PERSISTENCE_TABLE_KEY", "old-1")
        result = cli("migrate", "--yes")
        assert result.code == 0 and result.out.count(": migrated: 1 entry, version 1") == 2, result
        monkeypatch.delenv("PERSISTENCE_TABLE_KEY")
        assert opened(pkg, "old-1") == {"x": 1} and opened(pkg, "old-2") == {"y": 2}

    def test_unreadable_item_is_reported(self, cli: Cli, pkg: Any, aws: Any) -> None:
        """migrate names what it cannot rewrite (exit 1); --dry-run lists only what migrate can rewrite."""
        put_legacy(aws, "bad", pickle.dumps({"x": Path("/")}))
        put_legacy(aws, "good", pickle.dumps({"x": 1}))
        dry = cli("migrate", "--dry-run")
        assert dry.code == 1 and dry.out.split() == ["good"]
        assert "bad: cannot be migrated:" in dry.err and "1 of 2 maps cannot be migrated" in dry.err
        result = cli("migrate", "--yes")
        assert result.code == 1
        assert "bad: not migrated:" in result.out and "good: migrated" in result.out
        assert "1 of 2 maps was not migrated" in result.err

    def test_a_1_0_0_pickle_bomb_is_refused_promptly(self, cli: Cli, pkg: Any, aws: Any) -> None:
        """An integer spelled as only the C unpickler reads it, then a dict key that takes hours to hash: refused
        by --dry-run and by migrate (before: weighing stopped at the number and the load hung)."""
        from tests.fuzz.test_codec_bounds import legacy_bomb

        put_legacy(aws, "bomb", legacy_bomb(b"I", b"0x1"))
        assert "bomb: cannot be migrated:" in cli("migrate", "--dry-run").err
        result = cli("migrate", "--yes")
        assert result.code == 1 and "bomb: not migrated:" in result.out and "refused" in result.out

    def test_containers_in_use_follow_a_migration(
        self, core: Any, lite: Any, aws: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Warm containers of the full package whose lite map is migrated to msgpack+zstd under them: a refresh
        reads the new codec, and a write that meets the new head (without a refresh) is made again in that codec,
        a large one (a run of its own) too.
        Before, both failed with CorruptDataError (decoding msgpack segments as pickle), as if the map were
        damaged."""
        from aws_lambda_persistence.__main__ import main as core_main

        writer = opened(lite, "m")
        writer.update({f"k{i}": "v" * 50 for i in range(80)})
        refreshing, writing, writing_large = opened(core, "m"), opened(core, "m"), opened(core, "m")
        assert refreshing._replica.codec.name == writing._replica.codec.name == "pickle5+zlib"
        assert _run(core_main, capsys, "migrate", "--yes").code == 0
        assert (stored_item(aws, "m") or {})["alp_codec"] == {"S": "msgpack+zstd"}
        refreshing.refresh()
        assert refreshing._replica.codec.name == "msgpack+zstd" and refreshing.to_dict() == writer.to_dict()
        writing["new"] = ("a", 1)
        assert writing.increment("n") == 1
        big = random.Random(5).randbytes(5_000)  # a record too large for the log: a run of its own
        writing_large["big"] = big
        fresh = opened(core, "m")
        assert fresh["new"] == ("a", 1) and fresh["n"] == 1 and fresh["big"] == big and len(fresh) == 83


class TestPolicyAndInfo:
    def test_policy(self, cli: Cli, pkg: Any) -> None:
        result = cli("policy", "my-fn", "--table", "Other")
        assert json.loads(result.out) == pkg.policy(pkg.Settings.resolve({"table_key": "my-fn", "table_name": "Other"}))
        assert "my-fn#alp#*" in result.out  # the map's segment items (table_key#alp#<sid>#<i>)
        assert "Condition" not in json.loads(cli("policy", "my-fn", "--all-rows").out)["Statement"][0]

    def test_info(self, cli: Cli, pkg: Any, aws: Any) -> None:
        codec = pkg.PersistentMap.open(lazy=True).codec
        opened(pkg, "small").update({"a": 1, "b": "x" * 1000})
        facts = json.loads(cli("info", "small", "--json").out)
        assert facts["version"] == 1 and facts["epoch"] == 0 and facts["format"] == 3 and facts["codec"] == codec
        assert facts["storage"] == "head" and facts["segments"] == [] and facts["log_records"] == 1
        assert facts["entries"] == 2 and facts["decoded_bytes"] == facts["log_bytes"] > 1000
        assert facts["stored_bytes"] == facts["head_bytes"] > facts["log_bytes"]  # (the log is not compressed)
        assert facts["load_calls"] == 1 and facts["load_read_units"] == 1  # the whole map is in the head

        opened(pkg, "large")["blob"] = random.Random(3).randbytes(500 * KB)
        text = cli("info", "large").out
        # (a first write too large for the log goes straight into the map's partitions: nothing to merge later)
        assert "1 segment" in text and "watermark 1): 2 items" in text and "read units" in text
        facts = json.loads(cli("info", "large", "--json").out)
        (partition,) = facts["segments"]
        assert partition["kind"] == "partition" and partition["shards"] == 2 and partition["watermark"] == 1
        assert facts["load_items"] == 3 and facts["stored_bytes"] > 500 * KB and facts["entries"] == 1

        busy = opened(pkg, "busy")
        for i in range(100):  # enough changes to fill the head's log: a flush merges them into the map's partition,
            busy[f"k{i}"] = "v" * 40  # small enough to stay inline, in the head
        facts = json.loads(cli("info", "busy", "--json").out)
        (partition,) = [s for s in facts["segments"] if s["kind"] == "partition"]
        assert facts["epoch"] >= 1 and facts["entries"] == 100 and partition["watermark"] > 0
        assert partition["shards"] == 0 and partition["stored_bytes"] > 0 and facts["load_calls"] == 1
        assert f"watermark {partition['watermark']}): in the head, " in cli("info", "busy").out

        put_legacy(aws, "old", pickle.dumps({"x": 1}))
        assert "1 (aws-lambda-persistence 1.0.0)" in cli("info", "old").out
        assert json.loads(cli("info", "old", "--json").out)["entries"] == 1
        assert "no map is stored" in one_line_error(cli("info", "nope"))

    def test_info_on_a_codec_this_package_cannot_read(self, cli: Cli, pkg: Any, aws: Any) -> None:
        """The head's facts still show; the entries say why they cannot be read here; reading the map fails."""
        opened(pkg, "m")["a"] = 1
        aws.update_item(
            TableName=TABLE,
            Key={"key": {"S": "m"}},
            UpdateExpression="SET alp_codec = :c",
            ExpressionAttributeValues={":c": {"S": "cbor+brotli"}},
        )
        result = cli("info", "m")
        assert result.code == 0, result
        assert "entries:   unreadable here (the map in table" in result.out
        assert "was stored with codec 'cbor+brotli'" in result.out
        assert "upgrade" in one_line_error(cli("show", "m"))


class TestSettingsAndErrors:
    def test_environment_wins_with_a_warning(self, cli: Cli, pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        opened(pkg, "m", table_name="EnvTable")["a"] = 1
        monkeypatch.setenv("PERSISTENCE_TABLE_NAME", "EnvTable")
        result = cli("show", "m", "--table", "Ignored")
        assert result.code == 0 and json.loads(result.out) == {"a": 1}
        assert "PERSISTENCE_TABLE_NAME='EnvTable' overrides 'Ignored'" in result.err

    def test_custom_field_names(self, cli: Cli, pkg: Any, aws: Any) -> None:
        put_legacy(aws, "m", pickle.dumps({"x": 1}), table="Custom", key_field="pk", value_field="data")
        common = ["--table", "Custom", "--key-field", "pk", "--value-field", "data"]
        assert json.loads(cli(*common, "show", "m").out) == {"x": 1}
        assert cli("list", *common).out.splitlines()[1].split()[0] == "m"
        assert cli("migrate", "--yes", *common).code == 0
        assert cli("set", "m", "y", "2", *common).code == 0
        assert opened(pkg, "m", table_name="Custom", key_field_name="pk", value_field_name="data") == {"x": 1, "y": 2}

    def test_endpoint_and_region_apply_to_one_run(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """--endpoint-url reaches botocore through AWS_ENDPOINT_URL_DYNAMODB, and is gone after the run."""
        from aws_lambda_persistence_lite import _client

        monkeypatch.setattr(_client, "MAX_ATTEMPTS", 1)  # nothing listens there: do not retry
        endpoint_before = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")  # set when the suite runs on a server
        line = one_line_error(cli("--endpoint-url", "http://127.0.0.1:9", "--region", "eu-west-1", "list"))
        assert "127.0.0.1:9" in line and "--endpoint-url" in line
        assert os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") == endpoint_before
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"

    def test_denied_call_is_one_line(self, cli: Cli, pkg: Any, faults: Faults) -> None:
        faults.on("GetItem", denied("GetItem"))
        line = one_line_error(cli("show", "m"))
        assert "denied dynamodb:GetItem" in line and "policy m" in line

    def test_unsafe_item_is_one_line(self, cli: Cli, aws: Any) -> None:
        put_legacy(aws, "bad", pickle.dumps({"x": Path("/")}))
        line = one_line_error(cli("show", "bad"))
        assert "'bad'" in line and "PosixPath" in line

    def test_usage_errors_exit_2(self, cli: Cli) -> None:
        assert cli().code == 2
        assert cli("frobnicate").code == 2
        assert cli("show").code == 2
        assert cli("--help").code == 0


def test_lite_command_reads_full_maps_where_installed(
    moto_server: str, core: Any, table_key: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A map written by the full package: the lite command, in a process of its own that never imported the full
    package, reads it while the full package is installed, and says what to install where it is not (nor its
    command on PATH: test_messages.py has that case)."""
    import boto3
    from aws_lambda_persistence.__main__ import main as core_main

    core.PersistentMap.open(table_key=table_key, client=boto3.client("dynamodb", endpoint_url=moto_server))["a"] = (1,)
    result = _run(core_main, capsys, "--endpoint-url", moto_server, "get", table_key, "a")
    assert result.out == '{\n  "$tuple": [\n    1\n  ]\n}\n'
    run = "import sys; {}from aws_lambda_persistence_lite.__main__ import main; sys.exit(main())"
    arguments = ["--endpoint-url", moto_server, "show", table_key]
    for hide in ("", "sys.modules['aws_lambda_persistence'] = None; "):  # (None: as if not installed)
        command = [sys.executable, "-c", run.format(hide), *arguments]
        env = {**os.environ, "PATH": str(tmp_path)}  # (no aws-lambda-persistence command to suggest instead)
        lite = subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL, env=env
        )
        if not hide:
            assert lite.returncode == 0 and json.loads(lite.stdout) == {"a": {"$tuple": [1]}}, lite.stderr
        else:
            assert lite.returncode == 1 and "Traceback" not in lite.stderr and len(lite.stderr.splitlines()) == 1
            assert "pip install aws-lambda-persistence" in lite.stderr


def test_full_command_reads_lite_maps(aws: Any, core: Any, lite: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from aws_lambda_persistence.__main__ import main as core_main

    lite.PersistentMap.open(table_key="m")["b"] = bytearray(b"x")
    assert json.loads(_run(core_main, capsys, "show", "m").out) == {"b": {"$bytearray": "eA=="}}


def test_full_command_writes_lite_maps_with_their_codec(
    aws: Any, core: Any, lite: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A map holds entries of one codec: the full command changes a lite map with the lite codec, so that lite
    functions still read it (migrate is what moves a map to another codec)."""
    from aws_lambda_persistence.__main__ import main as core_main

    lite.PersistentMap.open(table_key="m")["b"] = 1
    assert _run(core_main, capsys, "set", "m", "c", "[2]").code == 0
    assert _run(core_main, capsys, "delete", "m", "b", "--yes").code == 0
    assert (stored_item(aws, "m") or {})["alp_codec"] == {"S": lite.PersistentMap.open(lazy=True).codec}
    assert lite.PersistentMap.open(table_key="m") == {"c": [2]}


def test_python_dash_m(moto_server: str, pkg: Any, table_key: str) -> None:
    """``python -m PACKAGE`` as a real process, reaching moto's server through --endpoint-url."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", pkg.__name__, "--endpoint-url", moto_server, *argv]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL
        )

    assert run("set", table_key, "n", "41").returncode == 0
    shown = run("show", table_key)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"n": 41}
    refused = run("delete", table_key, "n")
    assert refused.returncode == 2 and "--yes" in refused.stderr and "Traceback" not in refused.stderr


class TestHostileInput:
    """What a careless caller or a hostile item gives a command: one line, exit 1, never a traceback."""

    def test_heads_with_odd_numbers_are_listed(self, cli: Cli, pkg: Any, aws: Any) -> None:
        opened(pkg, "ok")["a"] = 1
        for key, number in [("half", "1.5"), ("exp", "1E+3"), ("negative", "-7")]:
            aws.put_item(TableName=TABLE, Item={"key": {"S": key}, "alp_fmt": {"N": "3"}, "alp_ver": {"N": number}})
        result = cli("list")
        assert result.code == 0 and "Traceback" not in result.err, result
        rows = {line.split()[0]: line.split() for line in result.out.splitlines()[1:]}
        assert {"half", "exp", "negative"} <= rows.keys()
        assert all("unreadable" in rows[key] for key in ("half", "exp", "negative")), rows

    def test_deep_json_values_are_one_line(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        deep = "[" * 100_000 + "]" * 100_000
        assert "VALUE" in one_line_error(cli("set", "m", "a", deep))
        (tmp_path / "deep.json").write_text('{"a": ' + deep + "}", encoding="utf-8")
        assert "deep.json" in one_line_error(cli("import", "m", str(tmp_path / "deep.json"), "-y"))
        assert cli("show", "m").code == 1  # (nothing was stored)

    @pytest.mark.parametrize("mode", ["--json", "--pretty"])
    def test_the_deepest_storable_value_is_shown(self, cli: Cli, pkg: Any, mode: str) -> None:
        """A value nested as deep as the writer accepts is printed (or refused in one line), not a traceback."""
        value: Any = 1
        depth = 0
        while True:
            try:
                package_codec(pkg).encode_entry("v", [value])
            except pkg.UnsupportedValueError:
                break
            value, depth = [value], depth + 1
        for _ in range(20):  # (the encoder's reach depends on the stack depth it is called at)
            value, depth = value[0], depth - 1
        opened(pkg, "m")["v"] = value
        result = cli("show", "m", mode)
        if result.code == 0:
            assert result.out.count("[") >= depth
        else:
            assert "nested" in one_line_error(result)

    def test_an_export_of_another_marker_version_is_refused(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        path = tmp_path / "future.json"
        path.write_text(json.dumps({"aws-lambda-persistence-export": 2, "map": {"a": 1}}), encoding="utf-8")
        line = one_line_error(cli("import", "m", str(path), "-y"))
        assert "version 2" in line and "upgrade" in line
        assert cli("show", "m").code == 1

    def test_export_keeps_the_files_mode(self, cli: Cli, pkg: Any, tmp_path: Path) -> None:
        opened(pkg, "m")["a"] = 1
        path = tmp_path / "shared.json"
        path.write_text("old", encoding="utf-8")
        path.chmod(0o644)
        assert cli("export", "m", str(path), "--yes").code == 0
        assert path.stat().st_mode & 0o777 == 0o644
        umask = os.umask(0o022)
        try:
            assert cli("export", "m", str(tmp_path / "new.json")).code == 0
        finally:
            os.umask(umask)
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
