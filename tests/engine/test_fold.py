"""Format 3's fold (``_fold.View``): however the changes were split between partitions (each folded up to its
own watermark) and pending records, every reader computes the map that applying every change to a dict gives,
in the same insertion order."""

from __future__ import annotations

import zlib
from typing import Any

from aws_lambda_persistence_lite._fold import AddRefused, View
from aws_lambda_persistence_lite._pickle import PickleCodec
from aws_lambda_persistence_lite._records import ADD, CLEAR, DEL, SET, Entry, Op, encode_record
from hypothesis import given
from hypothesis import strategies as st

CODEC = PickleCodec()


def new_view() -> View:
    return View(CODEC)


def record(*ops: tuple[int, Any, Any]) -> bytes:
    return encode_record(b"r" * 8, [Op(kind, b"" if kind == CLEAR else CODEC.encode_entry(k, v)) for kind, k, v in ops])


def model(changes: list[list[tuple[int, Any, Any]]]) -> dict[Any, Any]:
    """What applying every change to a plain dict gives (the specification)."""
    d: dict[Any, Any] = {}
    for ops in changes:
        for kind, key, value in ops:
            if kind == SET:
                d[key] = value
            elif kind == DEL:
                d.pop(key, None)
            elif kind == CLEAR:
                d.clear()
            elif type(d.get(key, 0)) in (int, float):
                d[key] = d.get(key, 0) + value
    return d


keys = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])
values = st.integers(-5, 5) | st.sampled_from(["text", 1.5, None])
op = st.one_of(
    st.tuples(st.just(SET), keys, values),
    st.tuples(st.just(DEL), keys, st.none()),
    st.tuples(st.just(ADD), keys, st.integers(-3, 3)),
    st.tuples(st.just(CLEAR), st.none(), st.none()),
)
changes = st.lists(st.lists(op, min_size=1, max_size=4), max_size=25)


def part(key: Any, depth: int) -> int:
    return zlib.crc32(key.encode()) % (1 << depth)


class TestFold:
    @given(changes)
    def test_records_alone(self, history: list[list[tuple[int, Any, Any]]]) -> None:
        """Folding every record gives the model's map, in the model's order."""
        view = new_view()
        for seq, ops in enumerate(history, 1):
            view.apply(seq, record(*ops))
        assert list(view.values.items()) == list(model(history).items())
        assert view.seq == len(history)

    @given(changes, st.integers(0, 3), st.data())
    def test_partitions_at_any_watermarks_then_pending_records(
        self, history: list[list[tuple[int, Any, Any]]], depth: int, data: st.DataObject
    ) -> None:
        """Each partition is the map's state at its own watermark (what maintenance writes); a reader that takes
        the partitions and folds the pending records with each key's watermark as its floor gets the model."""
        marks = [data.draw(st.integers(0, len(history)), label=f"watermark {p}") for p in range(2**depth)]
        reader = new_view()
        for p, mark in enumerate(marks):
            writer = new_view()  # the merger's view at the watermark
            for seq, ops in enumerate(history[:mark], 1):
                writer.apply(seq, record(*ops))
            entries = [Entry(*writer.positions[k], writer.raw[k]) for k in writer.values if part(k, depth) == p]

            def belongs(k: Any, p: int = p) -> bool:
                return part(k, depth) == p

            reader.take_partition(reader.read_partition(entries, belongs))
        for seq, ops in enumerate(history, 1):
            reader.apply(seq, record(*ops), floor=lambda k: marks[part(k, depth)])
        reader.order()
        assert list(reader.values.items()) == list(model(history).items())
        assert set(reader.raw) == set(reader.values)

    def test_add_on_a_non_number_changes_nothing_and_says_so(self) -> None:
        """ADD on text (or a bool) leaves it and reports it to the writer, which raises TypeError."""
        view = new_view()
        view.apply(1, record((SET, "k", "text"), (SET, "b", True)))
        outcomes = view.apply(2, record((ADD, "k", 1), (ADD, "b", 1), (ADD, "n", 2)))
        assert isinstance(outcomes[0], AddRefused) and outcomes[0].held == "text"
        assert isinstance(outcomes[1], AddRefused)
        assert outcomes[2] == 2
        assert view.values == {"k": "text", "b": True, "n": 2}

    def test_entry_bytes_follow_every_change(self) -> None:
        """The kept entry bytes are exactly what the codec writes for the current value (the change detector)."""
        view = new_view()
        view.apply(1, record((SET, "n", 1), (ADD, "n", 41), (SET, "t", (1, 2))))
        assert view.raw == {"n": CODEC.encode_entry("n", 42), "t": CODEC.encode_entry("t", (1, 2))}

    def test_readded_key_goes_last(self) -> None:
        """A key deleted and set again moves to the end, as in a dict."""
        view = new_view()
        view.apply(1, record((SET, "a", 1), (SET, "b", 2)))
        view.apply(2, record((DEL, "a", None), (SET, "a", 3)))
        assert list(view.values) == ["b", "a"]
