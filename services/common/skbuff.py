"""sk_buff helpers for the cores: building and cloning skbs, trace flags."""
from pktflow.v1.skb_pb2 import Skb

SAMPLED = 0x1
# Skb.ip_id: a layer above ip that picked the IP ID itself sets this bit beside
# it (tcp and udp keep inet_id per socket, as inet_sk(sk)->inet_id); ip uses it as is.
IP_ID_SET = 0x10000
# A packet a layer created itself (an ARP request, an ICMP error, a reply): its
# journey is a new trace, linked to the packet that caused it.
NEW_JOURNEY = 0x100


def new_skb(netns: str, data: bytes = b"", cause: Skb | None = None, **fields) -> Skb:
    skb = Skb(netns=netns, data=data, **fields)
    if cause is not None and cause.trace_id:
        skb.trace_id = cause.trace_id
        skb.span_id = cause.span_id
        skb.trace_flags = NEW_JOURNEY | (cause.trace_flags & SAMPLED)
    else:
        skb.trace_flags = NEW_JOURNEY
    return skb


def clone(skb: Skb) -> Skb:
    """skb_clone(): same bytes and metadata, the same journey."""
    c = Skb()
    c.CopyFrom(skb)
    return c
