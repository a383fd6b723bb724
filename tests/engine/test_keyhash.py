"""The stable key hash of stored format 3 (``_keyhash.key_hash``; FORMAT.md, "Stable key hash and partitions").

Stored maps are partitioned by this hash, so: keys a dict treats as one key must hash equal (or their entries
would land in different partitions), the hash must not depend on the process (PYTHONHASHSEED) and must never
change (pinned values below), its low bits must spread keys evenly, and a key it cannot hash must be refused
with a clear error rather than crash the interpreter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_persistence_lite import UnsupportedValueError
from aws_lambda_persistence_lite._keyhash import key_hash
from aws_lambda_persistence_lite._values import MAX_NESTING
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.values import keys as hashables
from tests.values import tzinfos

D = decimal.Decimal
UTC = dt.timezone.utc
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
HOUR = dt.timedelta(hours=1)
MASK = 2**64 - 1
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Draw = Callable[[st.SearchStrategy[Any]], Any]


# --- 1. Equal keys hash equal ---------------------------------------------------------------------------------


def _same_numbers(x: Any) -> list[Any]:
    """Numbers of every numeric type equal to ``x`` (``x`` itself for NaN, which equals nothing else)."""
    if x != x:  # noqa: PLR0124 (NaN)
        return [x]
    if type(x) is complex:
        if x.imag != 0:
            return [x, complex(x.real, x.imag)]
        x = x.real
    exact = x if type(x) is D else D(x)  # Decimal(float) is exact
    found = [x, exact, complex(float(exact), 0.0), complex(float(exact), -0.0), float(exact)]
    if exact.is_finite():
        sign, digits, exponent = exact.as_tuple()
        assert isinstance(exponent, int)
        found.append(D((sign, (*digits, 0), exponent - 1)))  # the same number written with one more digit
        if exact.adjusted() < 100 and exact == exact.to_integral_value():
            found.append(int(exact))
            if int(exact) in (0, 1):
                found.append(bool(int(exact)))
        if exact == 0:
            found += [D("-0"), D("0E+7"), -0.0, complex(-0.0, -0.0)]
    return [n for n in found if n == x]


def _same_datetimes(x: Any, draw: Draw) -> list[Any]:
    found = [x.replace(fold=1 - x.fold)]  # fold is ignored by == (same zone or naive)
    offset = x.utcoffset()
    if offset is not None:
        found.append(x.replace(tzinfo=dt.timezone(offset, "another name")))  # the same offset, another tzinfo
        with contextlib.suppress(OverflowError, ValueError):  # beyond datetime.min/max in that zone
            found.append(x.astimezone(draw(tzinfos.filter(lambda tz: tz is not None))))  # the same instant
    return found


def _same_times(x: Any) -> list[Any]:
    found = [x.replace(fold=1 - x.fold)]
    offset = x.utcoffset()
    if offset is not None:
        found.append(x.replace(tzinfo=dt.timezone(offset, "another name")))
        if x.hour < 23 and offset + HOUR < dt.timedelta(hours=24):  # an hour later, one hour further east
            found.append(x.replace(hour=x.hour + 1, tzinfo=dt.timezone(offset + HOUR)))
    elif x.tzinfo is not None:  # a ZoneInfo with transitions: utcoffset(None) is None, and == treats it as naive
        found.append(x.replace(tzinfo=None))
    return found


def equal_variant(x: Any, draw: Draw) -> Any:
    """A key equal to ``x``, built anew: another numeric type, zone, fold, tzinfo object, or a copy."""
    kind = type(x)
    if kind is tuple:
        return tuple(equal_variant(e, draw) for e in x)
    if kind is frozenset:
        return frozenset(equal_variant(e, draw) for e in x)
    if kind in (bool, int, float, complex, D):
        found = _same_numbers(x)
    elif kind is dt.datetime:
        found = _same_datetimes(x, draw)
    elif kind is dt.time:
        found = _same_times(x)
    elif kind is dt.timedelta:
        found = [dt.timedelta(microseconds=x // dt.timedelta(microseconds=1))]
    elif kind is uuid.UUID:
        found = [uuid.UUID(int=x.int, is_safe=uuid.SafeUUID.safe)]
    elif x is None:
        found = [None]
    else:  # str, bytes, date: a copy
        found = [pickle.loads(pickle.dumps(x))]
    return draw(st.sampled_from([v for v in found if v is x or v == x]))


@FUZZ
@given(hashables, st.data())
def test_equal_keys_hash_equal(key: Any, data: st.DataObject) -> None:
    other = equal_variant(key, data.draw)
    assert other is key or other == key  # a NaN equals only itself
    if hash(other) == hash(key):  # else CPython itself keeps them apart (time offsets with microseconds, below)
        assert key_hash(other) == key_hash(key)
    assert 0 <= key_hash(key) <= MASK


@FUZZ
@given(st.lists(hashables, max_size=8), st.data())
def test_keys_a_dict_finds_hash_equal(keys: list[Any], data: st.DataObject) -> None:
    """Whatever key a dict finds for a key (by hash() and ==), it hashes equal: the definition that matters."""
    keys += [equal_variant(k, data.draw) for k in keys]
    first: dict[Any, Any] = {}
    for k in keys:
        first.setdefault(k, k)
    for k in keys:
        assert key_hash(first[k]) == key_hash(k)


EQUAL_PAIRS = [
    (1, 1.0),
    (1, True),
    (1, D(1)),
    (1, complex(1, 0)),
    (D(1), complex(1, -0.0)),
    (D("1.000"), True),
    (0, False),
    (0, -0.0),
    (0, D("-0")),
    (D("-0"), D("0E+5")),
    (0.0, complex(-0.0, -0.0)),
    (-1, -1.0),
    (D("0.5"), 0.5),
    (D("1E+2"), 100),
    (2**70, float(2**70)),
    (2**70, D(2**70)),
    (math.inf, D("Infinity")),
    (-math.inf, complex(-math.inf, 0)),
    (complex(1, 2), complex(1.0, 2.0)),
    ((1, "a"), (1.0, "a")),
    ((True, (0, b"x")), (D(1), (-0.0, b"x"))),
    (frozenset({1, 2}), frozenset({True, 2.0})),
    (frozenset({True}), frozenset({1})),
    (frozenset({False, "a"}), frozenset({D("-0"), "a"})),
    (frozenset({(1,), frozenset({0})}), frozenset({(True,), frozenset({-0.0})})),
    (dt.datetime(2020, 1, 1, 12, tzinfo=UTC), dt.datetime(2020, 1, 1, 13, tzinfo=dt.timezone(HOUR))),
    (dt.datetime(2020, 1, 1, 12, tzinfo=UTC), dt.datetime(2020, 1, 1, 13, tzinfo=PARIS)),
    (dt.datetime(2020, 7, 1, 12, tzinfo=UTC), dt.datetime(2020, 7, 1, 14, tzinfo=PARIS)),
    (dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone(HOUR, "CET")), dt.datetime(2020, 1, 1, 12, tzinfo=PARIS)),
    # 02:30 on 2021-10-31 happens twice in Paris; in the same zone fold is ignored (and hash() reads fold=0)
    (dt.datetime(2021, 10, 31, 2, 30, tzinfo=PARIS), dt.datetime(2021, 10, 31, 2, 30, fold=1, tzinfo=PARIS)),
    (dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, fold=1)),
    # near datetime.min: their UTC instant is before it (no overflow)
    (dt.datetime(1, 1, 1, tzinfo=dt.timezone(HOUR)), dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(2 * HOUR))),
    (dt.datetime.max.replace(tzinfo=dt.timezone(-HOUR)), dt.datetime.max.replace(tzinfo=dt.timezone(-HOUR, "x"))),
    (dt.time(12, tzinfo=dt.timezone(HOUR)), dt.time(11, tzinfo=UTC)),
    (dt.time(0, 30, tzinfo=dt.timezone(HOUR)), dt.time(1, 30, tzinfo=dt.timezone(2 * HOUR))),
    (dt.time(12), dt.time(12, fold=1)),
    (dt.time(12), dt.time(12, tzinfo=PARIS)),  # utcoffset(None) is None for a zone with transitions
    (dt.time(12, tzinfo=zoneinfo.ZoneInfo("UTC")), dt.time(12, tzinfo=UTC)),  # a fixed ZoneInfo has an offset
    (dt.timedelta(days=1), dt.timedelta(hours=24)),
    (dt.timedelta(microseconds=-1), dt.timedelta(days=-1, seconds=86399, microseconds=999999)),
    (uuid.UUID(int=5), uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe)),
    ("é\ud800", "".join(["é", "\ud800"])),
]


@pytest.mark.parametrize(("a", "b"), EQUAL_PAIRS, ids=repr)
def test_equal_pairs_hash_equal(a: Any, b: Any) -> None:
    assert a == b and hash(a) == hash(b)  # the dict sees one key
    assert {a: 1}[b] == 1
    assert key_hash(a) == key_hash(b)


UNEQUAL_PAIRS = [
    (dt.date(2020, 1, 1), dt.datetime(2020, 1, 1)),
    (dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, tzinfo=UTC)),
    (dt.time(12), dt.time(12, tzinfo=UTC)),
    (dt.time(1, tzinfo=dt.timezone(2 * HOUR)), dt.time(23, tzinfo=UTC)),  # no wrap-around at midnight
    (dt.datetime(2021, 10, 31, 2, 30, fold=1, tzinfo=PARIS), dt.datetime(2021, 10, 31, 1, 30, tzinfo=UTC)),
    (dt.timedelta(0), 0),
    (None, 0),
    ((), frozenset()),
    ((1,), 1),
    ((1, 2), (2, 1)),
    ("1", 1),
    ("a", b"a"),
    (b"", ""),
    (uuid.UUID(int=1), 1),
]


@pytest.mark.parametrize(("a", "b"), UNEQUAL_PAIRS, ids=repr)
def test_unequal_pairs_hash_apart(a: Any, b: Any) -> None:
    assert a != b
    assert key_hash(a) != key_hash(b)  # not required, but a collision here would mean a missing type tag


def test_nan_keys_are_refused() -> None:
    """A NaN equals nothing, itself included: a key holding one, at any depth, could never be found again."""
    nan = float("nan")
    for key in (nan, -nan, complex(nan, 0), complex(0, nan), D("NaN"), D("-NaN42"), D("sNaN"), (1, nan)):
        with pytest.raises(UnsupportedValueError, match="NaN equals nothing"):
            key_hash(key)
    with pytest.raises(UnsupportedValueError, match=r"contain a NaN at \[1\]\[1\]\[1\]"):
        key_hash(("a", (2, (3, nan))))


def test_cpython_time_quirk_follows_hash() -> None:
    """CPython's time.__eq__ ignores the microseconds of differing offsets, its hash does not: the dict keeps
    two keys, and so may the partitions."""
    a = dt.time(0, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(microseconds=5)))
    b = dt.time(0, 0, 0, 5, tzinfo=UTC)
    assert a == b and hash(a) != hash(b)
    assert len({a: 1, b: 2}) == 2
    assert key_hash(a) == key_hash(dt.time(0, tzinfo=UTC))  # its UTC reading, to the microsecond


# --- 2. The same in every process, and never changed -----------------------------------------------------------

#: (key as Python source, its hash). Stored maps are partitioned by these numbers: a change here is a new stored
#: format, not a refactoring.
PINNED: list[tuple[str, int]] = [
    ("''", 13020603013274838756),
    ("'a'", 3405396810240292928),
    ("'user:42'", 9417771961093400537),
    ("'é\\ud800'", 9187530268824829771),
    ("b''", 8453121595177857668),
    ("b'a'", 8821455015625048046),
    ("None", 16938330391483325906),
    ("True", 5452688236018364714),
    ("False", 11706599104400268851),
    ("0", 11706599104400268851),
    ("1", 5452688236018364714),
    ("-1", 13495324531467388860),
    ("-2", 13495324531467388860),
    ("2**64", 2619718872974777102),
    ("-(2**100)", 13397332793234295421),
    ("1.0", 5452688236018364714),
    ("0.5", 3942576746647231793),
    ("-0.0", 11706599104400268851),
    ("1e300", 9050151304717568593),
    ("float('inf')", 8839851934143751541),
    ("float('-inf')", 10582472617133724479),
    ("complex(1, 2)", 10948159894893438129),
    ("D('1.1')", 15656147714952381557),
    ("D('-0')", 11706599104400268851),
    ("()", 15480124129702343626),
    ("(1, 'a')", 6210299601652258377),
    ("((), ((),))", 912191967865815184),
    ("frozenset()", 13079953250601521484),
    ("frozenset({1, 'a', b'b', (2, 'c')})", 15958780456442201692),
    ("frozenset({'x', 'y', 'z', 'w', 'v'})", 9044853589816337603),
    ("('k', frozenset({'p', 'q', 'r'}), None)", 8909363577921426552),
    ("dt.date(2024, 2, 29)", 961945948667548984),
    ("dt.datetime(2024, 2, 29, 12, 30, 15, 123456)", 3902569369643378558),
    ("dt.datetime(2024, 2, 29, 12, 30, fold=1)", 4230884565535243836),
    ("dt.datetime(2024, 2, 29, 12, tzinfo=dt.timezone.utc)", 13305700360381419481),
    ("dt.datetime(2024, 2, 29, 13, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))", 13305700360381419481),
    ("dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))", 905010051970932149),
    ("dt.time(12, 30)", 17215730784767756542),
    ("dt.time(12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-3)))", 3491875026345180632),
    ("dt.time(12, 30, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))", 17215730784767756542),
    ("dt.timedelta(days=-999999999)", 4356766798649862404),
    ("dt.timedelta(seconds=1, microseconds=5)", 859020544456884589),
    ("uuid.UUID('12345678-1234-5678-1234-567812345678')", 11481202556799466302),
]

_CHILD = """
import datetime as dt, decimal, json, sys, uuid, zoneinfo
from decimal import Decimal as D
from aws_lambda_persistence_lite._keyhash import key_hash
sources = json.loads(sys.stdin.read())
print(json.dumps([key_hash(eval(source)) for source in sources]))
"""


def _child_hashes(seed: str, sources: list[str]) -> list[int]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD)],
        input=json.dumps(sources),
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    hashes: list[int] = json.loads(done.stdout)
    return hashes


def test_pinned_hashes() -> None:
    from decimal import Decimal as D  # noqa: F401 (the sources use these names)

    for source, expected in PINNED:
        assert key_hash(eval(source)) == expected, source


def _b(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _le(n: int, size: int = 8) -> bytes:
    return n.to_bytes(size, "little", signed=n < 0)


def test_pinned_hashes_follow_the_written_rule() -> None:
    """FORMAT.md's rule, written out again independently for a few keys."""
    one, a = _b(b"n" + _le(1)), _b(b"a")
    assert key_hash(1) == one and key_hash("a") == a
    assert key_hash("\ud800") == _b(b"\xed\xa0\x80")  # surrogatepass
    assert key_hash(b"a") == _b(b"ba")
    assert key_hash(None) == _b(b"N")
    assert key_hash(-1) == _b(b"n" + _le(2**64 - 2))  # hash(-1) is -2
    assert key_hash(0.5) == _b(b"n" + _le(2**60))  # hash(0.5): the inverse of 2 modulo 2**61 - 1
    assert key_hash((1, "a")) == _b(b"t" + _le(one) + _le(a))
    assert key_hash(frozenset({1, "a"})) == _b(b"f" + _le((one + a) % 2**64))
    assert key_hash(dt.date(2024, 2, 29)) == _b(b"d" + _le(738945))
    noon = (738945 * 86400 + 12 * 3600) * 10**6
    assert key_hash(dt.datetime(2024, 2, 29, 12)) == _b(b"D" + _le(noon))
    assert key_hash(dt.datetime(2024, 2, 29, 13, tzinfo=PARIS)) == _b(b"Z" + _le(noon))
    assert key_hash(dt.time(12, 30)) == _b(b"T" + _le(45000 * 10**6))
    assert key_hash(dt.time(0, 30, tzinfo=dt.timezone(HOUR))) == _b(b"z" + _le(-1800 * 10**6))
    assert key_hash(dt.timedelta(days=-1)) == _b(b"e" + _le(-86400 * 10**6, 16))
    assert key_hash(uuid.UUID(int=1)) == _b(b"u" + (1).to_bytes(16, "big"))
    assert dict(PINNED)["'a'"] == a and dict(PINNED)["(1, 'a')"] == key_hash((1, "a"))


def test_same_hash_whatever_pythonhashseed() -> None:
    sources = [source for source, _ in PINNED]
    expected = [value for _, value in PINNED]
    for seed in ("0", "1", "4294967295", "random"):
        assert _child_hashes(seed, sources) == expected, seed


# --- 3. Low bits spread keys evenly ----------------------------------------------------------------------------

KEY_FAMILIES: dict[str, Callable[[int], Any]] = {
    "str": lambda i: f"user:{i}",
    "short str": str,
    "int * 1024": lambda i: i * 1024,  # raw hash() would put them all in one bucket of 64
    "float / 4": lambda i: i / 4,
    "float timestamps": lambda i: 1.7e9 + i / 8,
    "2**k * odd": lambda i: float(2 ** (i % 50) * (2 * (i // 50) + 1)),  # raw hash(): k zero low bits
    "Decimal": lambda i: D(i).scaleb(-2),
    "timedelta(seconds)": lambda i: dt.timedelta(seconds=i),
    "date": lambda i: dt.date(2000, 1, 1) + dt.timedelta(days=i),
    "datetime(hours)": lambda i: dt.datetime(2024, 1, 1, tzinfo=UTC) + i * HOUR,
    "UUID(int << 64)": lambda i: uuid.UUID(int=i << 64),
    "bytes": lambda i: i.to_bytes(4, "big"),
    "(i, 'x')": lambda i: (i, "x"),
    "frozenset": lambda i: frozenset({i, "x"}),
}


@pytest.mark.parametrize("family", sorted(KEY_FAMILIES))
def test_distribution_over_64_buckets(family: str) -> None:
    keys = [KEY_FAMILIES[family](i) for i in range(10_000)]
    assert len(set(keys)) == 10_000
    hashes = [key_hash(k) for k in keys]
    mean = len(keys) / 64
    for shift in (0, 6, 58):  # the partition bits of depths 1-6, 7-12, and the top ones
        buckets = Counter((h >> shift) % 64 for h in hashes)
        assert len(buckets) == 64 and max(buckets.values()) <= 2 * mean, (shift, buckets.most_common(3))


# --- 4. What is refused ----------------------------------------------------------------------------------------


def nest(levels: int, kind: type = tuple) -> Any:
    """``levels`` containers, each holding the next: nest(1) is (), nest(2) is ((),)."""
    inner = kind()
    for _ in range(levels - 1):
        inner = kind((inner,))
    return inner


@pytest.mark.parametrize("kind", [tuple, frozenset])
def test_a_million_levels_is_refused(kind: type) -> None:
    key = nest(1_000_000, kind)
    with pytest.raises(UnsupportedValueError, match=f"more than {MAX_NESTING} levels deep"):
        key_hash(key)


@pytest.mark.parametrize("kind", [tuple, frozenset])
def test_nesting_limit_is_the_value_models(kind: type) -> None:
    assert MAX_NESTING == 1000
    assert key_hash(nest(MAX_NESTING, kind)) != key_hash(nest(MAX_NESTING - 1, kind))
    with pytest.raises(UnsupportedValueError, match="levels deep"):
        key_hash(nest(MAX_NESTING + 1, kind))
    with pytest.raises(UnsupportedValueError, match="levels deep"):
        key_hash((1, "a", nest(MAX_NESTING, kind)))


def test_shared_parts_count_at_their_deepest() -> None:
    """A part met twice is hashed once, yet counts where it sits deepest, whichever way round it is met."""
    shared = nest(600)
    wrapped = (shared,)
    for _ in range(398):
        wrapped = (wrapped,)  # `shared` at level 400 of `wrapped`
    assert key_hash((shared, wrapped)) == key_hash((nest(600), nest(999)))  # 1 + 399 + 600 = 1000 levels
    deeper = (wrapped,)
    for key in [(shared, deeper), (deeper, shared), frozenset({shared, deeper})]:
        with pytest.raises(UnsupportedValueError, match="levels deep"):
            key_hash(key)


def test_shared_parts_take_linear_time() -> None:
    """A frozenset of the previous one and a tuple of it, 300 times: Python hashes it in linear time (frozensets
    cache their hash), so must key_hash, though its tree has 2**300 leaves."""

    def build() -> frozenset[Any]:
        f: frozenset[Any] = frozenset()
        for i in range(300):
            f = frozenset({f, (f, i)})
        return f

    a, b = build(), build()
    assert hash(a) == hash(b)
    assert key_hash(a) == key_hash(b)


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Local(dt.tzinfo):
    def utcoffset(self, _: dt.datetime | None) -> dt.timedelta:
        return HOUR

    def dst(self, _: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, _: dt.datetime | None) -> str:
        return "Local"


@pytest.mark.parametrize(
    ("key", "type_name", "path", "text"),
    [
        ([1], "list", "", "a map key cannot be a list (it is not hashable)"),
        ({1: 2}, "dict", "", "not hashable"),
        ({1}, "set", "", "not hashable"),
        (bytearray(b"x"), "bytearray", "", "not hashable"),
        (object(), "object", "", "a value of type object"),
        (Color.RED, f"{__name__}.Color", "", "Color"),
        (Name("a"), f"{__name__}.Name", "", "Name"),
        (D("sNaN"), "decimal.Decimal", "", "a NaN equals nothing"),
        (dt.datetime(2020, 1, 1, tzinfo=Local()), f"{__name__}.Local", "", "only datetime.timezone and zoneinfo"),
        (dt.time(1, tzinfo=Local()), f"{__name__}.Local", "", "a time with tzinfo"),
        ((1, "a", [2]), "list", "[2]", "cannot contain a list at [2]"),
        ((1, (2, frozenset({3}), Color.RED)), f"{__name__}.Color", "[1][2]", "at [1][2]"),
        (frozenset({(1, object())}), "object", " (an element of a frozenset)[1]", "element of a frozenset"),
        ((nest(900), (1, bytearray())), "bytearray", "[1][1]", "bytearray"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,  # (reprs with addresses differ between workers)
)
def test_unsupported_keys_are_refused(key: Any, type_name: str, path: str, text: str) -> None:
    with pytest.raises(UnsupportedValueError) as caught:
        key_hash(key)
    assert isinstance(caught.value, TypeError)
    assert caught.value.type_name == type_name
    assert caught.value.path == path
    assert text in str(caught.value) and "Keys may be None, bool, int" in str(caught.value)
