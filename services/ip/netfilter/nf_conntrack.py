"""nf_conntrack for IPv4 as a sans-I/O core (net/netfilter/nf_conntrack_core.c,
nf_conntrack_proto_{tcp,udp,icmp,generic}.c): addresses, ports, flags and the
time in; the packet's conntrack state, its connection and a drop reason out.

The caller (the ip layer) calls track() where the kernel's nf_conntrack_in()
runs (PREROUTING, OUTPUT) and confirm() where __nf_conntrack_confirm() runs
(the last hook the packet passes, POSTROUTING or INPUT): a connection's first
packet only makes an unconfirmed Conn, which enters the table when confirmed,
so a packet a rule drops leaves nothing behind. `now` is in nanoseconds.

Modelled: both tuples in one table (a NAT helper may change the reply tuple
before confirmation: Conn.set_reply()); the TCP state table tcp_conntracks[][][]
for SYN, SYN/ACK, FIN, ACK, RST and none, both directions, with its special
cases (IGNORE, a SYN reopening TIME_WAIT/CLOSE, an only-RST reply killing the
entry, no timer renewal on SYN retransmits, mid-stream pickup with
nf_conntrack_tcp_loose=1 capped at the unacknowledged timeout until a reply),
ASSURED as the kernel sets it, UDP's unreplied/stream timeouts (a stream after
2 s), ICMP query/reply tracking and RELATED ICMP errors, the generic tracker,
nf_conntrack_max with early drop, and `conntrack -L/-S/-C/-F` output
(conntrack-tools 1.4.7, captured on Linux 6.18).
Not modelled: TCP window/sequence tracking (tcp_in_window(), as if
nf_conntrack_tcp_be_liberal=1; so no _max_retrans/_unacknowledged timers beyond
the pickup cap), expectations and helpers, zones, fragments (the caller tracks
whole datagrams), per-CPU stats, hash-order listing (we list in insertion order).
"""
from collections import Counter, OrderedDict
from typing import NamedTuple

from ...common.sysctl import CONNTRACK_TIMEOUTS as TIMEOUTS

# what the conntrack/state matches see: XT_STATE_BIT(ctinfo) = 1 << (ctinfo + 1) for IP_CT_ESTABLISHED 0,
# IP_CT_RELATED 1, IP_CT_NEW 2; XT_STATE_INVALID 1 << 0; XT_STATE_UNTRACKED 1 << (IP_CT_NUMBER + 1)
INVALID, ESTABLISHED, RELATED, NEW, UNTRACKED = 1, 2, 4, 8, 64
# enum ip_conntrack_status
IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1 << 0, 1 << 1, 1 << 2, 1 << 3
IPS_SRC_NAT, IPS_DST_NAT, IPS_DYING = 1 << 4, 1 << 5, 1 << 9
S = 1_000_000_000
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
ICMP, TCP, UDP = 1, 6, 17
PROTO_NAMES = {ICMP: "icmp", TCP: "tcp", UDP: "udp"}
CONNTRACK_VERSION = "conntrack v1.4.7 (conntrack-tools)"
DROP_REASON_FULL = "NETFILTER_DROP"      # nf_hook_slow() frees every NF_DROP with SKB_DROP_REASON_NETFILTER_DROP

UDP_STREAM_AFTER = 2 * S                  # udp_packet(): "still active after two seconds?"


# TCP states (enum tcp_conntrack) and the kernel's tcp_conntracks[dir][index][state].
NO, SS, SR, ES, FW, CW, LA, TW, CL, S2, IV, IG = range(12)
STATE_NAMES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
               "TIME_WAIT", "CLOSE", "SYN_SENT2")
_STATE_TIMEOUT = ("tcp_timeout_close", "tcp_timeout_syn_sent", "tcp_timeout_syn_recv", "tcp_timeout_established",
                  "tcp_timeout_fin_wait", "tcp_timeout_close_wait", "tcp_timeout_last_ack",
                  "tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_syn_sent")
I_SYN, I_SYNACK, I_FIN, I_ACK, I_RST, I_NONE = range(6)
TCP_CONNTRACKS = (
    (   # ORIGINAL   sNO sSS sSR sES sFW sCW sLA sTW sCL sS2
        (SS, SS, IG, IG, IG, IG, IG, SS, SS, S2),      # syn
        (IV, IV, SR, IV, IV, IV, IV, IV, IV, SR),      # synack
        (IV, IV, FW, FW, LA, LA, LA, TW, CL, IV),      # fin
        (ES, IV, ES, ES, CW, CW, TW, TW, CL, IV),      # ack
        (IV, CL, CL, CL, CL, CL, CL, CL, CL, CL),      # rst
        (IV,) * 10,                                    # none
    ),
    (   # REPLY
        (IV, S2, IV, IV, IV, IV, IV, SS, IV, S2),      # syn
        (IV, SR, IG, IG, IG, IG, IG, IG, IG, SR),      # synack
        (IV, IV, FW, FW, LA, LA, LA, TW, CL, IV),      # fin
        (IV, IG, SR, ES, CW, CW, TW, TW, CL, IG),      # ack
        (IV, CL, CL, CL, CL, CL, CL, CL, CL, CL),      # rst
        (IV,) * 10,                                    # none
    ),
)


def conntrack_index(flags: int) -> int:
    """get_conntrack_index()"""
    if flags & RST:
        return I_RST
    if flags & SYN:
        return I_SYNACK if flags & ACK else I_SYN
    if flags & FIN:
        return I_FIN
    return I_ACK if flags & ACK else I_NONE


# ICMP: the query types that may start a connection (icmp_packet()'s valid_new[]) and
# the type the reply has (icmp_invert_tuple()'s invmap[]).
ICMP_INVMAP = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP_VALID_NEW = frozenset((8, 13, 15, 17))
ICMP_ERRORS = frozenset((3, 4, 5, 11, 12))       # icmp_is_err(): the types that quote a packet


class Tuple(NamedTuple):
    """struct nf_conntrack_tuple for IPv4: for ICMP, sport holds the id and
    type/code the message's (dport is 0); for TCP/UDP type and code are 0."""
    saddr: int
    daddr: int
    proto: int
    sport: int = 0
    dport: int = 0
    type: int = 0
    code: int = 0

    def invert(self) -> "Tuple | None":
        """nf_ct_invert_tuple(): None for an ICMP type that has no reply."""
        if self.proto == ICMP:
            rtype = ICMP_INVMAP.get(self.type)
            if rtype is None:
                return None
            return Tuple(self.daddr, self.saddr, ICMP, self.sport, 0, rtype, self.code)
        return Tuple(self.daddr, self.saddr, self.proto, self.dport, self.sport)


class Conn:
    """struct nf_conn: the two tuples, the status bits, TCP's state, the deadline."""
    __slots__ = ("orig", "reply", "status", "tcp_state", "timeout", "mark", "stream_ts", "last_index",
                 "last_dir", "close_init", "simopen", "_ct")

    def __init__(self, orig: Tuple, reply: Tuple):
        self.orig, self.reply = orig, reply
        self.status = 0
        self.tcp_state = NO
        self.timeout = 0                  # absolute deadline, ns
        self.mark = 0
        self.stream_ts = 0                # UDP: when the flow counts as a stream
        self.last_index, self.last_dir = I_NONE, 0
        self.close_init = [False, False]  # IP_CT_TCP_FLAG_CLOSE_INIT per direction
        self.simopen = False
        self._ct = None

    proto = property(lambda self: self.orig.proto)
    state = property(lambda self: STATE_NAMES[self.tcp_state] if self.orig.proto == TCP else "")
    seen_reply = property(lambda self: bool(self.status & IPS_SEEN_REPLY))
    assured = property(lambda self: bool(self.status & IPS_ASSURED))
    confirmed = property(lambda self: bool(self.status & IPS_CONFIRMED))

    def tuple(self, direction: int) -> Tuple:
        return self.reply if direction else self.orig

    def set_reply(self, t: Tuple):
        """nf_conntrack_alter_reply(): a NAT helper rewrites the reply tuple, before
        the connection is confirmed (the kernel WARNs and refuses afterwards)."""
        if self.confirmed:
            raise ValueError("the reply tuple of a confirmed connection cannot change")
        self.reply = t

    def __repr__(self):
        return f"Conn({self.orig}, {self.reply}, {self.state or self.proto}, status={self.status:#x})"


class Conntrack:
    """One network namespace's connection table."""

    def __init__(self, max_entries: int = 262144, timeouts: dict | None = None, tcp_loose: bool = True):
        self.max = max_entries
        self.timeouts = {k: v * S for k, v in {**TIMEOUTS, **(timeouts or {})}.items()}
        self.tcp_loose = tcp_loose
        self.table: dict[Tuple, tuple[Conn, int]] = {}      # both tuples -> (conn, direction)
        self.conns: dict[Tuple, Conn] = {}                  # original tuple -> conn, in confirmation order
        self.unassured: OrderedDict[Tuple, Conn] = OrderedDict()   # early_drop()'s candidates, oldest first
        self.stats: Counter = Counter({k: 0 for k in STAT_NAMES})
        self.log: list[str] = []          # kernel messages; the caller prints them (ratelimited)

    @classmethod
    def from_sysctl(cls, sc: dict) -> "Conntrack":
        ct = cls()
        ct.configure(sc)
        return ct

    def configure(self, sc: dict):
        """net.netfilter.nf_conntrack_*, at start and after `sysctl -w` (a new
        timeout applies from each connection's next packet, as in the kernel)."""
        self.max = sc["net.netfilter.nf_conntrack_max"]
        self.tcp_loose = bool(sc["net.netfilter.nf_conntrack_tcp_loose"])
        self.timeouts = {k: sc[f"net.netfilter.nf_conntrack_{k}"] * S for k in TIMEOUTS}

    # -- the table
    def _find(self, t: Tuple, now: int):
        hit = self.table.get(t)
        if hit is not None and hit[0].timeout <= now:      # lazy expiry, as nf_ct_is_expired() on lookup
            self._kill(hit[0])
            return None
        return hit

    def _kill(self, c: Conn):
        if c.status & IPS_DYING:
            return
        c.status |= IPS_DYING
        if not c.confirmed:
            return
        self.table.pop(c.orig, None)
        self.table.pop(c.reply, None)
        self.conns.pop(c.orig, None)
        self.unassured.pop(c.orig, None)

    def _assure(self, c: Conn):
        c.status |= IPS_ASSURED
        self.unassured.pop(c.orig, None)

    def confirm(self, c: Conn | None) -> bool:
        """__nf_conntrack_confirm(): the connection's first packet passed every hook.
        False when the packet must be dropped (NETFILTER_DROP): its tuple was
        inserted meanwhile by another connection (insert_failed)."""
        if c is None or c.confirmed or c.status & IPS_DYING:
            return True
        if c.orig in self.table or c.reply in self.table:
            if c.proto in (UDP, ICMP):                     # nf_ct_resolve_clash(): allow_clash protocols
                self.stats["clash_resolve"] += 1
                return True
            self.stats["insert_failed"] += 1
            self.stats["drop"] += 1
            return False
        c.status |= IPS_CONFIRMED
        c._ct = self
        self.table[c.orig] = (c, 0)
        self.table[c.reply] = (c, 1)
        self.conns[c.orig] = c
        if not c.assured:
            self.unassured[c.orig] = c
        self.stats["insert"] += 1
        return True

    def expire(self, now: int) -> int:
        """The gc worker: removes every connection whose timeout has passed."""
        dead = [c for c in self.conns.values() if c.timeout <= now]
        for c in dead:
            self._kill(c)
        return len(dead)

    def next_expiry(self) -> int | None:
        return min((c.timeout for c in self.conns.values()), default=None)

    def entries(self) -> list[Conn]:
        return list(self.conns.values())

    def flush(self):
        for c in self.conns.values():
            c.status |= IPS_DYING
        self.table.clear()
        self.conns.clear()
        self.unassured.clear()

    def lookup(self, t: Tuple, now: int) -> tuple[Conn, int] | None:
        """nf_conntrack_find_get(): (conn, direction) for either of its tuples."""
        return self._find(t, now)

    # -- nf_conntrack_in()
    def track(self, saddr: int, daddr: int, proto: int, sport: int = 0, dport: int = 0, tcp_flags: int = 0,
              icmp_type: int = -1, icmp_code: int = 0, icmp_id: int = 0, inner: tuple | None = None,
              now: int = 0) -> tuple[int, Conn | None, str | None]:
        """The packet's ctstate bits, its connection (unconfirmed if NEW: pass it
        to confirm() once the packet survived every hook) and a drop reason
        (NETFILTER_DROP when the table is full). An INVALID packet has no
        connection. `inner`, for an ICMP error, is the quoted packet's
        (saddr, daddr, proto, sport, dport) (for a quoted ICMP query: sport = id,
        dport = type)."""
        if proto == ICMP and icmp_type in ICMP_ERRORS:
            return self._icmp_error(daddr, inner, now)
        if proto == ICMP:
            t = Tuple(saddr, daddr, ICMP, icmp_id, 0, icmp_type, icmp_code)
        elif proto in (TCP, UDP):
            t = Tuple(saddr, daddr, proto, sport, dport)
        else:
            t = Tuple(saddr, daddr, proto)                 # nf_conntrack_proto_generic.c
        for _ in range(2):                                 # -NF_REPEAT: a SYN reopening a closed connection
            hit = self._find(t, now)
            if hit is None:
                return self._new(t, tcp_flags, now)
            c, d = hit
            self.stats["found"] += 1
            bits = ESTABLISHED if d == 1 or c.seen_reply else NEW
            verdict = self._packet(c, d, tcp_flags, now)
            if verdict == "repeat":
                self._kill(c)
                continue
            if verdict == "invalid":
                self.stats["invalid"] += 1
                return INVALID, None, None
            if d == 1:
                c.status |= IPS_SEEN_REPLY
            return bits, c, None
        raise AssertionError("unreachable")

    def _new(self, t: Tuple, tcp_flags: int, now: int):
        """init_conntrack() and the trackers' new() checks."""
        reply = t.invert()
        if reply is None or (t.proto == ICMP and t.type not in ICMP_VALID_NEW):
            self.stats["invalid"] += 1                     # no reply possible / "icmp: invalid new"
            return INVALID, None, None
        if t.proto == TCP:
            first = TCP_CONNTRACKS[0][conntrack_index(tcp_flags)][NO]
            if first == IV or (first == ES and not self.tcp_loose):
                self.stats["invalid"] += 1                 # tcp_new(): "invalid new"
                return INVALID, None, None
        if len(self.conns) >= self.max and not self._early_drop():
            self.stats["drop"] += 1
            self.log.append("nf_conntrack: table full, dropping packet")
            return INVALID, None, DROP_REASON_FULL
        c = Conn(t, reply)
        if t.proto == UDP:
            c.stream_ts = now + UDP_STREAM_AFTER
        self._packet(c, 0, tcp_flags, now)                # the first packet runs through the tracker too
        return NEW, c, None

    def _early_drop(self) -> bool:
        """early_drop(): evict a connection that is not ASSURED (the kernel looks
        near the new tuple's hash bucket; we take the oldest)."""
        while self.unassured:
            _, c = self.unassured.popitem(last=False)
            if c.assured:
                continue
            self._kill(c)
            self.stats["early_drop"] += 1
            return True
        return False

    def _packet(self, c: Conn, d: int, tcp_flags: int, now: int) -> str:
        """The l4 tracker's packet(): "ok", "invalid" or "repeat"."""
        p = c.proto
        if p == TCP:
            return self._tcp(c, d, tcp_flags, now)
        if p == UDP:
            if c.seen_reply:
                extra = self.timeouts["udp_timeout"]
                if now > c.stream_ts:
                    extra = self.timeouts["udp_timeout_stream"]
                    if not c.assured:
                        self._assure(c)
                c.timeout = now + extra
            else:
                c.timeout = now + self.timeouts["udp_timeout"]
            return "ok"
        c.timeout = now + self.timeouts["icmp_timeout" if p == ICMP else "generic_timeout"]
        return "ok"

    def _tcp(self, c: Conn, d: int, flags: int, now: int) -> str:
        """nf_conntrack_tcp_packet() without tcp_in_window()."""
        index = conntrack_index(flags)
        old = c.tcp_state
        new = TCP_CONNTRACKS[d][index][old]
        if new == SS and old >= TW:
            # a SYN on a closed connection: reopen it if the other side closed it
            if c.close_init[1 - d] or (c.last_dir == d and c.last_index == I_RST):
                return "repeat"
            new = IG
        if new == IG:
            if index == I_SYNACK and c.last_index == I_SYN and c.last_dir != d:
                old, new = SS, SR                          # answers a SYN we ignored: resync
            else:
                c.last_index, c.last_dir = index, d
                return "ok"                                # accepted, state and timer unchanged
        elif new == IV:
            return "invalid"
        elif new == S2:
            c.simopen = True                               # IP_CT_TCP_SIMULTANEOUS_OPEN
        elif new == SR and d == 1 and index == I_ACK and c.simopen:
            new = ES                                       # simultaneous open completes
        c.last_index, c.last_dir = index, d
        c.tcp_state = new
        if old != new and new == FW:
            c.close_init[d] = True
        timeout = self.timeouts[_STATE_TIMEOUT[new]]
        if index == I_RST:
            timeout = self.timeouts["tcp_timeout_close"]
        if not c.seen_reply:
            if flags & RST and c.confirmed:
                self._kill(c)                              # the only reply is a RST: forget it now
                return "ok"
            if index == I_SYN and old == SS:
                return "ok"                                # no timer renewal on SYN retransmits
            if new == ES:
                timeout = min(timeout, self.timeouts["tcp_timeout_unacknowledged"])
        elif not c.assured and old in (SR, ES) and new == ES:
            self._assure(c)
        c.timeout = now + timeout
        return "ok"

    def _icmp_error(self, outer_daddr: int, inner: tuple | None, now: int):
        """nf_conntrack_inet_error(): RELATED if the quoted packet belongs to a
        connection and the error goes back to that packet's sender."""
        if inner is None:
            self.stats["error"] += 1
            return INVALID, None, None
        isaddr, idaddr, iproto, isport, idport = inner
        if iproto == ICMP:
            quoted = Tuple(isaddr, idaddr, ICMP, isport, 0, idport, 0)
        elif iproto in (TCP, UDP):
            quoted = Tuple(isaddr, idaddr, iproto, isport, idport)
        else:
            quoted = Tuple(isaddr, idaddr, iproto)
        inverted = quoted.invert()
        hit = self._find(inverted, now) if inverted is not None else None
        if hit is None or hit[0].tuple(hit[1]).daddr != outer_daddr:
            self.stats["error"] += 1                       # "no match" / "outer daddr mismatch"
            return INVALID, None, None
        return RELATED, hit[0], None

    # -- conntrack(8)
    def conntrack_list(self, now: int) -> str:
        """`conntrack -L`'s stdout (its stderr line: shown_line(len(lines)))."""
        self.expire(now)
        return "".join(format_conn(c, now) + "\n" for c in self.conns.values())

    def conntrack_stats(self) -> str:
        """`conntrack -S` (one CPU)."""
        return "cpu=0   \t" + "".join(f"{k}={self.stats[k]} " for k in STAT_NAMES) + "\n"

    def conntrack(self, argv: list[str], now: int) -> tuple[int, str, str]:
        """conntrack -L | -C | -S | -F: (exit status, stdout, stderr)."""
        cmd = argv[0] if argv else "-L"
        if cmd in ("-L", "--dump"):
            out = self.conntrack_list(now)
            return 0, out, shown_line(out.count("\n"))
        if cmd in ("-C", "--count"):
            self.expire(now)
            return 0, f"{len(self.conns)}\n", ""
        if cmd in ("-S", "--stats"):
            return 0, self.conntrack_stats(), ""
        if cmd in ("-F", "--flush"):
            self.flush()
            return 0, "", f"{CONNTRACK_VERSION}: connection tracking table has been emptied.\n"
        return 2, "", f"{CONNTRACK_VERSION}: Invalid argument {cmd!r} (pktflow has -L, -C, -S and -F)\n"


# `conntrack -S` fields, in its order (the kernel no longer counts found and insert; we do)
STAT_NAMES = ("found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error", "search_restart",
              "clash_resolve", "chaintoolong")


def shown_line(n: int) -> str:
    """conntrack -L's summary on stderr."""
    return f"{CONNTRACK_VERSION}: {n} flow entries have been shown.\n"


def _ntoa(a: int) -> str:
    return f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"


def format_tuple(t: Tuple) -> str:
    head = f"src={_ntoa(t.saddr)} dst={_ntoa(t.daddr)}"
    if t.proto == ICMP:
        return f"{head} type={t.type} code={t.code} id={t.sport}"
    if t.proto in (TCP, UDP):
        return f"{head} sport={t.sport} dport={t.dport}"
    return head


def format_conn(c: Conn, now: int) -> str:
    """One `conntrack -L` line, as conntrack-tools 1.4.7 prints it."""
    name = PROTO_NAMES.get(c.proto, "unknown")
    parts = [f"{name:<8} {c.proto} {max(0, (c.timeout - now) // S)}"]
    if c.proto == TCP:
        parts.append(c.state)
    parts.append(format_tuple(c.orig))
    if not c.seen_reply:
        parts.append("[UNREPLIED]")
    parts.append(format_tuple(c.reply))
    if c.assured:
        parts.append("[ASSURED]")
    parts.append(f"mark={c.mark} use=1")
    return " ".join(parts)


CTSTATE_NAMES = (("INVALID", INVALID), ("NEW", NEW), ("RELATED", RELATED), ("ESTABLISHED", ESTABLISHED),
                 ("UNTRACKED", UNTRACKED))          # the order iptables prints them in


def state_names(bits: int) -> str:
    return ",".join(name for name, bit in CTSTATE_NAMES if bits & bit)


def parse_states(text: str) -> int:
    bits = 0
    for name in text.split(","):
        bit = dict(CTSTATE_NAMES).get(name.upper())
        if bit is None:
            raise ValueError(name)
        bits |= bit
    return bits
