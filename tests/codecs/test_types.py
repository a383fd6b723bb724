"""Type fidelity: every supported value comes back from a cold load with equal value and the same type."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from tests.conftest import HAS_CORE, Calls
from tests.values import VALUES, canonical


class TestTypeFidelity:
    @pytest.mark.parametrize(("name", "value"), VALUES, ids=[n for n, _ in VALUES])
    def test_round_trip_through_cold_load(self, aws: Any, pkg: Any, table_key: str, name: str, value: Any) -> None:
        """A value stored by one container is read back by a new one with the same type and value."""
        pkg.PersistentMap()["v"] = value
        loaded = pkg.PersistentMap()["v"]
        assert canonical(value) == canonical(loaded), f"{name}: stored {value!r}, loaded {loaded!r}"

    def test_nan_round_trips(self, aws: Any, pkg: Any, table_key: str) -> None:
        """nan is not equal to itself, yet it is stored and loaded as a float nan."""
        pkg.PersistentMap()["nan"] = float("nan")
        loaded = pkg.PersistentMap()["nan"]
        assert type(loaded) is float and math.isnan(loaded)

    def test_all_types_in_one_map(self, aws: Any, pkg: Any, table_key: str) -> None:
        """All values together, keyed by name, survive one cold load in insertion order."""
        values = dict(VALUES)
        pkg.PersistentMap(values)
        assert canonical(values) == canonical(pkg.PersistentMap().to_dict())

    def test_bytearray(self, aws: Any, pkg: Any, lite: Any, table_key: str) -> None:
        """lite keeps bytearray; msgpack (core) packs it natively as binary, so it comes back as bytes."""
        pkg.PersistentMap()["b"] = bytearray(b"xy")
        loaded = pkg.PersistentMap()["b"]
        assert loaded == b"xy"
        assert type(loaded) is (bytearray if pkg is lite else bytes)


class UserClass:
    pass


#: tzinfo itself: Python makes one (typeshed alone declares the class abstract); no codec stores it.
BARE_TZINFO = dt.tzinfo()  # type: ignore[abstract]


class TestUnsupportedValues:
    @pytest.mark.parametrize(
        ("value", "path", "type_name"),
        [
            (UserClass(), "['k']", "UserClass"),
            ({"a": [1, {"b": object()}]}, "['k']['a'][1]['b']", "object"),
            ([1, 2, lambda: 0], "['k'][2]", "function"),
            ({"x": dt.datetime(2020, 1, 1, tzinfo=BARE_TZINFO)}, "['k']['x']", "tzinfo"),
            (__import__("collections").OrderedDict(a=1), "['k']", "OrderedDict"),
        ],
        ids=["class instance", "deeply nested", "function in list", "custom tzinfo", "dict subclass"],
    )
    def test_error_names_path_and_type(
        self, aws: Any, pkg: Any, table_key: str, value: Any, path: str, type_name: str
    ) -> None:
        """The error is a TypeError naming where the bad value sits and its type; nothing is stored."""
        data = pkg.PersistentMap(keep=1)
        with pytest.raises(TypeError) as raised:
            data["k"] = value
        assert isinstance(raised.value, pkg.UnsupportedValueError)
        assert path in str(raised.value)
        assert type_name in str(raised.value)
        assert "k" not in data
        assert pkg.PersistentMap().to_dict() == {"keep": 1}

    @pytest.mark.parametrize("code", [0, 1, 8, 42, 127])
    def test_msgpack_extension_objects(self, aws: Any, core: Any, table_key: str, calls: Calls, code: int) -> None:
        """msgpack packs a caller's ExtType (and Timestamp) itself, without asking the encoder: stored, its code would
        be read back as a tuple or a Decimal, or make the map unreadable. Refused like any other type outside the
        model, wherever it sits (also inside a tuple's payload), before anything is sent."""
        import msgpack

        kept = {"keep": (1, dt.date(2020, 1, 1), 2**70)}  # (extensions the encoder makes itself)
        data = core.PersistentMap(kept)
        calls.clear()
        for value, path in [
            (msgpack.ExtType(code, b"\x91\x01"), "['k']"),
            ([1, {"x": msgpack.ExtType(code, b"")}], "['k'][1]['x']"),
            ((dt.date(2020, 1, 1), {msgpack.ExtType(code, b"x")}), "['k'][1] (an element"),
            ({"t": msgpack.Timestamp(1, 0)}, "['k']['t']"),
        ]:
            with pytest.raises(core.UnsupportedValueError, match=r"type msgpack\.ext\.(ExtType|Timestamp) is not") as e:
                data["k"] = value
            assert str(e.value).startswith(f"cannot store the value at {path}")
        with pytest.raises(core.UnsupportedValueError):
            data[msgpack.ExtType(code, b"")] = 1
        assert calls.names == []
        assert core.PersistentMap().to_dict() == data.to_dict() == kept

    def test_bad_key(self, aws: Any, pkg: Any, table_key: str) -> None:
        """An unsupported key is refused like an unsupported value."""
        data = pkg.PersistentMap()
        with pytest.raises(pkg.UnsupportedValueError):
            data[UserClass()] = 1
        assert len(data) == 0

    def test_self_referencing_value(self, aws: Any, pkg: Any, table_key: str) -> None:
        """A list that contains itself cannot be stored by either package (the full one writes trees, and the
        lite one refuses what the full one could not read): a clear error, promptly, and nothing stored."""
        loop: list[Any] = [1]
        loop.append({"again": loop})
        data = pkg.PersistentMap(keep=1)
        with pytest.raises(pkg.UnsupportedValueError, match=r"\['k'\].*contains itself at \['k'\]\[1\]\['again'\]"):
            data["k"] = loop
        assert data.to_dict() == {"keep": 1}
        assert pkg.PersistentMap().to_dict() == {"keep": 1}

    def test_too_deeply_nested_value(self, aws: Any, pkg: Any, table_key: str, calls: Calls) -> None:
        """Both encoders recurse; a value nested deeper than they can follow is refused with its depth (not an
        encoder's internal message), before anything is sent. Moderate nesting is stored by both."""
        shallow: list[Any] = []
        for _ in range(200):
            shallow = [shallow]
        data = pkg.PersistentMap(keep=1, shallow=shallow)
        deep: list[Any] = []
        for _ in range(5000):
            deep = [deep]
        calls.clear()
        with pytest.raises(
            pkg.UnsupportedValueError, match=r"cannot store the value at \['k'\]: it is nested 5001 levels deep"
        ):
            data["k"] = deep
        assert calls.names == []
        assert "k" not in data
        assert pkg.PersistentMap().to_dict() == {"keep": 1, "shallow": shallow}

    def test_exponentially_shared_value_in_lite(self, aws: Any, lite: Any, table_key: str) -> None:
        """Pickle stores 2**60 leaves shared this way in a few hundred bytes; no reader could expand them, so the
        lite package refuses to write them (the readers refuse such stored data too)."""
        value: list[Any] = ["leaf"]
        for _ in range(60):
            value = [value, value]
        data = lite.PersistentMap(keep=1)
        with pytest.raises(lite.UnsupportedValueError, match="shares values"):
            data["k"] = value
        assert lite.PersistentMap().to_dict() == {"keep": 1}

    def test_shared_values_round_trip(self, aws: Any, pkg: Any, table_key: str) -> None:
        shared = {"n": list(range(50))}
        pkg.PersistentMap(k=[shared, shared, (shared,)])
        assert pkg.PersistentMap()["k"] == [shared, shared, (shared,)]


#: VALUES, and what the codecs do not all return the same way (nan equals nothing; msgpack returns bytes).
MODEL_VALUES = [*VALUES, ("nan", math.nan), ("bytearray", bytearray(b"\x00x"))]


class TestValueModel:
    """``_model.KINDS`` is the one description of the supported types: every codec works from it."""

    def test_every_type_of_the_model_is_exercised(self) -> None:
        from aws_lambda_persistence_lite._model import KINDS

        def types_in(value: Any) -> set[type]:
            found = {type(value)}
            if type(value) is dict:
                value = [*value, *value.values()]
            if type(value) in (list, tuple, set, frozenset):
                found = found.union(*map(types_in, value))
            return found

        covered = set().union(*(types_in(value) for _, value in MODEL_VALUES))
        assert {kind.type for kind in KINDS} == covered

    @pytest.mark.parametrize(("name", "value"), MODEL_VALUES, ids=[n for n, _ in MODEL_VALUES])
    def test_round_trip_through_every_codec(self, name: str, value: Any) -> None:
        """msgpack (its bytearray comes back as bytes, msgpack's own binary), the allow-listed pickle, tagged JSON."""
        from aws_lambda_persistence_lite import _tagged_json
        from aws_lambda_persistence_lite._codec import codec_for

        names = ["pickle5+zlib", "msgpack+zstd"] if HAS_CORE else ["pickle5+zlib"]
        for codec in map(codec_for, names):
            key, back = codec.decode_entry(codec.encode_entry("k", value))
            expected = bytes(value) if codec.name == "msgpack+zstd" and type(value) is bytearray else value
            assert key == "k" and canonical(back) == canonical(expected), (codec.name, back)
        assert canonical(_tagged_json.loads(_tagged_json.dumps(value)), any_nan=True) == canonical(value, any_nan=True)

    def test_the_unpickler_resolves_only_what_the_model_names(self) -> None:
        from aws_lambda_persistence_lite._model import KINDS, ZONE_CLASSES
        from aws_lambda_persistence_lite._pickle import _ALLOWED

        named = {(kind.type.__module__, kind.type.__qualname__) for kind in KINDS if kind.named}
        assert set(_ALLOWED) == named | ZONE_CLASSES | {("_codecs", "encode")}  # (how protocols 0-2 store bytes)

    @pytest.mark.parametrize("protocol", range(2, 6))
    def test_pickles_of_every_protocol_read_back(self, protocol: int) -> None:
        """Other writers may have used an older protocol than 1.0.0's (4 or 5), naming more classes (builtins.set,
        _codecs.encode...). (Protocols 0 and 1 rebuild a UUID through copyreg._reconstructor, which can build any
        class: refused.)"""
        import pickle

        from aws_lambda_persistence_lite._pickle import loads_restricted

        values = dict(MODEL_VALUES)
        del values["zoneinfo datetime fold"]  # (the standard pickler names getattr for a ZoneInfo: always refused)
        assert canonical(loads_restricted(pickle.dumps(values, protocol=protocol))) == canonical(values)
