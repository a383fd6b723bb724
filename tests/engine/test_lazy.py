"""``PersistentMap.open(lazy=True)``: no call until the map is used, and a first blind change that is one call
(its append, unpinned, brings the map back), falling back to a load wherever the append cannot be made."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from tests.conftest import Calls, flushed, patch, put_legacy, refused, stored_item
from tests.faults.injection import ALWAYS, LOSE, Faults


def lazy(pkg: Any, **settings: Any) -> Any:
    return pkg.PersistentMap.open(lazy=True, **settings)


class TestLazyOpen:
    def test_opening_makes_no_call_and_the_first_read_loads(
        self, aws: Any, pkg: Any, table_key: str, calls: Calls
    ) -> None:
        pkg.PersistentMap(a=1, b=[1, 2])
        calls.clear()
        data = lazy(pkg)
        assert calls.names == []
        assert data["a"] == 1 and data.to_dict() == {"a": 1, "b": [1, 2]}
        assert calls.names == ["GetItem"]

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            pytest.param(lambda d: d.__setitem__("c", 3), {"a": 1, "b": [1, 2], "c": 3}, id="set"),
            pytest.param(lambda d: d.update(c=3, d=4), {"a": 1, "b": [1, 2], "c": 3, "d": 4}, id="update"),
            pytest.param(lambda d: d.increment("a", 5), {"a": 6, "b": [1, 2]}, id="increment"),
            pytest.param(lambda d: d.clear(), {}, id="clear"),
        ],
    )
    def test_a_blind_change_is_one_call_and_loads_the_map(
        self, aws: Any, pkg: Any, table_key: str, calls: Calls, change: Any, expected: dict[str, Any]
    ) -> None:
        pkg.PersistentMap(a=1, b=[1, 2])
        calls.clear()
        data = lazy(pkg)
        change(data)
        assert calls.names == ["UpdateItem"]
        assert data.to_dict() == expected  # (the map came back with the append: no read)
        assert calls.names == ["UpdateItem"]
        assert pkg.PersistentMap().to_dict() == expected

    def test_increment_returns_its_own_value_among_other_writers(
        self, aws: Any, pkg: Any, table_key: str, calls: Calls
    ) -> None:
        other = pkg.PersistentMap(n=10)
        for _ in range(3):
            other.increment("n")
        values = [lazy(pkg).increment("n") for _ in range(3)]
        other.increment("n", 100)
        assert values == [14, 15, 16]
        assert lazy(pkg).increment("n") == 117 == pkg.PersistentMap()["n"]

    def test_a_sharded_map_is_read_with_the_append(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """A map with stored segments: the append, then the segments of the head it returned."""
        expected = flushed(pkg).to_dict()
        calls.clear()
        data = lazy(pkg)
        data["new"] = 1
        assert calls.names[0] == "UpdateItem" and "GetItem" not in calls.names
        assert data.to_dict() == {**expected, "new": 1} == pkg.PersistentMap().to_dict()

    def test_a_full_log_is_flushed_first(self, aws: Any, pkg: Any, table_key: str) -> None:
        """An append that finds no room fails; the map is loaded, flushed and appended to as usual."""
        data = pkg.PersistentMap(n=0)
        while data._replica.head.room >= 300:  # fill the log (each append returns the head, and so its room)
            data[f"k{len(data)}"] = "v" * 100
        expected = {**data.to_dict(), "big": "x" * 400}  # (a record larger than the room left)
        fresh = lazy(pkg)
        fresh["big"] = "x" * 400
        assert fresh.to_dict() == expected == pkg.PersistentMap().to_dict()

    @pytest.mark.fresh_dynamodb
    def test_nothing_stored_yet(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """No table, then a table without the map: the append fails and the first write is made as usual."""
        lazy(pkg)["a"] = 1
        assert calls.names[0] == "UpdateItem" and "CreateTable" in calls.names
        calls.clear()
        lazy(pkg, table_key=table_key + "-other")["b"] = 2
        assert calls.names == ["UpdateItem", "GetItem", "PutItem"]
        assert pkg.PersistentMap().to_dict() == {"a": 1}
        assert pkg.PersistentMap(table_key=table_key + "-other").to_dict() == {"b": 2}

    @pytest.mark.parametrize("opened", ["lazy", "eager"])
    def test_a_1_0_0_item_is_migrated(self, aws: Any, pkg: Any, table_key: str, opened: str) -> None:
        """The first change (here an increment, whose value comes back) over a 1.0.0 item stores the whole map."""
        put_legacy(aws, table_key, pickle.dumps({"old": 1, "list": [1, 2]}))
        assert pkg.PersistentMap.open(lazy=opened == "lazy").increment("old") == 2
        assert pkg.PersistentMap().to_dict() == {"old": 2, "list": [1, 2]}

    def test_a_map_in_the_other_codec(self, aws: Any, core: Any, lite: Any, table_key: str) -> None:
        """The change was encoded in this package's codec before anything was read: it is encoded again in the
        stored map's codec, and both packages read the result."""
        lite.PersistentMap(a=1, when=(1, 2))
        lazy(core).update(b={1, 2}, a=5)
        lazy(lite).increment("a")
        expected = {"a": 6, "when": (1, 2), "b": {1, 2}}
        assert core.PersistentMap().to_dict() == expected == lite.PersistentMap().to_dict()
        assert (stored_item(aws, table_key) or {})["alp_codec"]["S"] == lite.PersistentMap()._replica.codec.name

    def test_changes_that_read_load_first(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        pkg.PersistentMap(a=1, b=2)
        calls.clear()
        assert lazy(pkg).pop("a") == 1
        assert calls.names == ["GetItem", "UpdateItem"]
        assert lazy(pkg).mutate(lambda d: d.setdefault("c", d["b"] * 2)) == 4
        data = lazy(pkg)
        del data["b"]
        with data.batch():
            data["d"] = data["c"] + 1
        assert pkg.PersistentMap().to_dict() == {"c": 4, "d": 5}

    def test_increment_of_a_value_that_is_not_a_number(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Unread, the type is learnt from the stored map the append returns: the addition folds to nothing."""
        pkg.PersistentMap(s="text")
        with pytest.raises(TypeError, match="stored a str"):
            lazy(pkg).increment("s")
        assert pkg.PersistentMap().to_dict() == {"s": "text"}

    @pytest.mark.parametrize("times", [1, ALWAYS], ids=["retried by botocore", "connection lost"])
    def test_lost_response_of_the_first_append(
        self, aws: Any, pkg: Any, table_key: str, faults: Faults, calls: Calls, times: int
    ) -> None:
        """The append is applied but its response is lost. Retried (botocore), the retry's failed condition
        returns the head holding this record's id; given up on, one read finds the id. Either way: applied
        once, recognised, no second increment."""
        pkg.PersistentMap(n=1)
        faults.on("UpdateItem", LOSE, times=times)
        calls.clear()
        assert lazy(pkg).increment("n") == 2
        assert faults.fired("UpdateItem")[0] == "lose" and pkg.PersistentMap()["n"] == 2
        confirming_read = ["GetItem"] if times == ALWAYS else []
        assert calls.names == ["UpdateItem", *confirming_read, "GetItem"]

    def test_a_damaged_head_is_reported_and_not_laundered(self, aws: Any, pkg: Any, table_key: str) -> None:
        """Unread, the append is not pinned to a verified table: it lands, the head it returns fails its
        check, and the damage stays visible to every reader (nothing rewrote it with a fresh digest)."""
        pkg.PersistentMap(a=1, b="x" * 100)
        patch(aws, table_key, alp_dig={"B": b"0" * 16})
        with pytest.raises(pkg.CorruptDataError, match=table_key):
            lazy(pkg)["new"] = 1
        assert (stored_item(aws, table_key) or {})["alp_dig"] == {"B": b"0" * 16}
        refused(pkg, table_key, pkg.CorruptDataError, "integrity")
