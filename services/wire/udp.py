"""UDP header (RFC 768), checksummed over the IPv4 pseudo-header, or the IPv6
one with pseudo_sum=checksum.pseudo_header_sum6 (IPv6's rule against a zero
checksum is udpv6_rcv()'s to apply: a socket with UDP_NO_CHECK6_RX allows it)."""
import struct
from typing import NamedTuple

from . import Malformed
from .checksum import csum_partial, csum_fold, pseudo_header_sum
from .ipv4 import IPPROTO_UDP

UDP_HLEN = 8
_HDR = struct.Struct("!HHHH")


class UdpRepr(NamedTuple):
    sport: int
    dport: int
    length: int
    checksum: int


def parse(buf, offset: int, end: int, saddr: int, daddr: int, pseudo_sum=pseudo_header_sum) -> UdpRepr:
    """Checks as __udp4_lib_rcv() does: no room for the header is a drop the
    kernel gives no reason for (NOT_SPECIFIED); a length field larger than the IP
    payload or smaller than the header is PKT_TOO_SMALL; a wrong non-zero
    checksum is UDP_CSUM. `end` is where the IP payload ends (the IP total length)."""
    if end - offset < UDP_HLEN:
        raise Malformed("NOT_SPECIFIED", f"UDP datagram of {end - offset} bytes, shorter than its header")
    sport, dport, length, check = _HDR.unpack_from(buf, offset)
    if length > end - offset or length < UDP_HLEN:
        raise Malformed("PKT_TOO_SMALL", f"UDP length {length} with {end - offset} bytes of IP payload")
    pseudo = pseudo_sum(saddr, daddr, IPPROTO_UDP, length)
    if check and csum_partial(buf[offset:offset + length], pseudo) != 0xFFFF:
        raise Malformed("UDP_CSUM", "bad UDP checksum")
    return UdpRepr(sport, dport, length, check)


def emit(sport: int, dport: int, payload: bytes, saddr: int, daddr: int, pseudo_sum=pseudo_header_sum) -> bytes:
    length = UDP_HLEN + len(payload)
    hdr = _HDR.pack(sport, dport, length, 0)
    check = csum_fold(csum_partial(payload, csum_partial(hdr, pseudo_sum(saddr, daddr, IPPROTO_UDP, length))))
    return _HDR.pack(sport, dport, length, check or 0xFFFF) + payload
