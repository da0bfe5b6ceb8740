"""The netfilter tools as a namespace's administrator runs them: iptables,
iptables-save, iptables-restore and conntrack. Each takes the words after the tool's name
and answers (exit status, stdout, stderr) as the real tool does;
`pktflow <tool> -n NETNS ...` prints them."""
from . import iptables as ipt
from .nf_conntrack import Conntrack
from .x_tables import Netfilter

TOOLS = ("iptables", "iptables-save", "iptables-restore", "conntrack")
CONNTRACK = "conntrack v1.4.7 (conntrack-tools)"


def netfilter(ns) -> Netfilter:
    """The namespace's tables, made on first use: ns.nf stays None until then,
    so the packets of a namespace nobody configured skip every hook."""
    if ns.nf is None:
        ns.nf = Netfilter()
    return ns.nf


def run(ns, tool: str, args: list[str], now: int) -> tuple[int, str, str]:
    if tool == "conntrack":
        return conntrack(ns, args, now)
    nf = netfilter(ns)
    if tool == "iptables":
        out = ipt.iptables(nf, args)
    elif tool == "iptables-save":
        out = 0, ipt.iptables_save(nf), ""
    elif tool == "iptables-restore":            # the rule set is the last word (the command's stdin)
        words, text = args[:-1], args[-1] if args else ""
        out = ipt.iptables_restore(nf, text, noflush=bool({"-n", "--noflush"} & set(words)))
    else:
        return 2, "", f"unknown tool {tool!r} (one of {', '.join(TOOLS)})\n"
    if nf.needs_conntrack and ns.ct is None:
        ns.ct = Conntrack()
    return out


def conntrack(ns, args: list[str], now: int) -> tuple[int, str, str]:
    """conntrack -L | -C | -F (conntrack-tools): the table, as it prints it."""
    ct = ns.ct
    cmd = args[0] if args else "-L"
    if cmd in ("-L", "--dump"):
        out = ct.listing(now) if ct else ""
        return 0, out, f"{CONNTRACK}: {len(out.splitlines())} flow entries have been shown.\n"
    if cmd in ("-C", "--count"):
        return 0, f"{len(ct.conns) if ct else 0}\n", ""
    if cmd in ("-F", "--flush"):
        if ct:
            ct.flush()
        return 0, "", f"{CONNTRACK}: connection tracking table has been emptied.\n"
    return 2, "", f"{CONNTRACK}: Invalid argument {cmd!r} (pktflow has -L, -C and -F)\n"
