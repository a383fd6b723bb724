"""A map opened again in the same process (a handler that calls ``PersistentMap()`` on every invocation) takes
over the state of the dropped one and reads only what changed since, as a map kept in a global does."""

from __future__ import annotations

import gc
from typing import Any

import boto3
import pytest

from tests.conftest import TEST_BACKEND, Calls, flushed, patch


@pytest.fixture
def reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_persistence_lite import _reuse

    monkeypatch.setattr(_reuse, "REUSE", True)


def other_container(pkg: Any, **settings: Any) -> Any:
    """A map with a client of its own: another container, which never takes this process's dropped state."""
    from aws_lambda_persistence_lite._client import default_client

    client = boto3.client("dynamodb", endpoint_url=default_client().meta.endpoint_url)
    return pkg.PersistentMap.open(client=client, **settings)


def drop(data: Any) -> None:
    """Let go of a map (pass it as a temporary: a local of the caller would keep it alive)."""
    del data
    gc.collect()


pytestmark = pytest.mark.skipif(TEST_BACKEND == "aws", reason="counts calls of one client")


@pytest.mark.usefixtures("reuse")
class TestReuse:
    def test_reopening_reads_only_what_changed(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A sharded map, dropped; another container sets a key; the map opened again: one GetItem, no segment."""
        expected = flushed(pkg).to_dict()
        gc.collect()
        other_container(pkg)["new"] = 1
        calls.clear()
        again = pkg.PersistentMap()
        assert calls.names == []  # (it catches up at its first use, as a map kept in a global does)
        assert again.to_dict() == {**expected, "new": 1}
        assert calls.names == ["GetItem"]
        assert again.to_dict() == other_container(pkg).to_dict()

    def test_a_reopened_increment_is_one_call(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """``PersistentMap()`` per increment among another container's increments costs what a global map costs:
        one UpdateItem (the stale state catches up on the log the append returns), its own value returned."""
        pkg.PersistentMap(n=0)
        other = other_container(pkg)
        values = []
        for i in range(30):
            calls.clear()
            values.append(pkg.PersistentMap().increment("n"))
            assert calls.names[0] == "UpdateItem" and "GetItem" not in calls.names[1:]
            if i % 3 == 0:
                other.increment("n", 100)
        assert values == sorted(values) and len(set(values)) == 30
        assert values[-1] == 30 + 100 * 10 == pkg.PersistentMap()["n"]

    def test_a_lazy_reopened_increment_is_one_call(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Opened lazily per increment, among another container's increments: each is one UpdateItem and returns
        its own value (the stale state catches up on the head the append returns)."""
        pkg.PersistentMap(n=0)
        other = other_container(pkg)
        values = []
        for i in range(30):
            calls.clear()
            values.append(pkg.PersistentMap.open(lazy=True).increment("n"))
            assert calls.names[0] == "UpdateItem" and "GetItem" not in calls.names[1:]
            if i % 3 == 0:
                other.increment("n", 100)
        assert values == sorted(values) and len(set(values)) == 30
        assert values[-1] == 30 + 100 * 10 == pkg.PersistentMap()["n"]

    def test_changes_that_read_catch_up_first(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A stale state is never the base of a change that reads: pop(), mutate(), setdefault() and batch() see
        what another container set meanwhile; so do reads."""
        drop(pkg.PersistentMap(a=1, q=[1]))
        other_container(pkg).update(a=2, b=3)
        data = pkg.PersistentMap.open(lazy=True)
        assert data.setdefault("b", 99) == 3
        assert data.pop("a") == 2
        data.mutate(lambda d: d["q"].append(len(d)))
        assert other_container(pkg).to_dict() == {"q": [1, 2], "b": 3}

    def test_across_flushes_and_collected_segments(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Another container flushes the log many times (segments replaced and their items deleted): the map
        opened again reads the segments that changed and equals a cold reader's."""
        drop(flushed(pkg))
        other = other_container(pkg)
        for i in range(120):  # (a dozen flushes)
            other[f"k{i % 50}"] = "y" * 120 + str(i)
        again = pkg.PersistentMap()
        assert again.to_dict() == other_container(pkg).to_dict()

    def test_only_the_same_client_and_key_reuse(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        drop(flushed(pkg))
        calls.clear()
        pkg.PersistentMap(table_key=table_key + "-b")  # another key: nothing reused (and nothing stored)
        other_container(pkg)  # another client: a cold load (not counted here: its own client)
        assert calls.names == ["GetItem"]
        calls.clear()
        assert pkg.PersistentMap().to_dict() == {**other_container(pkg)}
        assert calls.names == ["GetItem"]  # the dropped state was still there: it caught up, no segment read

    def test_damage_found_on_reopening(self, aws: Any, pkg: Any, table_key: str) -> None:
        """The head is read and checked again: a head damaged since is refused as by a cold reader."""
        drop(pkg.PersistentMap(a=1))
        patch(aws, table_key, alp_dig={"B": b"0" * 16})
        data = pkg.PersistentMap()
        with pytest.raises(pkg.CorruptDataError, match=table_key):
            data["a"]
        with pytest.raises(pkg.CorruptDataError, match=table_key):
            data["b"] = 2  # (the append's pin no longer matches: the head it returns is refused)
        with pytest.raises(pkg.CorruptDataError, match=table_key):
            other_container(pkg)
