"""Bounds that CPython's unpickler does not keep, checked on every stored pickle before and after loading it.

Why: refusing every global (``_pickle``'s allow-list) stops code execution, not memory or time exhaustion.
Before Python 3.14 (CPython gh-115952) a few bytes of pickle make the C unpickler allocate without bound: a PUT
or LONG_BINPUT index resizes and zero-fills the memo up to that index (a 14-byte pickle naming index 2**30
takes 8 GiB resident), and BINBYTES, BINBYTES8 and BYTEARRAY8 allocate the length they claim before reading
it. And shared references (memo GETs, DUP) let a small pickle hold a value whose tree is exponentially large:
hashing a tuple of shared tuples while loading (a dict key) walks that tree, and so does any walk after
loading (the full codec's msgpack, JSON). And a tuple nested a million levels deep takes a few hundred bytes
(TUPLE1 after TUPLE1): hashing it as a dict key recurses once per level in C, with no check, past the C stack.

:func:`scan` walks the opcodes once, with pickletools' table, refuses memo indices and counted lengths beyond
the body itself, and says where each pickle ends and whether it shares objects. Only pickles that share go
through :func:`weigh` (the stack effects of their opcodes, replayed on tree weights, before loading) and
:func:`check_expansion` (the loaded value's tree): their weight may not exceed :func:`expansion_limit`. weigh()
also measures how deep tuples nest (refused beyond ``MAX_NESTING``); scan() has it do so for every pickle with
more tuple opcodes than that, since fewer cannot nest that deep.

A check that cannot account for an opcode or its argument refuses the pickle, never lets it through: the C
unpickler reads spellings that pickletools refuses (``I0x1``, ``L 1_0L``), so giving up on those would skip the
bounds for whatever follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import CorruptDataError
from ._values import MAX_NESTING

if TYPE_CHECKING:
    #: (start, end, shares, sets) of one pickle in a body: see scan().
    Span = tuple[int, int, bool, bool]

#: A decoded value's tree may have this many nodes per byte of pickle, plus EXPANSION_SLACK: far above any
#: honest pickle (a node costs at least one opcode byte unless it is shared), far below an exponential one.
EXPANSION_PER_BYTE = 8
EXPANSION_SLACK = 1 << 16
#: Longest decimal argument (INT, LONG, GET, PUT): CPython's own int-from-text limit (sys.int_info), plus a
#: sign and LONG's trailing L.
MAX_DECIMAL_ARGUMENT = 4300 + 2

# Argument kinds: >= 0 is a fixed number of argument bytes; the negative kinds need a look at the argument.
_LINE, _LINES, _COUNTED1, _COUNTED4, _COUNTED4U, _COUNTED8U, _FRAME, _STOP, _UNKNOWN = range(-1, -10, -1)
_MEMOIZE, _PUT1, _PUT4, _GET1, _GET4, _DUP, _TUPLE, _SET = range(-10, -18, -1)
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
#: Opcodes that make a tuple, or a set or frozenset (whose encoding follows its iteration order: see _pickle).
_TUPLES = ("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3")
_SETS = ("EMPTY_SET", "FROZENSET")
#: Out-of-band buffers: never written for plain data, and READONLY_BUFFER would turn a bytearray into a memoryview,
#: a type outside the value model. Refused like unknown opcodes.
_REFUSED = ("NEXT_BUFFER", "READONLY_BUFFER")
#: How deep tuples may nest in a pickle: a stored entry is itself a (key, value) tuple, one level above its value.
_LIMIT = MAX_NESTING + 1
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
        special.update(dict.fromkeys(_TUPLES, _TUPLE), **dict.fromkeys(_SETS, _SET))
        kinds = [_UNKNOWN] * 256
        for op in pickletools.opcodes:
            arg = op.arg
            if op.name in _REFUSED:
                continue
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


class _Memo:
    """scan()'s view of the unpickler's memo: index -> weight of the atom stored there, or None (a container, or
    nothing). Pickles number their memo entries 0, 1, 2...: those are 8 bytes each in ``dense`` (-1: a container),
    not a dict entry (about 80 bytes), which would take more memory than the map itself for a pickle memoizing
    millions of small values; any other index is in ``sparse``, whose keys all lie beyond ``dense``. MEMOIZE stores
    at the number of distinct indexes, as the unpickler does: ``len(dense) + len(sparse)``."""

    __slots__ = ("dense", "sparse")

    def __init__(self) -> None:
        from array import array

        self.dense = array("q")
        self.sparse: dict[int, int | None] = {}

    def put(self, index: int, weight: int | None) -> None:
        dense, sparse = self.dense, self.sparse
        if index < len(dense):
            dense[index] = -1 if weight is None else weight
        elif index > len(dense):
            sparse[index] = weight
        else:
            sparse.pop(index, None)
            dense.append(-1 if weight is None else weight)
            while len(dense) in sparse:
                moved = sparse.pop(len(dense))
                dense.append(-1 if moved is None else moved)

    def get(self, index: int) -> int | None:
        if index < len(self.dense):
            weight = self.dense[index]
            return None if weight < 0 else weight
        return self.sparse.get(index)


def scan(body: bytes) -> list[Span]:  # noqa: PLR0915 (one loop over every opcode, for speed)
    """Check every opcode of ``body`` (one or more pickles back to back) against the body's own size.

    Returns (start, end, shares, sets) for each pickle: where it starts, where its STOP ends it, whether it
    shares a container (a GET of one, or any DUP), which only :func:`weigh` and :func:`check_expansion` can
    bound, and whether it makes a set or frozenset. Shared atoms (the common case: repeated strings) are bounded
    here, in one pass: their weight, once per reference, may not exceed :func:`expansion_limit` (ExpansionError).
    A pickle with more tuple opcodes than tuples may nest is replayed by weigh() at once (NestingError).
    Truncation, unknown opcodes and out-of-band buffers are refused; other damage (a stack underflow) is left to
    the unpickler, which reports it before building anything further.
    """
    kinds, atoms = _table()
    size = len(body)
    pos = start = here = tuples = 0
    shares = sets = False
    shared_weight = 0
    memo = _Memo()
    pickles: list[Span] = []
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
                weight = None
            elif kinds[op] == _COUNTED1:
                weight = 1 + body[previous + 1] // 8
            else:
                weight = _atom_weight(body, previous, kinds, atoms)
            if memo.sparse:
                memo.put(len(memo.dense) + len(memo.sparse), weight)
            else:
                memo.dense.append(-1 if weight is None else weight)
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
            memo.put(index, _atom_weight(body, previous, kinds, atoms))
            pos += width
        elif kind == _TUPLE:  # a tuple nested n levels deep takes n of these
            tuples += 1
        elif kind == _SET:
            sets = True
        elif kind == _STOP:
            if shared_weight > expansion_limit(pos - start):
                raise ExpansionError(
                    f"it repeats values so much that its tree weighs more than {expansion_limit(pos - start)}"
                )
            if tuples > _LIMIT:  # it might nest them too deep: measure before anything hashes them
                weigh(body[start:pos])
            pickles.append((start, pos, shares, sets))
            start, shares, sets, tuples, shared_weight, memo = pos, False, False, 0, 0, _Memo()
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
            raise _refuse(f"opcode 0x{body[here]:02x}, unknown or never written for plain data", here)
        else:  # newline-terminated text arguments (protocols 0 and 1)
            op = body[here]
            for _ in range(1 if kind == _LINE else 2):
                end = body.find(b"\n", pos)
                if end < 0:
                    raise _refuse("text argument without its newline (truncated)", here)
                text = body[pos:end]
                if op in _DECIMAL and len(text) > MAX_DECIMAL_ARGUMENT:
                    raise _refuse(f"decimal argument of {len(text)} digits", here)
                if op in (_PUT, _GET) and not (text.isdigit() and int(text) <= size):
                    raise _refuse("memo index beyond the pickle's own size, or not a number", here)
                if op == _PUT:
                    memo.put(int(text), _atom_weight(body, previous, kinds, atoms))
                elif op == _GET:
                    weight = memo.get(int(text))
                    shares = shares or weight is None
                    shared_weight += weight or 0
                pos = end + 1
    if start < size:
        raise _refuse("a pickle without its STOP (truncated)", start)
    return pickles


class ExpansionError(ValueError):
    """A value that a tree walk (hashing, msgpack, JSON, comparisons) would expand without bound."""


class NestingError(ValueError):
    """Tuples nested deeper than MAX_NESTING: hashing one (a dict key, a set element) recurses once per level in C."""

    def __init__(self) -> None:
        super().__init__(f"it nests tuples more than {MAX_NESTING} levels deep")


def expansion_limit(pickle_size: int) -> int:
    """The most a value pickled in ``pickle_size`` bytes may weigh as a tree: 1 per container or atom, plus 1 per
    8 bytes of str, bytes and big ints, each shared value counted once per reference."""
    return EXPANSION_PER_BYTE * pickle_size + EXPANSION_SLACK


_CONTAINERS = (list, tuple, set, frozenset, dict)

# Stack effects for weigh(), by opcode name: how many values an opcode pops (MARK: down to the last MARK) and
# whether it pushes a new value built from them ("new"), adds them to the value below ("fill"), pushes a value
# read from its argument ("atom"), or neither. An opcode missing here is refused.
_EFFECTS: dict[str, tuple[int | str, str]] = {
    **dict.fromkeys(["EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_SET"], (0, "new")),
    **dict.fromkeys(["FLOAT", "BINFLOAT", "NONE", "NEWTRUE", "NEWFALSE", "GLOBAL", "PERSID"], (0, "new")),
    **dict.fromkeys(["EXT1", "EXT2", "EXT4"], (0, "new")),
    "TUPLE1": (1, "new"), "TUPLE2": (2, "new"), "TUPLE3": (3, "new"), "REDUCE": (2, "new"),
    "NEWOBJ": (2, "new"), "NEWOBJ_EX": (3, "new"), "STACK_GLOBAL": (2, "new"), "BINPERSID": (1, "new"),
    **dict.fromkeys(["LIST", "DICT", "TUPLE", "FROZENSET", "INST", "OBJ"], ("MARK", "new")),
    "APPEND": (1, "fill"), "SETITEM": (2, "fill"), "BUILD": (1, "fill"),
    **dict.fromkeys(["APPENDS", "SETITEMS", "ADDITEMS"], ("MARK", "fill")),
    "POP": (1, ""), "POP_MARK": ("MARK", ""),
    **dict.fromkeys(["PROTO", "FRAME", "STOP"], (0, "")),
    **dict.fromkeys(["INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"], (0, "atom")),
    **dict.fromkeys(["STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES"], (0, "atom")),
    **dict.fromkeys(["BINBYTES8", "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE"], (0, "atom")),
    "BINUNICODE8": (0, "atom"),
}  # fmt: skip


def weigh(pickle: bytes) -> None:
    """Replay one pickle's stack effects on tree weights, without building anything, and raise ExpansionError
    when a value it builds weighs more than :func:`expansion_limit` allows, or when it changes a value after
    sharing it; NestingError when it nests tuples more than MAX_NESTING deep. Run before loading a pickle that
    shares containers or holds many tuples: the unpickler hashes dict keys and set elements as it builds them,
    and hashing a tuple (or a UUID, through its ``int``) walks its whole tree, recursing once per level. A
    container's weight counts each reference to a shared value again; pickle.dumps fills every value before it
    refers to it again, so a weight is final once shared (cycles aside, which check_expansion refuses).
    An opcode it cannot replay (an argument pickletools cannot parse, a stack underflow, a missing MARK or memo
    entry) is CorruptDataError: never a pass."""
    import pickletools

    limit = expansion_limit(len(pickle))
    # One [weight, shared, depth] cell per value (a shared value shares its cell); depth counts nested tuples,
    # through any other container (a tuple holding a list holding a tuple is 2).
    stack: list[list[int]] = []
    marks: list[int] = []  # stack heights at each MARK
    memo: dict[int, list[int]] = {}
    arg: Any
    at = 0
    try:
        for op, argument, position in pickletools.genops(pickle):
            name, arg, at = op.name, argument, position or 0  # arg: Any (typeshed types genops' arguments as object)
            pops, action = _EFFECTS.get(name, (0, "?"))
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET", "DUP"):
                cell = stack[-1] if name == "DUP" else memo[int(arg)]
                cell[1] = 1
                stack.append(cell)
            elif name == "MARK":
                marks.append(len(stack))
            elif action == "atom":  # strings, bytes and integers: heavier the longer they are
                stack.append([1 + (abs(arg).bit_length() // 64 if isinstance(arg, int) else len(arg) // 8), 0, 0])
            elif action == "?":
                raise _refuse(f"opcode {name}, never written for plain data", at)
            else:
                start = marks.pop() if pops == "MARK" else len(stack) - int(pops)
                if start < 0 or (start == 0 and action == "fill"):
                    raise _refuse("stack underflow", at)
                parts = stack[start:]
                del stack[start:]
                weight = sum(cell[0] for cell in parts)
                depth = max((cell[2] for cell in parts), default=0) + (name in _TUPLES)
                if depth > _LIMIT:
                    raise NestingError
                if action == "new":
                    stack.append([1 + weight if name != "STACK_GLOBAL" else 1, 0, depth])
                elif action == "fill":
                    if stack[-1][1]:
                        raise ExpansionError(
                            "it refers to a value before that value is complete (a cycle, or a change after sharing it)"
                        )
                    stack[-1][0] += weight
                    stack[-1][2] = max(stack[-1][2], depth)
            if stack and stack[-1][0] > limit:
                raise ExpansionError(f"it shares values so much that its tree weighs more than {limit}")
    except (ExpansionError, NestingError, CorruptDataError):
        raise
    except Exception as exc:  # an argument pickletools cannot parse, a stack underflow, a missing MARK or memo entry
        raise _refuse(f"it cannot be replayed ({type(exc).__name__}: {exc})", at) from None


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
