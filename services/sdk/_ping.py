"""pktflow.ping: ICMP echo over a ping socket, as iputils ping does it; ICMPv6
echo (ping -6) over an IPPROTO_ICMPV6 one for an IPv6 destination."""
import struct
import time
from dataclasses import dataclass, field

from . import _socket as s

ICMP_MESSAGES = {(3, 0): "Destination Net Unreachable", (3, 1): "Destination Host Unreachable",
                 (3, 2): "Destination Protocol Unreachable", (3, 3): "Destination Port Unreachable",
                 (3, 4): "Frag needed and DF set", (3, 13): "Packet filtered", (11, 0): "Time to live exceeded",
                 (11, 1): "Frag reassembly time exceeded", (12, 0): "Parameter problem"}


# iputils' print_icmp() (ping/ping6_common.c) for the ICMPv6 errors
ICMPV6_UNREACH = {0: "No route", 1: "Administratively prohibited", 2: "Beyond scope of source address",
                  3: "Address unreachable", 4: "Port unreachable", 5: "Source address failed ingress/egress policy",
                  6: "Reject route to destination"}
ICMPV6_PARAMPROB = {0: "Wrong header field ", 1: "Unknown header ", 2: "Unknown option "}


def icmpv6_text(type_: int, code: int, info: int) -> str:
    if type_ == 1:
        return "Destination unreachable: " + ICMPV6_UNREACH.get(code, f"Unknown code {code}")
    if type_ == 2:
        return f"Packet too big: mtu={info}" + (f", code={code}" if code else "")
    if type_ == 3:
        return "Time exceeded: " + {0: "Hop limit", 1: "Defragmentation failure"}.get(code, f"code {code}")
    if type_ == 4:
        return "Parameter problem: " + ICMPV6_PARAMPROB.get(code, f"code {code} ") + f"at {info}"
    return f"unknown icmp type: {type_}"


# ping -M: IP_MTU_DISCOVER's values (IPV6_MTU_DISCOVER's are the same)
PMTUDISC = {"dont": s.IP_PMTUDISC_DONT, "want": s.IP_PMTUDISC_WANT, "do": s.IP_PMTUDISC_DO,
            "probe": s.IP_PMTUDISC_PROBE}


@dataclass
class Reply:
    seq: int
    ttl: int
    rtt: float          # seconds, from the NIC timestamps
    size: int           # ICMP bytes, as ping's "64 bytes from"
    src: str


@dataclass
class PingError:
    seq: int
    offender: str
    type: int
    code: int
    info: int = 0       # ee_info: the next-hop MTU of "fragmentation needed"
    v6: bool = False    # an ICMPv6 error (SO_EE_ORIGIN_ICMP6)

    @property
    def text(self) -> str:
        if self.v6:
            return icmpv6_text(self.type, self.code, self.info)
        text = ICMP_MESSAGES.get((self.type, self.code), f"ICMP type {self.type} code {self.code}")
        return f"{text} (mtu = {self.info})" if (self.type, self.code) == (3, 4) else text


@dataclass
class PingResult:
    dst: str
    replies: list = field(default_factory=list)     # one per probe: Reply or None
    errors: list = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def transmitted(self) -> int:
        return len(self.replies)

    @property
    def received(self) -> int:
        return sum(r is not None for r in self.replies)


def _payload(size: int) -> bytes:
    """iputils' payload: a struct timeval, then bytes counting up from 0x10."""
    now = time.time_ns()
    tv = struct.pack("<qq", now // 1_000_000_000, now // 1000 % 1_000_000)
    pattern = bytes((0x10 + i) & 0xFF for i in range(max(0, size - 16)))
    return (tv + pattern)[:size] if size >= 16 else pattern[:size]


def is_ipv6(dst: str) -> bool:
    """How iputils tells the family of a numeric destination."""
    return ":" in dst


def ping(dst: str, *, netns: str, count: int = 1, timeout: float = 1.0, interval: float = 0.2,
         ttl: int | None = None, size: int = 56, pmtudisc: str | None = None, on_reply=None) -> PingResult:
    """Sends `count` echo requests from `netns` to `dst`, `interval` seconds
    apart, each waiting at most `timeout` for its reply. `replies[i]` is None
    for a lost probe; ICMP errors (unreachable, TTL exceeded) are in `errors`.
    `pmtudisc` is ping -M's do|want|dont|probe (IP_MTU_DISCOVER); a probe too
    big for the path with "do" raises OSError(EMSGSIZE) at sendto, as Linux.
    An IPv6 `dst` ("2001:db8:2::10", "fe80::1%eth0") is pinged over ICMPv6
    (ping -6): an IPPROTO_ICMPV6 socket, IPV6_UNICAST_HOPS for `ttl`, the hop
    limit of each reply as its ttl, the %zone as the sin6_scope_id.
    `on_reply(reply_or_error)` is called as they arrive (the CLI prints them)."""
    result = PingResult(dst)
    start = time.monotonic()
    v6 = is_ipv6(dst)
    if v6:
        host, _, zone = dst.partition("%")
        target = (host, 0, 0, s.scope_index(netns, zone) if zone else 0)
        sock = s.socket(s.AF_INET6, s.SOCK_DGRAM, s.IPPROTO_ICMPV6, netns=netns)
        level, opts = s.IPPROTO_IPV6, (s.IPV6_RECVHOPLIMIT, s.IPV6_RECVERR, s.IPV6_UNICAST_HOPS, s.IPV6_MTU_DISCOVER)
    else:
        target = (dst, 0)
        sock = s.socket(s.AF_INET, s.SOCK_DGRAM, s.IPPROTO_ICMP, netns=netns)
        level, opts = s.IPPROTO_IP, (s.IP_RECVTTL, s.IP_RECVERR, s.IP_TTL, s.IP_MTU_DISCOVER)
    recvttl, recverr, ttl_opt, pmtu_opt = opts
    with sock:
        sock.setsockopt(level, recvttl, 1)
        sock.setsockopt(level, recverr, 1)
        if ttl is not None:
            sock.setsockopt(level, ttl_opt, ttl)
        if pmtudisc is not None:
            sock.setsockopt(level, pmtu_opt, PMTUDISC[pmtudisc])
        request = 128 if v6 else 8
        for seq in range(1, count + 1):
            sent_at = time.monotonic()
            body = _payload(size)
            sock.sendto(struct.pack("!BBHHH", request, 0, 0, 0, seq) + body, target)
            sent_ns = time.time_ns()
            got = _await_reply(sock, seq, sent_ns, sent_at + timeout, result, on_reply, 129 if v6 else 0)
            result.replies.append(got)
            if seq < count:
                time.sleep(max(0.0, sent_at + interval - time.monotonic()))
    result.elapsed = time.monotonic() - start
    return result


def _await_reply(sock, seq, sent_ns, deadline, result, on_reply, reply_type: int = 0):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            d = sock.recv_datagrams(1)[0]
        except TimeoutError:
            return None
        except OSError:
            # sk_err was set by an ICMP error: the details are on the error queue
            for e in _drain_errors(sock):
                result.errors.append(e)
                if on_reply:
                    on_reply(e)
            continue
        data = d.data
        if len(data) < 8 or data[0] != reply_type or struct.unpack("!H", data[6:8])[0] != seq:
            continue                        # a late reply to an earlier probe
        rtt = (d.tstamp - sent_ns) / 1e9 if d.tstamp else 0.0
        if len(data) >= 24:                  # iputils times from the timeval it sent
            sec, usec = struct.unpack("<qq", data[8:24])
            rtt = max(0.0, (d.tstamp or time.time_ns()) / 1e9 - (sec + usec / 1e6))
        src = d.addr.host
        if d.addr.scope_id:                   # getnameinfo(NI_NUMERICHOST): a link-local sender with its zone
            src += "%" + s.scope_name(sock.netns, d.addr.scope_id)
        reply = Reply(seq, d.ttl, rtt, len(data), src)
        if on_reply:
            on_reply(reply)
        return reply


def _drain_errors(sock):
    out = []
    while True:
        try:
            d = sock.recv_datagrams(1, flags=s.MSG_ERRQUEUE | s.MSG_DONTWAIT)[0]
        except OSError:
            return out
        seq = struct.unpack("!H", d.data[6:8])[0] if len(d.data) >= 8 else 0
        out.append(PingError(seq, d.ee.offender, d.ee.ee_type, d.ee.ee_code, d.ee.ee_info,
                             d.ee.ee_origin == s.SO_EE_ORIGIN_ICMP6))
