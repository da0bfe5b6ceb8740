"""ARP for IPv4 over Ethernet (RFC 826)."""
import struct
from typing import NamedTuple

from . import Malformed

ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
ARP_LEN = 28

_ARP = struct.Struct("!HHBBH6sI6sI")


class ArpRepr(NamedTuple):
    op: int
    sha: bytes     # sender hardware address
    spa: int       # sender protocol address
    tha: bytes
    tpa: int


def parse(buf, offset: int = 0) -> ArpRepr:
    if len(buf) - offset < ARP_LEN:
        raise Malformed("PKT_TOO_SMALL", f"ARP of {len(buf) - offset} bytes, need {ARP_LEN}")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf, offset)
    if htype != ARPHRD_ETHER or ptype != 0x0800 or hlen != 6 or plen != 4:
        raise Malformed("INVALID_PROTO", f"ARP for hardware {htype}/{hlen} protocol {ptype:#06x}/{plen}")
    return ArpRepr(op, sha, spa, tha, tpa)


def emit(r: ArpRepr) -> bytes:
    return _ARP.pack(ARPHRD_ETHER, 0x0800, 6, 4, r.op, r.sha, r.spa, r.tha, r.tpa)
