"""``typing.NamedTuple`` at runtime without importing ``typing``.

Why: ``typing`` (and the ``re`` it loads) is about 8 ms of a cold start, on the billed clock, and this
package needs it only for its two records, ``Settings`` and ``Head``. Modules write
``if TYPE_CHECKING: from typing import NamedTuple`` / ``else: from ._record import NamedTuple``, so type
checkers see the real thing and the interpreter builds the same class from ``collections.namedtuple``.

Supports what the records use: annotated fields (``from __future__ import annotations``), defaults,
docstrings, methods, properties and class methods.
"""

from __future__ import annotations

from collections import namedtuple


class _RecordType(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(mcs, name, bases, namespace)
        annotations = namespace.get("__annotations__")
        if not isinstance(annotations, dict) or not annotations:
            raise TypeError(f"record {name} declares no fields (is `from __future__ import annotations` missing?)")
        fields = list(annotations)
        defaults = [namespace[f] for f in fields if f in namespace]
        if any(f in namespace for f in fields[: len(fields) - len(defaults)]):  # as typing.NamedTuple says
            raise TypeError(f"record {name}: a field without a default follows a field with one")
        base = namedtuple(name, fields, defaults=defaults, module=str(namespace["__module__"]))  # type: ignore[misc]
        body = {key: value for key, value in namespace.items() if key not in annotations}
        return type(name, (base,), {**body, "__slots__": ()})


class NamedTuple(metaclass=_RecordType):
    """Base class: ``class Point(NamedTuple): x: int; y: int = 0`` builds a namedtuple subclass."""
