"""The rule engine (net/netfilter/x_tables.c, net/ipv4/netfilter/ip_tables.c
ipt_do_table()) and the kernel side of the matches and targets (xt_*.c,
ipt_*.c): tables of chains of rules, each rule a list of match closures and a
target, walked for a packet at the hook its chains hang on. Pure: closures are
made when a rule is added (iptables.py reads the words), so matching parses
nothing, and time comes in as `now` (ns) for xt_limit.

Tables and the hooks their built-in chains hang on, walked at each hook in
priority order: raw -300, (conntrack -200), mangle -150, nat -100 (DNAT:
PRE_ROUTING, LOCAL_OUT) or 100 (SNAT: LOCAL_IN, POST_ROUTING), filter 0.
DROP or REJECT ends the packet's traversal; ACCEPT (and a NAT target) ends
the current table only."""
from dataclasses import dataclass, field

from ...wire import ipv4
from .nf_conntrack import ESTABLISHED, INVALID, NEW, RELATED, UNTRACKED  # noqa: F401 (the state bits rules see)

NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING = range(5)

PRE, IN, FWD, OUT, POST = range(5)
# each table's built-in chains and their hooks (iptable_*.c valid_hooks), in iptables' listing order
BUILTIN = {
    "raw": {"PREROUTING": PRE, "OUTPUT": OUT},
    "mangle": {"PREROUTING": PRE, "INPUT": IN, "FORWARD": FWD, "OUTPUT": OUT, "POSTROUTING": POST},
    "nat": {"PREROUTING": PRE, "INPUT": IN, "OUTPUT": OUT, "POSTROUTING": POST},
    "filter": {"INPUT": IN, "FORWARD": FWD, "OUTPUT": OUT},
}
# enum nf_ip_hook_priorities
PRIORITY = {"raw": -300, "mangle": -150, "filter": 0}
CONNTRACK_PRIORITY = -200
NAT_PRIORITY = {PRE: -100, OUT: -100, IN: 100, POST: 100}
VERDICTS = ("ACCEPT", "DROP")                       # standard targets that end the walk
JUMP_STACK = 16                                     # NFT_JUMP_STACK_SIZE: deeper, the packet is dropped


@dataclass(slots=True)
class Pkt:
    """What rules look at; the ip layer fills it once per hook."""
    saddr: int
    daddr: int
    proto: int
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    icmp_type: int = -1
    icmp_code: int = -1
    iif: str = ""
    oif: str = ""
    mark: int = 0
    ctstate: int = 0
    length: int = 0
    fragment: bool = False          # a non-first fragment: no ports, flags or ICMP type to match


@dataclass(slots=True)
class Verdict:
    verdict: str                    # ACCEPT, DROP, REJECT, or NAT (the nat table's SNAT/DNAT/MASQUERADE/REDIRECT)
    table: str = ""
    chain: str = ""
    rule: int = 0                   # which rule decided; 0: the chain's policy
    reject_with: str = ""
    mark: int | None = None         # a MARK target set skb->mark to this
    notrack: bool = False           # CT --notrack / NOTRACK: do not track this packet
    nat: tuple | None = None        # (kind, addr_lo, addr_hi, port_lo, port_hi, NF_NAT_RANGE_* flags)
    logs: list = field(default_factory=list)


@dataclass(slots=True)
class Rule:
    matches: list                   # callables (Pkt, now) -> bool, all must hold
    target: str                     # ACCEPT, DROP, RETURN, a user chain, an extension's name, or "" (counters only)
    tg: object = None               # an extension target: callable (Pkt, Verdict) -> verdict str, or None to go on
    goto: bool = False              # -g: no return to this chain
    reject_with: str = ""
    words: tuple = ()               # the rule as -S prints it, after "-A CHAIN"
    listing: tuple = ()             # (spec, extra -n, extra with names) for -L
    hooks: int = 0                  # the hooks its target may run at (bitmask), 0: any
    pcnt: int = 0
    bcnt: int = 0


@dataclass(slots=True)
class Chain:
    name: str
    policy: str | None = None       # built-in chains only
    rules: list = field(default_factory=list)
    pcnt: int = 0                   # the policy's counters
    bcnt: int = 0


class Table:
    def __init__(self, name: str):
        self.name = name
        self.chains = {c: Chain(c, "ACCEPT") for c in BUILTIN[name]}
        self.exists = False         # iptables-nft makes a table on its first change; only those are saved

    def references(self, chain: str) -> int:
        return sum(r.target == chain for c in self.chains.values() for r in c.rules)

    def chain_hooks(self) -> dict:
        """The hooks each chain can be reached from (mark_source_chains()): a built-in
        chain's own, and a user chain's callers'."""
        reach = {name: 1 << hook for name, hook in BUILTIN[self.name].items()}
        todo = list(reach)
        while todo:
            c = self.chains[todo.pop()]
            for r in c.rules:
                if r.target in self.chains and BUILTIN[self.name].get(r.target) is None:
                    new = reach.get(r.target, 0) | reach[c.name]
                    if new != reach.get(r.target):
                        reach[r.target] = new
                        todo.append(r.target)
        return reach

    def check_hooks(self) -> str | None:
        """xt_check_target()'s hook check: the first chain holding a rule whose target
        may not run at a hook the chain is reached from, or None."""
        reach = self.chain_hooks()
        for c in self.chains.values():
            for r in c.rules:
                if r.hooks and reach.get(c.name, 0) & ~r.hooks:
                    return c.name
        return None


class Netfilter:
    """One namespace's tables."""

    def __init__(self, sets=None):
        self.sets = sets
        self.needs_conntrack = False            # a rule used a conntrack or state match
        self.tables = {name: Table(name) for name in BUILTIN}
        self.generation = 0
        self._hooks: list = [None] * 5          # hook -> [(priority, table, chain)] with something to do, or None
        self.nat_used = False
        self.changed()

    def changed(self):
        """Which hooks have work: a chain with rules or a policy other than ACCEPT,
        in priority order; the nat table, once it has a rule, at all four of its
        hooks (NAT binds every connection, rule or not). Called after every
        change, so hook() decides nothing."""
        self.generation += 1
        hooks: list = [[] for _ in range(5)]
        nat_used = any(c.rules for c in self.tables["nat"].chains.values())
        for t in self.tables.values():
            for name, hook in BUILTIN[t.name].items():
                c = t.chains[name]
                if c.rules or c.policy != "ACCEPT" or (t.name == "nat" and nat_used):
                    prio = NAT_PRIORITY[hook] if t.name == "nat" else PRIORITY[t.name]
                    hooks[hook].append((prio, t, c))
        self._hooks = [sorted(h, key=lambda x: x[0]) or None for h in hooks]
        self.nat_used = nat_used

    def empty(self, hook: int) -> bool:
        return self._hooks[hook] is None

    def hook(self, hook: int, pkt: Pkt, now: int, conntrack=None, nat=None) -> Verdict | None:
        """The tables at `hook` in priority order. `conntrack(pkt, v)`, if given,
        runs where nf_conntrack_in() sits (-200: after raw, before mangle);
        `nat(table, chain, pkt, v)` is nf_nat_inet_fn() for the nat table's chains.
        Without them the nat table sees a connection's first packet only. None when
        nothing is at this hook."""
        todo = self._hooks[hook]
        if todo is None and conntrack is None:
            return None
        v = Verdict("ACCEPT")
        for prio, table, chain in todo or ():
            if conntrack is not None and prio > CONNTRACK_PRIORITY:
                v.verdict = conntrack(pkt, v)
                conntrack = None
                if v.verdict != "ACCEPT":
                    return v
            if table.name != "nat":
                v.verdict = ipt_do_table(table, chain, pkt, now, v)
            elif nat is not None:
                v.verdict = nat(table, chain, pkt, v)
            elif not pkt.ctstate or pkt.ctstate & NEW:
                v.verdict = ipt_do_table(table, chain, pkt, now, v)
            if v.verdict not in ("ACCEPT", "NAT"):
                return v
        if conntrack is not None:
            v.verdict = conntrack(pkt, v)
        return v


def ipt_do_table(table: Table, chain: Chain, pkt: Pkt, now: int, v: Verdict) -> str:
    """Walks `chain` (a built-in one) for the packet: the first rule whose matches
    all hold applies its target; a jump walks the user chain and comes back after
    it (a goto does not); RETURN or the end of a user chain goes back; the end of
    the built-in chain applies its policy. Extension targets that return nothing
    (LOG, MARK, CT) let the walk go on (XT_CONTINUE). Says which rule decided in v."""
    stack: list = []
    here, i = chain, 0
    length = pkt.length
    hops = 0
    while True:
        rules = here.rules
        while i < len(rules):
            rule = rules[i]
            i += 1
            for m in rule.matches:
                if not m(pkt, now):
                    break
            else:
                rule.pcnt += 1
                rule.bcnt += length
                if rule.tg is not None:
                    verdict = rule.tg(pkt, v)
                    if verdict is None:
                        continue
                    v.table, v.chain, v.rule = table.name, here.name, i
                    return verdict
                t = rule.target
                if t in VERDICTS:
                    v.table, v.chain, v.rule = table.name, here.name, i
                    return t
                if t == "RETURN":
                    break
                if t:
                    hops += 1
                    if not rule.goto:
                        stack.append((here, i))
                    if len(stack) >= JUMP_STACK or hops > 1024:      # a loop iptables-nft let in
                        v.table, v.chain, v.rule = table.name, here.name, i
                        return "DROP"
                    here, i = table.chains[t], 0
                    rules = here.rules
        if stack:
            here, i = stack.pop()
            continue
        chain.pcnt += 1
        chain.bcnt += length
        v.table, v.chain, v.rule = table.name, chain.name, 0
        return chain.policy


# -- the matches (xt_*.c match functions), each made once per rule -------------
def xt_addr(field_name: str, addr: int, plen: int, inv: bool):
    mask = ipv4.prefix_mask(plen)
    if field_name == "saddr":
        return lambda p, now: ((p.saddr & mask) == addr) != inv
    return lambda p, now: ((p.daddr & mask) == addr) != inv


def xt_proto(num: int, inv: bool):
    return lambda p, now: (p.proto == num) != inv


def xt_iface(field_name: str, name: str, inv: bool):
    """ifname_compare_aligned(): a trailing + matches any name that starts so."""
    if name.endswith("+"):
        stem = name[:-1]
        test = (lambda dev: dev.startswith(stem))
    else:
        test = (lambda dev: dev == name)
    if field_name == "iif":
        return lambda p, now: test(p.iif) != inv
    return lambda p, now: test(p.oif) != inv


def xt_fragment(inv: bool):
    return lambda p, now: p.fragment != inv


# tcp_mt()/udp_mt()/icmp_match(): a non-first fragment has no header to read and never matches
def xt_port(field_name: str, lo: int, hi: int, inv: bool):
    if field_name == "sport":
        return lambda p, now: not p.fragment and (lo <= p.sport <= hi) != inv
    return lambda p, now: not p.fragment and (lo <= p.dport <= hi) != inv


def xt_tcp_flags(mask: int, comp: int, inv: bool):
    return lambda p, now: not p.fragment and ((p.tcp_flags & mask) == comp) != inv


def xt_icmp(ty: int, code_lo: int, code_hi: int, inv: bool):
    if ty == 0xFF:                                  # "any"
        return lambda p, now: not p.fragment and not inv
    return lambda p, now: not p.fragment and (p.icmp_type == ty and code_lo <= p.icmp_code <= code_hi) != inv


def xt_multiport(which: str, ports: list, inv: bool):
    """ports_match_v1(): single ports and lo:hi ranges, on source, destination or either."""
    def hit(port):
        return any(lo <= port <= hi for lo, hi in ports)
    if which == "sports":
        return lambda p, now: not p.fragment and hit(p.sport) != inv
    if which == "dports":
        return lambda p, now: not p.fragment and hit(p.dport) != inv
    return lambda p, now: not p.fragment and (hit(p.sport) or hit(p.dport)) != inv


def xt_conntrack(bits: int, inv: bool):
    """state_mt()/conntrack_mt(): the packet's state bit among the listed ones; 0
    (nothing tracked it) counts as UNTRACKED only when the ip layer says so."""
    return lambda p, now: bool(p.ctstate & bits) != inv


def xt_mark(mark: int, mask: int, inv: bool):
    return lambda p, now: ((p.mark & mask) == mark) != inv


def xt_limit(period_ns: int, burst: int):
    """limit_mt(): a token bucket of `burst` packets refilled one per period; credits
    are kept in ns (the kernel keeps jiffies scaled by CREDITS_PER_JIFFY), full at start."""
    cap = period_ns * burst
    state = [cap, None]                             # credit, prev

    def limit_mt(p, now):
        credit, prev = state
        if prev is not None:
            credit = min(cap, credit + max(0, now - prev))
        state[1] = now
        if credit >= period_ns:
            state[0] = credit - period_ns
            return True
        state[0] = credit
        return False
    return limit_mt


def xt_set(sets, name: str, dirs: list, inv: bool):
    return lambda p, now: sets.test(name, p, dirs, now) != inv


# -- the targets (xt_*.c, ipt_*.c target functions) ----------------------------
def reject_tg(kind: str):
    def tg(p, v):
        v.reject_with = kind
        return "REJECT"
    return tg


def mark_tg(value: int, mask: int):
    """mark_tg(): skb->mark = (skb->mark & ~mask) ^ value; later rules see it."""
    def tg(p, v):
        p.mark = v.mark = (p.mark & ~mask & 0xFFFFFFFF) ^ value
    return tg


def notrack_tg(p, v):
    """xt_ct_target(--notrack): the packet stays untracked; later tables see UNTRACKED."""
    v.notrack = True
    p.ctstate = UNTRACKED


def nat_tg(nat: tuple):
    def tg(p, v):
        v.nat = nat
        return "NAT"
    return tg


def log_tg(prefix: str):
    """ipt_log_packet(): the line is written from the packet's bytes by the hook
    (nf_log.py); the rule leaves its prefix and the mark as it is now."""
    def tg(p, v):
        v.logs.append((prefix, p.mark))
    return tg
