"""The Internet checksum (RFC 1071).

The one's-complement sum of 16-bit big-endian words equals the whole buffer,
read as one big integer, modulo 0xFFFF (2**16 is 1 modulo 0xFFFF), which
CPython computes in C: much faster than summing words in Python.
"""
import struct

_M = 0xFFFF


def csum_partial(data, initial: int = 0) -> int:
    """One's-complement sum of `data` (odd length padded with a zero byte),
    folded to 16 bits, added to a previous partial sum `initial`."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    n = int.from_bytes(data, "big") + initial
    r = n % _M
    return _M if r == 0 and n else r


def csum_fold(partial: int) -> int:
    """The checksum field value for a folded partial sum."""
    return ~partial & _M


def inet_checksum(data, initial: int = 0) -> int:
    return csum_fold(csum_partial(data, initial))


def pseudo_header_sum(saddr: int, daddr: int, proto: int, length: int) -> int:
    """csum_tcpudp_nofold(): the IPv4 pseudo-header as a partial sum."""
    return csum_partial(struct.pack("!IIHH", saddr, daddr, proto, length))


def verify(data, initial: int = 0) -> bool:
    """True when a buffer that includes its checksum field sums to all ones."""
    return csum_partial(data, initial) == _M


def pseudo_header_sum6(saddr: int, daddr: int, proto: int, length: int) -> int:
    """csum_ipv6_magic() before its fold: the IPv6 pseudo-header (RFC 8200 8.1),
    128-bit addresses, a 32-bit upper-layer length and the next header, as a
    partial sum. Same arguments as pseudo_header_sum(), so a caller can pass
    either to udp/tcp/icmpv6 code."""
    return csum_partial(saddr.to_bytes(16, "big") + daddr.to_bytes(16, "big") + struct.pack("!II", length, proto))
