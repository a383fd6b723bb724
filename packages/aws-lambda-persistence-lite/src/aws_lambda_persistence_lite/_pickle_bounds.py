"""Bounds that CPython's unpickler does not keep, checked on every stored pickle before and after loading it.

Why: refusing every global (``_pickle``'s allow-list) stops code execution, not memory or time exhaustion.
Before Python 3.14 (CPython gh-115952) a few bytes of pickle make the C unpickler allocate without bound: a PUT
or LONG_BINPUT index resizes and zero-fills the memo up to that index (a 14-byte pickle naming index 2**30
takes 8 GiB resident), and BINBYTES, BINBYTES8 and BYTEARRAY8 allocate the length they claim before reading
it. And shared references (memo GETs, DUP) let a small pickle hold a value whose tree is exponentially large:
hashing a tuple of shared tuples while loading (a dict key) walks that tree, and so does any walk after
loading (the full codec's msgpack, JSON).

:func:`scan` walks the opcodes once, with pickletools' table, refuses memo indices and counted lengths beyond
the body itself, and says where each pickle ends and whether it shares objects. Only pickles that share go
through :func:`weigh` (the stack effects of their opcodes, replayed on tree weights, before loading) and
:func:`check_expansion` (the loaded value's tree): their weight may not exceed :func:`expansion_limit`.
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
#: Longest decimal argument (INT, LONG, GET, PUT): CPython's own int-from-text limit (sys.int_info), plus a
#: sign and LONG's trailing L.
MAX_DECIMAL_ARGUMENT = 4300 + 2

# Argument kinds: >= 0 is a fixed number of argument bytes; the negative kinds need a look at the argument.
_LINE, _LINES, _COUNTED1, _COUNTED4, _COUNTED4U, _COUNTED8U, _FRAME, _STOP, _UNKNOWN = range(-1, -10, -1)
_MEMOIZE, _PUT1, _PUT4, _GET1, _GET4, _DUP = range(-10, -16, -1)
_COUNTED_WIDTH = {_COUNTED1: 1, _COUNTED4: 4, _COUNTED4U: 4, _COUNTED8U: 8}
_PUT, _GET = ord("p"), ord("g")
_DECIMAL = frozenset(map(ord, "ILgp"))
#: Opcodes that push a value with no parts (str, bytes, numbers, None, bools, a class): sharing one of those
#: cannot grow a tree beyond its own weight.
_ATOMS = (
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 STRING BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES "
    "BINBYTES8 BYTEARRAY8 NONE NEWTRUE NEWFALSE UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8 FLOAT BINFLOAT "
    "GLOBAL STACK_GLOBAL"
)
_tables: tuple[list[int], frozenset[int]] | None = None


def _table() -> tuple[list[int], frozenset[int]]:
    """Argument kind of each of the 256 opcode bytes, and the atom opcodes, from pickletools (imported on first
    use, about 1 ms)."""
    global _tables  # noqa: PLW0603
    if _tables is None:
        import pickletools

        counted = {
            pickletools.TAKEN_FROM_ARGUMENT1: _COUNTED1,
            pickletools.TAKEN_FROM_ARGUMENT4: _COUNTED4,
            pickletools.TAKEN_FROM_ARGUMENT4U: _COUNTED4U,
            pickletools.TAKEN_FROM_ARGUMENT8U: _COUNTED8U,
        }
        special = {"FRAME": _FRAME, "STOP": _STOP, "MEMOIZE": _MEMOIZE, "BINPUT": _PUT1, "LONG_BINPUT": _PUT4}
        special.update(BINGET=_GET1, LONG_BINGET=_GET4, DUP=_DUP)
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
        atoms = frozenset(ord(op.code) for op in pickletools.opcodes if op.name in _ATOMS.split())
        _tables = kinds, atoms
    return _tables


def _refuse(why: str, at: int) -> CorruptDataError:
    return CorruptDataError(f"stored pickle refused before loading: {why} (opcode at byte {at})")


def _atom_weight(body: bytes, at: int, kinds: list[int], atoms: frozenset[int]) -> int | None:
    """Tree weight of the value the opcode at ``at`` pushes, if it is an atom; None for anything else."""
    op = body[at]
    if op not in atoms:
        return None
    kind = kinds[op]
    if kind in _COUNTED_WIDTH:
        width = _COUNTED_WIDTH[kind]
        return 1 + int.from_bytes(body[at + 1 : at + 1 + width], "little") // 8
    if kind in (_LINE, _LINES):
        return 1 + max(body.find(b"\n", at) - at, 0) // 8
    return 1


def scan(body: bytes) -> list[tuple[int, int, bool]]:  # noqa: PLR0915 (one loop over every opcode, for speed)
    """Check every opcode of ``body`` (one or more pickles back to back) against the body's own size.

    Returns (start, end, shares) for each pickle: where it starts, where its STOP ends it (the body's end if it
    has none), and whether it shares a container (a GET of one, or any DUP), which only :func:`weigh` and
    :func:`check_expansion` can bound. Shared atoms (the common case: repeated strings) are bounded here, in
    one pass: their weight, once per reference, may not exceed :func:`expansion_limit` (ExpansionError).
    Truncation and other damage are left to the unpickler, which reports them without allocating.
    """
    kinds, atoms = _table()
    size = len(body)
    pos = start = here = 0
    shares = False
    shared_weight = 0
    memo: dict[int, int | None] = {}  # memo index -> weight of the atom stored there, or None
    pickles: list[tuple[int, int, bool]] = []
    while pos < size:
        previous, here = here, pos
        kind = kinds[body[pos]]
        pos += 1
        if kind >= 0:
            pos += kind
        elif kind == _COUNTED1:  # at most 255 bytes: harmless even when truncated
            pos += 1 + body[pos] if pos < size else 1
        elif kind == _MEMOIZE:  # after nearly every value in protocol 4+: the common cases inline
            op = body[previous]
            if op not in atoms:
                memo[len(memo)] = None
            elif kinds[op] == _COUNTED1:
                memo[len(memo)] = 1 + body[previous + 1] // 8
            else:
                memo[len(memo)] = _atom_weight(body, previous, kinds, atoms)
        elif kind in (_GET1, _GET4, _DUP):
            width = 1 if kind == _GET1 else 4 if kind == _GET4 else 0
            weight = memo.get(int.from_bytes(body[pos : pos + width], "little")) if width else None
            shares = shares or weight is None
            shared_weight += weight or 0
            pos += width
        elif kind in (_PUT1, _PUT4):
            width = 1 if kind == _PUT1 else 4
            index = int.from_bytes(body[pos : pos + width], "little")
            if index > size:
                raise _refuse("memo index beyond the pickle's own size", here)
            memo[index] = _atom_weight(body, previous, kinds, atoms)
            pos += width
        elif kind == _STOP:
            if shared_weight > expansion_limit(pos - start):
                raise ExpansionError(
                    f"it repeats values so much that its tree weighs more than {expansion_limit(pos - start)}"
                )
            pickles.append((start, pos, shares))
            start, shares, shared_weight, memo = pos, False, 0, {}
        elif kind in _COUNTED_WIDTH:
            width = _COUNTED_WIDTH[kind]
            length = int.from_bytes(body[pos : pos + width], "little", signed=kind == _COUNTED4)
            if not 0 <= length <= size - pos - width:
                raise _refuse(f"length {length} beyond the rest of the pickle", here)
            pos += width + length
        elif kind == _FRAME:
            if int.from_bytes(body[pos : pos + 8], "little") > size - pos - 8:
                raise _refuse("frame longer than the rest of the pickle", here)
            pos += 8
        elif kind == _UNKNOWN:
            raise _refuse(f"unknown opcode 0x{body[here]:02x}", here)
        else:  # newline-terminated text arguments (protocols 0 and 1)
            op = body[here]
            for _ in range(1 if kind == _LINE else 2):
                end = body.find(b"\n", pos)
                if end < 0:
                    return [*pickles, (start, size, shares)]  # truncated: the unpickler says so
                text = body[pos:end]
                if op in _DECIMAL and len(text) > MAX_DECIMAL_ARGUMENT:
                    raise _refuse(f"decimal argument of {len(text)} digits", here)
                if op in (_PUT, _GET) and not (text.isdigit() and int(text) <= size):
                    raise _refuse("memo index beyond the pickle's own size, or not a number", here)
                if op == _PUT:
                    memo[int(text)] = _atom_weight(body, previous, kinds, atoms)
                elif op == _GET:
                    weight = memo.get(int(text))
                    shares = shares or weight is None
                    shared_weight += weight or 0
                pos = end + 1
    return [*pickles, (start, size, shares)] if start < size else pickles


class ExpansionError(ValueError):
    """A value that a tree walk (hashing, msgpack, JSON, comparisons) would expand without bound."""


def expansion_limit(pickle_size: int) -> int:
    """The most a value pickled in ``pickle_size`` bytes may weigh as a tree: 1 per container or atom, plus 1 per
    8 bytes of str, bytes and big ints, each shared value counted once per reference."""
    return EXPANSION_PER_BYTE * pickle_size + EXPANSION_SLACK


_CONTAINERS = (list, tuple, set, frozenset, dict)

# Stack effects for weigh(), by opcode name: how many values an opcode pops (MARK: down to the last MARK) and
# whether it pushes a new value built from them ("new"), adds them to the value below ("fill"), or neither.
_EFFECTS: dict[str, tuple[int | str, str]] = {
    **dict.fromkeys(["EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_SET"], (0, "new")),
    **dict.fromkeys(["FLOAT", "BINFLOAT", "NONE", "NEWTRUE", "NEWFALSE", "GLOBAL", "PERSID"], (0, "new")),
    **dict.fromkeys(["EXT1", "EXT2", "EXT4", "NEXT_BUFFER"], (0, "new")),
    "TUPLE1": (1, "new"), "TUPLE2": (2, "new"), "TUPLE3": (3, "new"), "REDUCE": (2, "new"),
    "NEWOBJ": (2, "new"), "NEWOBJ_EX": (3, "new"), "STACK_GLOBAL": (2, "new"), "BINPERSID": (1, "new"),
    **dict.fromkeys(["LIST", "DICT", "TUPLE", "FROZENSET", "INST", "OBJ"], ("MARK", "new")),
    "APPEND": (1, "fill"), "SETITEM": (2, "fill"), "BUILD": (1, "fill"),
    **dict.fromkeys(["APPENDS", "SETITEMS", "ADDITEMS"], ("MARK", "fill")),
    "POP": (1, ""), "POP_MARK": ("MARK", ""),
    **dict.fromkeys(["PROTO", "FRAME", "STOP", "READONLY_BUFFER"], (0, "")),
}  # fmt: skip


def weigh(pickle: bytes) -> None:
    """Replay one pickle's stack effects on tree weights, without building anything, and raise ExpansionError
    when a value it builds weighs more than :func:`expansion_limit` allows, or when it changes a value after
    sharing it. Run before loading a pickle that shares containers: the unpickler hashes dict keys and set
    elements as it builds them, and hashing a tuple (or a UUID, through its ``int``) walks its whole tree. A
    container's weight counts each reference to a shared value again; pickle.dumps fills every value before it
    refers to it again, so a weight is final once shared (cycles aside, which check_expansion refuses)."""
    import pickletools

    limit = expansion_limit(len(pickle))
    stack: list[list[int]] = []  # one [weight, shared] cell per value: a shared value shares its cell
    marks: list[int] = []  # stack heights at each MARK
    memo: dict[int, list[int]] = {}
    arg: Any
    try:
        for op, argument, _ in pickletools.genops(pickle):
            name, arg = op.name, argument  # arg: Any (typeshed types genops' arguments as object)
            pops, action = _EFFECTS.get(name, (0, "atom" if arg is not None else ""))
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET", "DUP"):
                cell = stack[-1] if name == "DUP" else memo[int(arg)]
                cell[1] = 1
                stack.append(cell)
            elif name == "MARK":
                marks.append(len(stack))
            elif action == "atom":  # strings, bytes and integers: heavier the longer they are
                stack.append([1 + (abs(arg).bit_length() // 64 if isinstance(arg, int) else len(arg) // 8), 0])
            else:
                at = marks.pop() if pops == "MARK" else len(stack) - int(pops)
                if at < 0:
                    return  # stack underflow: the unpickler reports it
                weight = sum(cell[0] for cell in stack[at:])
                del stack[at:]
                if action == "new":
                    stack.append([1 + weight if name != "STACK_GLOBAL" else 1, 0])
                elif action == "fill":
                    if stack[-1][1]:
                        raise ExpansionError(
                            "it refers to a value before that value is complete (a cycle, or a change after sharing it)"
                        )
                    stack[-1][0] += weight
            if stack and stack[-1][0] > limit:
                raise ExpansionError(f"it shares values so much that its tree weighs more than {limit}")
    except ExpansionError:
        raise
    except (IndexError, KeyError, ValueError, TypeError):  # underflow, missing MARK or memo entry, bad argument:
        return  # the unpickler reports those itself


def _weight(atom: Any) -> int:
    kind = type(atom)
    if kind is str or kind is bytes or kind is bytearray:
        return 1 + len(atom) // 8
    if kind is int:
        return 1 + abs(int(atom)).bit_length() // 64
    return 1


def check_expansion(value: Any, pickle_size: int) -> None:
    """Refuse ``value`` (ExpansionError) when it refers to itself, or when its tree, counting a shared value once
    per reference, weighs more than ``pickle_size`` bytes of pickle honestly hold. Linear in the distinct
    objects: each container is weighed once. (The full codec cannot store either: msgpack writes trees.)"""
    limit = expansion_limit(pickle_size)
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # containers being weighed: their children are on the stack above them
    stack: list[Any] = [value] if type(value) in _CONTAINERS else []
    while stack:
        node = stack[-1]
        key = id(node)
        if key in sizes:
            stack.pop()
            continue
        children = (*node, *node.values()) if type(node) is dict else node
        if key not in open_:  # first visit: weigh the unweighed children first
            open_.add(key)
            for child in children:
                if type(child) in _CONTAINERS and id(child) not in sizes:
                    if id(child) in open_:
                        raise ExpansionError("it refers to itself (a cycle)")
                    stack.append(child)
            continue
        stack.pop()
        total = 1 + sum(sizes[id(c)] if type(c) in _CONTAINERS else _weight(c) for c in children)
        if total > limit:
            raise ExpansionError(
                f"it shares values so much that its tree has more than {limit} values ({pickle_size} bytes pickled)"
            )
        sizes[key] = total
