"""The netfilter tools as a namespace's administrator runs them: iptables,
iptables-save, iptables-restore, ipset, conntrack and dmesg (the LOG target's
lines). Each takes the words after the tool's name and answers (exit status,
stdout, stderr) as the real tool does; `pktflow <tool> -n NETNS ...` prints them."""
from . import iptables as ipt
from .ipset import IpSets
from .nf_conntrack import Conntrack
from .nf_log import dmesg
from .x_tables import Netfilter

TOOLS = ("iptables", "iptables-save", "iptables-restore", "ipset", "conntrack", "dmesg")


def netfilter(ns) -> Netfilter:
    """The namespace's tables, made on first use: ns.nf stays None until then,
    so the packets of a namespace nobody configured skip every hook."""
    if ns.nf is None:
        ns.nf = Netfilter(IpSets())
    return ns.nf


def run(ns, tool: str, args: list[str], now: int) -> tuple[int, str, str]:
    """A tool that reads stdin (iptables-restore, ipset restore) gets it as the last word."""
    if tool == "dmesg":
        return dmesg(ns.dmesg, args)
    if tool == "conntrack":
        return ns.ct.conntrack(args, now) if ns.ct is not None else Conntrack().conntrack(args, now)
    nf = netfilter(ns)
    if tool == "iptables":
        out = ipt.iptables(nf, args)
    elif tool == "iptables-save":
        out = 0, ipt.iptables_save(nf), ""
    elif tool == "iptables-restore":
        words, text = args[:-1], args[-1] if args else ""
        out = ipt.iptables_restore(nf, text, noflush=bool({"-n", "--noflush"} & set(words)))
    elif tool == "ipset":
        words, stdin = (args[:-1], args[-1]) if args[:1] in (["restore"], ["-R"]) and len(args) > 1 else (args, "")
        out = nf.sets.ipset(words, now, stdin)
    else:
        return 2, "", f"unknown tool {tool!r} (one of {', '.join(TOOLS)})\n"
    if (nf.needs_conntrack or nf.nat_used) and ns.ct is None:
        ns.ct = Conntrack.from_sysctl(ns.sysctl)   # loading xt_conntrack or iptable_nat loads nf_conntrack
    # the ip layer calls nf_hook() only where there is work: a chain with rules, or conntrack everywhere
    ns.nf_active = tuple(ns.ct is not None or not nf.empty(hook) for hook in range(5))
    return out
