"""Bounds that CPython's unpickler does not keep, checked on every stored pickle before and after loading it.

Why: refusing every global (``_pickle``'s allow-list) stops code execution, not memory exhaustion. Before
Python 3.14 (CPython gh-115952) a few bytes of pickle make the C unpickler allocate without bound: a PUT or
LONG_BINPUT index resizes and zero-fills the memo up to that index (a 14-byte pickle naming index 2**30
takes 8 GiB resident), and BINBYTES, BINBYTES8 and BYTEARRAY8 allocate the length they claim before reading
it. And shared references (memo GETs) let a small pickle hold a value whose tree is exponentially large,
which any tree walk (the full codec's msgpack, JSON) then expands without bound.

:func:`scan` walks the opcodes once, with pickletools' table, and refuses memo indices and counted lengths
beyond the body itself; :func:`check_expansion` refuses decoded values whose tree outgrows the body.
"""

from __future__ import annotations

from ._errors import CorruptDataError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    from typing import Any

#: A decoded value's tree may have this many nodes per byte of pickle, plus EXPANSION_SLACK: far above any
#: honest pickle (a node costs at least one opcode byte unless it is shared), far below an exponential one.
EXPANSION_PER_BYTE = 8
EXPANSION_SLACK = 1 << 16
#: Longest decimal argument (INT, LONG, GET, PUT): CPython's own int-from-text limit (sys.int_info).
MAX_DECIMAL_DIGITS = 4300

# Argument kinds: >= 0 is a fixed number of argument bytes; the negative kinds need a look at the argument.
_LINE, _LINES, _COUNTED1, _COUNTED4, _COUNTED4U, _COUNTED8U, _MEMO4, _FRAME, _GET, _STOP, _UNKNOWN = range(-1, -12, -1)
_COUNTED_WIDTH = {_COUNTED4: 4, _COUNTED4U: 4, _COUNTED8U: 8}
_PUT = ord("p")
_DECIMAL = frozenset(map(ord, "ILgp"))
_kinds: list[int] | None = None


def _table() -> list[int]:
    """Argument kind of each of the 256 opcode bytes, from pickletools (imported on first use, about 1 ms)."""
    global _kinds  # noqa: PLW0603
    if _kinds is None:
        import pickletools

        counted = {
            pickletools.TAKEN_FROM_ARGUMENT1: _COUNTED1,
            pickletools.TAKEN_FROM_ARGUMENT4: _COUNTED4,
            pickletools.TAKEN_FROM_ARGUMENT4U: _COUNTED4U,
            pickletools.TAKEN_FROM_ARGUMENT8U: _COUNTED8U,
        }
        special = {"LONG_BINPUT": _MEMO4, "FRAME": _FRAME, "BINGET": _GET, "LONG_BINGET": _GET, "STOP": _STOP}
        kinds = [_UNKNOWN] * 256
        for op in pickletools.opcodes:
            arg = op.arg
            if op.name in special:
                kind = special[op.name]
            elif arg is None:
                kind = 0
            elif arg.n == pickletools.UP_TO_NEWLINE:
                kind = _LINES if arg.name.endswith("_pair") else _LINE  # GLOBAL and INST: module and name lines
            else:
                kind = counted.get(arg.n, arg.n)
            kinds[ord(op.code)] = kind
        _kinds = kinds
    return _kinds


def _refuse(why: str, at: int) -> CorruptDataError:
    return CorruptDataError(f"stored pickle refused before loading: {why} (opcode at byte {at})")


def scan(body: bytes) -> set[int]:
    """Check every opcode of ``body`` (one or more pickles back to back) against the body's own size.

    Returns the numbers (0, 1, ...) of the pickles that read their memo (GET): those whose value may share
    objects. Truncation and other damage are left to the unpickler, which reports them without allocating.
    """
    kinds = _table()
    size = len(body)
    pos = 0
    number = 0
    shares: set[int] = set()
    while pos < size:
        kind = kinds[body[pos]]
        pos += 1
        if kind >= 0:
            pos += kind
        elif kind == _COUNTED1:  # at most 255 bytes: harmless even when truncated
            pos += 1 + body[pos] if pos < size else 1
        elif kind == _STOP:
            number += 1
        elif kind == _GET:
            shares.add(number)
            pos += 1 if body[pos - 1] == ord("h") else 4
        elif kind in _COUNTED_WIDTH:
            width = _COUNTED_WIDTH[kind]
            length = int.from_bytes(body[pos : pos + width], "little", signed=kind == _COUNTED4)
            if not 0 <= length <= size - pos - width:
                raise _refuse(f"length {length} beyond the rest of the pickle", pos - 1)
            pos += width + length
        elif kind == _MEMO4:
            if int.from_bytes(body[pos : pos + 4], "little") > size:
                raise _refuse("memo index beyond the pickle's own size", pos - 1)
            pos += 4
        elif kind == _FRAME:
            if int.from_bytes(body[pos : pos + 8], "little") > size - pos - 8:
                raise _refuse("frame longer than the rest of the pickle", pos - 1)
            pos += 8
        elif kind == _UNKNOWN:
            raise _refuse(f"unknown opcode 0x{body[pos - 1]:02x}", pos - 1)
        else:  # newline-terminated text arguments (protocols 0 and 1)
            op = body[pos - 1]
            if op == ord("g"):
                shares.add(number)
            for _ in range(1 if kind == _LINE else 2):
                end = body.find(b"\n", pos)
                if end < 0:
                    return shares  # truncated: the unpickler says so
                if op in _DECIMAL and end - pos > MAX_DECIMAL_DIGITS:
                    raise _refuse(f"decimal argument of {end - pos} digits", pos - 1)
                if op == _PUT and not (body[pos:end].isdigit() and int(body[pos:end]) <= size):
                    raise _refuse("memo index beyond the pickle's own size, or not a number", pos - 1)
                pos = end + 1
    return shares


_CONTAINERS = (list, tuple, set, frozenset, dict)


class ExpansionError(ValueError):
    """A value that a tree walk (msgpack, JSON, comparisons) would expand without bound."""


def expansion_limit(pickle_size: int) -> int:
    """The most nodes the tree of a value pickled in ``pickle_size`` bytes may have."""
    return EXPANSION_PER_BYTE * pickle_size + EXPANSION_SLACK


def check_expansion(value: Any, pickle_size: int) -> None:
    """Refuse ``value`` when it refers to itself, or when its tree, counting a shared container once per
    reference, has more nodes than ``pickle_size`` bytes of pickle honestly hold. Linear in the distinct
    objects: each container is sized once. (The full codec cannot store either: msgpack writes trees.)"""
    limit = expansion_limit(pickle_size)
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # containers being sized: their children are on the stack above them
    stack: list[Any] = [value]
    while stack:
        node = stack[-1]
        key = id(node)
        children = (*node, *node.values()) if type(node) is dict else node
        if key not in open_:  # first visit: size the unsized children first
            open_.add(key)
            for child in children:
                if type(child) in _CONTAINERS and id(child) not in sizes:
                    if id(child) in open_:
                        raise ExpansionError("it refers to itself (a cycle)")
                    stack.append(child)
            continue
        stack.pop()
        if key in sizes:
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > limit:
            raise ExpansionError(
                f"it shares containers so much that its tree has more than {limit} values ({pickle_size} bytes pickled)"
            )
        sizes[key] = total
