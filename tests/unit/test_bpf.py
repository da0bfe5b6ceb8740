"""Unit tests of services/common/bpf.py: libpcap's compiler against `tcpdump -ddd`, and the
Python classic BPF interpreter against two oracles, tcpdump reading a pcap of varied frames
(which ones does it keep?) and libpcap's own bpf_filter() on random programs."""
import ctypes
import functools
import random
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pktflow.services.common import bpf
from pktflow.services.common.bpf import FilterError, Insn, Program, compile_filter
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import RawPcapReader, wrpcap

from conftest import needs_libpcap


needs_tcpdump = pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump is not installed (apt tcpdump)")

EXPRESSIONS = [
    "",
    "tcp port 8080 and host 10.0.2.10",
    "udp", "icmp", "arp", "tcp", "ip", "ip6", "icmp6", "vlan", "vlan 100", "vlan and tcp", "vlan and vlan",
    "net 10.0.1.0/24", "src net 10.0.0.0/8 and dst net 10.0.2.0/24", "ip6 net 2001:db8::/32",
    "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0",
    "ether host 02:00:00:00:01:0a", "ether src 02:00:00:00:02:0a", "ether broadcast", "ether multicast",
    "ip broadcast", "ip multicast", "ether proto 0x88cc",
    "greater 100", "less 60", "len >= 1000", "len == 42",
    "portrange 1000-2000", "tcp portrange 1000-2000", "not port 22", "port 22", "udp port 53",
    "src host 10.0.1.10 and dst port 8080", "host 2001:db8::2", "ip6 and tcp port 8080",
    "icmp[icmptype] == icmp-echo", "icmp and icmp[icmptype] != icmp-echoreply", "icmp[0] = 3 and icmp[1] = 3",
    "arp[6:2] = 1", "ether[0] & 1 != 0",
    "ip[0] & 0xf > 5", "ip[9] >= 17", "tcp[0:2] > tcp[2:2]", "udp[0:2] >= udp[2:2]",
    "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420",
    "ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0",
    "(ip[1] * 3 / 2) % 5 == 1", "ip[8] ^ 0xff = 0xc0", "-ip[8] & 0xff = 0xc1", "ip[1] / ip[1] == 1",
    "ip[1] % ip[9] == 0", "ip[9] << ip[1] > 1000", "tcp[13] >> ip[9] == 0", "ip[1] | ip[9] == 0x16",
    "ip[8] - ip[9] == ip[1] + 50", "udp[8:4] & udp[12:4] != 0 or tcp[8:4] * tcp[4:4] > 5",
    "(tcp or udp) and not (port 22 or port 53) and ip[8] <= 64",
    "vlan and ip and src net 10.0.0.0/8", "ip proto 17 or ip6 proto 17",
]


# --- the frames ---------------------------------------------------------------------------------------------

A_MAC, B_MAC, LLDP = "02:00:00:00:01:0a", "02:00:00:00:02:0a", "01:80:c2:00:00:0e"


def base_frames() -> list[bytes]:
    e = Ether(src=A_MAC, dst=B_MAC)
    r = Ether(src=B_MAC, dst=A_MAC)
    a, b, c = "10.0.1.10", "10.0.2.10", "10.0.3.10"
    frames = [
        e / IP(src=a, dst=b) / TCP(sport=40000, dport=8080, flags="S"),
        r / IP(src=b, dst=a) / TCP(sport=8080, dport=40000, flags="SA"),
        e / IP(src=a, dst=b) / TCP(sport=40000, dport=8080, flags="A") / Raw(b"x" * 1400),
        e / IP(src=a, dst=b, tos=0x10) / TCP(sport=40000, dport=8080, flags="PA") / Raw(b"GET / HTTP/1.1\r\n\r\n"),
        e / IP(src=a, dst=c) / TCP(sport=40001, dport=8080, flags="S"),
        e / IP(src=a, dst=b, options=[IPOption_RR()]) / TCP(sport=8080, dport=9, flags="S"),
        e / IP(src=a, dst=b, tos=0xb8, ttl=63) / TCP(sport=1022, dport=22, flags="A") / Raw(b"ssh"),
        e / IP(src=a, dst=b) / TCP(sport=1500, dport=2001, flags="R"),
        e / IP(src=a, dst=b) / TCP(sport=999, dport=2000, flags="F"),
        e / IP(src=a, dst=b, ttl=1) / UDP(sport=5353, dport=53) / Raw(b"q" * 30),
        e / IP(src=a, dst=b, tos=4, ttl=71) / UDP(sport=1234, dport=1234) / Raw(b"\xff" * 8),
        e / IP(src=a, dst=b) / ICMP(type=8) / Raw(b"p" * 56),
        r / IP(src=b, dst=a) / ICMP(type=0) / Raw(b"p" * 56),
        r / IP(src=b, dst=a) / ICMP(type=3, code=3) / IP(src=a, dst=b) / UDP(sport=1, dport=2),
        Ether(src=A_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=a, pdst="10.0.1.1", hwsrc=A_MAC),
        Ether(src=B_MAC, dst=A_MAC) / ARP(op=2, psrc="10.0.1.1", pdst=a, hwsrc=B_MAC, hwdst=A_MAC),
        Ether(src=A_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src=a, dst="255.255.255.255") / UDP(sport=68, dport=67),
        Ether(src=A_MAC, dst="01:00:5e:00:00:fb") / IP(src=a, dst="224.0.0.251") / UDP(sport=5353, dport=5353),
        Ether(src=A_MAC, dst=LLDP, type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 40),
        e / Dot1Q(vlan=100) / IP(src=a, dst=b) / TCP(sport=40000, dport=8080, flags="S"),
        e / Dot1Q(vlan=200) / IP(src=a, dst=b) / UDP(sport=1000, dport=53),
        e / Dot1Q(vlan=100) / Dot1Q(vlan=7) / IP(src=a, dst=b) / TCP(sport=22, dport=1000),
        e / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=8080, flags="S"),
        e / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1000, dport=53),
        e / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6EchoRequest(),
        e / IPv6(src="2001:db8::1", dst="2001:db9::2") / IPv6ExtHdrHopByHop() / UDP(sport=7, dport=7),
    ]
    frames += fragment(e / IP(src=a, dst=b, id=7) / UDP(sport=1500, dport=53) / Raw(b"f" * 1000), fragsize=400)
    out = [bytes(f) for f in frames]
    return out + [out[0][:14], out[0][:20], out[0][:34], out[0][:40], out[0][:12], out[22][:60], b"\x01"]


def mutants(frames, rng: random.Random) -> list[bytes]:
    """Each frame cut short at random places and with random bytes changed (headers mostly)."""
    out = []
    for f in frames:
        for _ in range(3):
            out.append(f[:rng.randrange(1, len(f) + 1)])
            g = bytearray(f)
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(min(len(g), 80))
                g[i] = rng.choice([0, 0xFF, rng.randrange(256), g[i] ^ (1 << rng.randrange(8))])
            out.append(bytes(g))
    return out + [rng.randbytes(rng.randrange(1, 200)) for _ in range(40)]


@functools.cache
def corpus() -> list[bytes]:
    frames = base_frames()
    return frames + mutants(frames, random.Random(16))


@functools.cache
def _compiled(expr: str) -> Program:
    return compile_filter(expr)


# --- the compiler against tcpdump -ddd ----------------------------------------------------------------------

def tcpdump_ddd(expr: str, *options) -> list[Insn]:
    out = subprocess.run(["tcpdump", "-y", "EN10MB", *options, "-ddd", "--", expr], capture_output=True, text=True,
                         check=True)
    lines = out.stdout.split("\n")
    n = int(lines[0])
    return [Insn(*map(int, line.split())) for line in lines[1:n + 1]]


@needs_libpcap
@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_instructions_are_tcpdumps(expr):
    assert list(compile_filter(expr).insns) == tcpdump_ddd(expr)
    assert list(compile_filter(expr, optimize=False).insns) == tcpdump_ddd(expr, "-O")


@needs_libpcap
def test_program_records_what_was_compiled():
    p = compile_filter("udp")
    assert p.expr == "udp" and len(p) == len(p.insns) and all(isinstance(i, Insn) for i in p.insns)
    assert p.insns[-1] == Insn(0x06, 0, 0, 0)                 # ret #0
    assert compile_filter("").insns == (Insn(0x06, 0, 0, 262144),)
    assert compile_filter("", snaplen=1500).insns == (Insn(0x06, 0, 0, 1500),)


@needs_libpcap
@pytest.mark.parametrize("expr, message", [
    ("tcp port", "syntax error"),
    ("host 10.0.0.300", "10.0.0.300"),
    ("port 99999", "99999"),
    ("ether host 02:00", "address"),
    ("tcp port http and", "syntax error"),
    ("ip[1] / 0 == 1", "division by zero"),
    ("a\0b", "NUL"),
])
def test_invalid_expression_raises_libpcaps_message(expr, message):
    with pytest.raises(FilterError, match=message) as e:
        compile_filter(expr)
    assert isinstance(e.value, ValueError)


@needs_libpcap
@needs_tcpdump
def test_error_text_is_what_tcpdump_prints():
    out = subprocess.run(["tcpdump", "-y", "EN10MB", "-d", "tcp port"], capture_output=True, text=True)
    with pytest.raises(FilterError) as e:
        compile_filter("tcp port")
    assert out.returncode != 0 and f"tcpdump: {e.value}" in out.stderr


# --- the interpreter against tcpdump reading a pcap ---------------------------------------------------------

@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """The corpus as a pcap, frame i at time i s, so tcpdump's output names the frames it kept."""
    path = tmp_path_factory.mktemp("bpf") / "corpus.pcap"
    packets = [Raw(f) for f in corpus()]
    for i, p in enumerate(packets):
        p.time = i
    wrpcap(str(path), packets, linktype=1)
    return path


def tcpdump_keeps(capture, expr: str, *options) -> list[int]:
    out = capture.with_name("out.pcap")
    subprocess.run(["tcpdump", *options, "-r", str(capture), "-w", str(out), "--", expr], capture_output=True,
                   check=True)
    return [meta.sec for _, meta in RawPcapReader(str(out))]


@needs_libpcap
@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_match_keeps_what_tcpdump_keeps(capture, expr):
    prog = _compiled(expr)
    ours = [i for i, f in enumerate(corpus()) if prog.match(f)]
    assert ours == tcpdump_keeps(capture, expr), prog.source


@needs_libpcap
@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_unoptimized_code_keeps_what_tcpdump_O_keeps(capture, expr):
    """tcpdump -O's code: scratch memory and ALU-on-X everywhere. It may keep fewer frames than the optimized
    code: the optimizer drops loads whose value is masked away (`ip6 net 2001:db8::/32`), and so their bounds check."""
    slow = compile_filter(expr, optimize=False)
    assert [i for i, f in enumerate(corpus()) if slow.match(f)] == tcpdump_keeps(capture, expr, "-O"), slow.source


@needs_libpcap
def test_the_corpus_exercises_every_verdict():
    """Every expression keeps some frames and drops others (the empty one aside), or the oracle test proves little."""
    for expr in EXPRESSIONS[1:]:
        kept = sum(map(_compiled(expr).match, base_frames()))
        assert 0 < kept < len(base_frames()), expr


@needs_libpcap
def test_run_returns_the_snaplen_or_zero():
    prog = compile_filter("tcp port 8080 and host 10.0.2.10", snaplen=96)
    syn, udp = base_frames()[0], base_frames()[9]
    assert prog.run(syn) == 96 and prog.match(syn) is True
    assert prog.run(udp) == 0 and prog.match(udp) is False
    assert prog.match(bytearray(syn)) and prog.match(memoryview(syn))
    assert compile_filter("").match(b"") and not compile_filter("ip").match(b"")


# --- the interpreter on its own ----------------------------------------------------------------------------

def S(code, k=0):
    return Insn(code, 0, 0, k)


def J(code, k, jt, jf):
    return Insn(code, jt, jf, k)


LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
H, B, IMM, ABS, IND, MEM, LEN, MSH = 0x08, 0x10, 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = 0, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0
JA, JEQ, JGT, JGE, JSET, X, RA = 0, 0x10, 0x20, 0x30, 0x40, 0x08, 0x10


@pytest.mark.parametrize("insns, frame, want", [
    ([S(LD | LEN), S(RET | RA)], b"abc", 3),
    ([S(LDX | LEN), S(MISC | 0x80), S(RET | RA)], b"abcd", 4),                            # txa
    ([S(LD | IMM, 7), S(MISC), S(LD | IMM, 0), S(MISC | 0x80), S(RET | RA)], b"", 7),     # tax, txa
    ([S(LD | ABS, 0), S(RET | RA)], b"\x01\x02\x03\x04", 0x01020304),
    ([S(LD | ABS, 1), S(RET | RA)], b"\x01\x02\x03\x04", 0),                             # past the end
    ([S(LD | H | ABS, 2), S(RET | RA)], b"\x01\x02\x03\x04", 0x0304),
    ([S(LD | B | ABS, 4), S(RET | RA)], b"\x01\x02\x03\x04", 0),
    ([S(LDX | B | MSH, 0), S(LD | B | IND, 0), S(RET | RA)], b"\x01" + b"\x00" * 3 + b"\x2a", 0x2a),
    ([S(LDX | B | MSH, 0), S(LD | B | IND, 1), S(RET | RA)], b"\x01" + b"\x00" * 4, 0),  # X + k past the end
    ([S(LDX | IMM, 0xFFFFFFFF), S(LD | B | IND, 2), S(RET | RA)], b"\x00" * 8, 0),        # X + k wraps: rejected
    ([S(LD | IMM, 5), S(ST, 15), S(LD | IMM, 0), S(LDX | MEM, 15), S(STX, 3), S(LD | MEM, 3), S(RET | RA)], b"", 5),
    ([S(LD | IMM, 1), S(ALU | SUB, 2), S(RET | RA)], b"", 0xFFFFFFFF),
    ([S(LD | IMM, 0x80000000), S(ALU | MUL, 4), S(ALU | ADD, 9), S(RET | RA)], b"", 9),
    ([S(LD | IMM, 1), S(ALU | NEG), S(RET | RA)], b"", 0xFFFFFFFF),
    ([S(LD | IMM, 9), S(LDX | IMM, 0), S(ALU | DIV | X), S(RET | RA)], b"", 0),          # division by X == 0
    ([S(LD | IMM, 9), S(LDX | IMM, 0), S(ALU | MOD | X), S(RET | RA)], b"", 0),
    ([S(LD | IMM, 9), S(LDX | IMM, 4), S(ALU | MOD | X), S(RET | RA)], b"", 1),
    ([S(LD | IMM, 3), S(LDX | IMM, 31), S(ALU | LSH | X), S(RET | RA)], b"", 0x80000000),
    ([S(LD | IMM, 3), S(LDX | IMM, 32), S(ALU | LSH | X), S(RET | RA)], b"", 0),
    ([S(LD | IMM, 3), S(LDX | IMM, 0xFFFFFFFF), S(ALU | RSH | X), S(RET | RA)], b"", 0),
    ([S(LD | IMM, 0xF0), S(ALU | XOR, 0xFF), S(ALU | OR, 0x100), S(ALU | AND, 0x10F), S(RET | RA)], b"", 0x10F),
    ([S(JMP | JA, 1), S(RET, 1), S(RET, 2)], b"", 2),
    ([S(LD | IMM, 6), J(JMP | JSET, 4, 0, 1), S(RET, 1), S(RET, 2)], b"", 1),
    ([S(LD | IMM, 6), S(LDX | IMM, 6), J(JMP | JGE | X, 0, 1, 0), S(RET, 1), S(RET, 2)], b"", 2),
    ([S(LD | IMM, 6), S(LDX | IMM, 6), J(JMP | JGT | X, 0, 1, 0), S(RET, 1), S(RET, 2)], b"", 1),
])
def test_classic_semantics(insns, frame, want):
    prog = Program(insns)
    assert prog.run(frame) == want, prog.source
    assert prog.match(frame) is (want != 0)


@pytest.mark.parametrize("insns, message", [
    ([], "length"),
    ([S(LD | IMM, 1)], "does not end in RET"),
    ([S(JMP | JA, 1), S(RET)], "jump out of range"),
    ([J(JMP | JEQ, 0, 1, 0), S(RET)], "jump out of range"),
    ([S(LD | MEM, 16), S(RET)], "memory slot"),
    ([S(ST, 16), S(RET)], "memory slot"),
    ([S(ALU | DIV, 0), S(RET)], "division by constant 0"),
    ([S(ALU | MOD, 0), S(RET)], "division by constant 0"),
    ([S(ALU | LSH, 32), S(RET)], "shift"),
    ([S(RET | X), S(RET)], "unknown opcode"),                                           # RET X: not in Linux
    ([S(0x07 | 0x40), S(RET)], "unknown opcode"),
    ([S(LD | ABS, 0xFFFFF000), S(RET)], "negative offsets"),                            # SKF_AD_OFF: ancillary
])
def test_checker_refuses_what_the_kernel_refuses(insns, message):
    with pytest.raises(FilterError, match=message):
        Program(insns)


def test_a_deep_program_is_split_into_functions():
    """A chain of 150 branches whose both arms go on: deeper than Python's nesting, so some become functions."""
    insns = [S(LD | LEN)]
    for i in range(150):                      # if A > i go on, else return i + 1000
        insns += [J(JMP | JGT, i, 2, 0), S(LD | IMM, i + 1000), S(RET | RA)]
    insns.append(S(RET, 7))
    prog = Program(insns)
    assert prog.source.count("def ") > 1
    assert [prog.run(b"x" * n) for n in (0, 1, 50, 149, 150, 1500)] == [1000, 1001, 1050, 1149, 7, 7]


@needs_libpcap
def test_a_long_expression():
    prog = compile_filter(" or ".join(f"port {p}" for p in range(1, 200)))
    frames = base_frames()
    assert prog.match(frames[6]) and prog.match(frames[9]) and not prog.match(frames[0])


# --- properties ---------------------------------------------------------------------------------------------

@needs_libpcap
@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=200), which=st.sampled_from(EXPRESSIONS))
def test_random_frames_never_raise(frame, which):
    prog = _compiled(which)
    verdict = prog.match(frame)
    assert verdict is True or verdict is False
    assert (prog.run(frame) != 0) is verdict


def _libpcap_bpf_filter(insns, frame: bytes) -> int:
    """libpcap's own user-space interpreter (bpf_filter(3PCAP)) as the oracle."""
    lib = bpf._libpcap()
    lib.bpf_filter.restype = ctypes.c_uint
    lib.bpf_filter.argtypes = [ctypes.POINTER(bpf._bpf_insn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    prog = (bpf._bpf_insn * len(insns))(*[bpf._bpf_insn(*i) for i in insns])
    return lib.bpf_filter(prog, frame, len(frame), len(frame))


_U32 = st.one_of(st.integers(0, 64), st.sampled_from([0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]), st.integers(0, 2**32 - 1))
_STATEMENTS = sorted(c for c in bpf._CODES if c & 0x07 not in (JMP, RET))


@st.composite
def programs(draw):
    """A valid classic program: the memory stored first (bpf_filter() reads it uninitialized, the kernel
    refuses reading it before a store), then random statements and forward jumps, ending in RETs."""
    n = draw(st.integers(1, 24))
    body = [S(ST, i) for i in range(16)]
    for _ in range(n):
        if draw(st.booleans()):
            code = draw(st.sampled_from(_STATEMENTS))
            if code & 0x07 in (LD, LDX) and code & 0xE0 == ABS:
                k = draw(st.integers(0, 80))
            elif code & 0x07 in (LD, LDX, ST, STX) and code & 0xE0 == MEM or code in (ST, STX):
                k = draw(st.integers(0, 15))
            elif code in (ALU | LSH, ALU | RSH):
                k = draw(st.integers(0, 31))
            elif code in (ALU | DIV, ALU | MOD):
                k = draw(st.integers(1, 2**32 - 1))
            else:
                k = draw(_U32)
            body.append(S(code, k))
        else:
            code = JMP | draw(st.sampled_from([JEQ, JGT, JGE, JSET])) | draw(st.sampled_from([0, X]))
            body.append(Insn(code, draw(st.integers(0, 3)), draw(st.integers(0, 3)), draw(_U32)))
    tail = [S(RET | RA), S(RET, draw(_U32)), S(RET, 0), S(RET | RA)]
    return body + tail


@needs_libpcap
@settings(max_examples=400, deadline=None)
@given(insns=programs(), frame=st.binary(max_size=96))
def test_interpreter_agrees_with_libpcaps_bpf_filter(insns, frame):
    prog = Program(insns)
    assert prog.run(frame) == _libpcap_bpf_filter(insns, frame), prog.source
