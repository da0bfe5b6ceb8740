"""The rule engine (net/ipv4/netfilter/ip_tables.c, ipt_do_table()): tables of
chains of rules, each rule a list of matches and a target, walked for a packet
at the hook its chains hang on. Pure: a rule's matches are closures made when
the rule is added (iptables.py), so matching parses nothing.

pktflow has the filter table (INPUT at LOCAL_IN, FORWARD, OUTPUT at LOCAL_OUT,
priority 0); raw, mangle and nat, and connection tracking, are still to come."""
from dataclasses import dataclass, field

NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING = range(5)
# the built-in chains of each table and the hook each hangs on
BUILTIN = {"filter": {"INPUT": NF_INET_LOCAL_IN, "FORWARD": NF_INET_FORWARD, "OUTPUT": NF_INET_LOCAL_OUT}}
VERDICTS = ("ACCEPT", "DROP", "REJECT")       # the targets that end the walk


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
    verdict: str                    # ACCEPT, DROP or REJECT
    table: str = ""
    chain: str = ""
    rule: int = 0                   # which rule decided; 0: the chain's policy
    reject_with: str = ""
    mark: int | None = None
    logs: list = field(default_factory=list)


@dataclass(slots=True)
class Rule:
    matches: list                   # callables Pkt -> bool, all must hold
    target: str                     # a verdict, RETURN, a user chain, or "" (counters only)
    goto: bool = False              # -g: no return to this chain
    reject_with: str = ""
    words: tuple = ()               # the rule as -S prints it, after "-A CHAIN"
    listing: tuple = ()             # (prot, opt, in, out, source, destination, extra) for -L, per numeric flag
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

    def references(self, chain: str) -> int:
        return sum(r.target == chain for c in self.chains.values() for r in c.rules)


class Netfilter:
    """One namespace's tables."""

    def __init__(self, sets=None):
        self.sets = sets
        self.needs_conntrack = False            # a rule used a conntrack or state match
        self.tables = {name: Table(name) for name in BUILTIN}
        self.generation = 0
        self._hooks: list = [None] * 5            # hook -> [(table, chain)] with something to do, or None
        self.changed()

    def changed(self):
        """Which hooks have work: a chain with rules or a policy other than ACCEPT."""
        self.generation += 1
        hooks: list = [None] * 5
        for t in self.tables.values():
            for name, hook in BUILTIN[t.name].items():
                c = t.chains[name]
                if c.rules or c.policy != "ACCEPT":
                    hooks[hook] = (hooks[hook] or []) + [(t, c)]
        self._hooks = hooks

    def empty(self, hook: int) -> bool:
        return self._hooks[hook] is None

    def hook(self, hook: int, pkt: Pkt, now: int) -> Verdict | None:
        todo = self._hooks[hook]
        if todo is None:
            return None
        v = None
        for table, chain in todo:
            v = ipt_do_table(table, chain, pkt)
            if v.verdict != "ACCEPT":
                return v
        return v


def ipt_do_table(table: Table, chain: Chain, pkt: Pkt) -> Verdict:
    """Walks `chain` (a built-in one) for the packet: the first rule whose matches
    all hold applies its target; a jump walks the user chain and comes back after
    it (a goto does not); RETURN or the end of a user chain goes back; the end of
    the built-in chain applies its policy."""
    stack: list = []
    here, i = chain, 0
    length = pkt.length
    while True:
        rules = here.rules
        while i < len(rules):
            rule = rules[i]
            i += 1
            for m in rule.matches:
                if not m(pkt):
                    break
            else:
                rule.pcnt += 1
                rule.bcnt += length
                t = rule.target
                if t in VERDICTS:
                    return Verdict(t, table.name, here.name, i, rule.reject_with)
                if t == "RETURN":
                    break
                if t:
                    if not rule.goto:
                        stack.append((here, i))
                    here, i = table.chains[t], 0
                    rules = here.rules
        if stack:
            here, i = stack.pop()
            continue
        chain.pcnt += 1
        chain.bcnt += length
        return Verdict(chain.policy, table.name, chain.name, 0)
