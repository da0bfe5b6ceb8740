"""The netfilter tools as a namespace's administrator runs them: iptables,
iptables-save and iptables-restore. Each takes the words after the tool's name
and answers (exit status, stdout, stderr) as the real tool does;
`pktflow <tool> -n NETNS ...` prints them."""
from . import iptables as ipt
from .x_tables import Netfilter

TOOLS = ("iptables", "iptables-save", "iptables-restore")


def netfilter(ns) -> Netfilter:
    """The namespace's tables, made on first use: ns.nf stays None until then,
    so the packets of a namespace nobody configured skip every hook."""
    if ns.nf is None:
        ns.nf = Netfilter()
    return ns.nf


def run(ns, tool: str, args: list[str]) -> tuple[int, str, str]:
    nf = netfilter(ns)
    if tool == "iptables":
        return ipt.iptables(nf, args)
    if tool == "iptables-save":
        return 0, ipt.iptables_save(nf), ""
    if tool == "iptables-restore":            # the rule set is the last word (the command's stdin)
        words, text = args[:-1], args[-1] if args else ""
        return ipt.iptables_restore(nf, text, noflush=bool({"-n", "--noflush"} & set(words)))
    return 2, "", f"unknown tool {tool!r} (one of {', '.join(TOOLS)})\n"
