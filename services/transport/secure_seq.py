"""Initial sequence numbers and timestamp offsets (net/core/secure_seq.c),
RFC 6528: ISN = F(localip, localport, remoteip, remoteport, secretkey) + M,
with F a keyed hash and M a clock ticking every 64 ns (ktime_get_real_ns() >> 6).
Linux keys SipHash with net_secret; here BLAKE2b keyed with a per-namespace
secret (hashlib, the standard library). The clock is the `now` passed in."""
import hashlib
import struct

MASK = 0xFFFFFFFF
SECRET_LEN = 16


def new_secret(rng) -> bytes:
    """A namespace's key: from its random generator, so a seeded test repeats."""
    return rng.getrandbits(SECRET_LEN * 8).to_bytes(SECRET_LEN, "big")


def _hash32(secret: bytes, data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, key=secret, digest_size=4).digest(), "big")


def _addrs(saddr: int, daddr: int) -> bytes:
    """The address pair as hashed: 4 bytes each, 16 for IPv6 (secure_tcpv6_seq())."""
    if saddr > MASK or daddr > MASK:
        return saddr.to_bytes(16, "big") + daddr.to_bytes(16, "big")
    return struct.pack("!II", saddr, daddr)


def secure_tcp_seq(secret: bytes, saddr: int, daddr: int, sport: int, dport: int, now: int) -> int:
    """secure_tcp_seq(): the keyed hash of the 4-tuple (local first) plus the
    64 ns clock (seq_scale()), so a reused 4-tuple starts above the old one."""
    return (_hash32(secret, _addrs(saddr, daddr) + struct.pack("!HH", sport, dport)) + (now >> 6)) & MASK


def secure_tcp_ts_off(secret: bytes, saddr: int, daddr: int) -> int:
    """secure_tcp_ts_off(): the offset of TSval, a keyed hash of the address pair
    (net.ipv4.tcp_timestamps=1), so TSval does not reveal the host's uptime."""
    return _hash32(secret, _addrs(saddr, daddr))
