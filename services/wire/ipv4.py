"""IPv4 header (RFC 791). `parse` checks in the order ip_rcv_core() does and
raises Malformed with the drop reason the kernel uses for each failure."""
import socket
import struct
from typing import NamedTuple

from . import Malformed
from .checksum import csum_partial, inet_checksum

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFSET = 0x1FFF
IPV4_HLEN = 20
IP_MAXPACKET = 65535

INADDR_ANY = 0
INADDR_BROADCAST = 0xFFFFFFFF

_HDR = struct.Struct("!BBHHHBBHII")


class Ipv4Repr(NamedTuple):
    ihl: int           # header length in bytes
    tos: int
    total_len: int
    ident: int
    frag_off: int      # flags and fragment offset, as on the wire
    ttl: int
    proto: int
    src: int
    dst: int

    @property
    def df(self) -> bool:
        return bool(self.frag_off & IP_DF)

    @property
    def is_fragment(self) -> bool:
        return bool(self.frag_off & (IP_MF | IP_OFFSET))


def parse(buf, offset: int = 0) -> Ipv4Repr:
    avail = len(buf) - offset
    if avail < IPV4_HLEN:
        raise Malformed("IP_INHDR", f"{avail} bytes, shorter than an IPv4 header")
    vihl, tos, total_len, ident, frag_off, ttl, proto, _check, src, dst = _HDR.unpack_from(buf, offset)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < IPV4_HLEN:
        raise Malformed("IP_INHDR", f"version {vihl >> 4}, header length {ihl}")
    if avail < ihl:
        raise Malformed("IP_INHDR", f"header length {ihl} but only {avail} bytes")
    if csum_partial(buf[offset:offset + ihl]) != 0xFFFF:
        raise Malformed("IP_CSUM", "bad header checksum")
    if total_len > avail:
        raise Malformed("PKT_TOO_SMALL", f"total length {total_len} but only {avail} bytes")
    if total_len < ihl:
        raise Malformed("IP_INHDR", f"total length {total_len} shorter than its header ({ihl})")
    return Ipv4Repr(ihl, tos, total_len, ident, frag_off, ttl, proto, src, dst)


def header(src: int, dst: int, proto: int, payload_len: int, *, ttl: int = 64, tos: int = 0,
           ident: int = 0, df: bool = False) -> bytes:
    """A 20-byte header with a correct checksum."""
    hdr = _HDR.pack(0x45, tos, IPV4_HLEN + payload_len, ident, IP_DF if df else 0, ttl, proto, 0, src, dst)
    check = inet_checksum(hdr)
    return hdr[:10] + check.to_bytes(2, "big") + hdr[12:]


def emit(r: Ipv4Repr, payload: bytes) -> bytes:
    """Writes `r` (without options) in front of `payload`; length and checksum are computed."""
    hdr = _HDR.pack(0x45, r.tos, IPV4_HLEN + len(payload), r.ident, r.frag_off, r.ttl, r.proto, 0, r.src, r.dst)
    check = inet_checksum(hdr)
    return hdr[:10] + check.to_bytes(2, "big") + hdr[12:] + payload


def with_length(hdr: bytes, total_len: int, frag_off: int) -> bytes:
    """`hdr` (options and all) with a new total length and flags/fragment
    offset, and its checksum recomputed: a fragment's header, or a reassembled one's."""
    h = hdr[:2] + total_len.to_bytes(2, "big") + hdr[4:6] + frag_off.to_bytes(2, "big") + hdr[8:10] + b"\0\0" + hdr[12:]
    return h[:10] + inet_checksum(h).to_bytes(2, "big") + h[12:]


def decrease_ttl(hdr: bytes) -> bytes:
    """ip_decrease_ttl(): TTL minus one with the checksum updated incrementally (RFC 1624)."""
    check = int.from_bytes(hdr[10:12], "big") + 0x0100
    check = (check + (check >= 0xFFFF)) & 0xFFFF      # as the kernel folds it: never 0xFFFF
    return hdr[:8] + bytes((hdr[8] - 1,)) + hdr[9:10] + check.to_bytes(2, "big") + hdr[12:]


# The ECN field, the low two bits of the DS field (RFC 3168; include/net/inet_ecn.h)
INET_ECN_NOT_ECT, INET_ECN_ECT_1, INET_ECN_ECT_0, INET_ECN_CE = 0, 1, 2, 3
INET_ECN_MASK = 3


def dsfield(buf, offset: int = 0) -> int:
    """The DS field (TOS byte) of the header at `offset`, without parsing the rest."""
    return buf[offset + 1]


def set_ce(hdr: bytes) -> bytes | None:
    """IP_ECN_set_ce(): mark Congestion Experienced on an ECN-capable packet, the
    checksum updated; None for a packet that is not ECN-capable (it must be dropped)."""
    ecn = hdr[1] & INET_ECN_MASK
    if ecn == INET_ECN_NOT_ECT:
        return None
    if ecn == INET_ECN_CE:
        return hdr
    ihl = (hdr[0] & 0x0F) * 4
    head = hdr[:1] + bytes((hdr[1] | INET_ECN_CE,)) + hdr[2:10] + b"\0\0" + hdr[12:ihl]
    return head[:10] + inet_checksum(head).to_bytes(2, "big") + head[12:] + hdr[ihl:]


def aton(text: str) -> int:
    """Dotted quad to integer; ValueError for anything else (inet_aton's
    shorthand forms such as "10.1" are refused, as inet_pton refuses them)."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError):
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def ntoa(addr: int) -> str:
    return socket.inet_ntoa(addr.to_bytes(4, "big"))


def parse_prefix(text: str) -> tuple[int, int]:
    """ADDR[/PLEN] as the tools write it: (address, prefix length, 32 if none).
    Raises ValueError."""
    addr, slash, plen = text.partition("/")
    n = int(plen) if slash and plen.isdigit() else 32 if not slash else -1
    if not 0 <= n <= 32:
        raise ValueError(f"bad prefix length in {text!r}")
    return aton(addr), n


def prefix_mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF


def is_multicast(addr: int) -> bool:
    return addr >> 28 == 0xE


def is_loopback(addr: int) -> bool:
    return addr >> 24 == 127


def is_zeronet(addr: int) -> bool:
    return addr >> 24 == 0
