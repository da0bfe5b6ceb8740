"""The neighbour table and its NUD state machine (net/core/neighbour.c), one
for each family as in Linux: ARP's (arp_tbl, IPv4) and neighbour discovery's
(nd_tbl, IPv6), the same machine keyed by (ifindex, address) with each its
parameters; the caller (dev.py) sends the family's probes (arp.solicit(),
ndisc.solicit()).

States and timers are Linux's: INCOMPLETE probes by broadcast every
retrans_time, starting its probe count at ucast_solicit and failing after
ucast_solicit + mcast_solicit (so three broadcasts); REACHABLE for a random
0.5..1.5 x base_reachable_time after a confirmation, then STALE; a STALE entry
in use goes to DELAY, and after delay_first_probe_time to PROBE, which asks by
unicast ucast_solicit times before FAILED. Packets wait in the entry's queue
(unres_qlen_bytes) while it resolves.

Pure: time comes in as monotonic nanoseconds, probes and released packets go
out as return values, randomness comes from the caller's Random.
"""
from collections import Counter, deque

NUD_NONE = 0x00
NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD_VALID = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY
NUD_CONNECTED = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE

NAMES = {NUD_NONE: "NONE", NUD_INCOMPLETE: "INCOMPLETE", NUD_REACHABLE: "REACHABLE", NUD_STALE: "STALE",
         NUD_DELAY: "DELAY", NUD_PROBE: "PROBE", NUD_FAILED: "FAILED", NUD_NOARP: "NOARP",
         NUD_PERMANENT: "PERMANENT"}


def trace_name(state: int) -> str:
    """The state as the neigh tracepoints print it (__print_symbolic: a value it does not name in hex)."""
    return NAMES[state].lower() if state else "0x0"

MS = 1_000_000
S = 1_000_000_000


FORCED_GC_SCAN = 64          # entries forced GC may look at and keep before it gives up


AF_INET, AF_INET6 = 2, 10

# NTF_ROUTER (include/uapi/linux/neighbour.h): the neighbour said it is a router (an NA's R flag, an RA)
NTF_ROUTER = 0x80
# __neigh_update()'s flags (include/net/neighbour.h), as ndisc_update() passes them
NEIGH_UPDATE_F_OVERRIDE = 0x1               # a new link-layer address replaces the one known
NEIGH_UPDATE_F_WEAK_OVERRIDE = 0x2          # ... or, refused, makes a CONNECTED entry STALE
NEIGH_UPDATE_F_OVERRIDE_ISROUTER = 0x4      # NTF_ROUTER follows NEIGH_UPDATE_F_ISROUTER
NEIGH_UPDATE_F_ISROUTER = 0x40000000


class NeighParms:
    """struct neigh_parms, from the net.ipv4.neigh.default.* sysctls (arp_tbl's)
    or net.ipv6.neigh.default.* (nd_tbl's, `family` AF_INET6). nd_tbl's defaults
    are arp_tbl's numbers (net/ipv6/ndisc.c: retrans_time 1 s, base_reachable_time
    30 s, delay_first_probe_time 5 s, mcast_solicit 3, ucast_solicit 3, gc_stale_time
    60 s, unres_qlen_bytes 212992, gc_thresh 128/512/1024): a namespace without
    net.ipv6.neigh.* sysctls gets those."""

    def __init__(self, sysctls: dict, family: int = AF_INET):
        from ..common.sysctl import KNOBS
        fam = "ipv6" if family == AF_INET6 else "ipv4"

        def get(key: str) -> int:
            v = sysctls.get(f"net.{fam}.neigh.default.{key}")
            return KNOBS[f"net.ipv4.neigh.default.{key}"].default if v is None else v
        self.base_reachable_time = get("base_reachable_time_ms") * MS
        self.retrans_time = get("retrans_time_ms") * MS
        self.delay_probe_time = get("delay_first_probe_time") * S
        self.mcast_probes = get("mcast_solicit")
        self.ucast_probes = get("ucast_solicit")
        self.app_probes = 0
        self.mcast_reprobes = 0
        self.queue_len_bytes = get("unres_qlen_bytes")
        self.gc_stale_time = get("gc_stale_time") * S
        self.gc_thresh1, self.gc_thresh2, self.gc_thresh3 = (get(f"gc_thresh{i}") for i in (1, 2, 3))


class Neighbour:
    __slots__ = ("ifindex", "ip", "lladdr", "state", "probes", "queue", "queue_bytes", "updated",
                 "confirmed", "used", "reachable_time", "flags")

    def __init__(self, ifindex: int, ip: int, now: int):
        self.ifindex, self.ip = ifindex, ip
        self.lladdr: bytes | None = None
        self.state = NUD_NONE
        self.probes = 0
        self.queue: deque = deque()
        self.queue_bytes = 0
        self.updated = self.confirmed = self.used = now
        self.reachable_time = 0
        self.flags = 0                  # NTF_ROUTER


# What the table asks of its caller, as (kind, neighbour, payload) tuples.
SEND = "send"            # payload: skb to transmit now with neighbour.lladdr
QUEUED = "queued"        # payload: skb parked in the neighbour's queue
DROP = "drop"            # payload: (skb, reason)
SOLICIT = "solicit"      # payload: (skb that caused it or None, dst MAC or None for broadcast)
TIMER = "timer"          # payload: monotonic ns of the neighbour's next timer, None to cancel
FAILED = "failed"        # payload: skb that was waiting; the caller reports the link failure


class NeighTable:
    """A neighbour table of one network namespace: arp_tbl (`family` AF_INET) or
    nd_tbl (AF_INET6). The machine is the same; only the probes differ, and the
    caller sends those."""

    def __init__(self, parms: NeighParms, rng, family: int = AF_INET):
        self.parms = parms
        self.family = family
        self.rng = rng
        self.entries: dict[tuple[int, int], Neighbour] = {}
        self.last_flush = self.last_periodic = -1 << 62
        self.stats = Counter()            # /proc/net/stat/arp_cache: table_fulls, forced_gc_runs, periodic_gc_runs

    def _reachable_time(self) -> int:
        # neigh_rand_reach_time(): uniformly in [base/2, 3*base/2)
        base = self.parms.base_reachable_time
        return base // 2 + int(self.rng.random() * base)

    def lookup(self, ifindex: int, ip: int) -> Neighbour | None:
        return self.entries.get((ifindex, ip))

    def output(self, ifindex: int, ip: int, skb, now: int, confirm: bool = False) -> list:
        """neigh_resolve_output(): send with a known address, or queue and probe.
        `confirm`: the skb carries the socket's confirmation (sock_confirm_neigh()
        -> neigh_confirm(): `confirmed` is now, so REACHABLE lasts and DELAY
        returns to REACHABLE without a probe)."""
        n = self.entries.get((ifindex, ip))
        if n is None:
            n = self._alloc(ifindex, ip, now)
            if n is None:
                return [(DROP, Neighbour(ifindex, ip, now), (skb, "NEIGH_CREATEFAIL"))]
        if confirm:
            n.confirmed = now
        n.used = now
        state = n.state
        if state & (NUD_CONNECTED | NUD_DELAY | NUD_PROBE):
            return [(SEND, n, skb)]
        if state == NUD_STALE:
            # neigh_event_send: first use of a stale entry starts the DELAY clock
            n.state, n.updated = NUD_DELAY, now
            return [(SEND, n, skb), (TIMER, n, now + self.parms.delay_probe_time)]
        out = []
        if state in (NUD_NONE, NUD_FAILED):
            if not self.parms.mcast_probes + self.parms.app_probes:
                # __neigh_event_send(): nothing may be probed, so FAILED at once and the skb freed
                n.state, n.updated = NUD_FAILED, now
                return [(DROP, n, (skb, "NEIGH_FAILED"))]
            n.state, n.updated = NUD_INCOMPLETE, now
            # __neigh_event_send(): probes start at ucast_solicit and the
            # immediate probe counts, so INCOMPLETE sends mcast_solicit in all
            n.probes = self.parms.ucast_probes + 1
            out.append((TIMER, n, now + self.parms.retrans_time))
            out.append((SOLICIT, n, (skb, None)))
        out += self._enqueue(n, skb)
        return out

    def _alloc(self, ifindex: int, ip: int, now: int) -> Neighbour | None:
        """neigh_alloc(): a new entry. Above gc_thresh2 (every 5 s) or gc_thresh3 the
        table is collected first (neigh_forced_gc()); still full at gc_thresh3, no
        entry ("neighbor table overflow"). neigh_periodic_work()'s sweep runs here
        too, at most every base_reachable_time/2 while the table holds gc_thresh1."""
        p = self.parms
        if len(self.entries) >= p.gc_thresh1 and now >= self.last_periodic + p.base_reachable_time // 2:
            self.last_periodic = now
            self._periodic_gc(now)
        count = len(self.entries)
        if count >= p.gc_thresh3 or (count >= p.gc_thresh2 and now > self.last_flush + 5 * S):
            if not self._forced_gc(now) and count >= p.gc_thresh3:
                self.stats["table_fulls"] += 1
                return None
        n = self.entries[(ifindex, ip)] = Neighbour(ifindex, ip, now)
        return n

    def _collectable(self, n: Neighbour) -> bool:
        return not n.state & (NUD_PERMANENT | NUD_NOARP) and not n.queue      # refcnt 1: nothing waits on it

    def _periodic_gc(self, now: int):
        """neigh_periodic_work(): FAILED entries, and ones unused for gc_stale_time, go."""
        self.stats["periodic_gc_runs"] += 1
        for key, n in list(self.entries.items()):
            if self._collectable(n) and (n.state == NUD_FAILED or now >= n.used + self.parms.gc_stale_time):
                del self.entries[key]

    def _forced_gc(self, now: int) -> int:
        """neigh_forced_gc(): down towards gc_thresh2, oldest first: FAILED entries and
        ones not updated in the last 5 s. Like Linux's (which stops after a
        millisecond), it looks at a bounded number of entries it cannot free, so
        a flood that keeps the table full does not make every packet scan it.
        Returns how many went."""
        self.stats["forced_gc_runs"] += 1
        self.last_flush = now
        excess = len(self.entries) - self.parms.gc_thresh2
        doomed, kept = [], 0
        old = now - 5 * S
        for key, n in self.entries.items():            # insertion order: the oldest first
            if len(doomed) >= excess or kept >= FORCED_GC_SCAN:
                break
            if self._collectable(n) and (n.state == NUD_FAILED or n.updated < old):
                doomed.append(key)
            else:
                kept += 1
        for key in doomed:
            del self.entries[key]
        return len(doomed)

    def _enqueue(self, n: Neighbour, skb) -> list:
        out = []
        size = len(skb.data)
        # __neigh_event_send(): drop the oldest while over the limit, stopping at an empty
        # queue; the new skb is queued whatever its size.
        while n.queue and n.queue_bytes + size > self.parms.queue_len_bytes:
            old = n.queue.popleft()
            n.queue_bytes -= len(old.data)
            out.append((DROP, n, (old, "NEIGH_QUEUEFULL")))
        n.queue.append(skb)
        n.queue_bytes += size
        out.append((QUEUED, n, skb))
        return out

    def update(self, ifindex: int, ip: int, lladdr: bytes | None, state: int, now: int, create: bool,
               weak: bool = False, flags: int | None = None) -> list:
        """neigh_update(). From ARP (`flags` None): a valid entry whose address is
        unchanged keeps its state when the new one is STALE (__neigh_update());
        `weak` extends that to any new state. With `flags` (NEIGH_UPDATE_F_*, as
        ndisc_update() passes them) __neigh_update()'s own rules: see _override().
        Returns what to do."""
        n = self.entries.get((ifindex, ip))
        if n is None:
            if not create:
                return []
            n = self._alloc(ifindex, ip, now)
            if n is None:
                return []
        if n.state & (NUD_NOARP | NUD_PERMANENT):
            return []
        if flags is not None:
            return self._override(n, lladdr, state, now, flags)
        if n.state & NUD_VALID and n.lladdr == lladdr and (weak or state == NUD_STALE):
            return []
        n.lladdr = lladdr
        return self._set_state(n, state, now)

    def _override(self, n: Neighbour, lladdr: bytes | None, state: int, now: int, flags: int) -> list:
        """__neigh_update() with NEIGH_UPDATE_F_* flags: no address given uses the one
        known (none known: nothing happens); a different address replaces it only
        with OVERRIDE, else WEAK_OVERRIDE turns a CONNECTED entry STALE and keeps its
        address, and without either nothing changes; the same address with STALE
        keeps the state. A state that does not change keeps its timer.
        OVERRIDE_ISROUTER sets NTF_ROUTER from ISROUTER (unless the address was
        refused)."""
        old = n.state
        if lladdr is None:
            if not old & NUD_VALID:
                return []
            lladdr = n.lladdr
        if state & NUD_CONNECTED:
            n.confirmed = now
        isrouter = flags & NEIGH_UPDATE_F_OVERRIDE_ISROUTER
        if old & NUD_VALID:
            if lladdr != n.lladdr and not flags & NEIGH_UPDATE_F_OVERRIDE:
                isrouter = 0
                if not (flags & NEIGH_UPDATE_F_WEAK_OVERRIDE and old & NUD_CONNECTED):
                    return []
                lladdr, state = n.lladdr, NUD_STALE
            elif lladdr == n.lladdr and state == NUD_STALE:
                state = old
        if isrouter:
            n.flags = n.flags | NTF_ROUTER if flags & NEIGH_UPDATE_F_ISROUTER else n.flags & ~NTF_ROUTER
        if lladdr != n.lladdr:
            n.lladdr = lladdr
            n.updated = now
            if not state & NUD_CONNECTED:
                n.confirmed = now - 2 * self.parms.base_reachable_time
        if state == old:
            return []
        return self._set_state(n, state, now)

    def _set_state(self, n: Neighbour, state: int, now: int) -> list:
        """The new state with its timer; a queue waiting for the address goes out."""
        n.state, n.updated = state, now
        out = []
        if state & NUD_CONNECTED:
            n.confirmed = now
            n.reachable_time = self._reachable_time()
            out.append((TIMER, n, now + n.reachable_time))
        else:
            out.append((TIMER, n, None))
        n.probes = 0
        ifindex, ip = n.ifindex, n.ip
        while n.queue:
            # neigh_update_process_arp_queue(): each skb through n->output, which is
            # neigh_resolve_output() unless CONNECTED: a STALE entry turns DELAY there.
            skb = n.queue.popleft()
            out += [(SEND, n, skb)] if n.state & NUD_CONNECTED else self.output(ifindex, ip, skb, now)
        n.queue_bytes = 0
        return out

    def timer(self, ifindex: int, ip: int, now: int) -> list:
        """neigh_timer_handler()."""
        n = self.entries.get((ifindex, ip))
        if n is None:
            return []
        p = self.parms
        state = n.state
        if state == NUD_REACHABLE:
            if now >= n.confirmed + n.reachable_time:
                if now < n.used + p.delay_probe_time:
                    n.state, n.updated = NUD_DELAY, now
                    return [(TIMER, n, now + p.delay_probe_time)]
                n.state, n.updated = NUD_STALE, now
                return [(TIMER, n, now + p.gc_stale_time)]
            return [(TIMER, n, n.confirmed + n.reachable_time)]
        if state == NUD_DELAY:
            if now < n.confirmed + p.delay_probe_time:
                n.state, n.updated = NUD_REACHABLE, now
                return [(TIMER, n, n.confirmed + n.reachable_time)]
            n.state, n.updated, n.probes = NUD_PROBE, now, 0
            state = NUD_PROBE
        if state == NUD_STALE:
            # neigh_periodic_work(): an unused stale entry is collected
            if now >= n.used + p.gc_stale_time:
                del self.entries[(ifindex, ip)]
                return []
            return [(TIMER, n, n.used + p.gc_stale_time)]
        if state in (NUD_INCOMPLETE, NUD_PROBE):
            max_probes = p.ucast_probes + p.app_probes + (p.mcast_reprobes if state == NUD_PROBE else p.mcast_probes)
            if n.probes >= max_probes:
                n.state, n.updated = NUD_FAILED, now
                out = [(FAILED, n, skb) for skb in n.queue]
                n.queue.clear()
                n.queue_bytes = 0
                return out
            cause = n.queue[-1] if n.queue else None
            n.probes += 1
            dst = n.lladdr if state == NUD_PROBE else None
            return [(SOLICIT, n, (cause, dst)), (TIMER, n, now + p.retrans_time)]
        return []

    def show(self) -> list[dict]:
        return [{"dst": n.ip, "ifindex": n.ifindex, "lladdr": n.lladdr, "state": n.state}
                for n in self.entries.values()]
