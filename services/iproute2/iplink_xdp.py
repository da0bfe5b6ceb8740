"""`ip link set dev IF {xdp|xdpgeneric|xdpdrv|xdpoffload} ...` in iproute2's user
space (ip/iplink_xdp.c xdp_parse()), and how `ip link show` prints a device's
XDP attachment (xdp_dump()).

pktflow has no eBPF, so where iproute2 takes `object FILE [section NAME]` this
takes the program itself, as rules:

    ip [-force] link set [dev] IF { xdp | xdpgeneric | xdpdrv | xdpoffload } { off | RULE... }
    RULE := { drop | pass | tx | aborted | redirect { DEV | xsk } } [ filter EXPR ]

EXPR is one pcap-filter expression (quote it), compiled here with libpcap as
tcpdump compiles it; a rule without one matches every frame. The first rule
that matches a frame decides; a frame none matches is passed. As iproute2
without -force, attaching where a program is attached is refused (EBUSY,
"XDP program already attached"); -force replaces it. `off` (or `none`) detaches
the program of that mode: `xdp off` the native one, `xdpgeneric off` the generic.

Exit statuses as ip's: 255 for what ip refuses itself (a word it does not know,
an expression libpcap cannot compile), 1 for a device it cannot find, 2 for what
the kernel refuses ("Error: <extack>.")."""
from pktflow.v1.admin_pb2 import BpfInsn, XdpRequest, XdpRule

from ..common import bpf

XDP_FLAGS_UPDATE_IF_NOEXIST, XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE = 1, 2, 4, 8
KEYWORDS = {"xdp": 0, "xdpgeneric": XDP_FLAGS_SKB_MODE, "xdpdrv": XDP_FLAGS_DRV_MODE,
            "xdpoffload": XDP_FLAGS_HW_MODE}
ACTIONS = {"aborted": XdpRule.XDP_ABORTED, "drop": XdpRule.XDP_DROP, "pass": XdpRule.XDP_PASS,
           "tx": XdpRule.XDP_TX, "redirect": XdpRule.XDP_REDIRECT}
ACTION_WORDS = {v: k for k, v in ACTIONS.items()}
XDP_ATTACHED = {"drv": 1, "skb": 2}        # enum XDP_ATTACHED_DRV, XDP_ATTACHED_SKB (if_link.h)
RULES_HELP = ("pktflow's XDP programs are rules, not eBPF objects: "
              "{ drop | pass | tx | aborted | redirect { DEV | xsk } } [ filter EXPR ] ...")
INCOMPLETE = 'Command line is not complete. Try option "help"'


class XdpParseError(Exception):
    def __init__(self, message: str, status: int = 255):
        super().__init__(message)
        self.status = status


def find(words: list[str]) -> int | None:
    """Where the XDP words start in `ip link set` words, if anywhere."""
    return next((i for i, w in enumerate(words) if w in KEYWORDS), None)


def xdp_parse(words: list[str], dev: str, force: bool = False, devices=None,
              compile_filter=bpf.compile_filter) -> tuple[XdpRequest, list[str]]:
    """`KEYWORD { off | RULE... }` at the start of `words`: the request, and
    the words after it (more of `ip link set`). `devices`: the host's device
    names, for redirect targets (as iproute2 resolves names in user space)."""
    flags = KEYWORDS[words[0]] | (0 if force else XDP_FLAGS_UPDATE_IF_NOEXIST)
    req = XdpRequest(dev=dev, flags=flags)
    rest = words[1:]
    if not rest:
        raise XdpParseError(INCOMPLETE)
    if rest[0] in ("off", "none"):
        req.detach = True
        return req, rest[1:]
    if rest[0] not in ACTIONS:
        raise XdpParseError(f'"{rest[0]}": {RULES_HELP}')
    while rest and rest[0] in ACTIONS:
        rule = XdpRule(action=ACTIONS[rest[0]])
        rest = rest[1:]
        if rule.action == XdpRule.XDP_REDIRECT:
            if not rest:
                raise XdpParseError(INCOMPLETE)
            target, rest = rest[0], rest[1:]
            if target == "xsk":
                rule.redirect_xsk = True
            elif devices is not None and target not in devices:
                raise XdpParseError(f'Cannot find device "{target}"', 1)
            else:
                rule.redirect_dev = target
        if rest[:1] == ["filter"]:
            if len(rest) < 2:
                raise XdpParseError(INCOMPLETE)
            rule.filter, rest = rest[1], rest[2:]
            if rule.filter.strip():
                try:
                    prog = compile_filter(rule.filter)
                except bpf.FilterError as e:
                    raise XdpParseError(f"filter '{rule.filter}': {e}") from None
                except OSError as e:
                    raise XdpParseError(f"filter '{rule.filter}': {e}") from None
                rule.insns.extend(BpfInsn(code=i.code, jt=i.jt, jf=i.jf, k=i.k) for i in prog.insns)
        req.rules.append(rule)
    return req, rest


def extack(detail: str) -> str:
    """What ip prints for the kernel's refusal: its extended ack, with a period."""
    return f"Error: {detail}" + ("" if detail.endswith(".") else ".")


# --- ip link show ---------------------------------------------------------------------------------------------

def mode_word(state: dict | None) -> str:
    """xdp_dump() on the first line, after the MTU: xdp (native) or xdpgeneric."""
    attached = (state or {}).get("attached")
    return {"drv": "xdp ", "skb": "xdpgeneric "}.get(attached, "")


def prog_lines(state: dict | None, details: bool = False) -> list[str]:
    """xdp_dump(..., details) under the link line: `prog/xdp id N name ... tag ... jited`;
    with -d, pktflow's rules and what each matched (what bpftool would show of a
    real program's maps)."""
    prog = (state or {}).get("prog")
    if not prog:
        return []
    lines = [f"    prog/xdp id {prog['id']} name {prog['name']} tag {prog['tag']} jited"]
    if details:
        for i, r in enumerate(prog["rules"], 1):
            target = f" {r['redirect']}" if r["action"] == "XDP_REDIRECT" else ""
            filt = f" filter '{r['filter']}'" if r["filter"] else ""
            lines.append(f"        rule {i}: {ACTION_WORDS[getattr(XdpRule, r['action'])]}{target}{filt}"
                         f" matched {r['hits']}")
        lines.append(f"        default: pass matched {prog['default']['hits']}")
        v = prog["verdicts"]
        lines.append("        verdicts: " + " ".join(f"{k[4:].lower()} {n}" for k, n in v.items())
                     + f" exceptions {prog['exceptions']}")
    return lines


def json_entry(state: dict | None) -> dict | None:
    """xdp_dump_json(): `"xdp": {"mode": 1, "prog": {...}, "attached": [...]}`."""
    prog = (state or {}).get("prog")
    if not prog:
        return None
    mode = XDP_ATTACHED[prog["mode"]]
    info = {"id": prog["id"], "name": prog["name"], "tag": prog["tag"], "jited": 1}
    return {"mode": mode, "prog": info, "attached": [{"mode": mode, "prog": info}]}
