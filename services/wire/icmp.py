"""ICMP for IPv4 (RFC 792)."""
import struct
from typing import NamedTuple

from . import Malformed
from .checksum import csum_partial, inet_checksum

ICMP_ECHOREPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_REDIRECT = 5
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETERPROB = 12

# ICMP_DEST_UNREACH codes
ICMP_NET_UNREACH = 0
ICMP_HOST_UNREACH = 1
ICMP_PROT_UNREACH = 2
ICMP_PORT_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMP_PKT_FILTERED = 13
# ICMP_TIME_EXCEEDED codes
ICMP_EXC_TTL = 0
ICMP_EXC_FRAGTIME = 1

ICMP_HLEN = 8
ERROR_TYPES = (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB)

_HDR = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")


class IcmpRepr(NamedTuple):
    type: int
    code: int
    rest: int           # the 32-bit "rest of header": id<<16|seq for echo, unused/MTU for errors

    @property
    def echo_id(self) -> int:
        return self.rest >> 16

    @property
    def echo_seq(self) -> int:
        return self.rest & 0xFFFF


def parse(buf, offset: int = 0, end: int | None = None) -> IcmpRepr:
    """Checks in icmp_rcv()'s order: the checksum (ICMP_CSUM), then room for the
    header (a drop the kernel gives no reason for: NOT_SPECIFIED)."""
    end = len(buf) if end is None else end
    if csum_partial(buf[offset:end]) != 0xFFFF:
        raise Malformed("ICMP_CSUM", "bad ICMP checksum")
    if end - offset < ICMP_HLEN:
        raise Malformed("NOT_SPECIFIED", f"ICMP message of {end - offset} bytes, shorter than its header")
    type_, code, _check, rest = _HDR.unpack_from(buf, offset)
    return IcmpRepr(type_, code, rest)


def emit(r: IcmpRepr, payload: bytes) -> bytes:
    hdr = _HDR.pack(r.type, r.code, 0, r.rest)
    check = inet_checksum(payload, csum_partial(hdr))
    return hdr[:2] + check.to_bytes(2, "big") + hdr[4:] + payload


def echo(type_: int, ident: int, seq: int, payload: bytes) -> bytes:
    return emit(IcmpRepr(type_, 0, (ident << 16) | seq), payload)


def is_error(type_: int) -> bool:
    return type_ in ERROR_TYPES


class Quoted(NamedTuple):
    """What an ICMP error quotes (RFC 792: the IP header and at least the first
    8 bytes of the datagram): the flow the error is about."""
    src: int
    dst: int
    proto: int
    l4: int            # offset of the quoted transport header in the buffer
    head: bytes        # its first 8 bytes

    @property
    def ports(self) -> tuple[int, int]:
        """UDP's and TCP's source and destination ports."""
        return int.from_bytes(self.head[0:2], "big"), int.from_bytes(self.head[2:4], "big")

    @property
    def echo(self) -> tuple[int, int]:
        """A quoted ICMP message's type and, for an echo, its identifier."""
        return self.head[0], int.from_bytes(self.head[4:6], "big")


def quoted(buf, offset: int) -> Quoted:
    """The one decode of an ICMP error's quoted datagram for udp_err, ping_err,
    tcp_v4_err: its IP header and the first 8 bytes after it (icmp_unreach()
    checks they are there; so does this, whoever calls it)."""
    if len(buf) < offset + 20:
        raise Malformed("PKT_TOO_SMALL", "the quoted IP header is cut short")
    ihl = (buf[offset] & 0x0F) * 4
    l4 = offset + ihl
    if ihl < 20 or len(buf) < l4 + 8:
        raise Malformed("PKT_TOO_SMALL", "the quoted datagram is cut short")
    return Quoted(int.from_bytes(buf[offset + 12:offset + 16], "big"),
                  int.from_bytes(buf[offset + 16:offset + 20], "big"), buf[offset + 9], l4,
                  bytes(buf[l4:l4 + ICMP_HLEN]).ljust(ICMP_HLEN, b"\0"))
