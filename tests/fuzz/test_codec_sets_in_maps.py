"""A set's encoding follows its iteration order, which a decoded set need not share with the set that was
written (tests/fuzz/test_codec_entries.py): the map must not take the stored bytes of an entry holding a set for
what this container would write, or an unrelated save() rewrites that key with a stale value."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.moto_only


def grown() -> set[int]:
    """{7, 15} as built by adding 7, then 15: it iterates 15, 7; the same set built from [15, 7] iterates 7, 15."""
    value = set()
    value.add(7)
    value.add(15)
    return value


def test_save_keeps_another_containers_change_to_a_set(aws: Any, pkg: Any, table_key: str) -> None:
    """An unrelated save() in a container that loaded the set must not write it back over a newer value."""
    writer = pkg.PersistentMap.open(table_key=table_key)
    writer["s"] = grown()
    reader = pkg.PersistentMap.open(table_key=table_key)  # holds the decoded set, iterating the other way
    writer["s"] = {1}
    reader.save()  # nothing changed in this container
    assert pkg.PersistentMap.open(table_key=table_key)["s"] == {1}
