"""NAT for IPv4 (net/netfilter/nf_nat_core.c, nf_nat_proto.c): a connection's
first packet picks a binding (nf_nat_setup_info(): the reply tuple changes, so
replies find the connection), and every packet of it, both ways, is rewritten
to match (nf_nat_packet()): addresses, ports or ICMP ids, with the IP, TCP,
UDP and ICMP checksums updated incrementally as the kernel does, and an ICMP
error about a NATed connection has its quoted packet rewritten too
(nf_nat_icmp_reply_translation()). Pure: bytes, the connection and a random
source in, bytes out.

A range is (addr lo, addr hi, port lo, port hi, flags) with the kernel's
NF_NAT_RANGE_* flags; MASQUERADE and REDIRECT become ranges in the caller,
which knows the interfaces' addresses."""
from ...wire.checksum import csum_partial, inet_checksum
from ...wire.icmp import ICMP_HLEN
from .nf_conntrack import ICMP, IPS_DST_NAT, IPS_SRC_NAT, TCP, UDP, Tuple

MANIP_SRC, MANIP_DST = 0, 1                         # enum nf_nat_manip_type
IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
IPS_SRC_NAT_DONE, IPS_DST_NAT_DONE = 1 << 7, 1 << 8
RANGE_MAP_IPS, RANGE_PROTO_SPECIFIED, RANGE_PROTO_RANDOM, RANGE_PERSISTENT, RANGE_PROTO_RANDOM_FULLY = 1, 2, 4, 8, 16
RANGE_PROTO_RANDOM_ALL = RANGE_PROTO_RANDOM | RANGE_PROTO_RANDOM_FULLY
MAX_ATTEMPTS = 128                                  # NF_NAT_MAX_ATTEMPTS
ECHO_TYPES = frozenset((0, 8, 13, 14, 15, 16, 17, 18))   # icmp_manip_pkt(): the types that carry an id


def manip_type(hook: int) -> int:
    """HOOK2MANIP(): source NAT where packets leave (POST_ROUTING, LOCAL_IN), destination where they enter."""
    return MANIP_SRC if hook in (1, 4) else MANIP_DST


def initialized(conn, mtype: int) -> bool:
    """nf_nat_initialized()"""
    return bool(conn.status & (IPS_SRC_NAT_DONE if mtype == MANIP_SRC else IPS_DST_NAT_DONE))


def setup_info(ct, conn, rng: tuple | None, mtype: int, random) -> None:
    """nf_nat_setup_info(): bind the connection for this manip type. A None range
    is the null binding (nf_nat_alloc_null_binding()): the tuple stays unless it
    clashes with another connection's, and then only its source port moves."""
    curr = conn.reply.invert()                      # the original tuple as earlier manips left it
    if rng is None:
        addr = curr.saddr if mtype == MANIP_SRC else curr.daddr
        rng = (addr, addr, 0, 0, RANGE_MAP_IPS)
    new = _unique_tuple(ct, conn, curr, rng, mtype, random)
    if new != curr:
        conn.set_reply(new.invert())
        conn.status |= IPS_SRC_NAT if mtype == MANIP_SRC else IPS_DST_NAT
    conn.status |= IPS_SRC_NAT_DONE if mtype == MANIP_SRC else IPS_DST_NAT_DONE


def _used(ct, conn, t: Tuple) -> bool:
    """nf_nat_used_tuple(): another connection already answers to t's reply."""
    hit = ct.table.get(t.invert())
    return hit is not None and hit[0] is not conn


def _in_range(t: Tuple, rng: tuple, mtype: int) -> bool:
    lo, hi, plo, phi, flags = rng
    addr = t.saddr if mtype == MANIP_SRC else t.daddr
    if flags & RANGE_MAP_IPS and not lo <= addr <= hi:
        return False
    if flags & RANGE_PROTO_SPECIFIED and t.proto in (TCP, UDP, ICMP):
        port = t.sport if mtype == MANIP_SRC or t.proto == ICMP else t.dport
        return plo <= port <= phi
    return True


def _unique_tuple(ct, conn, orig: Tuple, rng: tuple, mtype: int, random) -> Tuple:
    """get_unique_tuple()"""
    lo, hi, plo, phi, flags = rng
    if mtype == MANIP_SRC and not flags & RANGE_PROTO_RANDOM_ALL:
        if _in_range(orig, rng, mtype) and not _used(ct, conn, orig):
            return orig                             # leave it alone if it is already fine
    t = orig
    if flags & RANGE_MAP_IPS:                       # find_best_ips_proto(): a hash picks one of the range
        span = hi - lo + 1
        if span > 1:
            key = (orig.saddr, 0 if flags & RANGE_PERSISTENT else orig.daddr)
            addr = lo + hash(key) % span
        else:
            addr = lo
        t = t._replace(saddr=addr) if mtype == MANIP_SRC else t._replace(daddr=addr)
    if not flags & RANGE_PROTO_RANDOM_ALL:
        if flags & RANGE_PROTO_SPECIFIED:
            if _in_range(t, rng, mtype) and (plo == phi or not _used(ct, conn, t)):
                return t
        elif not _used(ct, conn, t):
            return t
    return _l4_unique_tuple(ct, conn, t, rng, mtype, random)


def _l4_unique_tuple(ct, conn, t: Tuple, rng: tuple, mtype: int, random) -> Tuple:
    """nf_nat_l4proto_unique_tuple(): try ports (or ICMP ids) from a random offset."""
    _, _, plo, phi, flags = rng
    field = "sport" if mtype == MANIP_SRC or t.proto == ICMP else "dport"
    if t.proto not in (TCP, UDP, ICMP):
        return t
    if flags & RANGE_PROTO_SPECIFIED:
        low, size = plo, phi - plo + 1
    elif t.proto == ICMP:
        low, size = 0, 0xFFFF
    elif mtype == MANIP_DST:
        return t                                    # a destination port is never changed unasked
    else:
        port = getattr(t, field)
        low, size = (1, 511) if port < 512 else (600, 424) if port < 1024 else (1024, 64512)
    off = 0 if mtype == MANIP_DST and not flags & RANGE_PROTO_RANDOM_ALL else random.getrandbits(16)
    attempts = min(size, MAX_ATTEMPTS)
    while True:
        for _ in range(attempts):
            cand = t._replace(**{field: low + off % size})
            if not _used(ct, conn, cand):
                return cand
            off += 1
        if attempts >= size or attempts < 16:
            return cand                             # every try was taken: the kernel gives the last
        attempts //= 2
        off = random.getrandbits(16)


def _bound(conn, direction: int, mtype: int) -> bool:
    """Does this manip apply to the packet's direction? A source NAT of the original
    direction is a destination NAT of the reply's."""
    bit = IPS_SRC_NAT if mtype == MANIP_SRC else IPS_DST_NAT
    return bool(conn.status & (bit ^ IPS_NAT_MASK if direction else bit))


def nat_packet(conn, direction: int, hook: int, data: bytes, nh: int) -> bytes:
    """nf_nat_packet(): rewrite the packet at `nh` as its connection's binding says
    for this hook and direction; the same bytes when there is nothing to do."""
    mtype = manip_type(hook)
    if not _bound(conn, direction, mtype):
        return data
    buf = bytearray(data)
    manip_pkt(buf, nh, conn.tuple(1 - direction).invert(), mtype)
    return bytes(buf)


def icmp_reply_translation(conn, direction: int, hook: int, data: bytes, nh: int) -> bytes:
    """nf_nat_icmp_reply_translation(): an ICMP error RELATED to a NATed connection.
    The quoted packet gets the opposite manip (it travelled the other way), the
    ICMP checksum is recomputed, then the outer header is rewritten as a reply."""
    mtype = manip_type(hook)
    if not _bound(conn, direction, mtype):
        return data
    buf = bytearray(data)
    icmp_off = nh + (buf[nh] & 0x0F) * 4
    other = conn.tuple(1 - direction)
    manip_pkt(buf, icmp_off + ICMP_HLEN, other, 1 - mtype)
    buf[icmp_off + 2:icmp_off + 4] = b"\0\0"
    buf[icmp_off + 2:icmp_off + 4] = inet_checksum(buf[icmp_off:]).to_bytes(2, "big")
    manip_pkt(buf, nh, other.invert()._replace(proto=ICMP), mtype)
    return bytes(buf)


def manip_pkt(buf: bytearray, iph: int, target: Tuple, mtype: int) -> None:
    """nf_nat_ipv4_manip_pkt(): the transport header first (its checksum covers
    the addresses too), then the IP header. A quoted packet in an ICMP error may
    be cut after 8 bytes of TCP: then its checksum is not there to update."""
    ihl = (buf[iph] & 0x0F) * 4
    th = iph + ihl
    addr_at = iph + (12 if mtype == MANIP_SRC else 16)
    old_addr = bytes(buf[addr_at:addr_at + 4])
    new_addr = (target.saddr if mtype == MANIP_SRC else target.daddr).to_bytes(4, "big")
    proto = target.proto
    fragment = int.from_bytes(buf[iph + 6:iph + 8], "big") & 0x1FFF
    if not fragment and proto in (TCP, UDP) and len(buf) >= th + 8:
        port_at = th + (0 if mtype == MANIP_SRC else 2)
        old_port = bytes(buf[port_at:port_at + 2])
        new_port = (target.sport if mtype == MANIP_SRC else target.dport).to_bytes(2, "big")
        check_at = th + (16 if proto == TCP else 6)
        has_check = len(buf) >= check_at + 2 and (proto == TCP and len(buf) >= th + 20 or proto == UDP)
        if has_check and (proto == TCP or buf[check_at:check_at + 2] != b"\0\0"):
            check = csum_replace(int.from_bytes(buf[check_at:check_at + 2], "big"),
                                 old_addr + old_port, new_addr + new_port)
            if proto == UDP and check == 0:
                check = 0xFFFF                      # CSUM_MANGLED_0
            buf[check_at:check_at + 2] = check.to_bytes(2, "big")
        buf[port_at:port_at + 2] = new_port
    elif not fragment and proto == ICMP and len(buf) >= th + ICMP_HLEN and buf[th] in ECHO_TYPES:
        new_id = target.sport.to_bytes(2, "big")
        check = csum_replace(int.from_bytes(buf[th + 2:th + 4], "big"), bytes(buf[th + 4:th + 6]), new_id)
        buf[th + 2:th + 4] = check.to_bytes(2, "big")
        buf[th + 4:th + 6] = new_id
    check = csum_replace(int.from_bytes(buf[iph + 10:iph + 12], "big"), old_addr, new_addr)
    buf[iph + 10:iph + 12] = check.to_bytes(2, "big")
    buf[addr_at:addr_at + 4] = new_addr


def csum_replace(check: int, old: bytes, new: bytes) -> int:
    """inet_proto_csum_replace*() (RFC 1624, eqn. 3): HC' = ~(~HC + ~m + m')."""
    s = (~check & 0xFFFF) + (~csum_partial(old) & 0xFFFF) + csum_partial(new)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
