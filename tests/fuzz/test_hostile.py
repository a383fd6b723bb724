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
from collections.abc import Callable, Sequence
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import package_codec
from tests.fuzz.framing import edge_numbers, records
from tests.fuzz.isolated import FakeTable, Items
from tests.fuzz.test_codecs import CODECS, make_codec
from tests.values import hashables, maps, values

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

    @pytest.mark.parametrize("method", ["decode", "decode_entries", "decompress"])
    @pytest.mark.parametrize("claim", [2 * 1024**3, 64 * 1024 * 1024, 0], ids=["2 GiB", "64 MiB", "just beyond"])
    def test_size_claim_beyond_the_formats_ratio(self, codec: Any, method: str, claim: int) -> None:
        """A small blob whose head claims more than its format can inflate it to (zlib 1,032 times, zstd 32,768):
        CorruptDataError before anything is allocated, even under the 2 GiB cap."""
        blob = codec.compress(codec.join([codec.encode_entry("a", 1)]))
        claim = claim or codec.max_ratio * len(blob) + 1
        assert claim > codec.max_ratio * len(blob)
        tracemalloc.start()
        try:
            with pytest.raises(stored_data_error(), match="can decompress to") as raised:
                getattr(codec, method)(blob, claim)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert type(raised.value).__name__ == "CorruptDataError"
        assert peak < 1024 * 1024

    def test_honest_blobs_at_the_formats_ratio(self, codec: Any) -> None:
        """The most compressible body (zeros) stays within the bound: no blob a compressor made is refused."""
        body = b"\0" * (16 * 1024 * 1024)
        blob = codec.compress(body)
        assert len(body) > codec.max_ratio * len(blob) * 0.9  # (the body nearly reaches the format's limit)
        assert codec.decompress(blob, len(body)) == body

    def test_lying_size_claim_costs_what_the_blob_holds(self, codec: Any) -> None:
        """A claim within the ratio (zstd: 1.3 GB for these 40 KB) but far beyond what the blob holds: memory
        follows what the blob decompresses to, not the claim."""
        body = random.Random(0).randbytes(40_000)
        blob = codec.compress(body)
        if type(codec).__module__.startswith("aws_lambda_persistence."):  # a frame that does not declare its size
            import zstandard

            blob = zstandard.ZstdCompressor(write_content_size=False).compress(body)
        claim = min(codec.max_ratio * len(blob), 2 * 1024**3)
        tracemalloc.start()
        try:
            with pytest.raises(stored_data_error(), match="decompresses to 40000 bytes"):
                codec.decompress(blob, claim)
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
        from aws_lambda_persistence._zstd_pickle import ZstdPickleCodec
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

    @pytest.mark.parametrize("state", ["dict", "slots"])
    def test_allow_listed_callables_cannot_be_changed(self, state: str) -> None:
        """BUILD on each allow-listed name (a dict state, or a slot state that setattr()s ``__defaults__`` and
        ``__doc__``) is refused by every pickle reader, and changes nothing in the process."""
        from aws_lambda_persistence_lite import StoredDataError
        from aws_lambda_persistence_lite._pickle import _ALLOWED, PickleCodec, _resolve, loads_restricted

        changes = {"__doc__": "hacked", "__defaults__": ("latin1",), "x": 1}
        for module, name in _ALLOWED:
            target = _resolve(module, name)
            before = {attribute: getattr(target, attribute, None) for attribute in changes}
            entries = b"".join(_unicode(k) + pickle.dumps(v, 5)[2:-1] for k, v in changes.items())
            body = b"}(" + entries + b"u" if state == "dict" else b"N}(" + entries + b"u\x86"
            built = b"\x80\x05" + _unicode("key") + _unicode(module) + _unicode(name) + b"\x93" + body + b"b\x86."
            with pytest.raises(StoredDataError):
                PickleCodec().decode_entry(built)
            with pytest.raises(Exception):  # noqa: B017, PT011  (the 1.0.0 reader names any failure: test_map)
                loads_restricted(built)
            assert {attribute: getattr(target, attribute, None) for attribute in changes} == before, (module, name)

    def test_repeated_strings_are_bounded_by_the_scan_alone(self) -> None:
        """JSON-like data repeats its keys (one str object, memo GETs): the one-pass scan bounds those, and only
        pickles that share a container pay for replaying their stack effects."""
        import json

        from aws_lambda_persistence_lite._pickle_bounds import scan

        users = json.loads(json.dumps([{"id": i, "name": f"user{i}"} for i in range(1000)]))
        entry = pickle.dumps(("users", users), 5)
        assert entry.count(b"h") >= 1000  # the keys, shared
        assert [found[:3] for found in scan(entry)] == [(0, len(entry), False)]
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
        from aws_lambda_persistence._zstd_pickle import ZstdPickleCodec

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


# -- stored items, read through the whole load path (Replica.load/refresh, _head.parse, _records, the fold) ----

TABLE_NAME = "AWSLambdaPersistence"


def _many_sets(data: Any, compressible: bool = False) -> None:
    """Enough sets of ~100-byte values to flush the log many times: runs, a stored partition, and a log (values
    that compress well: the partition is small enough to be inline, in the head)."""
    rng = random.Random(0)
    for i in range(300):
        data[f"k{i % 50}"] = ("x" * 100 if compressible else rng.randbytes(50).hex()) + str(i)
    data.increment("n", 5)
    del data["k7"]


def _with_manifest(data: Any) -> None:
    """_many_sets with small partitions and the head's segment list capped low: the table goes into a manifest
    segment (FORMAT.md, "Manifest")."""
    from aws_lambda_persistence_lite import _maintenance, _room

    # (TABLE_MAX as _room reads it: imported there from _head)
    with mock.patch.object(_room, "TABLE_MAX", 60), mock.patch.object(_maintenance, "PARTITION_MAX", 1_500):
        _many_sets(data)


SHAPES: dict[str, Callable[[Any], Any]] = {
    "small": lambda data: data.update(a=1, text="x" * 50, when=(1, 2.5, None)),  # one head item, records in its log
    "inline": lambda data: _many_sets(data, compressible=True),
    "flushed": _many_sets,
    "manifest": _with_manifest,
    "large": lambda data: data.__setitem__("blob", random.Random(1).randbytes(500_000)),  # a run in two shards
}
_WRITTEN: dict[tuple[str, str], Items] = {}


def written(pkg: Any, shape: str) -> Items:
    """The items a real commit sequence of ``shape`` stores (in moto, once per process), for map 'm'."""
    if (pkg.__name__, shape) not in _WRITTEN:
        import boto3
        from moto import mock_aws

        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            SHAPES[shape](pkg.PersistentMap.open(client=client, table_key="m"))
            pages = client.get_paginator("scan").paginate(TableName=TABLE_NAME)
            _WRITTEN[pkg.__name__, shape] = {i["key"]["S"]: i for page in pages for i in page["Items"]}
    return copy.deepcopy(_WRITTEN[pkg.__name__, shape])


def expected(pkg: Any, shape: str) -> dict[str, Any]:
    result = load(pkg, written(pkg, shape))
    assert isinstance(result, dict)
    return result


def load(pkg: Any, items: Items, table: FakeTable | None = None) -> Any:
    """Load map 'm' from ``items``: a dict, or StoredDataError; any other exception fails the test."""
    try:
        return pkg.PersistentMap.open(client=table or FakeTable(items), table_key="m").to_dict()
    except pkg.StoredDataError as exc:
        return exc


def table_of(items: Items) -> list[Any]:
    from aws_lambda_persistence_lite._records import decode_table

    return decode_table(items["m"]["alp_seg"]["B"]) if "alp_seg" in items["m"] else []


def retable(items: Items, segments: list[Any]) -> None:
    """Store ``segments`` as the head's table, its digest recomputed (a hostile writer's head)."""
    from aws_lambda_persistence_lite._records import digest, encode_table

    table = encode_table(segments) if segments else b""
    items["m"]["alp_seg"] = {"B": table}
    items["m"]["alp_dig"] = {"B": digest(table)}


class Hostile:
    """A hostile writer: a format-3 map made of whatever partitions, runs and records it likes, with every digest,
    size and shard count right, so that only the reader's checks of structure and content stand guard."""

    def __init__(self, pkg: Any) -> None:
        from aws_lambda_persistence_lite._config import Settings

        self.codec = package_codec(pkg)
        self.settings = Settings.resolve({"table_key": "m"})
        self.items: Items = {}
        self.segments: list[Any] = []
        self.ids = 0

    def entry(self, key: Any, value: Any) -> bytes:
        return bytes(self.codec.encode_entry(key, value))

    def record(self, *ops: tuple[int, bytes]) -> bytes:
        from tests.fuzz.framing import frame_record

        self.ids += 1
        return frame_record(self.ids.to_bytes(8, "big"), list(ops))

    def segment(self, kind: int, body: bytes, a: int, b: int, c: int, *, raw_size: int | None = None) -> Any:
        from aws_lambda_persistence_lite._records import SHARD_BYTES, Segment
        from aws_lambda_persistence_lite._records import segment_digest as shard_digest
        from aws_lambda_persistence_lite._state import segment_key

        blob = self.codec.compress(body)
        sid = f"{len(self.segments) + 1:016x}"
        shards = -(-len(blob) // SHARD_BYTES)
        for i in range(shards):
            key = segment_key("m", sid, i)
            self.items[key] = {"key": {"S": key}, "value": {"B": blob[i * SHARD_BYTES : (i + 1) * SHARD_BYTES]}}
        size = len(body) if raw_size is None else raw_size
        segment = Segment(kind, sid, shard_digest(blob), size, len(blob), shards, a, b, c)
        self.segments.append(segment)
        return segment

    def partition(self, depth: int, prefix: int, watermark: int, entries: list[bytes | tuple[int, int, bytes]]) -> Any:
        """A partition of ``entries`` (bare entries take positions (1, i))."""
        from aws_lambda_persistence_lite._records import PARTITION, Entry, encode_partition

        body = encode_partition([Entry(*e) if isinstance(e, tuple) else Entry(1, i, e) for i, e in enumerate(entries)])
        return self.segment(PARTITION, body, depth, prefix, watermark)

    def run(self, lo: int, hi: int, records: list[tuple[int, bytes]], level: int = 0) -> Any:
        from aws_lambda_persistence_lite._records import RUN, encode_run

        return self.segment(RUN, encode_run(records, lo), level, lo, hi)

    def head(self, version: int, log: Sequence[bytes] = (), epoch: int = 1) -> Items:
        from aws_lambda_persistence_lite._head import build

        item = build(self.settings, self.codec.name, version=version, epoch=epoch, log=list(log), table=self.segments)
        if log:
            item["alp_ids"] = {"L": [{"B": r[:8]} for r in log if len(r) >= 8]}
        self.items["m"] = item
        return self.items


SET, DEL, ADD, CLEAR = 1, 2, 3, 4


def key_in(prefix: int, depth: int = 1) -> str:
    """A str key whose hash puts it in partition (depth, prefix)."""
    from aws_lambda_persistence_lite._keyhash import key_hash

    return next(k for k in (f"key{i}" for i in range(1000)) if key_hash(k) % (1 << depth) == prefix)


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
        st.builds(lambda v: {"BS": sorted(v)}, st.sets(st.binary(max_size=9), min_size=1, max_size=3)),
        st.sampled_from([{"S": name} for name in ["msgpack+zstd", "pickle5+zlib", "pickle5+zstd", "pickle-1.0.0", ""]]),
        st.sampled_from([{"N": "3"}, {"N": "2"}, {"N": "4"}, {"L": []}, {"B": b""}]),
    ),
    lambda inner: (
        st.builds(lambda v: {"L": v}, st.lists(inner, max_size=4))
        | st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=5), inner, max_size=3))
    ),
    max_leaves=6,
)
HEAD_ATTRIBUTES = ["alp_fmt", "alp_codec", "alp_ver", "alp_ep", "alp_log", "alp_room", "alp_ids", "alp_seg"]
HEAD_ATTRIBUTES += ["alp_man", "alp_dig", "alp_inl", "alp_garbage", "value"]
mutations = st.lists(st.tuples(st.sampled_from(HEAD_ATTRIBUTES), st.none() | attribute_values), min_size=1, max_size=3)
#: The DynamoDB type of every head attribute a reader reads (FORMAT.md, "Head item").
HEAD_TYPES = {"alp_fmt": "N", "alp_codec": "S", "alp_ver": "N", "alp_ep": "N", "alp_log": "L", "alp_room": "N"}
HEAD_TYPES |= {"alp_ids": "L", "alp_seg": "B", "alp_dig": "B", "alp_inl": "B", "alp_garbage": "SS"}
shapes = st.sampled_from(sorted(SHAPES))


class TestFuzzedStoredItems:
    """Stored items a hostile or buggy writer changed at random: every read ends in a dict or a StoredDataError,
    never another exception, a hang (pytest-timeout) or unbounded reads (FakeTable.KEY_BOUND)."""

    @pytest.mark.slow  # (the slowest fuzz test here, 35 s per package: every shape, each load a full one)
    @settings(FUZZ, max_examples=60)
    @given(changes=mutations, shape=shapes)
    def test_mutated_head_attributes(self, pkg: Any, changes: list[tuple[str, Any]], shape: str) -> None:
        """Any head attribute missing or replaced by any DynamoDB value of any type."""
        items = written(pkg, shape)
        for name, value in changes:
            if value is None:
                items["m"].pop(name, None)
            else:
                items["m"][name] = value
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @pytest.mark.slow  # (test-more; TestDamagedItems covers each attribute in the quick suite)
    @FUZZ
    @given(data=st.data(), shape=shapes)
    def test_head_attribute_of_another_type(self, pkg: Any, data: Any, shape: str) -> None:
        """A head attribute of any other DynamoDB type, or a required one missing (FORMAT.md: only alp_ids, alp_seg
        and alp_garbage may be absent; a head without alp_fmt is a 1.0.0 item): CorruptDataError naming the map,
        never a default (a log read as empty would be an empty map)."""
        items = written(pkg, shape)
        name = data.draw(st.sampled_from(sorted(HEAD_TYPES)))
        value = data.draw(attribute_values.filter(lambda v: next(iter(v)) != HEAD_TYPES[name]) | st.none())
        assume(value is not None or name not in ("alp_fmt", "alp_ids", "alp_seg", "alp_inl", "alp_garbage"))
        if value is None:
            del items["m"][name]
        else:
            items["m"][name] = value
        error = load(pkg, items)
        assert isinstance(error, pkg.CorruptDataError), (name, value, error)
        assert (error.table, error.key) == (TABLE_NAME, "m") and "'m'" in str(error)
        assert name in str(error) or name in ("alp_seg", "alp_dig")  # (the table's integrity check names neither)

    @settings(FUZZ, max_examples=30)  # (one check each: 30 draws cover it; 100 cost 10 s per package)
    @given(data=st.data(), shape=shapes)
    def test_head_counter_out_of_range(self, pkg: Any, data: Any, shape: str) -> None:
        """alp_ver and alp_ep are integers 0..2**63-1, alp_room -409,600..4,000 (never more than the head's budget):
        anything else (fractions, exponents, 40 digits) is CorruptDataError naming the attribute."""
        items = written(pkg, shape)
        name = data.draw(st.sampled_from(["alp_ver", "alp_ep", "alp_room"]))
        low, high = (-409_600, 4_000) if name == "alp_room" else (0, 2**63 - 1)
        text = data.draw(numbers.filter(lambda t: not (t.lstrip("-").isdigit() and low <= int(t) <= high)))
        items["m"][name] = {"N": text}
        error = load(pkg, items)
        assert isinstance(error, pkg.CorruptDataError) and name in str(error), (name, text, error)
        assert (error.table, error.key) == (TABLE_NAME, "m")

    @FUZZ
    @given(data=st.data(), shape=st.sampled_from(["inline", "flushed", "large", "manifest"]))
    def test_damaged_table_is_caught_by_its_digest(self, pkg: Any, data: Any, shape: str) -> None:
        """A segment table changed without its digest: always CorruptDataError naming table and key."""
        items = written(pkg, shape)
        original = items["m"]["alp_seg"]["B"]
        items["m"]["alp_seg"]["B"] = data.draw(mutated(original).filter(lambda b: b != original))
        error = load(pkg, items)
        assert isinstance(error, pkg.CorruptDataError) and (error.table, error.key) == (TABLE_NAME, "m")

    @FUZZ
    @given(data=st.data(), shape=st.sampled_from(["inline", "flushed", "large", "manifest"]))
    def test_mutated_table_bytes(self, pkg: Any, data: Any, shape: str) -> None:
        """A segment table changed at random, its digest recomputed (a hostile writer's head)."""
        items = written(pkg, shape)
        from aws_lambda_persistence_lite._records import digest

        damaged = data.draw(mutated(items["m"]["alp_seg"]["B"]))
        items["m"]["alp_seg"] = {"B": damaged}
        items["m"]["alp_dig"] = {"B": digest(damaged)}
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @FUZZ
    @given(data=st.data(), shape=st.sampled_from(["inline", "flushed", "large", "manifest"]))
    def test_fuzzed_table_fields(self, pkg: Any, data: Any, shape: str) -> None:
        """Segment table fields (kind, sizes, shard count, depth/prefix/watermark, level/lo/hi) set to edge numbers,
        the table re-encoded and its digest recomputed."""
        from aws_lambda_persistence_lite._records import MANIFEST, PARTITION, RUN

        items = written(pkg, shape)
        segments = table_of(items)
        index = data.draw(st.integers(0, len(segments) - 1))
        field = data.draw(st.sampled_from(["kind", "raw_size", "blob_size", "shards", "a", "b", "c"]))
        if field == "kind":
            value: Any = data.draw(st.sampled_from([PARTITION, RUN, MANIFEST]))
        elif field == "shards":
            value = data.draw(st.integers(0, segments[index].shards))
        else:
            value = data.draw(edge_numbers.filter(lambda n: n < 2**64))
        segments[index] = segments[index]._replace(**{field: value})
        retable(items, segments)
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @pytest.mark.slow  # (test-more; TestDamagedItems covers each attribute in the quick suite)
    @FUZZ
    @given(data=st.data(), shape=st.sampled_from(["small", "inline", "flushed"]))
    def test_mutated_log_records(self, pkg: Any, data: Any, shape: str) -> None:
        """A log record changed at random (the log has no digest: each record is parsed strictly)."""
        items = written(pkg, shape)
        log = items["m"]["alp_log"]["L"]
        index = data.draw(st.integers(0, len(log) - 1))
        log[index] = {"B": data.draw(mutated(log[index]["B"]))}
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @pytest.mark.slow  # (test-more: 16 s per package; TestDamagedItems has the quick cases)
    @FUZZ
    @given(data=st.data(), shape=st.sampled_from(["small", "flushed"]))
    def test_random_records(self, pkg: Any, data: Any, shape: str) -> None:
        """Records framed by a hostile writer: any op kinds, lying lengths, entries honest, random or damaged."""
        codec = package_codec(pkg)
        honest = st.builds(lambda k, v: bytes(codec.encode_entry(k, v)), hashables, values)
        entries = honest | st.binary(max_size=40) | honest.flatmap(mutated)
        items = written(pkg, shape)
        new = data.draw(st.lists(records(entries), min_size=1, max_size=3))
        items["m"]["alp_log"]["L"] += [{"B": r} for r in new]
        items["m"]["alp_ver"]["N"] = str(int(items["m"]["alp_ver"]["N"]) + len(new))
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @pytest.mark.slow  # (test-more: 16 s per package; TestDamagedItems has the quick cases)
    @FUZZ
    @given(data=st.data(), shape=st.sampled_from(["inline", "flushed", "large", "manifest"]))
    def test_mutated_segment_bodies(self, pkg: Any, data: Any, shape: str) -> None:
        """A partition or run body (in shard items, or inline in the head) changed at random, then compressed,
        sized and digested correctly."""
        from aws_lambda_persistence_lite._records import segment_digest as shard_digest
        from aws_lambda_persistence_lite._state import segment_key

        codec = package_codec(pkg)
        items = written(pkg, shape)
        segments = table_of(items)
        index = data.draw(st.integers(0, len(segments) - 1))
        segment = segments[index]
        assume(segment.blob_size)  # (an empty partition is not stored: it has no body)
        keys = [segment_key("m", segment.sid, i) for i in range(segment.shards)]
        inline = not keys
        blob = items["m"]["alp_inl"]["B"] if inline else b"".join(items[k]["value"]["B"] for k in keys)
        body = codec.decompress(blob, segment.raw_size)
        damaged = data.draw(mutated(body))
        new = codec.compress(damaged)
        for k in keys:
            del items[k]
        if inline:
            items["m"]["alp_inl"] = {"B": new}
        else:
            items[keys[0]] = {"key": {"S": keys[0]}, "value": {"B": new}}
        segments[index] = segment._replace(
            raw_size=len(damaged), blob_size=len(new), shards=0 if inline else 1, digest=shard_digest(new)
        )
        retable(items, segments)
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))

    @settings(FUZZ, max_examples=30)  # (one check each: 30 draws cover it; 100 cost 10 s per package)
    @given(data=st.data())
    def test_damaged_inline_partition_is_caught_by_its_digest(self, pkg: Any, data: Any) -> None:
        """Damaged alp_inl bytes (any length, up to none at all): CorruptDataError naming table and key."""
        items = written(pkg, "inline")
        assert any(s.shards == 0 and s.blob_size for s in table_of(items))  # (the shape's partition is inline)
        original = items["m"]["alp_inl"]["B"]
        damaged = data.draw(mutated(original).filter(lambda b: b != original) | st.none())
        if damaged is None:
            del items["m"]["alp_inl"]
        else:
            items["m"]["alp_inl"]["B"] = damaged
        error = load(pkg, items)
        assert isinstance(error, pkg.CorruptDataError) and (error.table, error.key) == (TABLE_NAME, "m")

    @settings(FUZZ, max_examples=30)  # (one check each: 30 draws cover it; 100 cost 10 s per package)
    @given(data=st.data(), shape=st.sampled_from(["flushed", "large", "manifest"]))
    def test_damaged_shard_is_caught_by_its_digest(self, pkg: Any, data: Any, shape: str) -> None:
        """Damaged segment bytes: always CorruptDataError naming table and key, never a wrong map."""
        items = written(pkg, shape)
        key = data.draw(st.sampled_from(sorted(k for k in items if k != "m")))
        original = items[key]["value"]["B"]
        items[key]["value"]["B"] = data.draw(mutated(original).filter(lambda b: b != original))
        error = load(pkg, items)
        assert isinstance(error, pkg.CorruptDataError) and (error.table, error.key) == (TABLE_NAME, "m")

    @FUZZ
    @given(blob=st.binary(max_size=200) | st.builds(lambda b: pickle.dumps(b, 2), st.binary(max_size=20)))
    def test_random_1_0_0_items(self, pkg: Any, blob: bytes) -> None:
        """A format 1 item (no alp_fmt) with any bytes in ``value``: a dict or a StoredDataError."""
        items = {"m": {"key": {"S": "m"}, "value": {"B": blob}}}
        assert isinstance(load(pkg, items), (dict, pkg.StoredDataError))


class TestHostileWriter:
    """Maps a hostile writer built with every digest and size right: the reader's checks of structure and content
    must refuse them with StoredDataError subclasses, and never return a wrong or empty map."""

    def test_honest_layout_loads(self, pkg: Any) -> None:
        """The control: partitions, a run and a log, as a writer would store them, fold to the right map in
        insertion order (so that the refusals below are the reader's checks, not the builder's mistakes)."""
        w = Hostile(pkg)
        a, b = key_in(0), key_in(1)
        w.partition(1, 0, 3, [(1, 0, w.entry(a, 1))])
        w.partition(1, 1, 3, [(2, 0, w.entry(b, 2))])
        w.run(4, 4, [(4, w.record((SET, w.entry("late", [1]))))])
        result = load(pkg, w.head(5, [w.record((ADD, w.entry(a, 10)))]))
        assert result == {a: 11, b: 2, "late": [1]} and list(result) == [a, b, "late"]

    def test_partition_holding_a_key_of_another_partition(self, pkg: Any) -> None:
        """A key stored in the wrong partition would be shadowed or duplicated by the right one's changes."""
        w = Hostile(pkg)
        w.partition(1, 0, 1, [w.entry(key_in(0), 1), w.entry(key_in(1), 2)])
        w.partition(1, 1, 1, [])
        error = load(pkg, w.head(1))
        assert isinstance(error, pkg.CorruptDataError), error

    def test_partition_holding_a_key_twice(self, pkg: Any) -> None:
        w = Hostile(pkg)
        w.partition(0, 0, 1, [w.entry("k", 1), w.entry("k", 2)])
        assert isinstance(load(pkg, w.head(1)), pkg.CorruptDataError)

    @pytest.mark.parametrize(
        "segments",
        [
            [(1, 0)],  # half the key space missing
            [(0, 0), (1, 1)],  # overlapping
            [(1, 0), (1, 0)],  # one partition twice
            [(2, 0), (2, 1), (1, 0)],  # overlap below
        ],
        ids=["gap", "overlap", "twice", "overlap-deeper"],
    )
    def test_partitions_that_do_not_cover_the_key_space(self, pkg: Any, segments: list[tuple[int, int]]) -> None:
        """A key whose partition is missing would silently vanish: the table must cover every hash exactly once."""
        w = Hostile(pkg)
        for depth, prefix in segments:
            w.partition(depth, prefix, 1, [])
        error = load(pkg, w.head(1))
        assert isinstance(error, pkg.CorruptDataError) and (error.table, error.key) == (TABLE_NAME, "m")

    @pytest.mark.parametrize(
        "record",
        [
            b"1234567",  # shorter than its id
            b"12345678",  # no ops
            b"12345678\x09\x00",  # unknown op kind
            b"12345678\x00",  # op kind 0
            b"12345678\x01",  # SET without its entry
            b"12345678\x01\x05abc",  # entry length past the end
            b"12345678\x01" + b"\xff" * 9 + b"\x01",  # length 2**64 - 1
            b"12345678\x01" + b"\xff" * 20 + b"\x01",  # a varint of 21 bytes
            b"12345678\x01" + b"\x80" * 10 + b"\x00",  # a varint that never ends within 10 bytes
            b"12345678\x01\x00",  # an empty entry
            b"12345678\x04\x04\x01\x03abc",  # a SET whose entry is not an entry
        ],
        ids=["short-id", "no-ops", "kind-9", "kind-0", "no-entry", "past-end", "2**64", "21-byte-varint",
             "unterminated-varint", "empty-entry", "garbage-entry"],
    )  # fmt: skip
    @pytest.mark.parametrize("where", ["log", "run"])
    def test_records_that_do_not_parse(self, pkg: Any, record: bytes, where: str) -> None:
        """Every malformed record is refused (never skipped: skipping would lose a change silently)."""
        w = Hostile(pkg)
        first = w.record((SET, w.entry("a", 1)))
        if where == "run":
            w.run(1, 2, [(1, first), (2, record)])
            items = w.head(2)
        else:
            items = w.head(2, [first, record])
        assert isinstance(load(pkg, items), pkg.CorruptDataError)

    @pytest.mark.parametrize(
        "body",
        [
            b"\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # entry length 2**64 - 1
            b"\x01\x00\x05ab",  # entry past the end
            b"\x01",  # ends after the position
            b"\x80" * 11,  # position varint of 11 bytes
        ],
        ids=["2**64", "past-end", "truncated", "long-varint"],
    )
    def test_partition_bodies_that_do_not_parse(self, pkg: Any, body: bytes) -> None:
        from aws_lambda_persistence_lite._records import PARTITION

        w = Hostile(pkg)
        w.segment(PARTITION, body, 0, 0, 1)
        assert isinstance(load(pkg, w.head(1)), pkg.CorruptDataError)

    @pytest.mark.parametrize(
        "body",
        [
            b"\x02\x01a\x01\x01a",  # sequence 1 after 2
            b"\x01\x01a\x01\x01a",  # sequence 1 twice
            b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # record length 2**64 - 1
            b"\x01",  # ends after the sequence
        ],
        ids=["out-of-order", "twice", "2**64", "truncated"],
    )
    def test_run_bodies_that_do_not_parse(self, pkg: Any, body: bytes) -> None:
        from aws_lambda_persistence_lite._records import RUN

        w = Hostile(pkg)
        w.segment(RUN, body, 0, 1, 2)
        assert isinstance(load(pkg, w.head(2)), pkg.CorruptDataError)

    def test_segment_whose_size_claim_lies(self, pkg: Any) -> None:
        """A partition that decompresses to more or less than its table says."""
        from aws_lambda_persistence_lite._records import PARTITION

        from tests.fuzz.framing import varint

        w = Hostile(pkg)
        entry = w.entry("a", "x" * 1000)
        body = varint(1) + varint(0) + varint(len(entry)) + entry
        w.segment(PARTITION, body, 0, 0, 1, raw_size=len(body) - 1)
        assert isinstance(load(pkg, w.head(1)), pkg.CorruptDataError)
        w = Hostile(pkg)
        w.segment(PARTITION, body, 0, 0, 1, raw_size=2 * 1024**3)
        assert isinstance(load(pkg, w.head(1)), pkg.CorruptDataError)

    @pytest.mark.parametrize("shape", ["flushed", "large", "manifest"])
    def test_more_shards_than_stored(self, pkg: Any, shape: str) -> None:
        """A table claiming one more shard than stored, digest recomputed: CorruptDataError once a second read of
        the head shows the same head (nothing replaced the segment)."""
        items = written(pkg, shape)
        segments = table_of(items)
        segments[0] = segments[0]._replace(shards=segments[0].shards + 1)
        retable(items, segments)
        table = FakeTable(items)
        error = load(pkg, items, table)
        assert isinstance(error, pkg.CorruptDataError) and (error.table, error.key) == (TABLE_NAME, "m")
        assert table.head_reads <= 3

    def test_shard_count_is_bounded_by_the_blob_size(self, pkg: Any) -> None:
        """A few stored bytes must not make the reader build or request millions of keys."""
        items = written(pkg, "flushed")
        segments = table_of(items)
        segments[0] = segments[0]._replace(shards=10**6, blob_size=10**6)
        retable(items, segments)
        assert isinstance(load(pkg, items), pkg.CorruptDataError)

    @pytest.mark.parametrize("shape", ["flushed", "large", "manifest", "manifest itself"])
    def test_missing_shard_under_an_unchanged_head(self, pkg: Any, shape: str) -> None:
        """The head is read again (a structural commit may have replaced the segment); the same head twice means
        damage: CorruptDataError naming table and key, after at most a few reads. Also for a shard of a segment
        that only the manifest lists, and for the manifest's own shard."""
        from aws_lambda_persistence_lite._records import MANIFEST
        from aws_lambda_persistence_lite._state import segment_key

        items = written(pkg, shape.split(maxsplit=1)[0])
        manifests = [s for s in table_of(items) if s.kind == MANIFEST]
        assert len(manifests) == shape.startswith("manifest")
        listed = {segment_key("m", s.sid, i) for s in table_of(items) for i in range(s.shards)}
        inside = [k for k in items if k != "m" and k not in listed]
        if shape == "manifest":
            assert inside  # (segments that only the manifest lists)
        del items[segment_key("m", manifests[0].sid, 0) if shape == "manifest itself" else max(inside or listed)]
        table = FakeTable(items)
        error = load(pkg, items, table)
        assert isinstance(error, pkg.CorruptDataError) and (error.table, error.key) == (TABLE_NAME, "m"), error
        assert 2 <= table.head_reads <= 3

    def test_missing_shard_under_a_replaced_head(self, pkg: Any) -> None:
        """A segment gone because a structural commit replaced it: the reader re-reads the head and folds the new
        one (the right map, not an error)."""
        from aws_lambda_persistence_lite._records import PARTITION

        items = written(pkg, "flushed")
        stale = {"m": copy.deepcopy(items["m"])}
        retable(stale, [s._replace(sid="00000000deadbeef") if s.kind == PARTITION else s for s in table_of(items)])
        table = FakeTable(items, heads=[stale["m"], items["m"]])
        assert load(pkg, items, table) == expected(pkg, "flushed")
        assert table.head_reads == 2


def _pickle_entry(value_opcodes: bytes) -> bytes:
    """A (key, value) entry pickle whose value is the given opcodes."""
    return b"\x80\x05" + _unicode("k") + value_opcodes + b"\x86."


OUT_OF_MODEL_PICKLES = {
    "allow-listed-callable": _pickle_entry(b"cbuiltins\nbytearray\n"),
    "allow-listed-class": _pickle_entry(b"cuuid\nUUID\n"),
    "SafeUUID-member": _pickle_entry(b"cuuid\nSafeUUID\nN\x85R"),
    "list-key": b"\x80\x05]\x94K\x01\x86.",  # ([], 1): an unhashable key
    "not-a-pair": b"\x80\x05K\x01K\x02K\x03\x87.",
    "not-a-tuple": b"\x80\x05]\x94.",
    "bytes-after-stop": _pickle_entry(b"K\x01") + b"junk",
}
ENTRY_ACCEPTED: dict[str, str] = {}
WHERE = ["log", "run", "partition"]


def place(pkg: Any, entry: bytes, where: str) -> Items:
    """A map holding the key 'a' and ``entry``, the latter in the log, in a run, or in the one partition."""
    w = Hostile(pkg)
    good = w.entry("a", 1)
    if where == "partition":
        w.partition(0, 0, 1, [good, entry])
        return w.head(1)
    records = [w.record((SET, good)), w.record((SET, entry))]
    if where == "run":
        w.run(1, 2, list(enumerate(records, 1)))
        return w.head(2)
    return w.head(2, records)


class TestHostileEntries:
    """Entries a hostile writer stored in a log record, a run or a partition: whatever decodes to something outside
    the value model, or asks for globals, is refused with a StoredDataError subclass, wherever it is stored."""

    @pytest.mark.parametrize("where", WHERE)
    @pytest.mark.parametrize(
        "name",
        [
            pytest.param(
                n,
                marks=[pytest.mark.xfail(strict=True, reason=ENTRY_ACCEPTED[n])] if n in ENTRY_ACCEPTED else [],
            )
            for n in OUT_OF_MODEL_PICKLES
        ],
    )
    def test_pickle_entries_outside_the_model(self, lite: Any, name: str, where: str) -> None:
        error = load(lite, place(lite, OUT_OF_MODEL_PICKLES[name], where))
        assert isinstance(error, lite.StoredDataError), error

    @pytest.mark.parametrize("where", WHERE)
    def test_deeply_nested_pickle_value(self, lite: Any, where: str) -> None:
        """A list nested 5,000 deep: a dict or a StoredDataError, never RecursionError."""
        entry = _pickle_entry(b"]" * 5000 + b"a" * 4999)
        assert isinstance(load(lite, place(lite, entry, where)), (dict, lite.StoredDataError))

    @pytest.mark.parametrize("where", WHERE)
    @pytest.mark.parametrize("opcode", OPCODES)
    def test_pickles_asking_for_globals(self, lite: Any, where: str, opcode: str) -> None:
        """Refused with UnsafeDataError before anything is called, in every place an entry is stored."""
        error = load(lite, place(lite, hostile_pickle("tests.fuzz.test_hostile", "tripwire", opcode), where))
        assert isinstance(error, lite.UnsafeDataError), error
        assert not TRIPPED

    @pytest.mark.parametrize("where", WHERE)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(b"\xd6\xff\x00\x00\x00\x01", id="msgpack-timestamp-ext"),
            pytest.param(b"\xd4\x63\x00", id="unknown-ext"),
            pytest.param(b"\x91" * 3000 + b"\xc0", id="3000-nested-arrays"),
            pytest.param(b"\xc1", id="reserved-byte"),
            pytest.param(b"", id="no-value"),
        ],
    )
    def test_msgpack_entries_outside_the_model(self, core: Any, value: bytes, where: str) -> None:
        entry = b"\xa1k" + value
        assert isinstance(load(core, place(core, entry, where)), core.StoredDataError)

    def test_add_with_a_delta_that_is_not_a_number(self, pkg: Any) -> None:
        w = Hostile(pkg)
        items = w.head(2, [w.record((SET, w.entry("n", 1))), w.record((ADD, w.entry("n", "ten")))])
        assert isinstance(load(pkg, items), pkg.CorruptDataError)


CHECKS = ["refused", "memory-unchanged"]


class TestRefreshPaths:
    """A container that loaded a good map, then refreshes after the stored map was damaged: the refresh refuses
    with a StoredDataError, and the map in memory is left as it was (never partly folded, never emptied)."""

    def check(self, pkg: Any, damage: Any, check: str) -> None:
        items = written(pkg, "flushed")
        data = pkg.PersistentMap.open(client=FakeTable(items), table_key="m")
        before = data.to_dict()
        damage(items)
        with pytest.raises(pkg.CorruptDataError):
            data.refresh()
        if check == "memory-unchanged":
            assert data.to_dict() == before

    @pytest.mark.parametrize("check", ["refused", "memory-unchanged"])
    def test_a_record_that_does_not_parse_appended_to_the_log(self, pkg: Any, check: str) -> None:
        """Same epoch, newer version: only the log is folded, and its new record is refused."""

        def damage(items: Items) -> None:
            items["m"]["alp_log"]["L"].append({"B": b"12345678\x09"})
            items["m"]["alp_ver"]["N"] = str(int(items["m"]["alp_ver"]["N"]) + 1)

        self.check(pkg, damage, check)

    @pytest.mark.parametrize("check", CHECKS)
    def test_a_good_record_then_a_bad_one(self, pkg: Any, check: str) -> None:
        codec = package_codec(pkg)
        entry = codec.encode_entry("n", 100)

        def damage(items: Items) -> None:
            good = b"87654321\x03" + bytes([len(entry)]) + entry
            items["m"]["alp_log"]["L"] += [{"B": good}, {"B": b"12345678\x09"}]
            items["m"]["alp_ver"]["N"] = str(int(items["m"]["alp_ver"]["N"]) + 2)

        self.check(pkg, damage, check)

    @pytest.mark.parametrize("check", ["refused", "memory-unchanged"])
    def test_a_new_segment_table_that_fails_its_digest(self, pkg: Any, check: str) -> None:
        def damage(items: Items) -> None:
            items["m"]["alp_ep"]["N"] = str(int(items["m"]["alp_ep"]["N"]) + 1)
            items["m"]["alp_dig"] = {"B": b"0" * 16}

        self.check(pkg, damage, check)

    @pytest.mark.parametrize("check", CHECKS)
    def test_a_new_partition_holding_a_foreign_key(self, pkg: Any, check: str) -> None:
        """Newer epoch: the new segments are read; a partition with a key of another partition is refused."""
        from aws_lambda_persistence_lite._records import PARTITION, RUN

        def damage(items: Items) -> None:
            w = Hostile(pkg)
            version = int(items["m"]["alp_ver"]["N"]) + 1  # (newer than the container: it reads the partitions)
            items["m"]["alp_log"]["L"].append({"B": w.record((SET, w.entry(key_in(0), 1)))})
            items["m"]["alp_ver"]["N"] = str(version)
            w.partition(1, 0, version, [w.entry(key_in(1), "foreign")])
            w.partition(1, 1, version, [])
            runs = [s for s in table_of(items) if s.kind == RUN]
            items.update({k: v for k, v in w.items.items() if k != "m"})
            retable(items, runs + [s for s in w.segments if s.kind == PARTITION])
            items["m"]["alp_ep"]["N"] = str(int(items["m"]["alp_ep"]["N"]) + 1)

        self.check(pkg, damage, check)


class TestErrorsNameTheMap:
    """Every StoredDataError says which map is damaged (table and key), whatever part of it failed."""

    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda w: w.head(1, [b"12345678\x09"]), id="record-kind"),
            pytest.param(lambda w: w.head(1, [b"1234"]), id="record-short"),
            pytest.param(lambda w: (w.segment(80, b"\x01", 0, 0, 1), w.head(1))[1], id="partition-body"),
            pytest.param(lambda w: (w.segment(82, b"\x02\x01a\x01\x01a", 0, 1, 2), w.head(2))[1], id="run-body"),
            pytest.param(lambda w: (w.partition(0, 0, 1, [w.entry("k", 1)] * 2), w.head(1))[1], id="key-twice"),
            pytest.param(lambda w: w.head(1, [w.record((SET, b"\x80\x05K\x01."))]), id="entry-not-a-pair"),
            pytest.param(lambda w: w.head(1, [w.record((SET, OUT_OF_MODEL_PICKLES["SafeUUID-member"]))]), id="unsafe"),
        ],
    )
    def test_named(self, lite: Any, damage: Any) -> None:
        error = load(lite, damage(Hostile(lite)))
        assert isinstance(error, lite.StoredDataError)
        assert (error.table, error.key) == (TABLE_NAME, "m") and "'m'" in str(error)
