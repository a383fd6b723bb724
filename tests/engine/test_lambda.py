"""Lambda-native use: what a cold start imports, the handler decorator and SnapStart restores."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import HAS_CORE, TABLE, Calls, stored_item

# (Not yet in the ALP_TEST_BACKEND passes: with a shared table, a first use also makes a DescribeTable, which
# test_one_read_per_container_and_one_write_per_invocation does not expect; the rest passes on every local backend.)
pytestmark = pytest.mark.moto_only


#: The lite package's modules that only some paths need, imported where they are first used: a map's first write
#: (and creating its table), a large write, a flush and the maintenance it does, 1.0.0 items, ``batch()`` blocks and
#: the handler decorator. A cold start that loads a small map and appends to it loads none of them.
RARE_PROTOCOLS = (
    "_first_write",
    "_table",
    "_large_write",
    "_flushing",
    "_maintenance",
    "_legacy",
    "_batching",
    "_handler",
)
#: Nor does importing either package load the pickle codec (loaded by the first map stored in it, as the lite
#: package's maps are) or the tools over whole stored maps (``admin``, the command line).
NOT_AT_IMPORT = (*RARE_PROTOCOLS, "_pickle", "_pickle_bounds", "_stored", "admin", "_cli")


def new_modules(script: str, before: str = "import sys, boto3", stdin: bytes = b"") -> list[str]:
    """The modules ``script`` loads in a fresh interpreter after ``before``."""
    code = f"{before}\nstarted = set(sys.modules)\n{script}\nprint(sorted(set(sys.modules) - started))"
    done = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, check=True)
    return eval(done.stdout.decode())  # type: ignore[no-any-return]


class TestColdStart:
    """Every cold start pays for the import, on the billed clock (tools/bench/import_time.py)."""

    def test_import_after_boto3_loads_nothing_boto3_did_not(self, pkg: Any) -> None:
        """Every function imports boto3 (its client is what the map talks through), so the package may use whatever
        boto3 loads (typing, hashlib, datetime, decimal, uuid...) at no cost; beyond its own modules it loads only
        its codec's libraries, and zoneinfo only once a value holds a ZoneInfo."""
        loaded = new_modules(f"import {pkg.__name__}")
        allowed = {"aws_lambda_persistence_lite", pkg.__name__}
        if pkg.__name__ == "aws_lambda_persistence":
            allowed |= {"msgpack", "zstandard"}
        assert {m.split(".")[0] for m in loaded} <= allowed, loaded

    def test_import_loads_no_rare_protocol(self, pkg: Any) -> None:
        loaded = new_modules(f"import {pkg.__name__}")
        assert not {f"aws_lambda_persistence_lite.{m}" for m in NOT_AT_IMPORT} & set(loaded), loaded

    def test_loading_a_small_map_and_appending_loads_no_rare_protocol(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A cold start of a function whose small map exists: ``PersistentMap()``, a read and a write (an append)
        load none of RARE_PROTOCOLS; the full package's, not the pickle codec either."""
        pkg.PersistentMap.open({"greeting": "hello", "n": 1})
        table = aws.describe_table(TableName=TABLE)["Table"]
        stored = (table["KeySchema"], table["AttributeDefinitions"], aws.scan(TableName=TABLE)["Items"])
        before = f"""import pickle, sys, boto3
from moto import mock_aws
schema, attributes, items = pickle.load(sys.stdin.buffer)
mock_aws().start()
client = boto3.client("dynamodb")
client.create_table(
    TableName={TABLE!r}, KeySchema=schema, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
)
for item in items:
    client.put_item(TableName={TABLE!r}, Item=item)"""
        script = f"""import {pkg.__name__} as pkg
data = pkg.PersistentMap()
assert data["greeting"] == "hello" and data.version == 1, data
data["n"] += 1
assert data.version == 2 and data.last_commit.calls == 1, data.last_commit"""
        loaded = new_modules(script, before, pickle.dumps(stored))
        rare = {f"aws_lambda_persistence_lite.{m}" for m in RARE_PROTOCOLS}
        if pkg.__name__ == "aws_lambda_persistence":
            rare |= {"aws_lambda_persistence_lite._pickle", "aws_lambda_persistence._zstd_pickle"}
        assert not rare & set(loaded), loaded
        assert pkg.PersistentMap().to_dict() == {"greeting": "hello", "n": 1}  # (the child's DynamoDB was its own)


class TestHandler:
    def test_one_read_per_container_and_one_write_per_invocation(
        self, aws: Any, pkg: Any, calls: Calls, table_key: str
    ) -> None:
        @pkg.PersistentMap.handler()
        def handler(event: Any, context: Any, data: Any) -> int:
            data["last"] = event
            data.increment("count")
            return int(data["count"])

        pkg.PersistentMap.open({"x": 0}, table_key=table_key + "-other")  # (the table exists)
        calls.clear()
        assert calls.names == []  # (decorating makes no call: importing a function's module stays free)
        assert handler("a", None) == 1
        assert calls.names == ["GetItem", "PutItem"]  # (a new map's first write puts its head)
        calls.clear()
        assert handler("b", None) == 2
        assert calls.names == ["UpdateItem"]  # (warm: no read, both changes in one append)
        assert pkg.PersistentMap().to_dict() == {"last": "b", "count": 2}

    def test_an_invocation_that_changes_nothing_writes_nothing(self, aws: Any, pkg: Any, calls: Calls) -> None:
        @pkg.PersistentMap.handler()
        def handler(event: Any, context: Any, data: Any) -> Any:
            return data.get("missing")

        handler({}, None)
        calls.clear()
        assert handler({}, None) is None and calls.names == []

    def test_a_handler_that_raises_leaves_the_map_as_it_was(self, aws: Any, pkg: Any, table_key: str) -> None:
        pkg.PersistentMap(n=1)

        @pkg.PersistentMap.handler()
        def handler(event: Any, context: Any, data: Any) -> None:
            data["n"] = 2
            data["other"] = [1]
            raise RuntimeError("the event is retried")

        with pytest.raises(RuntimeError, match="retried"):
            handler({}, None)
        assert pkg.PersistentMap().to_dict() == {"n": 1}
        assert (stored_item(aws, table_key) or {})["alp_ver"] == {"N": "1"}

    def test_settings_are_those_of_open(self, aws: Any, pkg: Any, table_key: str) -> None:
        @pkg.PersistentMap.handler(table_key=table_key + "-elsewhere")
        def handler(event: Any, context: Any, data: Any) -> str:
            data["k"] = "v"
            return str(data.settings.table_key)

        assert handler(None, None) == table_key + "-elsewhere"
        assert pkg.PersistentMap(table_key=table_key + "-elsewhere").to_dict() == {"k": "v"}

    @pytest.mark.parametrize("outer", [True, False], ids=["powertools-outside", "powertools-inside"])
    def test_stacks_with_powertools_decorators(self, aws: Any, pkg: Any, outer: bool) -> None:
        logging = pytest.importorskip("aws_lambda_powertools.logging")
        logger = logging.Logger(service="test")

        def handler(event: Any, context: Any, data: Any) -> int:
            logger.info("handling", extra={"keys": len(data)})
            return int(data.increment("n"))

        persistent = pkg.PersistentMap.handler()
        if outer:
            function = logger.inject_lambda_context(persistent(handler))
        else:
            function = persistent(logger.inject_lambda_context(handler))
        context = _lambda_context()
        assert function({}, context) == 1 and function({}, context) == 2
        assert pkg.PersistentMap()["n"] == 2


def _lambda_context() -> Any:
    """What Powertools reads of a Lambda context object."""
    return types.SimpleNamespace(
        function_name="fn",
        memory_limit_in_mb=128,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        aws_request_id="request-1",
    )


@pytest.fixture
def restore_hooks(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """A runtime with SnapStart's hooks (``snapshot_restore_py``, which Lambda's Python runtimes ship): the
    after-restore hooks registered, to call as Lambda does after a restore."""
    from aws_lambda_persistence_lite import _snapstart

    hooks: list[Callable[[], None]] = []
    module = types.ModuleType("snapshot_restore_py")
    monkeypatch.setattr(module, "register_after_restore", hooks.append, raising=False)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    monkeypatch.setattr(_snapstart, "_hooks", None)
    monkeypatch.setattr(_snapstart, "_maps", type(_snapstart._maps)())
    return hooks


class TestSnapStart:
    def test_a_restored_map_catches_up_at_its_first_use(
        self, aws: Any, pkg: Any, calls: Calls, restore_hooks: list[Callable[[], None]]
    ) -> None:
        data = pkg.PersistentMap(a=1)  # (loaded during init: in the snapshot)
        pkg.PersistentMap()["a"] = 2  # another container, while the snapshot waits
        assert data["a"] == 1 and len(restore_hooks) == 1  # (one hook for the process, whatever the maps)
        calls.clear()
        restore_hooks[0]()  # Lambda restores the snapshot
        assert calls.names == []  # (the hook itself makes no call)
        assert data["a"] == 2 and calls.names == ["GetItem"]

    def test_an_unchanged_map_costs_one_get_item(
        self, aws: Any, pkg: Any, calls: Calls, restore_hooks: list[Callable[[], None]]
    ) -> None:
        data = pkg.PersistentMap(a=1)
        restore_hooks[0]()
        calls.clear()
        assert data.to_dict() == {"a": 1} and data["a"] == 1 and calls.names == ["GetItem"]

    def test_a_blind_change_after_a_restore_lands_on_the_newest_state(
        self, aws: Any, pkg: Any, restore_hooks: list[Callable[[], None]]
    ) -> None:
        data = pkg.PersistentMap(a=1)
        pkg.PersistentMap()["b"] = 2
        restore_hooks[0]()
        data["c"] = 3
        assert data.to_dict() == {"a": 1, "b": 2, "c": 3}

    def test_without_the_hooks_nothing_is_registered(self, aws: Any, pkg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from aws_lambda_persistence_lite import _snapstart

        monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # (None: cannot be imported)
        monkeypatch.setattr(_snapstart, "_hooks", None)
        monkeypatch.setattr(_snapstart, "_maps", type(_snapstart._maps)())
        pkg.PersistentMap(a=1)
        assert _snapstart._hooks is False and len(_snapstart._maps) == 0


class TestLogging:
    def test_each_package_logs_under_its_own_name_and_is_silent_by_default(self, pkg: Any) -> None:
        import logging

        assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger(pkg.__name__).handlers)

    def test_loads_commits_and_lost_attempts_are_debug_lines(
        self, aws: Any, pkg: Any, caplog: pytest.LogCaptureFixture, table_key: str
    ) -> None:
        caplog.set_level("DEBUG", logger=pkg.__name__)
        data = pkg.PersistentMap()
        data["a"] = 1
        other = pkg.PersistentMap()

        def bump(d: dict[str, Any]) -> None:
            if d["a"] == 1:
                other["a"] = 2  # another writer, between this attempt's read and its write
            d["a"] += 10

        data.mutate(bump)
        assert data["a"] == 12
        lines = [r.getMessage() for r in caplog.records if r.name == pkg.__name__]
        assert any(line.startswith(f"map {table_key!r}: loaded at version 0: Usage(calls=1") for line in lines)
        assert any("committed 1 ops as version 1: Usage(" in line for line in lines)
        assert any("computed at version 1, lost to another writer (now at 2)" in line for line in lines)

    @pytest.mark.fresh_dynamodb  # (creates tables of its own)
    @pytest.mark.parametrize("mode", ["PROVISIONED", "PAY_PER_REQUEST"])
    def test_the_capacity_warning_comes_once_and_only_for_provisioned_tables(
        self, aws: Any, pkg: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, mode: str
    ) -> None:
        from aws_lambda_persistence_lite import _capacity

        for name in ("_recent", "_provisioned", "_warned"):
            monkeypatch.setattr(_capacity, name, type(getattr(_capacity, name))())
        data = pkg.PersistentMap.open(table_name="capacity-test", billing_mode=mode, write_capacity=1)
        for i in range(8):  # (each write of a few KB costs several units: far over 1 per second)
            data[i] = "x" * 3000
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        if mode == "PAY_PER_REQUEST":
            assert warnings == []
        else:
            assert len(warnings) == 1 and "more than the 1 the table is provisioned with" in warnings[0]
            assert "table 'capacity-test': this container wrote" in warnings[0]

    @pytest.mark.fresh_dynamodb
    def test_an_existing_tables_capacity_is_read_once(
        self, aws: Any, pkg: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, calls: Calls
    ) -> None:
        from aws_lambda_persistence_lite import _capacity

        for name in ("_recent", "_provisioned", "_warned"):
            monkeypatch.setattr(_capacity, name, type(getattr(_capacity, name))())
        aws.create_table(
            TableName="made-elsewhere",
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 2},
        )
        data = pkg.PersistentMap.open(table_name="made-elsewhere")
        data["small"] = 1
        assert calls.count("DescribeTable") == 0  # (a small write: nothing to check)
        for i in range(8):
            data[i] = "x" * 3000
        assert calls.count("DescribeTable") == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "more than the 2 the table is provisioned with" in warnings[0]


# What a process that imported one package sees of every public class (run apart: this one imported both).
_NAMES_SEEN = """
import importlib, pickle, sys, traceback
package = importlib.import_module(sys.argv[1])
admin = importlib.import_module(sys.argv[1] + ".admin")
for module in (package, admin):
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type):
            assert value.__module__ == module.__name__, (name, value.__module__)
            assert repr(value) == f"<class '{module.__name__}.{name}'>", repr(value)
            assert pickle.loads(pickle.dumps(value)) is value, name
try:
    package.PersistentMap.open(table_name="")
except package.ConfigurationError:
    print(traceback.format_exc().splitlines()[-1])
"""


class TestPublicNames:
    @pytest.mark.parametrize("package", ["aws_lambda_persistence_lite", "aws_lambda_persistence"])
    def test_classes_report_the_package_the_user_imported(self, package: str) -> None:
        """Tracebacks, repr and pickles name ``package`` (not a private module, nor the other package)."""
        import subprocess
        import sys

        if package == "aws_lambda_persistence" and not HAS_CORE:
            pytest.skip("the full package (msgpack + zstandard) is not installed in this environment")
        run = subprocess.run([sys.executable, "-c", _NAMES_SEEN, package], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith(f"{package}.ConfigurationError: "), run.stdout

    def test_either_package_catches_the_other_package_errors(self, lite: Any, core: Any) -> None:
        """One class object under two names: no boundary can let an error past an ``except`` for either."""
        for name in lite.__all__:
            assert getattr(lite, name) is getattr(core, name) or name in ("PersistentMap", "__version__"), name
        with pytest.raises(lite.ConfigurationError):
            core.PersistentMap.open(table_name="")

    @pytest.mark.parametrize(
        "error",
        [
            ("ConfigurationError", ("bad setting",), {}),
            ("StoredDataError", ("damaged",), {"table": "t", "key": "k"}),
            ("UnsupportedValueError", ("no",), {"path": "['a']", "type_name": "object"}),
            ("MissingAWSIAMPermissions", ("denied",), {"action": "dynamodb:GetItem"}),
        ],
        ids=lambda e: e[0],
    )
    def test_errors_pickle_with_their_details(self, pkg: Any, error: tuple[str, tuple[str], dict[str, str]]) -> None:
        """Errors cross process boundaries (multiprocessing, a test runner's workers) with what they name."""
        import pickle

        name, args, details = error
        original = getattr(pkg, name)(*args, **details)
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original) and str(copy) == str(original)
        assert all(getattr(copy, k) == v for k, v in details.items())
