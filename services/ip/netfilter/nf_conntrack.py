"""Connection tracking (net/netfilter/nf_conntrack_core.c and the tcp, udp and
icmp trackers): every packet of a namespace that tracks is matched to a
connection, two tuples (original and reply direction), and gets the state
iptables' conntrack and state matches see: NEW, ESTABLISHED, RELATED (an ICMP
error about a tracked connection) or INVALID. A connection's first packet only
makes an unconfirmed entry; it enters the table when the packet leaves the
last hook alive (__nf_conntrack_confirm()), so a packet a rule drops leaves
nothing behind.

Tracking starts in a namespace when a rule first uses a conntrack or state
match, as loading xt_conntrack does. The TCP tracker follows the state table's
main path (SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, LAST_ACK, TIME_WAIT,
CLOSE); it does not track windows (nf_conntrack_tcp_be_liberal behaviour) and
picks up connections mid-stream (nf_conntrack_tcp_loose=1, the default)."""
from ...wire import Malformed, icmp as icmp_wire

INVALID, ESTABLISHED, RELATED, NEW, UNTRACKED = 1, 2, 4, 8, 64       # XT_STATE_BIT(): what the matches see
STATE_NAMES = (("INVALID", INVALID), ("NEW", NEW), ("RELATED", RELATED), ("ESTABLISHED", ESTABLISHED),
               ("UNTRACKED", UNTRACKED))            # the order iptables prints them in
S = 1_000_000_000
TIMEOUTS = {"SYN_SENT": 120, "SYN_RECV": 60, "ESTABLISHED": 432000, "FIN_WAIT": 120, "CLOSE_WAIT": 60,
            "LAST_ACK": 30, "TIME_WAIT": 120, "CLOSE": 10, "udp": 30, "udp_stream": 120, "icmp": 30,
            "generic": 600}                         # nf_conntrack_*_timeout defaults, seconds
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
ECHO_REPLY = {8: 0, 13: 14, 15: 16, 17: 18}          # icmp_new(): the types that start a connection
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


class Conn:
    __slots__ = ("proto", "orig", "reply", "state", "seen_reply", "assured", "expires", "confirmed", "fin")

    def __init__(self, proto: int, orig: tuple, reply: tuple):
        self.proto, self.orig, self.reply = proto, orig, reply
        self.state = ""
        self.seen_reply = self.assured = self.confirmed = False
        self.expires = 0
        self.fin = -1                  # which direction sent the first FIN


def tuples(p) -> tuple[tuple, tuple] | None:
    """(original, reply) tuples of a packet (src, dst, sport, dport), or None if
    it cannot start a connection (an ICMP type that has no reply)."""
    if p.proto == 1:
        reply_type = ECHO_REPLY.get(p.icmp_type)
        if reply_type is None:
            return None
        return (p.saddr, p.daddr, p.icmp_type, p.sport), (p.daddr, p.saddr, reply_type, p.sport)
    return (p.saddr, p.daddr, p.sport, p.dport), (p.daddr, p.saddr, p.dport, p.sport)


class Conntrack:
    def __init__(self, max_entries: int = 262144):
        self.max = max_entries                       # nf_conntrack_max
        self.table: dict = {}                        # (proto, tuple) -> (conn, direction 0 or 1)
        self.conns: dict = {}                        # original key -> conn, in the order they were confirmed
        self.stats = {"found": 0, "invalid": 0, "insert": 0, "drop": 0, "early_drop": 0}

    def _find(self, proto: int, t: tuple, now: int):
        hit = self.table.get((proto, t))
        if hit is not None and hit[0].expires <= now:
            self._forget(hit[0])
            return None
        return hit

    def _forget(self, c: Conn):
        self.table.pop((c.proto, c.orig), None)
        self.table.pop((c.proto, c.reply), None)
        self.conns.pop((c.proto, c.orig), None)

    def track(self, p, data: bytes, th: int, now: int) -> tuple[int, Conn | None, str | None]:
        """nf_conntrack_in(): the packet's state bits, its connection (possibly
        unconfirmed), and a drop reason when the table is full."""
        if p.fragment:
            return INVALID, None, None                # pktflow does not defragment for conntrack yet
        if p.proto == 1 and p.icmp_type >= 0 and icmp_wire.is_error(p.icmp_type):
            return self._related(p, data, th, now), None, None
        if p.proto == 1:
            p.sport = int.from_bytes(data[th + 4:th + 6], "big") if len(data) >= th + 6 else 0   # the echo id
            own = (p.saddr, p.daddr, p.icmp_type, p.sport)
        else:
            own = (p.saddr, p.daddr, p.sport, p.dport)
        hit = self._find(p.proto, own, now)
        if hit is None:
            ts = tuples(p)
            if ts is None:
                self.stats["invalid"] += 1
                return INVALID, None, None
            return self._new(p, ts, now)
        self.stats["found"] += 1
        c, d = hit
        bits = self._update(c, d, p, now)
        return bits, c, None

    def _new(self, p, ts, now: int):
        c = Conn(p.proto, *ts)
        if p.proto == 6:
            flags = p.tcp_flags
            if flags & SYN and not flags & (ACK | RST | FIN):
                c.state = "SYN_SENT"
            elif flags & ACK and not flags & (SYN | RST):
                c.state = "ESTABLISHED"                # picked up mid-stream (tcp_loose)
            else:
                self.stats["invalid"] += 1
                return INVALID, None, None             # tcp_new(): no connection starts so
            c.expires = now + TIMEOUTS[c.state] * S
        else:
            c.expires = now + TIMEOUTS.get(PROTO_NAMES.get(p.proto, ""), TIMEOUTS["generic"]) * S
        if len(self.conns) >= self.max and not self._early_drop():
            self.stats["drop"] += 1
            return INVALID, None, "NETFILTER_DROP"     # "nf_conntrack: table full, dropping packet"
        return NEW, c, None

    def _early_drop(self) -> bool:
        """early_drop(): make room by dropping a connection not yet assured."""
        for i, c in enumerate(self.conns.values()):
            if i >= 8:
                break
            if not c.assured:
                self._forget(c)
                self.stats["early_drop"] += 1
                return True
        return False

    def confirm(self, c: Conn | None):
        """__nf_conntrack_confirm(): the first packet survived every hook."""
        if c is None or c.confirmed:
            return
        c.confirmed = True
        self.table[(c.proto, c.orig)] = (c, 0)
        self.table[(c.proto, c.reply)] = (c, 1)
        self.conns[(c.proto, c.orig)] = c
        self.stats["insert"] += 1

    def _update(self, c: Conn, d: int, p, now: int) -> int:
        if d == 1:
            c.seen_reply = True
        if c.proto == 6:
            self._tcp(c, d, p.tcp_flags)
            c.expires = now + TIMEOUTS[c.state] * S
        elif c.proto == 17:
            if c.seen_reply and d == 0:                # traffic both ways: a stream (udp_packet())
                c.assured = True
            c.expires = now + TIMEOUTS["udp_stream" if c.assured else "udp"] * S
        else:
            c.expires = now + TIMEOUTS.get(PROTO_NAMES.get(c.proto, ""), TIMEOUTS["generic"]) * S
        return ESTABLISHED if c.seen_reply else NEW

    def _tcp(self, c: Conn, d: int, flags: int):
        s = c.state
        if flags & RST:
            c.state = "CLOSE"
        elif flags & SYN and flags & ACK and d == 1 and s == "SYN_SENT":
            c.state = "SYN_RECV"
        elif flags & FIN:
            if s in ("ESTABLISHED", "SYN_RECV"):
                c.state, c.fin = "FIN_WAIT", d
            elif s in ("FIN_WAIT", "CLOSE_WAIT") and d != c.fin:
                c.state = "LAST_ACK"
        elif flags & ACK:
            if s == "SYN_RECV" and d == 0:
                c.state, c.assured = "ESTABLISHED", True
            elif s == "FIN_WAIT" and d != c.fin:
                c.state = "CLOSE_WAIT"
            elif s == "LAST_ACK":
                c.state = "TIME_WAIT"
            elif s == "ESTABLISHED" and c.seen_reply:
                c.assured = True

    def _related(self, p, data: bytes, th: int, now: int) -> int:
        """An ICMP error is RELATED when the packet it quotes belongs to a
        tracked connection (icmp_error_message()), else INVALID."""
        try:
            q = icmp_wire.quoted(data, th + icmp_wire.ICMP_HLEN)
        except Malformed:
            self.stats["invalid"] += 1
            return INVALID
        if q.proto == 1:
            ty, ident = q.echo
            inner = (q.src, q.dst, ty, ident)
        else:
            inner = (q.src, q.dst, *q.ports)
        if self._find(q.proto, inner, now) is None:
            self.stats["invalid"] += 1
            return INVALID
        return RELATED

    # -- conntrack(8)
    def listing(self, now: int) -> str:
        """`conntrack -L`, as conntrack-tools prints it."""
        lines = []
        for c in list(self.conns.values()):
            if c.expires <= now:
                self._forget(c)
                continue
            name = PROTO_NAMES.get(c.proto, "unknown")
            head = f"{name:<8} {c.proto} {(c.expires - now) // S} " + (f"{c.state} " if c.proto == 6 else "")
            lines.append(head + _tuple(c.proto, c.orig) + (" [UNREPLIED]" if not c.seen_reply else "") + " " +
                         _tuple(c.proto, c.reply) + (" [ASSURED]" if c.assured else "") + " mark=0 use=1")
        return "".join(line + "\n" for line in lines)

    def flush(self):
        self.table.clear()
        self.conns.clear()


def _tuple(proto: int, t: tuple) -> str:
    from ...wire import ipv4
    src, dst, a, b = t
    if proto == 1:
        return f"src={ipv4.ntoa(src)} dst={ipv4.ntoa(dst)} type={a} code=0 id={b}"
    return f"src={ipv4.ntoa(src)} dst={ipv4.ntoa(dst)} sport={a} dport={b}"


def state_names(bits: int) -> str:
    return ",".join(name for name, bit in STATE_NAMES if bits & bit)


def parse_states(text: str) -> int:
    bits = 0
    for name in text.split(","):
        bit = dict(STATE_NAMES).get(name.upper())
        if bit is None:
            raise ValueError(name)
        bits |= bit
    return bits
