"""TCP header (RFC 9293) with its options: MSS, window scale, SACK-permitted,
SACK blocks, timestamps (RFC 7323, RFC 2018)."""
import struct
from typing import NamedTuple

from . import Malformed
from .checksum import csum_fold, csum_partial, pseudo_header_sum
from .ipv4 import IPPROTO_TCP

TCP_HLEN = 20
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
FLAG_NAMES = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))

TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP = 0, 1, 2, 3, 4, 5, 8

_HDR = struct.Struct("!HHIIBBHHH")


class TcpOptions(NamedTuple):
    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    sack: tuple = ()                     # ((left, right), ...)
    ts: tuple | None = None              # (tsval, tsecr)


class TcpRepr(NamedTuple):
    sport: int
    dport: int
    seq: int
    ack: int
    doff: int                            # header length in bytes
    flags: int
    window: int
    urg: int
    options: TcpOptions


def parse_options(buf, start: int, end: int) -> TcpOptions:
    """tcp_parse_options(): malformed options end the parse, as in Linux."""
    mss = wscale = ts = None
    sack_perm, sack = False, ()
    i = start
    while i < end:
        kind = buf[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = buf[i + 1]
        if size < 2 or i + size > end:
            break
        if kind == TCPOPT_MSS and size == 4:
            mss = int.from_bytes(buf[i + 2:i + 4], "big")
        elif kind == TCPOPT_WINDOW and size == 3:
            wscale = min(buf[i + 2], 14)           # RFC 7323: larger is taken as 14
        elif kind == TCPOPT_SACK_PERM and size == 2:
            sack_perm = True
        elif kind == TCPOPT_TIMESTAMP and size == 10:
            ts = struct.unpack_from("!II", buf, i + 2)
        elif kind == TCPOPT_SACK and size >= 10 and (size - 2) % 8 == 0:
            sack = tuple(struct.unpack_from("!II", buf, i + 2 + 8 * n) for n in range((size - 2) // 8))
        i += size
    return TcpOptions(mss, wscale, sack_perm, sack, ts)


def parse(buf, offset: int, end: int, saddr: int, daddr: int, check: bool = True,
          pseudo_sum=pseudo_header_sum) -> TcpRepr:
    """tcp_v4_rcv()'s header checks: room for the header (NOT_SPECIFIED when
    there is none, PKT_TOO_SMALL for a data offset below five words or beyond
    the segment) and the checksum over the pseudo-header (TCP_CSUM; IPv6's with
    pseudo_sum=checksum.pseudo_header_sum6, as tcp_v6_rcv() checks it)."""
    n = end - offset
    if n < TCP_HLEN:
        raise Malformed("NOT_SPECIFIED", f"TCP segment of {n} bytes, shorter than its header")
    sport, dport, seq, ack, off, flags, window, _check, urg = _HDR.unpack_from(buf, offset)
    doff = (off >> 4) * 4
    if doff < TCP_HLEN or doff > n:
        raise Malformed("PKT_TOO_SMALL", f"TCP data offset {doff} with {n} bytes")
    if check and csum_partial(buf[offset:end], pseudo_sum(saddr, daddr, IPPROTO_TCP, n)) != 0xFFFF:
        raise Malformed("TCP_CSUM", "bad TCP checksum")
    opts = parse_options(buf, offset + TCP_HLEN, offset + doff) if doff > TCP_HLEN else TcpOptions()
    return TcpRepr(sport, dport, seq, ack, doff, flags, window, urg, opts)


def options(mss: int | None = None, sack_perm: bool = False, ts: tuple | None = None, wscale: int | None = None,
            sack: tuple = ()) -> bytes:
    """The options in the order and padding Linux writes them (tcp_options_write())."""
    out = b""
    if mss is not None:
        out += struct.pack("!BBH", TCPOPT_MSS, 4, mss)
    if ts is not None:
        out += (struct.pack("!BB", TCPOPT_SACK_PERM, 2) if sack_perm else b"\x01\x01")
        out += struct.pack("!BBII", TCPOPT_TIMESTAMP, 10, *ts)
    elif sack_perm:
        out += b"\x01\x01" + struct.pack("!BB", TCPOPT_SACK_PERM, 2)
    if wscale is not None:
        out += struct.pack("!BBBB", TCPOPT_NOP, TCPOPT_WINDOW, 3, wscale)
    if sack:
        out += struct.pack("!BBBB", TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 2 + 8 * len(sack))
        out += b"".join(struct.pack("!II", left, right) for left, right in sack)
    return out


def emit(sport: int, dport: int, seq: int, ack: int, flags: int, window: int, opts: bytes, payload: bytes,
         saddr: int, daddr: int, pseudo_sum=pseudo_header_sum) -> bytes:
    """A segment with a correct checksum (over the IPv6 pseudo-header with
    pseudo_sum=checksum.pseudo_header_sum6). `opts` must be a multiple of 4 bytes."""
    doff = TCP_HLEN + len(opts)
    hdr = _HDR.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (doff // 4) << 4, flags, window, 0, 0) + opts
    length = doff + len(payload)
    check = csum_fold(csum_partial(payload, csum_partial(hdr, pseudo_sum(saddr, daddr, IPPROTO_TCP, length))))
    return hdr[:16] + check.to_bytes(2, "big") + hdr[18:] + payload


def flags_str(flags: int) -> str:
    """tcpdump's spelling: S, S., P., F., R., ..."""
    return "".join(c for bit, c in FLAG_NAMES if flags & bit and bit != ACK) + ("." if flags & ACK else "")
