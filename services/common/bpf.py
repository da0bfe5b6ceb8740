"""pcap-filter(7) expressions compiled to classic BPF by the real libpcap, and
run on frames by a pure-Python classic BPF interpreter (net/core/filter.c).

compile_filter() calls libpcap's own compiler (pcap_open_dead + pcap_compile),
so an expression means exactly what it means to tcpdump and the instructions
are those `tcpdump -y EN10MB -ddd EXPR` prints. The binding is ctypes on the
system's libpcap (Debian: libpcap0.8, the library tcpdump itself links), not a
PyPI binding: the six functions needed fit in a few lines, and the candidates
were worse trades. `libpcap` (karpierz, BSD-3-Clause) works, but only as
pre-releases (1.11.0bNN), carries a 6 MB wheel of libpcap builds for other
platforms (a newer libpcap than Debian's, so its code could differ from
tcpdump's if configured to use them) plus three more dependencies, and by
default loads the system library anyway; `pcap-ct` is a layer over that same
package. So the system library is the only runtime requirement, and it is the
one tcpdump uses: both compile an expression to the same code.

Program is what pcap_compile produced (its `insns`, as struct bpf_insn), checked
as the kernel checks a socket filter (bpf_check_classic) and then translated
once into Python source: one straight-line function whose conditional jumps are
`if`s. Jumps only go forward, so the program is a DAG: a block reached from
several places is copied to each when small, and otherwise becomes a function
of its own, so the code stays linear in the program's size. A load past the
end of the frame rejects it (returns 0), as the kernel and libpcap's
bpf_filter() do; so does a division by X == 0.

Sans-I/O: frames in, verdicts out; no threads, no clock. Loading libpcap is the
only side effect and happens on the first compile_filter().
"""
import ctypes
import ctypes.util
import functools
import struct
from typing import NamedTuple

DLT_EN10MB = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
BPF_MAXINSNS = 4096
BPF_MEMWORDS = 16
SKF_AD_OFF = -0x1000            # and SKF_NET_OFF, SKF_LL_OFF below it: negative (k >= 2**31) loads

# Instruction classes, sizes, modes, operations and sources (include/uapi/linux/bpf_common.h, filter.h).
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = range(8)
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN, BPF_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50
BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR = 0x60, 0x70, 0x80, 0x90, 0xA0
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
BPF_K, BPF_X, BPF_A = 0x00, 0x08, 0x10
BPF_TAX, BPF_TXA = 0x00, 0x80


def BPF_CLASS(code):
    return code & 0x07


def BPF_SIZE(code):
    return code & 0x18


def BPF_MODE(code):
    return code & 0xE0


def BPF_OP(code):
    return code & 0xF0


def BPF_SRC(code):
    return code & 0x08


class FilterError(ValueError):
    """An expression libpcap cannot compile (its pcap_geterr() text), or a program the checker refuses."""


class Insn(NamedTuple):
    """struct sock_filter / struct bpf_insn."""
    code: int
    jt: int
    jf: int
    k: int


# --- libpcap through ctypes ---------------------------------------------------------------------------------

class _bpf_insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _bpf_program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_bpf_insn))]


@functools.cache
def _libpcap() -> ctypes.CDLL:
    """The system's libpcap: Debian's soname first, then others', then whatever the loader finds."""
    for name in ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so", ctypes.util.find_library("pcap")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_bpf_program), ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_bpf_program)]
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_lib_version.restype = ctypes.c_char_p
        return lib
    raise OSError("libpcap not found (install the system package: Debian's libpcap0.8)")


def libpcap_version() -> str:
    """pcap_lib_version(), e.g. 'libpcap version 1.10.3 (with TPACKET_V3)'; OSError without libpcap."""
    return _libpcap().pcap_lib_version().decode()


def compile_filter(expr: str, linktype: int = DLT_EN10MB, snaplen: int = 262144, *,
                   netmask: int = 0, optimize: bool = True) -> "Program":
    """pcap_compile() EXPR for a link type, as tcpdump does (optimized; netmask 0 as tcpdump without an
    interface, which only `ip broadcast` uses). Raises FilterError with libpcap's message."""
    if "\0" in expr:
        raise FilterError("can't parse filter expression: NUL character in expression")
    lib = _libpcap()
    pcap = lib.pcap_open_dead(linktype, snaplen)
    if not pcap:
        raise MemoryError("pcap_open_dead failed")
    try:
        prog = _bpf_program()
        if lib.pcap_compile(pcap, ctypes.byref(prog), expr.encode(), int(optimize), netmask) < 0:
            raise FilterError(lib.pcap_geterr(pcap).decode(errors="replace"))
        try:
            insns = [Insn(i.code, i.jt, i.jf, i.k) for i in prog.bf_insns[:prog.bf_len]]
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(pcap)
    return Program(insns, expr)


# --- the checker --------------------------------------------------------------------------------------------

_CODES = frozenset(
    [BPF_ALU | op | src for op in (BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_MOD, BPF_AND, BPF_OR, BPF_XOR,
                                   BPF_LSH, BPF_RSH) for src in (BPF_K, BPF_X)]
    + [BPF_ALU | BPF_NEG]
    + [BPF_LD | size | mode for size in (BPF_W, BPF_H, BPF_B) for mode in (BPF_ABS, BPF_IND)]
    + [BPF_LD | BPF_W | BPF_LEN, BPF_LD | BPF_IMM, BPF_LD | BPF_MEM,
       BPF_LDX | BPF_W | BPF_LEN, BPF_LDX | BPF_B | BPF_MSH, BPF_LDX | BPF_IMM, BPF_LDX | BPF_MEM,
       BPF_ST, BPF_STX, BPF_MISC | BPF_TAX, BPF_MISC | BPF_TXA, BPF_RET | BPF_K, BPF_RET | BPF_A, BPF_JMP | BPF_JA]
    + [BPF_JMP | op | src for op in (BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET) for src in (BPF_K, BPF_X)])


def bpf_check_classic(insns) -> None:
    """What the kernel's bpf_check_classic() refuses (it answers -EINVAL), as a FilterError."""
    flen = len(insns)
    if not 0 < flen <= BPF_MAXINSNS:
        raise FilterError(f"bpf: program length {flen} not in 1..{BPF_MAXINSNS}")
    for pc, (code, jt, jf, k) in enumerate(insns):
        where = f"bpf: insn {pc} ({code:#x} {jt} {jf} {k:#x})"
        if code not in _CODES:
            raise FilterError(f"{where}: unknown opcode")
        if code in (BPF_ALU | BPF_DIV | BPF_K, BPF_ALU | BPF_MOD | BPF_K) and k == 0:
            raise FilterError(f"{where}: division by constant 0")
        if code in (BPF_ALU | BPF_LSH | BPF_K, BPF_ALU | BPF_RSH | BPF_K) and k >= 32:
            raise FilterError(f"{where}: shift by 32 or more")
        if code in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX) and k >= BPF_MEMWORDS:
            raise FilterError(f"{where}: memory slot out of range")
        if BPF_CLASS(code) == BPF_LD and BPF_MODE(code) == BPF_ABS and k >= 1 << 31:
            raise FilterError(f"{where}: negative offsets (SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF) not supported")
        if code == BPF_JMP | BPF_JA and k >= flen - pc - 1:
            raise FilterError(f"{where}: jump out of range")
        if BPF_CLASS(code) == BPF_JMP and code != BPF_JMP | BPF_JA and (pc + jt + 1 >= flen or pc + jf + 1 >= flen):
            raise FilterError(f"{where}: jump out of range")
    if BPF_CLASS(insns[-1].code) != BPF_RET:
        raise FilterError("bpf: program does not end in RET")


# --- the translator -----------------------------------------------------------------------------------------

_ALU = {BPF_ADD: "A = (A + {v}) & 0xFFFFFFFF", BPF_SUB: "A = (A - {v}) & 0xFFFFFFFF",
        BPF_MUL: "A = (A * {v}) & 0xFFFFFFFF", BPF_DIV: "A //= {v}", BPF_MOD: "A %= {v}",
        BPF_OR: "A |= {v}", BPF_AND: "A &= {v}", BPF_XOR: "A ^= {v}", BPF_RSH: "A >>= {v}",
        BPF_LSH: "A = (A << {v}) & 0xFFFFFFFF"}
_JMP = {BPF_JEQ: ("{v} == {o}", "{v} != {o}"), BPF_JGT: ("{v} > {o}", "{v} <= {o}"),
        BPF_JGE: ("{v} >= {o}", "{v} < {o}"), BPF_JSET: ("{v} & {o}", "not {v} & {o}")}
_LOAD = {BPF_W: (4, "_W(p, {o})[0]"), BPF_H: (2, "_H(p, {o})[0]"), BPF_B: (1, "p[{o}]")}
_INLINE_MAX = 16                # instructions: a smaller block reached from several places is copied
_MAX_INDENT = 40                # deeper than this, a branch becomes a function (Python allows 100 levels)


def _successors(pc, insn):
    cls = BPF_CLASS(insn.code)
    if cls == BPF_RET:
        return ()
    if cls != BPF_JMP:
        return (pc + 1,)
    if insn.code == BPF_JMP | BPF_JA:
        return (pc + 1 + insn.k,)
    return tuple({pc + 1 + insn.jt, pc + 1 + insn.jf})


class _Translator:
    """Writes `run(p)`, and a function `_b<pc>` for each large block reached from several places."""

    def __init__(self, insns, as_bool: bool):
        self.insns, self.as_bool = insns, as_bool
        self.uses_mem = any(BPF_MODE(i.code) == BPF_MEM and BPF_CLASS(i.code) in (BPF_LD, BPF_LDX)
                            or BPF_CLASS(i.code) in (BPF_ST, BPF_STX) for i in insns)
        preds = [0] * len(insns)
        for pc, insn in enumerate(insns):
            for s in _successors(pc, insn):
                preds[s] += 1
        # A block reached from several places is written once as a function, unless it is small: then it is
        # written out at each place (the tree it grows into, functions counting as one call, is small).
        self.shared, size = set(), [0] * len(insns)
        for pc in reversed(range(len(insns))):
            size[pc] = min(_INLINE_MAX + 1, 1 + sum(1 if s in self.shared else size[s]
                                                    for s in _successors(pc, insns[pc])))
            if preds[pc] > 1 and size[pc] > _INLINE_MAX:
                self.shared.add(pc)
        self.lines: list[str] = []

    def source(self) -> str:
        self.lines += ["def run(p):", "    n = len(p)", "    A = X = 0",
                       f"    M = {'[0] * 16' if self.uses_mem else 'None'}"]
        self._block(0, 1, entry=True)
        done = set()
        while todo := self.shared - done:        # a deep branch may add one while its caller is written
            pc = min(todo)
            done.add(pc)
            self.lines.append(f"def _b{pc}(p, n, A, X, M):")
            self._block(pc, 1, entry=True)
        return "\n".join(self.lines) + "\n"

    def _ret(self, value: str) -> str:
        if not self.as_bool:
            return f"return {value}"
        return f"return {value != '0'}" if value.isdigit() else f"return {value} != 0"

    def _leaf(self, pc):
        """The one statement that ends a path at PC, if it is a RET or a shared block; else None."""
        insn = self.insns[pc]
        if insn.code == BPF_RET | BPF_K:
            return self._ret(str(insn.k))
        if insn.code == BPF_RET | BPF_A:
            return self._ret("A")
        if pc in self.shared:
            return f"return _b{pc}(p, n, A, X, M)"
        return None

    def _emit(self, depth, line):
        self.lines.append("    " * depth + line)

    def _block(self, pc, depth, entry=False):
        while True:
            insn = self.insns[pc]
            leaf = None if entry and BPF_CLASS(insn.code) != BPF_RET else self._leaf(pc)
            entry = False
            if leaf:
                self._emit(depth, leaf)
                return
            if insn.code == BPF_JMP | BPF_JA:
                pc += 1 + insn.k
            elif BPF_CLASS(insn.code) == BPF_JMP:
                pc = self._branch(pc, insn, depth)
            else:
                for line in self._statements(insn):
                    self._emit(depth, line)
                pc += 1

    def _branch(self, pc, insn, depth):
        """Emit a conditional jump: an `if` that returns or nests one way; return the pc the block goes on with."""
        t, f = pc + 1 + insn.jt, pc + 1 + insn.jf
        if t == f:
            return t
        yes, no = _JMP[BPF_OP(insn.code)]
        v = {"v": "A", "o": "X" if BPF_SRC(insn.code) == BPF_X else f"{insn.k:#x}"}
        if self._leaf(t):
            self._emit(depth, f"if {yes.format(**v)}: {self._leaf(t)}")
            return f
        if self._leaf(f):
            self._emit(depth, f"if {no.format(**v)}: {self._leaf(f)}")
            return t
        if depth >= _MAX_INDENT:
            self.shared.add(t)
            self._emit(depth, f"if {yes.format(**v)}: {self._leaf(t)}")
            return f
        self._emit(depth, f"if {yes.format(**v)}:")
        self._block(t, depth + 1)
        return f

    def _statements(self, insn):
        code, _, _, k = insn
        cls, mode, size = BPF_CLASS(code), BPF_MODE(code), BPF_SIZE(code)
        fail = self._ret("0")
        if cls == BPF_LD and mode in (BPF_ABS, BPF_IND):
            width, load = _LOAD[size]
            if mode == BPF_ABS:
                return [f"if n < {k + width}: {fail}", "A = " + load.format(o=k)]
            return [f"o = X + {k}", f"if n < o + {width}: {fail}", "A = " + load.format(o="o")]
        if cls == BPF_LDX and mode == BPF_MSH:
            return [f"if n <= {k}: {fail}", f"X = (p[{k}] & 0xF) << 2"]
        if cls in (BPF_LD, BPF_LDX):
            reg = "A" if cls == BPF_LD else "X"
            return [f"{reg} = " + {BPF_IMM: str(k), BPF_MEM: f"M[{k}]", BPF_LEN: "n"}[mode]]
        if cls in (BPF_ST, BPF_STX):
            return [f"M[{k}] = {'A' if cls == BPF_ST else 'X'}"]
        if cls == BPF_MISC:
            return ["X = A" if BPF_OP(code) == BPF_TAX else "A = X"]
        op = BPF_OP(code)                                           # BPF_ALU
        if op == BPF_NEG:
            return ["A = -A & 0xFFFFFFFF"]
        if BPF_SRC(code) == BPF_K:
            return [_ALU[op].format(v=k)]
        if op in (BPF_DIV, BPF_MOD):
            return [f"if X == 0: {fail}", _ALU[op].format(v="X")]
        if op == BPF_LSH:                                           # as libpcap's bpf_filter(): 0 past 31
            return ["A = (A << X) & 0xFFFFFFFF if X < 32 else 0"]
        return [_ALU[op].format(v="X")]


def _translate(insns, as_bool: bool):
    src = _Translator(insns, as_bool).source()
    namespace = {"_W": struct.Struct(">I").unpack_from, "_H": struct.Struct(">H").unpack_from}
    exec(compile(src, "<bpf>", "exec"), namespace)
    return namespace["run"], src


SOCK_FILTER = struct.Struct("<HBBI")    # struct sock_filter (include/uapi/linux/filter.h), x86's byte order


def sock_filter_bytes(insns) -> bytes:
    """The program as the array of struct sock_filter that SO_ATTACH_FILTER takes
    (what `tcpdump -dd` prints, packed)."""
    return b"".join(SOCK_FILTER.pack(*i) for i in insns)


def from_sock_filter(data: bytes) -> "Program":
    """sk_attach_filter(): a struct sock_filter array checked as the kernel checks
    it (1 to BPF_MAXINSNS instructions, bpf_check_classic()); FilterError if not."""
    if not data or len(data) % SOCK_FILTER.size or len(data) // SOCK_FILTER.size > BPF_MAXINSNS:
        raise FilterError(f"a filter is 1 to {BPF_MAXINSNS} struct sock_filter of {SOCK_FILTER.size} bytes")
    return Program([Insn(*SOCK_FILTER.unpack_from(data, i)) for i in range(0, len(data), SOCK_FILTER.size)])


class Program:
    """A checked classic BPF program (libpcap's output for EXPR) and two fast callables over a frame
    (bytes, bytearray or memoryview; its length is the packet's length, BPF_LEN):

        run(frame) -> int     the program's return value: the length to keep, 0 = reject
        match(frame) -> bool  run(frame) != 0

    `source` is the Python that run() was translated to."""

    def __init__(self, insns, expr: str = ""):
        self.insns = tuple(Insn(*i) for i in insns)
        self.expr = expr
        bpf_check_classic(self.insns)
        self.run, self.source = _translate(self.insns, as_bool=False)
        self.match, _ = _translate(self.insns, as_bool=True)

    def __len__(self):
        return len(self.insns)

    def __repr__(self):
        return f"Program({self.expr!r}, {len(self.insns)} insns)"
