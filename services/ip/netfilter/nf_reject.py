"""The REJECT target's answers (net/ipv4/netfilter/nf_reject_ipv4.c): an ICMP
destination unreachable of the chosen kind, or a TCP RST built from the
offending segment, sent as this host's own packets."""
from ...common.actions import Drop
from ...common.skbuff import new_skb
from ...wire import icmp as icmp_wire, ipv4, tcp
from .. import icmp, ip_output

# --reject-with: the ICMP code each kind sends (ipt_REJECT.c reject_tg())
UNREACH_CODES = {"icmp-net-unreachable": icmp_wire.ICMP_NET_UNREACH,
                 "icmp-host-unreachable": icmp_wire.ICMP_HOST_UNREACH,
                 "icmp-port-unreachable": icmp_wire.ICMP_PORT_UNREACH,
                 "icmp-proto-unreachable": icmp_wire.ICMP_PROT_UNREACH,
                 "icmp-net-prohibited": 9, "icmp-host-prohibited": 10,          # ICMP_NET_ANO, ICMP_HOST_ANO
                 "icmp-admin-prohibited": icmp_wire.ICMP_PKT_FILTERED}


def reject(ns, skb, iph, kind: str, now: int, fn) -> list:
    """reject_tg(): the answer, then the offending packet is dropped."""
    if kind == "tcp-reset":
        out = nf_send_reset(ns, skb, iph, now)
    else:
        out = icmp.icmp_send(ns, skb, icmp_wire.ICMP_DEST_UNREACH, UNREACH_CODES[kind], 0, now, "nf_send_unreach")
    return out + [Drop(skb, fn, "NETFILTER_DROP")]


def nf_send_reset(ns, skb, iph, now: int) -> list:
    """nf_send_reset(): a RST for a whole, checksummed segment that is not a RST
    itself; it acknowledges what the segment carried unless that had an ACK."""
    if iph.proto != ipv4.IPPROTO_TCP or iph.frag_off & ipv4.IP_OFFSET:
        return []
    th = skb.network_header + iph.ihl
    end = skb.network_header + iph.total_len
    try:
        oth = tcp.parse(skb.data, th, end, iph.src, iph.dst)
    except Exception:                   # nf_reject_ip_tcphdr_get(): no header or a bad checksum, no reset
        return []
    if oth.flags & tcp.RST:
        return []
    if oth.flags & tcp.ACK:
        seq, ack, flags = oth.ack, 0, tcp.RST
    else:
        seglen = end - th - oth.doff + bool(oth.flags & tcp.SYN) + bool(oth.flags & tcp.FIN)
        seq, ack, flags = 0, oth.seq + seglen, tcp.RST | tcp.ACK
    seg = tcp.emit(oth.dport, oth.sport, seq, ack, flags, 0, b"", b"", iph.dst, iph.src)
    rst = new_skb(ns.name, seg, skb, daddr=iph.src, saddr=iph.dst, ip_proto=ipv4.IPPROTO_TCP,
                  ttl=ns.default_ttl, df=True)
    return ip_output.ip_queue_xmit(ns, rst, now, "nf_send_reset")
