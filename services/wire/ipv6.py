"""IPv6 header (RFC 8200) and addresses (RFC 4291), as net/ipv6 reads them.

`parse` checks what ip6_rcv_core() checks, in its order; the extension
headers that may follow are in ipv6_exthdrs.py.

Addresses are ints (128 bits), as the IPv4 code keeps its 32-bit ones: a prefix
match is a shift and a compare, a FIB or neighbour table keys on them as it
does on IPv4's, and the pseudo-header sum is a sum of ints. aton()/ntoa()
convert at the edges (topology files, the SDK's 4-tuples, the CLI).
"""
import socket
import struct
from typing import NamedTuple

from . import Malformed

# Next header values (include/net/ipv6.h)
NEXTHDR_HOP = 0
NEXTHDR_TCP = 6
NEXTHDR_UDP = 17
NEXTHDR_IPV6 = 41
NEXTHDR_ROUTING = 43
NEXTHDR_FRAGMENT = 44
NEXTHDR_ESP = 50
NEXTHDR_AUTH = 51
NEXTHDR_ICMP = 58
NEXTHDR_NONE = 59
NEXTHDR_DEST = 60
IPPROTO_ICMPV6 = NEXTHDR_ICMP

IPV6_HLEN = 40
IPV6_MIN_MTU = 1280
IPV6_MAXPLEN = 65535
IPV6_DEFAULT_HOPLIMIT = 64                 # net.ipv6.conf.*.hop_limit
IPV6_FLOWLABEL_MASK = 0xFFFFF

_HDR = struct.Struct("!IHBB16s16s")


class Ipv6Repr(NamedTuple):
    tclass: int
    flow_label: int
    payload_len: int
    nexthdr: int
    hop_limit: int
    src: int
    dst: int


# ---------------------------------------------------------------- the fixed header

def parse(buf, offset: int = 0, *, loopback: bool = False) -> Ipv6Repr:
    """ip6_rcv_core()'s checks in its order: room for the header (IP_INHDR), the
    version (UNHANDLED_PROTO, the reason the kernel gives, though it counts
    InHdrErrors), the addresses RFC 4291 refuses (IP_INHDR), the payload length
    against the bytes there are (PKT_TOO_SMALL). `loopback`: it came in on lo,
    where ::1 and interface-local multicast are allowed. A payload length of 0
    before a hop-by-hop header is a jumbogram's, whose length is in an option."""
    avail = len(buf) - offset
    if avail < IPV6_HLEN:
        raise Malformed("IP_INHDR", f"{avail} bytes, shorter than an IPv6 header")
    vtf, plen, nexthdr, hop_limit, src, dst = _HDR.unpack_from(buf, offset)
    if vtf >> 28 != 6:
        raise Malformed("UNHANDLED_PROTO", f"version {vtf >> 28} in an IPv6 packet")
    src, dst = int.from_bytes(src, "big"), int.from_bytes(dst, "big")
    _check_addresses(src, dst, loopback)
    if (plen or nexthdr != NEXTHDR_HOP) and IPV6_HLEN + plen > avail:
        raise Malformed("PKT_TOO_SMALL", f"payload length {plen} but only {avail - IPV6_HLEN} bytes")
    return Ipv6Repr((vtf >> 20) & 0xFF, vtf & IPV6_FLOWLABEL_MASK, plen, nexthdr, hop_limit, src, dst)


def _check_addresses(src: int, dst: int, loopback: bool):
    if not loopback and IN6ADDR_LOOPBACK in (src, dst):
        raise Malformed("IP_INHDR", "::1 on a device other than lo (RFC 4291 2.5.3)")
    if is_multicast(dst) and mc_scope(dst) == 1 and not loopback:
        raise Malformed("IP_INHDR", "interface-local multicast from another node (RFC 4291 errata 3480)")
    if is_multicast(dst) and mc_scope(dst) == 0:
        raise Malformed("IP_INHDR", "multicast destination of reserved scope 0 (RFC 4291 2.7)")
    if is_multicast(src):
        raise Malformed("IP_INHDR", "multicast source address (RFC 4291 2.7)")


def payload_end(buf, offset: int, r: Ipv6Repr) -> int:
    """Where the payload ends: the header's length (pskb_trim_rcsum() cuts the
    link layer's padding), or the buffer's end for a jumbogram (no length
    before a hop-by-hop header, as ip6_rcv_core() reads it)."""
    if r.payload_len or r.nexthdr != NEXTHDR_HOP:
        return offset + IPV6_HLEN + r.payload_len
    return len(buf)


def header(src: int, dst: int, nexthdr: int, payload_len: int, *, hop_limit: int = IPV6_DEFAULT_HOPLIMIT,
           tclass: int = 0, flow_label: int = 0) -> bytes:
    if not 0 <= payload_len <= IPV6_MAXPLEN:
        raise ValueError(f"payload of {payload_len} bytes needs a jumbogram, which is not sent")
    vtf = (6 << 28) | (tclass << 20) | (flow_label & IPV6_FLOWLABEL_MASK)
    return _HDR.pack(vtf, payload_len, nexthdr, hop_limit, src.to_bytes(16, "big"), dst.to_bytes(16, "big"))


def emit(r: Ipv6Repr, payload: bytes) -> bytes:
    """Writes `r` in front of `payload`; the payload length is computed."""
    return header(r.src, r.dst, r.nexthdr, len(payload), hop_limit=r.hop_limit, tclass=r.tclass,
                  flow_label=r.flow_label) + payload


def with_payload_len(hdr: bytes, payload_len: int) -> bytes:
    """`hdr` with a new payload length: a fragment's header, or a reassembled one's."""
    return hdr[:4] + payload_len.to_bytes(2, "big") + hdr[6:]


def decrease_hop_limit(hdr: bytes) -> bytes:
    """ip6_forward()'s hop_limit--: no checksum to mend in IPv6."""
    return hdr[:7] + bytes((hdr[7] - 1,)) + hdr[8:]


def dsfield(buf, offset: int = 0) -> int:
    """The traffic class (ipv6_get_dsfield()) without parsing the rest."""
    return (int.from_bytes(buf[offset:offset + 2], "big") >> 4) & 0xFF


# ---------------------------------------------------------------- addresses

def aton(text: str) -> int:
    """inet_pton(AF_INET6) to an int; ValueError for anything else (a zone
    index such as %eth0 belongs to the socket address, not the address)."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, TypeError):
        raise ValueError(f"{text!r} is not an IPv6 address") from None


def ntoa(addr: int) -> str:
    """RFC 5952 text, as inet_ntop() and iproute2 print it."""
    return socket.inet_ntop(socket.AF_INET6, addr.to_bytes(16, "big"))


def parse_prefix(text: str) -> tuple[int, int]:
    """ADDR[/PLEN] as the tools write it: (address, prefix length, 128 if none). Raises ValueError."""
    addr, slash, plen = text.partition("/")
    if not slash:
        return aton(addr), 128
    if not plen.isdigit() or int(plen) > 128:
        raise ValueError(f"bad prefix length in {text!r}")
    return aton(addr), int(plen)


def prefix_mask(plen: int) -> int:
    return ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)


IN6ADDR_ANY = 0
IN6ADDR_LOOPBACK = 1
IN6ADDR_LINKLOCAL_ALLNODES = aton("ff02::1")
IN6ADDR_LINKLOCAL_ALLROUTERS = aton("ff02::2")
IN6ADDR_MLDV2_ROUTERS = aton("ff02::16")          # where MLDv2 reports go
LINKLOCAL_PREFIX = aton("fe80::")
_SOLICITED_NODE = aton("ff02::1:ff00:0")


def eui64(mac: bytes) -> int:
    """addrconf_ifid_eui48(): the interface identifier of an Ethernet address,
    ff:fe in the middle and the universal/local bit flipped (RFC 4291 A)."""
    return int.from_bytes(bytes((mac[0] ^ 2,)) + mac[1:3] + b"\xff\xfe" + mac[3:6], "big")


def link_local(mac: bytes) -> int:
    """The link-local address Linux gives a device with net.ipv6.conf.*.addr_gen_mode 0 (EUI-64)."""
    return LINKLOCAL_PREFIX | eui64(mac)


def solicited_node(addr: int) -> int:
    """addrconf_addr_solict_mult(): ff02::1:ffXX:XXXX, the group an NS for `addr` is sent to."""
    return _SOLICITED_NODE | (addr & 0xFFFFFF)


def multicast_mac(addr: int) -> bytes:
    """ipv6_eth_mc_map(): 33:33 and the group's last 32 bits (RFC 2464 7)."""
    return b"\x33\x33" + (addr & 0xFFFFFFFF).to_bytes(4, "big")


def v4mapped(addr4: int) -> int:
    """::ffff:a.b.c.d, how a dual-stack socket sees an IPv4 peer."""
    return 0xFFFF00000000 | addr4


# ipv6_addr_type() flags and the scopes of __ipv6_addr_type() (include/net/ipv6.h)
IPV6_ADDR_ANY = 0x0000
IPV6_ADDR_UNICAST = 0x0001
IPV6_ADDR_MULTICAST = 0x0002
IPV6_ADDR_LOOPBACK = 0x0010
IPV6_ADDR_LINKLOCAL = 0x0020
IPV6_ADDR_SITELOCAL = 0x0040
IPV6_ADDR_COMPATV4 = 0x0080
IPV6_ADDR_MAPPED = 0x1000
IPV6_ADDR_SCOPE_NODELOCAL = 0x01
IPV6_ADDR_SCOPE_LINKLOCAL = 0x02
IPV6_ADDR_SCOPE_SITELOCAL = 0x05
IPV6_ADDR_SCOPE_ORGLOCAL = 0x08
IPV6_ADDR_SCOPE_GLOBAL = 0x0E

_GLOBAL = IPV6_ADDR_SCOPE_GLOBAL << 16
_MC_SCOPE_FLAGS = {IPV6_ADDR_SCOPE_NODELOCAL: IPV6_ADDR_LOOPBACK, IPV6_ADDR_SCOPE_LINKLOCAL: IPV6_ADDR_LINKLOCAL,
                   IPV6_ADDR_SCOPE_SITELOCAL: IPV6_ADDR_SITELOCAL}


def _addr_type_scope(addr: int) -> int:
    """__ipv6_addr_type(): the type flags, and the scope in bits 16 and up."""
    top = addr >> 96
    if top >> 29 not in (0, 7):
        return IPV6_ADDR_UNICAST | _GLOBAL
    if top >> 24 == 0xFF:
        scope = mc_scope(addr)
        return IPV6_ADDR_MULTICAST | _MC_SCOPE_FLAGS.get(scope, 0) | scope << 16
    if top >> 22 == 0xFE80 >> 6:
        return IPV6_ADDR_LINKLOCAL | IPV6_ADDR_UNICAST | IPV6_ADDR_SCOPE_LINKLOCAL << 16
    if top >> 22 == 0xFEC0 >> 6:
        return IPV6_ADDR_SITELOCAL | IPV6_ADDR_UNICAST | IPV6_ADDR_SCOPE_SITELOCAL << 16
    if top >> 25 == 0xFC >> 1:                     # unique local, RFC 4193
        return IPV6_ADDR_UNICAST | _GLOBAL
    if addr >> 32 == 0:
        if addr == 0:
            return IPV6_ADDR_ANY
        if addr == 1:
            return IPV6_ADDR_LOOPBACK | IPV6_ADDR_UNICAST | IPV6_ADDR_SCOPE_LINKLOCAL << 16
        return IPV6_ADDR_COMPATV4 | IPV6_ADDR_UNICAST | _GLOBAL
    if addr >> 32 == 0xFFFF:                       # ::ffff:a.b.c.d
        return IPV6_ADDR_MAPPED | _GLOBAL
    return IPV6_ADDR_UNICAST | _GLOBAL


def addr_type(addr: int) -> int:
    """ipv6_addr_type(): IPV6_ADDR_* flags (UNICAST, MULTICAST, LINKLOCAL, LOOPBACK, ...)."""
    return _addr_type_scope(addr) & 0xFFFF


def addr_src_scope(addr: int) -> int:
    """ipv6_addr_src_scope(): the scope source address selection compares
    (IPV6_ADDR_SCOPE_*; -1 for ::). ::1 is link-local here, as in Linux."""
    t = _addr_type_scope(addr)
    return -1 if t == IPV6_ADDR_ANY else t >> 16


def mc_scope(addr: int) -> int:
    """IPV6_ADDR_MC_SCOPE(): the scope nibble of a multicast address."""
    return (addr >> 112) & 0x0F


def is_multicast(addr: int) -> bool:
    return addr >> 120 == 0xFF


def is_linklocal(addr: int) -> bool:
    """Link-local unicast, fe80::/10."""
    return addr >> 118 == 0xFE80 >> 6


def is_solicited_multicast(addr: int) -> bool:
    """ipv6_addr_is_solict_mult(): within ff02::1:ff00:0/104."""
    return addr >> 24 == _SOLICITED_NODE >> 24


def is_v4mapped(addr: int) -> bool:
    return addr >> 32 == 0xFFFF
