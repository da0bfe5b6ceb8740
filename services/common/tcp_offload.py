"""TCP segmentation and receive offloads (net/ipv4/tcp_offload.c,
net/ipv6/tcpv6_offload.c, net/core/gso.c, net/core/gro.c), for IPv4 and IPv6.

A GSO packet is one TCP/IP packet whose payload is many segments' worth
(skb gso_size: each one's payload, the MSS; gso_segs: how many) behind a
single header. TCP builds them (TSO: one skb down the stack instead of many),
the device cuts them into real frames (tcp4_gso_segment(), in software just
before the driver, or the "hardware" with TSO on), and on receive NAPI merges
consecutive segments of a flow back into one (GRO) before they go up.

As in Linux, a GSO packet carries only its pseudo-header's sum in the TCP
checksum field (CHECKSUM_PARTIAL: the hardware, or GSO, completes it for each
frame) and a GRO packet too (CHECKSUM_UNNECESSARY: each segment was checked
as it arrived): a capture at those points shows the checksum tcpdump calls
incorrect on Linux; every frame on a wire carries a correct one.
"""
import struct

from pktflow.v1.skb_pb2 import CHECKSUM_NONE, CHECKSUM_UNNECESSARY

from ..wire import Malformed, ethernet, ipv4, ipv6
from ..wire import tcp as tcpw
from ..wire.checksum import csum_fold, csum_partial, pseudo_header_sum, pseudo_header_sum6
from .skbuff import clone

GSO_MAX_SIZE = 65536        # GSO_LEGACY_MAX_SIZE: an IP packet's length field is 16 bits (no BIG TCP)
GRO_MAX_SIZE = 65536        # gro_max_size's default
TSO_KEEP = tcpw.FIN | tcpw.PSH   # flags only the last segment keeps (CWR: only the first)
GRO_FLUSH = tcpw.URG | tcpw.PSH | tcpw.RST | tcpw.SYN | tcpw.FIN   # end a merged packet (tcp_gro_receive())


def tcp_with(seg: bytes, flags: int, payload, saddr: int, daddr: int, seq: int | None = None,
             partial: bool = False, pseudo=pseudo_header_sum) -> bytes:
    """The TCP header at the start of `seg` with new flags (and sequence number),
    in front of `payload`, its checksum computed; or, `partial`, only the
    pseudo-header's sum in the checksum field, as a GSO packet (the hardware
    completes it: CHECKSUM_PARTIAL) or a GRO one (its segments were checked:
    CHECKSUM_UNNECESSARY) carries it in Linux (~tcp_v4_check(len, saddr, daddr, 0));
    `pseudo`: pseudo_header_sum6 for TCP over IPv6 (~tcp_v6_check())."""
    doff = (seg[12] >> 4) * 4
    hdr = seg[:4] + (seq.to_bytes(4, "big") if seq is not None else seg[4:8]) + seg[8:13] + \
        bytes((flags,)) + seg[14:16] + b"\0\0" + seg[18:doff]
    ph = pseudo(saddr, daddr, ipv4.IPPROTO_TCP, doff + len(payload))
    check = ph if partial else csum_fold(csum_partial(payload, csum_partial(hdr, ph)))
    return hdr[:16] + check.to_bytes(2, "big") + hdr[18:] + payload


def _without_data(skb):
    """skb's metadata without its bytes and GSO fields: what every segment cut
    from it starts as (copied once: a large packet's bytes are not)."""
    data, skb.data = skb.data, b""
    c = clone(skb)
    skb.data = data
    c.gso_size = c.gso_segs = 0
    c.ip_summed = CHECKSUM_NONE               # each segment's checksum is complete, and checked where it lands
    return c


def gso_segment(skb, nh: int = ethernet.ETH_HLEN) -> list | None:
    """skb_gso_segment() -> inet_gso_segment() -> tcp4_gso_segment() (or
    ipv6_gso_segment() -> tcp6_gso_segment()): the packet (IP header at `nh`,
    what is before it copied to every segment) cut into segments of gso_size
    bytes of payload: each with its own IP length (and IPv4 ID, one more each,
    and header checksum), sequence number and TCP checksum; FIN and PSH only on
    the last, CWR only on the first. None: not a TCP packet that can be cut (an
    IPv4 fragment, IPv6 extension headers: the caller drops it, SKB_GSO_SEG)."""
    data, mss = skb.data, skb.gso_size
    v6 = len(data) > nh and data[nh] >> 4 == 6
    try:
        if v6:
            iph = ipv6.parse(data, nh, loopback=True)         # the sender's checks were made
            if iph.nexthdr != ipv4.IPPROTO_TCP:
                return None
            th, end = nh + ipv6.IPV6_HLEN, ipv6.payload_end(data, nh, iph)
        else:
            iph = ipv4.parse(data, nh)
            if iph.proto != ipv4.IPPROTO_TCP or iph.is_fragment:
                return None
            th, end = nh + iph.ihl, nh + iph.total_len
        if not mss or len(data) < th + tcpw.TCP_HLEN:
            return None
    except Malformed:
        return None
    doff = (data[th + 12] >> 4) * 4
    start = th + doff
    if start > end:
        return None
    pre, iphdr, tcph = data[:nh], data[nh:th], data[th:start]
    seq, flags = int.from_bytes(tcph[4:8], "big"), tcph[13]
    pseudo = pseudo_header_sum6 if v6 else pseudo_header_sum
    out, meta = [], _without_data(skb)
    for i, off in enumerate(range(start, end, mss)):
        payload = data[off:min(off + mss, end)]
        last = off + mss >= end
        f = flags & ~(0 if last else TSO_KEEP) & ~(tcpw.CWR if i else 0)
        seg = tcp_with(tcph, f, payload, iph.src, iph.dst, (seq + off - start) & 0xFFFFFFFF, pseudo=pseudo)
        if v6:
            h = ipv6.with_payload_len(iphdr, len(seg))
        else:
            ident = ((iph.ident + i) & 0xFFFF).to_bytes(2, "big")
            h = ipv4.with_length(iphdr[:4] + ident + iphdr[6:], len(iphdr) + len(seg), iph.frag_off)
        c = clone(meta)
        c.data = pre + h + seg
        out.append(c)
    return out


def _headers(data, nh: int) -> int:
    """Where a TCP/IP packet's payload starts, or beyond any MTU when its
    headers do not fit in it (a packet no GSO can cut)."""
    if len(data) <= nh:
        return nh + GSO_MAX_SIZE
    th = nh + (ipv6.IPV6_HLEN if data[nh] >> 4 == 6 else (data[nh] & 0x0F) * 4)
    if len(data) < th + tcpw.TCP_HLEN:
        return nh + GSO_MAX_SIZE
    return th + (data[th + 12] >> 4) * 4


def gso_network_len(skb, nh: int) -> int:
    """skb_gso_network_seglen(): each segment's IP length (its headers and
    gso_size bytes of payload), what must fit the MTU."""
    return _headers(skb.data, nh) - nh + skb.gso_size


def fit_mtu(skb, mtu: int) -> list | None:
    """ip_finish_output_gso() / ip6_finish_output_gso() for a packet longer than `mtu`:
    a GSO packet whose segments each fit goes as it is, otherwise it is cut into them
    (None: it cannot be; each caller then fragments or refuses what is still too long)."""
    if not skb.gso_size or gso_network_len(skb, 0) <= mtu:
        return [skb]
    return gso_segment(skb, 0)


def gso_wire_len(skb, overhead: int = 0, nh: int = ethernet.ETH_HLEN) -> int:
    """The bytes the frames of a GSO packet (from its Ethernet header on) add
    up to: each one repeats the headers, and `overhead` more (FCS, preamble, gap)."""
    hdr = _headers(skb.data, nh)
    payload = max(0, len(skb.data) - hdr)
    return payload + max(1, -(-payload // skb.gso_size)) * (hdr + overhead)


class _Held:
    """A packet GRO holds for its flow (napi_gro_cb): the first frame's
    headers, the payloads merged so far, what the next one must look like."""
    __slots__ = ("index", "skb", "nh", "th", "mss", "parts", "size", "next_seq", "count", "ident", "flags",
                 "ip_src", "ip_dst", "v6")


_IPH = struct.Struct("!BBHHHBBHII")
_IP6H = struct.Struct("!IHBB16s16s")


def _gro_key(data, nh: int):
    """The frame's flow and what must match for it to merge (inet_gro_receive(),
    tcp_gro_receive()), or None when it cannot be merged at all: not TCP over
    IP, IPv4 options or extension headers, a fragment, a bad checksum."""
    if data[12:14] == b"\x86\xdd":
        return _gro_key6(data, nh)
    if len(data) < nh + 40 or data[12:14] != b"\x08\x00" or data[nh] != 0x45:
        return None
    _, _, total, ident, frag_off, _, proto, _, src, dst = _IPH.unpack_from(data, nh)
    th, end = nh + 20, nh + total
    if proto != ipv4.IPPROTO_TCP or frag_off & 0x3FFF or end > len(data) or csum_partial(data[nh:th]) != 0xFFFF:
        return None
    doff = (data[th + 12] >> 4) * 4
    if doff < tcpw.TCP_HLEN or th + doff > end or \
            csum_partial(data[th:end], pseudo_header_sum(src, dst, ipv4.IPPROTO_TCP, end - th)) != 0xFFFF:
        return None
    # what must be equal in every merged segment: both MAC addresses, TOS, TTL,
    # DF, addresses and ports, the ACK number, the data offset, window and options
    match = data[:12] + data[nh + 1:nh + 2] + data[nh + 8:nh + 9] + bytes((frag_off >> 8 & 0x40,)) + \
        data[nh + 12:nh + 20] + data[th:th + 4] + data[th + 8:th + 13] + data[th + 14:th + 16] + data[th + 20:th + doff]
    return match, ident, frag_off & ipv4.IP_DF, src, dst, th, th + doff, end


def _gro_key6(data, nh: int):
    """ipv6_gro_receive() -> tcp6_gro_receive(): TCP right after the fixed header;
    the version, traffic class, flow label and hop limit must match (no ID to follow)."""
    th = nh + ipv6.IPV6_HLEN
    if len(data) < th + tcpw.TCP_HLEN or data[nh] >> 4 != 6:
        return None
    _, plen, nexthdr, _, src, dst = _IP6H.unpack_from(data, nh)
    end = th + plen
    if nexthdr != ipv4.IPPROTO_TCP or end > len(data):
        return None
    src, dst = int.from_bytes(src, "big"), int.from_bytes(dst, "big")
    doff = (data[th + 12] >> 4) * 4
    if doff < tcpw.TCP_HLEN or th + doff > end or \
            csum_partial(data[th:end], pseudo_header_sum6(src, dst, ipv4.IPPROTO_TCP, end - th)) != 0xFFFF:
        return None
    match = data[:12] + data[nh:nh + 4] + data[nh + 7:th] + data[th:th + 4] + data[th + 8:th + 13] + \
        data[th + 14:th + 16] + data[th + 20:th + doff]
    return match, 0, True, src, dst, th, th + doff, end


def napi_gro(skbs: list, nh: int = ethernet.ETH_HLEN) -> list:
    """napi_gro_receive() for the frames one NAPI poll took, then
    napi_gro_flush(): consecutive in-order TCP segments of a flow become one
    packet (gso_size the first one's payload), at most GRO_MAX_SIZE bytes.
    A segment that is not full, or carries PSH, FIN, URG, RST or SYN, ends
    its packet (merged first, if it can be); a pure ACK, a CWR, or anything
    that differs in its headers is never merged. Flows keep their order;
    packets of different flows may pass each other, as in Linux."""
    out, held = [], {}
    for skb in skbs:
        data = skb.data
        k = _gro_key(data, nh) if not skb.gso_size else None    # a GSO packet from a veth-like peer: as it is
        if k is None:
            out.append(skb)
            continue
        match, ident, df, src, dst, th, start, end = k
        plen, flags, seq = end - start, data[th + 13], int.from_bytes(data[th + 4:th + 8], "big")
        h = held.get(match)
        if h is not None:
            if (plen and plen <= h.mss and not flags & tcpw.CWR and seq == h.next_seq
                    and (flags ^ h.flags) & ~TSO_KEEP == 0 and h.size + plen < GRO_MAX_SIZE
                    and (ident == (h.ident + h.count) & 0xFFFF or df and ident == h.ident)):
                h.parts.append(data[start:end])
                h.size += plen
                h.count += 1
                h.next_seq = (seq + plen) & 0xFFFFFFFF
                h.flags |= flags & TSO_KEEP
                if plen < h.mss or flags & GRO_FLUSH:
                    out[h.index] = _gro_complete(h)
                    del held[match]
                continue
            out[h.index] = _gro_complete(h)
            del held[match]
        out.append(skb)
        if plen and not flags & GRO_FLUSH:
            h = held[match] = _Held()
            h.index, h.skb, h.nh, h.th, h.mss, h.parts = len(out) - 1, skb, nh, th, plen, [data[start:end]]
            # size: the IP packet's length so far, which must stay below gro_max_size (skb_gro_receive())
            h.size, h.next_seq, h.count, h.ident, h.flags = end - nh, (seq + plen) & 0xFFFFFFFF, 1, ident, flags
            h.ip_src, h.ip_dst, h.v6 = src, dst, data[12:14] == b"\x86\xdd"
    for h in held.values():
        out[h.index] = _gro_complete(h)
    return out


def _gro_complete(h: _Held):
    """tcp_gro_complete(): the first segment becomes one packet of everything
    merged, with its headers (FIN and PSH of the last), lengths and checksums right."""
    if h.count == 1:
        return h.skb
    data = h.skb.data
    payload = b"".join(h.parts)
    seg = tcp_with(data[h.th:h.th + 60], h.flags, payload, h.ip_src, h.ip_dst, partial=True,
                   pseudo=pseudo_header_sum6 if h.v6 else pseudo_header_sum)
    iph = data[h.nh:h.th]
    skb = h.skb                       # the first segment becomes the packet, its journey goes on
    iph = ipv6.with_payload_len(iph, len(seg)) if h.v6 else \
        ipv4.with_length(iph, len(iph) + len(seg), int.from_bytes(iph[6:8], "big"))
    skb.data = data[:h.nh] + iph + seg
    skb.gso_size, skb.gso_segs = h.mss, h.count
    skb.ip_summed = CHECKSUM_UNNECESSARY
    return skb
