"""Hostile and damaged stored data: random and mutated blobs, bodies and head items, and pickles that try to
import or call anything outside the allow-list. Every case ends in a dict or in the package's own
StoredDataError: never another exception, a hang (pytest-timeout), unbounded memory or code execution."""

from __future__ import annotations

import copy
import pickle
import random
import struct
import tracemalloc
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import maps
from tests.fuzz.test_codecs import CODECS, make_codec

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
pytestmark = pytest.mark.timeout(90)

TRIPPED: list[str] = []


def tripwire(*args: Any, **kwargs: Any) -> None:
    """Outside the allow-list: a payload that reaches it would prove code execution."""
    TRIPPED.append(repr(args))


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> Any:
    return make_codec(request.param)


def stored_data_error() -> type[Exception]:
    from aws_lambda_persistence_lite import StoredDataError

    return StoredDataError


def decode_or_refuse(codec: Any, blob: bytes, raw_size: int) -> None:
    """Decoding ends in a dict or a StoredDataError; nothing else."""
    try:
        result = codec.decode(blob, raw_size)
    except stored_data_error():
        return
    assert type(result) is dict


def encoded(codec: Any, data: dict[Any, Any]) -> tuple[bytes, bytes]:
    body = codec.join([codec.encode_entry(k, v) for k, v in data.items()])
    return body, codec.compress(body)


@st.composite
def mutated(draw: Any, original: bytes) -> bytes:
    """``original`` with a few flips, truncations, extensions, deletions or duplications.

    Every draw is made whatever the bytes are, and positions are drawn as fractions of the length: Hypothesis
    must see the same sequence of draws when it replays an example, even if the encoded bytes came out different
    (pickle memoizes shared objects, and whether two equal values are one object varies between replays).
    """
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "delete", "duplicate", "set"]))
        at = draw(st.integers(0, 2**16 - 1)) * len(data) // 2**16
        bit = draw(st.integers(0, 7))
        extra = draw(st.binary(min_size=1, max_size=16))
        count = draw(st.integers(1, 32))
        byte = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0xC1, 0xD4, 0xDF, 0x8E, 0x96, 0x93, 0x52]))
        if kind == "flip" and data:
            data[at] ^= 1 << bit
        elif kind == "truncate":
            del data[at:]
        elif kind == "extend":
            data[at:at] = extra
        elif kind == "delete":
            del data[at : at + min(count, 8)]
        elif kind == "duplicate":
            data[at:at] = data[at : at + count]
        elif data:
            data[at] = byte
    return bytes(data)


RAW_SIZES = st.integers(-5, 1 << 20) | st.sampled_from([0, 1, (1 << 31) - 1, 2 * 1024**3, 2 * 1024**3 + 1, 10**15])


def _claim(opcode: bytes, width: int, size: int = 1 << 30) -> bytes:
    return b"\x80\x05" + opcode + size.to_bytes(width, "little") + b"abc"


def _unicode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + struct.pack("<I", len(raw)) + raw


def _tuple_dag(depth: int) -> bytes:
    """Pickle opcodes (protocol 2, no header or STOP) of a tuple holding the one below twice, ``depth`` deep."""
    value: Any = (1,)
    for _ in range(depth):
        value = (value, value)
    return pickle.dumps(value, 2)[2:-1]


def _uuid_int_dag(depth: int) -> bytes:
    """UUIDs whose ``int`` (set by BUILD, UUID.__setstate__) is a tuple holding the UUID below twice, each set
    before the one below is: hashing the top one as a dict key walks 2**depth nodes."""
    body = bytearray(b"\x80\x02")
    for i in range(depth + 1):
        body += b"cuuid\nUUID\n)\x81q" + bytes([i]) + b"0"
    body += b"h\x00}X\x03\x00\x00\x00intK\x00sb0"
    for i in range(depth - 1, -1, -1):
        body += b"h" + bytes([i + 1]) + b"}X\x03\x00\x00\x00inth" + bytes([i]) + b"h" + bytes([i]) + b"\x86sb0"
    return bytes(body + b"}h" + bytes([depth]) + b"Ns.")


_FRAMED_TWO = b"K\x00K\x00\x86.N."  # a frame holding a whole entry and, after its STOP, the start of another

SHARING_BOMBS = {
    "tuple-DAG-as-dict-key": b"\x80\x02" + _unicode("k") + b"}" + _tuple_dag(40) + b"K\x01s\x86.",
    "tuple-DAG-in-set": b"\x80\x04" + _unicode("k") + b"\x8f(" + _tuple_dag(40) + b"\x90\x86.",
    "DUP-tree": b"\x80\x05K\x01)" + b"2\x86" * 40 + b"\x86.",
    "DUP-cycle": b"\x80\x05K\x01]2a\x86.",
    "UUID-int-DAG": _uuid_int_dag(60),
    "frame-drift": b"\x80\x05\x95" + len(_FRAMED_TWO).to_bytes(8, "little") + _FRAMED_TWO
    + b"\x80\x02" + _unicode("k") + _tuple_dag(40) + b"\x86.",
}  # fmt: skip

MEMORY_BOMBS = {
    "BINBYTES": _claim(b"B", 4),
    "BINBYTES8": _claim(b"\x8e", 8),
    "BYTEARRAY8": _claim(b"\x96", 8),
    "BINUNICODE8": _claim(b"\x8d", 8),
    "LONG4": _claim(b"\x8b", 4),
    "FRAME": _claim(b"\x95", 8),
    # The memo: one index resizes and zero-fills it (8 bytes a slot, resident at once).
    "LONG_BINPUT": b"\x80\x05N" + b"r" + (1 << 26).to_bytes(4, "little") + b".",
    "PUT": b"Np" + str(1 << 26).encode() + b"\n.",
    "PUT-not-a-number": b"Np1e9\n.",
    "LONG-text": b"L" + b"9" * 100_000 + b"L\n.",
}


class TestDecoder:
    @FUZZ
    @given(blob=st.binary(max_size=256), raw_size=RAW_SIZES)
    def test_random_blobs(self, codec: Any, blob: bytes, raw_size: int) -> None:
        decode_or_refuse(codec, blob, raw_size)

    @FUZZ
    @given(data=st.data(), original=maps)
    def test_mutated_blobs(self, codec: Any, data: Any, original: dict[Any, Any]) -> None:
        """A damaged blob (its digest recomputed, as a hostile writer would) with the right or a wrong size."""
        body, blob = encoded(codec, original)
        size = data.draw(st.sampled_from([len(body), len(body) + 1, len(body) - 1, 0]) | RAW_SIZES)
        decode_or_refuse(codec, data.draw(mutated(blob)), size)

    @FUZZ
    @given(data=st.data(), original=maps)
    def test_mutated_bodies(self, codec: Any, data: Any, original: dict[Any, Any]) -> None:
        """A damaged body, compressed correctly: it reaches msgpack or the unpickler."""
        body, _ = encoded(codec, original)
        damaged = data.draw(mutated(body))
        decode_or_refuse(codec, codec.compress(damaged), len(damaged))
        assert not TRIPPED

    def test_declared_size_beyond_the_functions_memory(self, codec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """In Lambda, a map that decodes to more than the function's memory is refused before decompressing."""
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        with pytest.raises(stored_data_error(), match=r"this function's memory \(128 MB\)"):
            codec.decode(b"anything", 200 * 1024 * 1024)

    def test_decompression_is_bounded_by_the_head(self, codec: Any) -> None:
        """A small blob that inflates far beyond the declared size is cut off at the declared size."""
        body = b"\0" * (64 * 1024 * 1024)
        blob = codec.compress(body)
        tracemalloc.start()
        try:
            with pytest.raises(stored_data_error()):
                codec.decode(blob, 1000)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024

    @pytest.mark.parametrize("bomb", MEMORY_BOMBS.values(), ids=MEMORY_BOMBS.keys())
    @pytest.mark.parametrize("reader", ["lite codec", "1.0.0 reader"])
    def test_pickle_memory_bombs_are_refused_before_loading(self, bomb: bytes, reader: str) -> None:
        """A few bytes that make CPython's unpickler allocate what they claim (gh-115952): refused by the opcode
        scan, with no allocation to speak of."""
        from aws_lambda_persistence_lite._pickle import PickleCodec, loads_restricted

        def read() -> Any:
            if reader == "lite codec":
                return PickleCodec().decode(zlib.compress(bomb), len(bomb))
            return loads_restricted(bomb)

        tracemalloc.start()
        try:
            with pytest.raises(stored_data_error(), match="refused before loading"):
                read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 1024 * 1024

    @FUZZ
    @given(original=maps, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
    def test_scan_accepts_every_honest_pickle(self, original: dict[Any, Any], protocol: int) -> None:
        """No false alarms: what pickle writes for any map of the value model, at any protocol (1.0.0 wrote
        protocols 2 to 5), passes the scan and loads back whole."""
        from aws_lambda_persistence_lite import UnsafeDataError
        from aws_lambda_persistence_lite._pickle import loads_restricted
        from aws_lambda_persistence_lite._pickle_bounds import scan

        body = pickle.dumps(original, protocol)
        scan(body)
        if protocol < 2:  # protocols 0 and 1 save some types through copyreg, which the allow-list refuses
            return
        if "zoneinfo" in repr(original):  # plain pickle saves ZoneInfo through getattr(), refused; ours by key
            with pytest.raises(UnsafeDataError, match=r"builtins\.getattr"):
                loads_restricted(body)
            return
        loaded = loads_restricted(body)
        assert type(loaded) is dict and len(loaded) == len(original)

    @pytest.mark.parametrize("depth", [40, 200])
    def test_exponential_sharing_is_refused_by_every_reader(self, core: Any, depth: int) -> None:
        """2**depth leaves in a few hundred bytes: refused in linear time, before any tree walk expands it."""
        from aws_lambda_persistence._msgpack import ZstdPickleCodec
        from aws_lambda_persistence_lite._pickle import PickleCodec, loads_restricted

        value: list[Any] = ["leaf"]
        for _ in range(depth):
            value = [value, value]
        entry = pickle.dumps(("bomb", value), 5)
        for reader in (PickleCodec(), ZstdPickleCodec()):
            with pytest.raises(core.CorruptDataError, match="shares values"):
                reader.decode(reader.compress(entry), len(entry))
        with pytest.raises(core.CorruptDataError, match="shares values"):
            loads_restricted(pickle.dumps({"bomb": value}))

    @pytest.mark.parametrize("bomb", SHARING_BOMBS.values(), ids=SHARING_BOMBS.keys())
    def test_sharing_bombs_are_refused_before_loading(self, bomb: bytes) -> None:
        """Shared values that the unpickler itself would expand (hashing a dict key walks a tuple's whole tree),
        built through GET or DUP, or hidden behind a frame that makes entry numbers drift: refused at once."""
        from aws_lambda_persistence_lite._pickle import PickleCodec

        with pytest.raises(stored_data_error(), match=r"shares values|refers to itself|before that value is complete"):
            PickleCodec().decode(zlib.compress(bomb), len(bomb))

    @pytest.mark.parametrize(
        "value",
        [[{"a": 1, "b": "x" * 200}] * 20_000, [b"x" * 1_000_000] * 500],
        ids=["one dict 20,000 times", "one megabyte 500 times"],
    )
    def test_heavy_sharing_is_refused_by_the_writer_in_linear_time(self, value: Any) -> None:
        """The lite writer refuses what its readers would (and promptly: each shared value is weighed once)."""
        from aws_lambda_persistence_lite import UnsupportedValueError
        from aws_lambda_persistence_lite._pickle import PickleCodec

        with pytest.raises(UnsupportedValueError, match="shares values"):
            PickleCodec().encode_entry("k", value)

    def test_deep_stack_with_sharing_is_weighed_in_linear_time(self) -> None:
        """Many MARKs over a deep stack, in a pickle that shares (so it is replayed before loading)."""
        from aws_lambda_persistence_lite._pickle_bounds import weigh

        weigh(b"\x80\x04N" + b"N" * 100_000 + b"2" + b"(t" * 100_000 + b".")  # finishes within the timeout

    def test_enum_members_cannot_be_changed(self) -> None:
        """BUILD on an allow-listed object that is shared process-wide (uuid.SafeUUID members) is impossible:
        SafeUUID is not allow-listed at all (UUID pickles store its value, not the member)."""
        import uuid

        from aws_lambda_persistence_lite import UnsafeDataError
        from aws_lambda_persistence_lite._pickle import loads_restricted

        state = _unicode("_name_") + _unicode("hacked") + _unicode("_value_") + b"K\x07"
        body = b"\x80\x02cuuid\nSafeUUID\nK\x00\x85R}(" + state + b"ub."
        with pytest.raises(UnsafeDataError):
            loads_restricted(body)
        assert uuid.SafeUUID.safe.name == "safe"
        safe = uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe)
        assert loads_restricted(pickle.dumps({"u": safe})) == {"u": safe}

    def test_repeated_strings_are_bounded_by_the_scan_alone(self) -> None:
        """JSON-like data repeats its keys (one str object, memo GETs): the one-pass scan bounds those, and only
        pickles that share a container pay for replaying their stack effects."""
        import json

        from aws_lambda_persistence_lite._pickle_bounds import scan

        users = json.loads(json.dumps([{"id": i, "name": f"user{i}"} for i in range(1000)]))
        entry = pickle.dumps(("users", users), 5)
        assert entry.count(b"h") >= 1000  # the keys, shared
        assert scan(entry) == [(0, len(entry), False)]
        grid = [[0] * 10] * 10
        assert scan(pickle.dumps(("grid", grid), 5))[0][2] is True

    def test_honest_sharing_and_edge_values_load(self) -> None:
        from aws_lambda_persistence_lite._pickle import PickleCodec, loads_restricted

        grid = [[0] * 10] * 100  # the classic shared row
        codec = PickleCodec()
        entry = codec.encode_entry("grid", grid)
        assert codec.decode(codec.compress(entry), len(entry)) == {"grid": grid}
        assert loads_restricted(pickle.dumps({"n": 10**4299}, 0)) == {"n": 10**4299}  # the longest INT/LONG text
        assert loads_restricted(b"\x80\x02N\x94h\x00\x86.") == (None, None)  # GET of an atom at top level

    def test_cycles_are_refused(self) -> None:
        from aws_lambda_persistence_lite._pickle import PickleCodec

        loop: list[Any] = [1]
        loop.append([loop])
        entry = pickle.dumps(("loop", loop), 5)
        with pytest.raises(stored_data_error(), match=r"refers to itself|before that value is complete"):
            PickleCodec().decode(zlib.compress(entry), len(entry))


GLOBAL_TARGETS = [
    ("os", "system"),
    ("posix", "system"),
    ("subprocess", "Popen"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("__builtin__", "eval"),
    ("importlib", "import_module"),
    ("pickle", "loads"),
    ("operator", "attrgetter"),
    ("functools", "partial"),
    ("copyreg", "_reconstructor"),
    ("datetime", "datetime.now"),
    ("decimal", "getcontext"),
    ("uuid", "uuid4"),
    ("zoneinfo", "reset_tzpath"),
    ("_codecs", "decode"),
    ("builtins", "type"),
    ("builtins", "object"),
    ("builtins", "dict"),
    ("tests.fuzz.test_hostile", "tripwire"),
]
identifier = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}(\.[A-Za-z_][A-Za-z0-9_]{0,8})?", fullmatch=True)


def _allowed(module: str, name: str) -> bool:
    from aws_lambda_persistence_lite._pickle import _ALLOWED

    return ("builtins" if module == "__builtin__" else module, name) in _ALLOWED


targets = (st.sampled_from(GLOBAL_TARGETS) | st.tuples(identifier, identifier)).filter(lambda t: not _allowed(*t))


def hostile_pickle(module: str, name: str, opcode: str) -> bytes:
    """A pickle whose every path goes through the global ``module.name`` (outside the allow-list)."""
    glob = b"c" + f"{module}\n{name}\n".encode()
    stack_glob = _unicode(module) + _unicode(name) + b"\x93"
    arg = _unicode("touch /tmp/alp-pwned")
    bodies = {
        "GLOBAL+REDUCE": glob + b"(" + arg + b"tR",
        "STACK_GLOBAL+REDUCE": stack_glob + arg + b"\x85R",
        "INST": b"(" + arg + b"i" + f"{module}\n{name}\n".encode(),
        "OBJ": b"(" + glob + arg + b"o",
        "NEWOBJ": stack_glob + b")\x81",
        "NEWOBJ_EX": stack_glob + b")}\x92",
        "BUILD": stack_glob + b")\x81}" + _unicode("x") + arg + b"sb",
        "GLOBAL": glob,
    }
    return b"\x80\x05" + _unicode("key") + bodies[opcode] + b"\x86."  # the (key, value) pair of one entry


OPCODES = ["GLOBAL+REDUCE", "STACK_GLOBAL+REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD", "GLOBAL"]


class TestHostilePickles:
    @FUZZ
    @given(target=targets, opcode=st.sampled_from(OPCODES), prefix=st.sampled_from([b"", b"legit"]))
    def test_refused_in_every_pickle_reader(self, target: tuple[str, str], opcode: str, prefix: bytes) -> None:
        """The lite codec, the full package's zstd reader and the 1.0.0 reader all refuse, before any call."""
        from aws_lambda_persistence_lite import UnsafeDataError
        from aws_lambda_persistence_lite._pickle import PickleCodec, loads_restricted

        module, name = target
        good = pickle.dumps(("legit", 1), 5) if prefix else b""
        body = good + hostile_pickle(module, name, opcode)
        readers = [PickleCodec()]
        for reader in readers:
            with pytest.raises(UnsafeDataError, match="refused"):
                reader.decode(reader.compress(body), len(body))
        with pytest.raises(UnsafeDataError, match="refused"):
            loads_restricted(hostile_pickle(module, name, opcode))
        assert not TRIPPED

    @pytest.mark.parametrize("opcode", OPCODES)
    def test_refused_by_the_full_package(self, core: Any, opcode: str) -> None:
        from aws_lambda_persistence._msgpack import ZstdPickleCodec

        body = hostile_pickle("tests.fuzz.test_hostile", "tripwire", opcode)
        with pytest.raises(core.UnsafeDataError):
            ZstdPickleCodec().decode(ZstdPickleCodec().compress(body), len(body))
        assert not TRIPPED

    def test_real_exploit_objects(self) -> None:
        """Pickles made by pickle itself for objects whose reduce names a callable."""
        from aws_lambda_persistence_lite import UnsafeDataError
        from aws_lambda_persistence_lite._pickle import PickleCodec

        class Exploit:
            def __reduce__(self) -> Any:
                return tripwire, ("pwned",)

        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            body = pickle.dumps(("k", Exploit()), protocol)
            with pytest.raises(UnsafeDataError):
                PickleCodec().decode(zlib.compress(body), len(body))
        assert not TRIPPED

    @pytest.mark.parametrize(
        "body",
        [
            b"\x80\x05cbuiltins\nbytearray\nJ\x00\x10\xa5\xd4\x85R.",  # bytearray(10**12)
            b"\x80\x02c__builtin__\nbytes\nJ\x00\x10\xa5\xd4\x85R.",  # bytes(10**12)
            b"\x80\x05c_codecs\nencode\n" + _unicode("x") + _unicode("zlib_codec") + b"\x86R.",
            b"\x80\x05c_codecs\nencode\n" + _unicode("x") + b"\x85R.",
        ],
        ids=["bytearray-size", "bytes-size", "codecs-zlib", "codecs-default"],
    )
    def test_allowed_callables_with_hostile_arguments(self, body: bytes) -> None:
        from aws_lambda_persistence_lite import UnsafeDataError
        from aws_lambda_persistence_lite._pickle import loads_restricted

        with pytest.raises(UnsafeDataError):
            loads_restricted(body)


# -- the head item, read through the whole load path (Store.load, parse_head, PersistentMap._decode) -----------


class FakeTable:
    """A DynamoDB client that serves fixed items to GetItem and BatchGetItem (no I/O, so fuzzing is fast)."""

    def __init__(self, items: dict[str, dict[str, Any]]) -> None:
        self.items = items

    def get_item(self, *, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        item = self.items.get(Key["key"]["S"])
        return {"Item": copy.deepcopy(item)} if item is not None else {}

    def batch_get_item(self, *, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        found = [copy.deepcopy(self.items[k["key"]["S"]]) for k in request["Keys"] if k["key"]["S"] in self.items]
        return {"Responses": {table: found}}


class Recorder:
    """Captures the items a real commit writes, to serve them back through FakeTable."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {}

    def put_item(self, *, Item: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.items[Item["key"]["S"]] = Item
        return {}

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        for action in TransactItems:
            if "Put" in action:
                self.items[action["Put"]["Item"]["key"]["S"]] = action["Put"]["Item"]
        return {}


def written(pkg: Any, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    recorder = Recorder()
    pkg.PersistentMap.open(data, client=recorder, table_key="m")
    return recorder.items


def load(pkg: Any, items: dict[str, dict[str, Any]]) -> Any:
    """Load map 'm' from ``items``: a dict, or StoredDataError; any other exception fails the test."""
    try:
        return pkg.PersistentMap.open(client=FakeTable(items), table_key="m").to_dict()
    except pkg.StoredDataError as exc:
        error: Any = exc
    assert (error.table, error.key) == ("AWSLambdaPersistence", "m"), error  # names where the damage is
    return error


numbers = st.integers().map(str) | st.sampled_from(["-1", "0", "1.5", "1E+3", "-0", str(2**31), str(10**40), "2"])
attribute_values = st.recursive(
    st.one_of(
        st.builds(lambda v: {"S": v}, st.text(max_size=20)),
        st.builds(lambda v: {"N": v}, numbers),
        st.builds(lambda v: {"B": v}, st.binary(max_size=40)),
        st.builds(lambda v: {"BOOL": v}, st.booleans()),
        st.just({"NULL": True}),
        st.builds(lambda v: {"SS": sorted(v)}, st.sets(st.text(max_size=8), min_size=1, max_size=3)),
        st.builds(lambda v: {"NS": sorted(v)}, st.sets(numbers, min_size=1, max_size=3)),
        st.builds(lambda v: {"BS": sorted(v)}, st.sets(st.binary(max_size=8), min_size=1, max_size=3)),
        st.sampled_from([{"S": name} for name in ["msgpack+zstd", "pickle5+zlib", "pickle5+zstd", "pickle-1.0.0", ""]]),
    ),
    lambda inner: (
        st.builds(lambda v: {"L": v}, st.lists(inner, max_size=4))
        | st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=5), inner, max_size=3))
    ),
    max_leaves=6,
)
HEAD_ATTRIBUTES = ["alp_raw", "alp_shards", "alp_codec", "alp_fmt", "alp_ver", "alp_gen", "alp_dig", "alp_cid"]
HEAD_ATTRIBUTES += ["alp_garbage", "value"]
mutations = st.lists(st.tuples(st.sampled_from(HEAD_ATTRIBUTES), st.none() | attribute_values), min_size=1, max_size=3)
SMALL = {"a": 1, "text": "x" * 50, "when": (1, 2.5, None)}
LARGE = {"blob": random.Random(1).randbytes(500_000)}  # incompressible: two shards


class TestDamagedHeads:
    @FUZZ
    @given(changes=mutations, sharded=st.booleans())
    def test_mutated_head_attributes(self, pkg: Any, changes: list[tuple[str, Any]], sharded: bool) -> None:
        items = copy.deepcopy(written(pkg, LARGE if sharded else SMALL))
        head = items["m"]
        for name, value in changes:
            if value is None:
                head.pop(name, None)
            else:
                head[name] = value
        result = load(pkg, items)
        assert isinstance(result, (dict, pkg.StoredDataError))

    @FUZZ
    @given(data=st.data(), sharded=st.booleans())
    def test_mutated_blob_or_shard(self, pkg: Any, data: Any, sharded: bool) -> None:
        """Damaged bytes are caught by the digests: always CorruptDataError, never a wrong map."""
        items = copy.deepcopy(written(pkg, LARGE if sharded else SMALL))
        keys = sorted(k for k in items if k != "m") if sharded else ["m"]
        key = data.draw(st.sampled_from(keys))
        original = items[key]["value"]["B"]
        damaged = data.draw(mutated(original).filter(lambda b: b != original))
        items[key]["value"]["B"] = damaged
        assert isinstance(load(pkg, items), pkg.CorruptDataError)

    @FUZZ
    @given(blob=st.binary(max_size=200) | st.builds(lambda b: pickle.dumps(b, 2), st.binary(max_size=20)))
    def test_random_1_0_0_items(self, pkg: Any, blob: bytes) -> None:
        """A format 1 item (no alp_fmt) with any bytes in ``value``: a dict or a StoredDataError."""
        items = {"m": {"key": {"S": "m"}, "value": {"B": blob}}}
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    def test_missing_shard(self, pkg: Any) -> None:
        items = written(pkg, LARGE)
        del items[max(k for k in items if k != "m")]
        assert isinstance(load(pkg, items), pkg.CorruptDataError)


def rehead(pkg: Any, codec_name: str, body: bytes, compress: Any) -> dict[str, dict[str, Any]]:
    """A head a hostile writer made for ``body``: digest and size recomputed, so only the decoder stands guard."""
    from aws_lambda_persistence_lite._format import digest

    items = written(pkg, {"a": 1})
    blob = compress(body)
    items["m"].update(
        alp_codec={"S": codec_name}, value={"B": blob}, alp_dig={"B": digest(blob)}, alp_raw={"N": str(len(body))}
    )
    return items


class TestHostileBodies:
    """Bodies a hostile writer stored with a correct digest: the whole load path must still end in a dict or
    in StoredDataError."""

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(b"\x80\x05cbuiltins\nbytearray\n.", id="allow-listed-callable"),
            pytest.param(b"\x80\x05cuuid\nSafeUUID\nN\x85R.", id="SafeUUID-member"),
            pytest.param(b"\x80\x05" + b"]" * 5000 + b".", id="5000-nested-lists"),
        ],
    )
    def test_pickle_values_outside_the_model(self, pkg: Any, value: bytes) -> None:
        deep = value.startswith(b"\x80\x05]")
        if deep:  # a list nested 5000 deep: EMPTY_LIST, then APPEND each into the one before
            value = b"\x80\x05" + b"]" * 5000 + b"a" * 4999 + b"."
        entry = b"\x80\x05" + _unicode("k") + value[2:-1] + b"\x86."
        items = rehead(pkg, "pickle5+zlib", entry, zlib.compress)
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(b"\xd6\xff\x00\x00\x00\x01", id="msgpack-timestamp-ext"),
            pytest.param(b"\xd4\x63\x00", id="unknown-ext"),
            pytest.param(b"\x91" * 3000 + b"\xc0", id="3000-nested-arrays"),
        ],
    )
    def test_msgpack_values_outside_the_model(self, core: Any, value: bytes) -> None:
        import zstandard

        body = b"\xdf\x00\x00\x00\x01\xa1k" + value
        items = rehead(core, "msgpack+zstd", body, zstandard.ZstdCompressor().compress)
        assert isinstance(load(core, items), (dict, core.StoredDataError))
