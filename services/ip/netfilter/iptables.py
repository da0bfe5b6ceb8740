"""iptables(8), iptables-save and iptables-restore for the raw, mangle, nat and
filter tables, with iptables-nft 1.8's words, listings, messages and exit
statuses (the oracle: this machine's /usr/sbin/iptables in a namespace). A
command that fails changes nothing. Each returns (exit status, stdout, stderr).
User space's half: the words become RuleSpecs, whose matches and target are the
kernel's closures (x_tables.py)."""
import copy
import socket
import time

from ...wire import ipv4
from . import x_tables as x
from .nf_conntrack import parse_states, state_names
from .x_tables import VERDICTS, Netfilter, Rule

VERSION = "iptables v1.8.9 (nf_tables)"
TRY = "Try `iptables -h' or 'iptables --help' for more information.\n"
PROTOS = {"all": 0, "icmp": 1, "tcp": 6, "udp": 17}
PROTO_NAMES = {v: k for k, v in PROTOS.items()}
REJECT_WITH = ("icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable", "icmp-proto-unreachable",
               "icmp-net-prohibited", "icmp-host-prohibited", "icmp-admin-prohibited", "tcp-reset")
# ipt_REJECT's short names (iptables accepts them and saves the long ones)
REJECT_ALIASES = {"net-unreach": "icmp-net-unreachable", "host-unreach": "icmp-host-unreachable",
                  "port-unreach": "icmp-port-unreachable", "proto-unreach": "icmp-proto-unreachable",
                  "net-prohib": "icmp-net-prohibited", "host-prohib": "icmp-host-prohibited",
                  "admin-prohib": "icmp-admin-prohibited", "tcp-rst": "tcp-reset"}
TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20, "ALL": 0x3F, "NONE": 0}
# libxt_icmp's names: (type, code min, code max); 255 is "any"
ICMP_TYPES = {"any": (255, 0, 255), "echo-reply": (0, 0, 255), "pong": (0, 0, 255),
              "destination-unreachable": (3, 0, 255), "network-unreachable": (3, 0, 0),
              "host-unreachable": (3, 1, 1), "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
              "fragmentation-needed": (3, 4, 4), "source-route-failed": (3, 5, 5), "network-unknown": (3, 6, 6),
              "host-unknown": (3, 7, 7), "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
              "communication-prohibited": (3, 13, 13), "source-quench": (4, 0, 255), "redirect": (5, 0, 255),
              "echo-request": (8, 0, 255), "ping": (8, 0, 255), "router-advertisement": (9, 0, 255),
              "router-solicitation": (10, 0, 255), "time-exceeded": (11, 0, 255), "ttl-exceeded": (11, 0, 255),
              "ttl-zero-during-transit": (11, 0, 0), "ttl-zero-during-reassembly": (11, 1, 1),
              "parameter-problem": (12, 0, 255), "timestamp-request": (13, 0, 255), "timestamp-reply": (14, 0, 255),
              "address-mask-request": (17, 0, 255), "address-mask-reply": (18, 0, 255)}
ICMP_NAMES: dict = {}
for _name, _t in ICMP_TYPES.items():
    ICMP_NAMES.setdefault(_t, _name)
# the match modules pktflow has, and the options each takes
MATCHES = {"tcp": ("--sport", "--source-port", "--dport", "--destination-port", "--syn", "--tcp-flags"),
           "udp": ("--sport", "--source-port", "--dport", "--destination-port"),
           "icmp": ("--icmp-type",), "comment": ("--comment",), "conntrack": ("--ctstate",), "state": ("--state",),
           "multiport": ("--sports", "--source-ports", "--dports", "--destination-ports", "--ports"),
           "limit": ("--limit", "--limit-burst"), "mark": ("--mark",), "set": ("--match-set",)}
# extension targets pktflow has, and their options
TARGETS = {"REJECT": ("--reject-with",), "LOG": ("--log-prefix", "--log-level"),
           "MARK": ("--set-mark", "--set-xmark", "--and-mark", "--or-mark", "--xor-mark"),
           "CT": ("--notrack",), "NOTRACK": (),
           "SNAT": ("--to-source", "--random", "--random-fully", "--persistent"),
           "DNAT": ("--to-destination", "--random", "--random-fully", "--persistent"),
           "MASQUERADE": ("--to-ports", "--random", "--random-fully"), "REDIRECT": ("--to-ports", "--random")}
# the hooks the NAT targets may run at (xt_nat.c, xt_MASQUERADE.c, xt_REDIRECT.c .hooks)
NAT_HOOKS = {"SNAT": (x.IN, x.POST), "DNAT": (x.PRE, x.OUT), "MASQUERADE": (x.POST,), "REDIRECT": (x.PRE, x.OUT)}
TARGET_HOOKS = dict(NAT_HOOKS, REJECT=(x.IN, x.FWD, x.OUT))
# real xtables extensions pktflow lacks: refused with a word saying so, not as unknown
KNOWN_XT = ("addrtype", "ah", "bpf", "cgroup", "cluster", "connbytes", "connlabel", "connlimit", "connmark", "cpu",
            "dccp", "devgroup", "dscp", "ecn", "esp", "hashlimit", "helper", "iprange", "ipvs", "length", "mac",
            "nfacct", "osf", "owner", "physdev", "pkttype", "policy", "quota", "rateest", "realm", "recent", "rpfilter",
            "sctp", "socket", "statistic", "string", "tcpmss", "time", "tos", "ttl", "u32", "udplite")
KNOWN_TARGETS = ("AUDIT", "CHECKSUM", "CLASSIFY", "CLUSTERIP", "CONNMARK", "CONNSECMARK", "DSCP", "ECN", "HMARK",
                 "IDLETIMER", "LED", "NETMAP", "NFLOG", "NFQUEUE", "RATEEST", "SECMARK", "SET", "SYNPROXY", "TCPMSS",
                 "TCPOPTSTRIP", "TEE", "TOS", "TPROXY", "TRACE", "TTL", "ULOG")
NO_INVERT = ("-m", "--match", "-j", "--jump", "-g", "--goto", "--comment", "--limit", "--limit-burst",
             "--reject-with", "--log-prefix", "--log-level", "--set-mark", "--set-xmark", "--and-mark", "--or-mark",
             "--xor-mark", "--notrack", "--to-source", "--to-destination", "--to-ports", "--random",
             "--random-fully", "--persistent")
LOG_LEVELS = {"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warn": 4, "warning": 4,
              "notice": 5, "info": 6, "debug": 7}
LOG_NAMES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
SAVE_ORDER = ("mangle", "raw", "filter", "nat")        # iptables-nft's enum nft_table_type order


class Fail(Exception):
    def __init__(self, status: int, text: str):
        self.status, self.text = status, text


def _param(text: str) -> Fail:
    """A parameter problem: the version line, and where to find help (exit 2)."""
    return Fail(2, f"{VERSION}: {text}\n{TRY}")


# -- parsing a rule --------------------------------------------------------
def _addr(text: str) -> tuple[int, int]:
    try:
        addr, n = ipv4.parse_prefix(text)
    except (ValueError, OSError):
        raise _param(f"host/network `{text.partition('/')[0]}' not found") from None
    mask = ipv4.prefix_mask(n)
    return addr & mask, n


def _port(text: str, proto: str) -> int:
    try:
        n = int(text)
    except ValueError:
        try:
            return socket.getservbyname(text, proto)
        except OSError:
            raise _param(f"invalid port/service `{text}' specified") from None
    if not 0 <= n <= 65535:
        raise _param(f"invalid port/service `{text}' specified")
    return n


def _ports(text: str, proto: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    a = _port(lo, proto) if lo else 0
    b = _port(hi, proto) if hi else (65535 if sep else a)
    if a > b:
        a, b = b, a
    return a, b


def _flags(text: str) -> int:
    out = 0
    for name in text.split(","):
        if name not in TCP_FLAGS:
            raise _param(f"Unknown TCP flag `{name}'")
        out |= TCP_FLAGS[name]
    return out


class RuleSpec:
    """One rule's words, read as iptables reads them: the fixed fields, the match
    modules in the order they were loaded (-m, or implicitly by -p's options), and
    the target with its options."""

    def __init__(self, words: list[str], table: str = "filter", sets=None):
        self.src = self.dst = None           # (addr, plen, inverted)
        self.proto = None                    # (number, name, inverted)
        self.iif = self.oif = None           # (name, inverted)
        self.fragment = None                 # inverted?
        self.mods: dict[str, dict] = {}      # module -> its options, in load order
        self.target, self.goto, self.reject_with = "", False, ""
        self.tgopt: dict = {}
        self.table, self.sets = table, sets
        self._read(words)
        self._final_check()

    @property
    def ctstate(self):
        return next((m for m in ("conntrack", "state") if self.mods.get(m)), None)

    def _read(self, words: list[str]):
        inv = False
        i = 0
        while i < len(words):
            w = words[i]
            if w == "!":
                inv = True
                i += 1
                continue

            def value(k: int = 1) -> str:
                if i + k >= len(words):
                    raise _param(f"option \"{w}\" requires an argument")
                return words[i + k]
            step = 2
            if w in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
                addr, plen = _addr(value())
                if w in ("-s", "--source", "--src"):
                    self.src = (addr, plen, inv)
                else:
                    self.dst = (addr, plen, inv)
            elif w in ("-p", "--protocol"):
                name = value().lower()
                if name.isdigit() and int(name) < 256:
                    num = int(name)
                elif name in PROTOS:
                    num = PROTOS[name]
                else:
                    raise _param(f"unknown protocol \"{value()}\" specified")
                self.proto = (num, PROTO_NAMES.get(num, str(num)), inv)
            elif w in ("-i", "--in-interface", "-o", "--out-interface"):
                name = value()
                if len(name) > 15:
                    raise _param(f"interface name `{name}' must be shorter than IFNAMSIZ (15)")
                if w in ("-i", "--in-interface"):
                    self.iif = (name, inv)
                else:
                    self.oif = (name, inv)
            elif w in ("-f", "--fragment"):
                self.fragment = inv
                step = 1
            elif w in ("-m", "--match"):
                m = value()
                if m not in MATCHES:
                    if m in KNOWN_XT:
                        raise Fail(2, f"{VERSION}: pktflow has no match `{m}' yet ({', '.join(MATCHES)})\n{TRY}")
                    raise _param(f"Couldn't load match `{m}':No such file or directory\n")
                self.mods.setdefault(m, {})
            elif w in ("-j", "--jump", "-g", "--goto"):
                if self.target:
                    raise _param("multiple -j flags not allowed")
                self.target, self.goto = value(), w in ("-g", "--goto")
                if self.target in KNOWN_TARGETS and self.target not in TARGETS:
                    raise Fail(2, f"{VERSION}: pktflow has no target `{self.target}' yet ({', '.join(TARGETS)})\n"
                                  f"{TRY}")
            elif self.target in TARGETS and w in TARGETS[self.target]:
                step = self._target_option(w, value, inv)
            else:
                mod = self._module_for(w)
                step = self._match_option(mod, w, value, inv)
            if inv and w in NO_INVERT:
                raise _param(f"cannot have ! before {w}")
            inv = False
            i += step

    def _module_for(self, opt: str) -> str:
        """The loaded module that takes `opt`, latest first; else the protocol's own
        (-p tcp --dport loads tcp), as iptables does."""
        for m in reversed(self.mods):
            if opt in MATCHES[m]:
                return m
        proto = self.proto[1] if self.proto and not self.proto[2] else ""
        if proto in ("tcp", "udp", "icmp") and opt in MATCHES[proto]:
            self.mods.setdefault(proto, {})
            return proto
        raise _param(f"unknown option \"{opt}\"")

    def _match_option(self, m: str, w: str, value, inv: bool) -> int:
        o = self.mods[m]
        proto = self.proto[1] if self.proto and not self.proto[2] else ""
        if m in ("tcp", "udp"):
            if w == "--syn":
                o["flags"] = (0x17, 0x02, inv)
                return 1
            if w == "--tcp-flags":
                if value(2) is None:
                    raise _param("--tcp-flags requires two args.")
                o["flags"] = (_flags(value()), _flags(value(2)), inv)
                return 3
            o["sport" if w in ("--sport", "--source-port") else "dport"] = (_ports(value(), m), inv)
        elif m == "icmp":
            o["type"] = (_icmp_type(value()), inv)
        elif m == "multiport":
            if proto not in ("tcp", "udp"):
                raise _param("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'")
            which = {"--sports": "sports", "--source-ports": "sports", "--dports": "dports",
                     "--destination-ports": "dports", "--ports": "ports"}[w]
            if o:
                long = {"sports": "--source-ports", "dports": "--destination-ports", "ports": "--ports"}
                raise _param(f"multiport: option \"{long[which]}\" cannot be used together with "
                             f"\"{long[next(iter(o))]}\".\n")
            ports = []
            for part in value().split(","):
                ports.append(_ports(part, proto))
            if sum(1 if lo == hi else 2 for lo, hi in ports) > 15:
                raise _param("too many ports specified")
            o[which] = (ports, inv)
        elif m in ("conntrack", "state"):
            try:
                o["bits"] = (parse_states(value()), inv)
            except ValueError as e:
                raise _param(f"Bad {'ctstate' if m == 'conntrack' else 'state'} \"{e}\"") from None
        elif m == "limit":
            if w == "--limit":
                o["period"] = _rate(value())
            else:
                burst = value()
                if not burst.isdigit() or int(burst) > 10000:
                    raise _param("limit: bad value for option \"--limit-burst\", or out of range (0-10000).\n")
                o["burst"] = int(burst) or 5
        elif m == "mark":
            o["mark"] = (*_mark(value(), "mark", "--mark"), inv)
        elif m == "set":
            if value(2) is None or value(2).startswith("-"):
                raise _param("--match-set requires two args.")
            name, dirs = value(), value(2).split(",")
            if any(d not in ("src", "dst") for d in dirs):
                raise _param("You must spefify (the comma separated list of) 'src' or 'dst'.")
            if self.sets is None or not self.sets.exists(name):
                raise _param(f"Set {name} doesn't exist.\n")
            o["set"] = (name, dirs, inv)
            return 3
        elif m == "comment":
            o["comment"] = value()
        return 2

    def _target_option(self, w: str, value, inv: bool) -> int:
        t, o = self.target, self.tgopt
        if t == "REJECT":
            kind = REJECT_ALIASES.get(value(), value())
            if kind not in REJECT_WITH:
                raise _param(f"unknown reject type \"{value()}\"")
            self.reject_with = kind
        elif t == "LOG":
            if w == "--log-level":
                level = LOG_LEVELS.get(value(), int(value()) if value().isdigit() else 8)
                if level > 7:
                    raise _param(f"log level \"{value()}\" unknown\n")
                o["level"] = level
            else:
                if not value():
                    raise _param("Argument must have a minimum length of 1 characters\n")
                o["prefix"] = value()[:29]                  # the kernel's prefix is 30 bytes with the NUL
        elif t == "MARK":
            if o:
                raise _param(f"MARK: option \"{o['opt']}\" cannot be used together with \"{w}\".\n")
            val, mask = _mark(value(), "MARK", w)
            if w == "--set-mark":                           # libxt_MARK: clear the mask's bits and the value's
                mask = (mask | val) if "/" in value() else 0xFFFFFFFF
            elif w == "--and-mark":
                val, mask = 0, ~val & 0xFFFFFFFF
            elif w == "--or-mark":
                mask = val
            elif w == "--xor-mark":
                mask = 0
            o.update(opt=w, mark=(val, mask))
        elif t in ("CT", "NOTRACK"):
            o["notrack"] = True
            return 1
        elif w in ("--random", "--random-fully", "--persistent"):
            o.setdefault("flags", []).append(w[2:])
            return 1
        elif w in ("--to-source", "--to-destination"):
            o["to"] = value()
        else:                                               # --to-ports
            o["ports"] = value()
        return 2

    def _final_check(self):
        t, o = self.target, self.tgopt
        proto = self.proto[1] if self.proto and not self.proto[2] else ""
        if "mark" in self.mods and not self.mods["mark"]:
            raise _param("mark: option \"--mark\" must be specified\n")
        if "conntrack" in self.mods and not self.mods["conntrack"]:
            raise _param("conntrack: At least one option is required")
        if "set" in self.mods and not self.mods["set"]:
            raise _param("You must specify `--match-set' with proper arguments")
        if "limit" in self.mods:
            self.mods["limit"].setdefault("period", _rate("3/hour"))
            self.mods["limit"].setdefault("burst", 5)
        if self.table == "nat" and t == "DROP":
            raise Fail(2, f"{VERSION}: \nThe \"nat\" table is not intended for filtering, the use of DROP is "
                          f"therefore inhibited.\n\n\n{TRY}")
        if t == "REJECT":
            self.reject_with = self.reject_with or "icmp-port-unreachable"
        if t == "MARK" and not o:
            raise _param("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required")
        if t in ("SNAT", "DNAT"):
            opt = "--to-source" if t == "SNAT" else "--to-destination"
            if "to" not in o:
                raise _param(f"{t}: option \"{opt}\" must be specified\n")
            o["range"] = _nat_range(o["to"], proto)
        if t in ("MASQUERADE", "REDIRECT") and "ports" in o:
            o["range"] = _nat_range(":" + o["ports"], proto)

    def errno_check(self) -> bool:
        """What the kernel's checkentry refuses with EINVAL (the command's RULE_* failed)."""
        t = self.target
        if t == "REJECT" and (self.table != "filter" or self.reject_with == "tcp-reset" and
                              (not self.proto or self.proto[0] != 6 or self.proto[2])):
            return False
        if t in ("CT", "NOTRACK") and self.table != "raw" or t == "CT" and not self.tgopt:
            return False
        if t in NAT_HOOKS and self.table != "nat":
            return False
        return True

    # -- what the rule does (the kernel's match and target functions, x_tables.py)
    def matches(self) -> list:
        out = []
        for spec, f in ((self.src, "saddr"), (self.dst, "daddr")):
            if spec:
                out.append(x.xt_addr(f, *spec))
        if self.proto and self.proto[0]:
            out.append(x.xt_proto(self.proto[0], self.proto[2]))
        for spec, f in ((self.iif, "iif"), (self.oif, "oif")):
            if spec:
                out.append(x.xt_iface(f, *spec))
        if self.fragment is not None:
            out.append(x.xt_fragment(self.fragment))
        for m, o in self.mods.items():
            if m in ("tcp", "udp"):
                for f in ("sport", "dport"):
                    if f in o:
                        (lo, hi), inv = o[f]
                        out.append(x.xt_port(f, lo, hi, inv))
                if "flags" in o:
                    out.append(x.xt_tcp_flags(*o["flags"]))
            elif m == "icmp" and "type" in o:
                (ty, lo, hi), inv = o["type"]
                out.append(x.xt_icmp(ty, lo, hi, inv))
            elif m == "multiport":
                (which, (ports, inv)), = o.items()
                out.append(x.xt_multiport(which, ports, inv))
            elif m in ("conntrack", "state") and o:
                out.append(x.xt_conntrack(*o["bits"]))
            elif m == "limit":
                out.append(x.xt_limit(o["period"] * 100_000, o["burst"]))     # XT_LIMIT_SCALE units to ns
            elif m == "mark":
                out.append(x.xt_mark(*o["mark"]))
            elif m == "set":
                name, dirs, inv = o["set"]
                out.append(x.xt_set(self.sets, name, dirs, inv))
        return out

    def tg(self):
        t, o = self.target, self.tgopt
        if t == "REJECT":
            return x.reject_tg(self.reject_with)
        if t == "LOG":
            return x.log_tg(o.get("prefix", ""))
        if t == "MARK":
            return x.mark_tg(*o["mark"])
        if t in ("CT", "NOTRACK"):
            return x.notrack_tg
        if t in NAT_HOOKS:
            lo, hi, plo, phi, flags = o.get("range", (0, 0, 0, 0, 0))
            for name, bit in (("random", 4), ("persistent", 8), ("random-fully", 16)):
                if name in o.get("flags", ()):
                    flags |= bit
            return x.nat_tg((t, lo, hi, plo, phi, flags))
        return None

    # -- how iptables shows it
    def save_words(self) -> tuple:
        w: list[str] = []
        for spec, opt in ((self.src, "-s"), (self.dst, "-d")):
            if spec:
                w += (["!"] if spec[2] else []) + [opt, f"{ipv4.ntoa(spec[0])}/{spec[1]}"]
        for spec, opt in ((self.iif, "-i"), (self.oif, "-o")):
            if spec:
                w += (["!"] if spec[1] else []) + [opt, spec[0]]
        if self.proto:
            w += (["!"] if self.proto[2] else []) + ["-p", self.proto[1]]
        if self.fragment is not None:
            w += (["!"] if self.fragment else []) + ["-f"]
        for m, o in self.mods.items():
            if not o and m in ("tcp", "udp", "icmp"):
                continue
            w += ["-m", m]
            if m in ("tcp", "udp"):
                for f, opt in (("sport", "--sport"), ("dport", "--dport")):
                    if f in o:
                        (lo, hi), inv = o[f]
                        w += (["!"] if inv else []) + [opt, str(lo) if lo == hi else f"{lo}:{hi}"]
                if "flags" in o:
                    mask, comp, inv = o["flags"]
                    w += (["!"] if inv else []) + ["--tcp-flags", _flag_names(mask), _flag_names(comp)]
            elif m == "icmp":
                (ty, lo, hi), inv = o["type"]
                text = "any" if ty == 0xFF else str(ty) if (lo, hi) == (0, 0xFF) else f"{ty}/{lo}"
                w += (["!"] if inv else []) + ["--icmp-type", text]
            elif m == "multiport":
                (which, (ports, inv)), = o.items()
                w += (["!"] if inv else []) + [f"--{which}", ",".join(_range(lo, hi, ":") for lo, hi in ports)]
            elif m in ("conntrack", "state"):
                bits, inv = o["bits"]
                w += (["!"] if inv else []) + ["--ctstate" if m == "conntrack" else "--state", state_names(bits)]
            elif m == "limit":
                w += ["--limit", _show_rate(o["period"])] + (["--limit-burst", str(o["burst"])]
                                                             if o["burst"] != 5 else [])
            elif m == "mark":
                mark, mask, inv = o["mark"]
                w += (["!"] if inv else []) + ["--mark", _hexmask(mark, mask)]
            elif m == "set":
                name, dirs, inv = o["set"]
                w += (["!"] if inv else []) + ["--match-set", name, ",".join(dirs)]
            elif m == "comment":
                w += ["--comment", _quote(o["comment"])]
        t, o = self.target, self.tgopt
        if t:
            w += ["-g" if self.goto else "-j", t]
        if t == "REJECT":
            w += ["--reject-with", self.reject_with]
        elif t == "LOG":
            w += (["--log-prefix", _quote(o["prefix"])] if "prefix" in o else []) + \
                (["--log-level", str(o["level"])] if o.get("level", 4) != 4 else [])
        elif t == "MARK":
            w += ["--set-xmark", "0x%x/0x%x" % o["mark"]]
        elif t == "CT":
            w += ["--notrack"]
        elif t in ("SNAT", "DNAT"):
            w += ["--to-source" if t == "SNAT" else "--to-destination", _show_nat(o["range"])]
        elif t in ("MASQUERADE", "REDIRECT") and "range" in o:
            w += ["--to-ports", _range(o["range"][2], o["range"][3], "-")]
        if t in NAT_HOOKS:
            w += [f"--{f}" for f in ("random", "random-fully", "persistent") if f in o.get("flags", ())]
        return tuple(w)

    def extra(self, numeric: bool) -> str:
        """The match and target words of an -L line."""
        out = ""
        for m, o in self.mods.items():
            if m in ("tcp", "udp") and o:
                out += f" {m}"
                for f, one, many in (("sport", "spt", "spts"), ("dport", "dpt", "dpts")):
                    if f in o:
                        (lo, hi), inv = o[f]
                        neg = "!" if inv else ""
                        if lo == hi:
                            out += f" {one}:{neg}{_service(lo, m, numeric)}"
                        else:
                            out += f" {many}:{neg}{_service(lo, m, numeric)}:{_service(hi, m, numeric)}"
                if "flags" in o:
                    mask, comp, inv = o["flags"]
                    neg = "!" if inv else ""
                    out += (f" flags:{neg}0x{mask:02X}/0x{comp:02X}" if numeric
                            else f" flags:{neg}{_flag_names(mask)}/{_flag_names(comp)}")
            elif m == "icmp" and o:
                out += _show_icmp(*o["type"], numeric)
            elif m == "multiport":
                (which, (ports, inv)), = o.items()
                proto = self.proto[1]
                text = ",".join(_service(lo, proto, numeric) if lo == hi else
                                f"{_service(lo, proto, numeric)}:{_service(hi, proto, numeric)}" for lo, hi in ports)
                out += f" multiport {which} {' !' if inv else ''}{text}"
            elif m in ("conntrack", "state"):
                bits, inv = o["bits"]
                out += f" {'! ' if inv else ''}{'ctstate' if m == 'conntrack' else 'state'} {state_names(bits)}"
            elif m == "limit":
                out += f" limit: avg {_show_rate(o['period'])} burst {o['burst']}"
            elif m == "mark":
                mark, mask, inv = o["mark"]
                out += f" mark match {'! ' if inv else ''}{_hexmask(mark, mask)}"
            elif m == "set":
                name, dirs, inv = o["set"]
                out += f" {'! ' if inv else ''}match-set {name} {','.join(dirs)}"
            elif m == "comment":
                out += f" /* {o['comment']} */"
        t, o = self.target, self.tgopt
        if t == "REJECT":
            out += f" reject-with {self.reject_with}"
        elif t == "LOG":
            level = o.get("level", 4)
            out += f" LOG flags 0 level {level}" if numeric else f" LOG level {LOG_NAMES[level]}"
            out += f" prefix \"{o['prefix']}\"" if "prefix" in o else ""
        elif t == "MARK":
            out += _show_mark(*o["mark"])
        elif t in ("CT", "NOTRACK"):
            out += " CT notrack" if t == "CT" else " NOTRACK"
        elif t in ("SNAT", "DNAT"):
            out += f" to:{_show_nat(o['range'])}"
        elif t in ("MASQUERADE", "REDIRECT") and "range" in o:
            out += (" masq ports: " if t == "MASQUERADE" else " redir ports ") + \
                _range(o["range"][2], o["range"][3], "-")
        if t in NAT_HOOKS:
            out += "".join(f" {f}" for f in ("random", "random-fully", "persistent") if f in o.get("flags", ()))
        return out


def _range(lo: int, hi: int, sep: str) -> str:
    return str(lo) if lo == hi else f"{lo}{sep}{hi}"


def _icmp_type(text: str) -> tuple:
    if text in ICMP_TYPES:
        return ICMP_TYPES[text]
    try:
        ty, _, code = text.partition("/")
        t = int(ty)
        c = int(code) if code else None
        if not 0 <= t <= 255 or c is not None and not 0 <= c <= 255:
            raise ValueError
    except ValueError:
        raise _param(f"Invalid ICMP type `{text}'") from None
    return (t, 0, 0xFF) if c is None else (t, c, c)


def _show_icmp(icmp: tuple, inv: bool, numeric: bool) -> str:
    ty, lo, hi = icmp
    if ty == 0xFF:
        return " icmp any"
    name = ICMP_NAMES.get(icmp)
    if name and not numeric:
        return f" icmp {'!' if inv else ''}{name}"
    code = f" code {lo}" if lo == hi else ""
    return f" icmp !type {ty}{code}" if inv else f" icmptype {ty}{code}"


def _rate(text: str) -> int:
    """parse_rate() (libxt_limit): the period in 1/10000 s (XT_LIMIT_SCALE)."""
    num, sep, unit = text.partition("/")
    mult = 1
    if sep:
        mult = next((m for name, m in (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
                     if unit and name.startswith(unit.lower())), 0)
    n = int(num) if num.isdigit() else 0
    if not mult or not n:
        raise _param(f"bad rate \"{text}\"'")
    period = 10000 * mult // n
    if period == 0:
        raise _param(f"Rate too fast \"{text}\"")
    return period


def _show_rate(period: int) -> str:
    """print_rate() (libxt_limit): the largest unit that divides evenly enough."""
    rates = (("day", 10000 * 86400), ("hour", 10000 * 3600), ("min", 10000 * 60), ("sec", 10000))
    i = 1
    while i < len(rates):
        mult = rates[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = rates[i - 1]
    return f"{mult // period}/{name}"


def _mark(text: str, module: str, opt: str) -> tuple[int, int]:
    v, sep, m = text.partition("/")
    try:
        val, mask = int(v, 0), int(m, 0) if sep else 0xFFFFFFFF
        if not (0 <= val <= 0xFFFFFFFF and 0 <= mask <= 0xFFFFFFFF):
            raise ValueError
    except ValueError:
        raise _param(f"{module}: bad integer value for option \"{opt}\", or out of range.\n") from None
    return val, mask


def _hexmask(v: int, mask: int) -> str:
    return f"0x{v:x}" if mask == 0xFFFFFFFF else f"0x{v:x}/0x{mask:x}"


def _show_mark(val: int, mask: int) -> str:
    """mark_tg_print() (libxt_MARK)."""
    if val == 0:
        return f" MARK and 0x{~mask & 0xFFFFFFFF:x}"
    if val == mask:
        return f" MARK or 0x{val:x}"
    if mask == 0:
        return f" MARK xor 0x{val:x}"
    if mask == 0xFFFFFFFF:
        return f" MARK set 0x{val:x}"
    return f" MARK xset 0x{val:x}/0x{mask:x}"


def _nat_range(text: str, proto: str) -> tuple:
    """parse_to() (libxt_NAT): ADDR[-ADDR][:PORT[-PORT]] into (lo, hi, port lo, port hi,
    NF_NAT_RANGE_MAP_IPS 1 | NF_NAT_RANGE_PROTO_SPECIFIED 2)."""
    addrs, sep, ports = text.partition(":")
    lo = hi = plo = phi = flags = 0
    if addrs:
        a, _, b = addrs.partition("-")
        lo = _addr(a)[0]
        hi = _addr(b)[0] if b else lo
        flags |= 1
    if sep:
        if proto not in ("tcp", "udp"):
            raise _param("Need TCP, UDP, SCTP or DCCP with port specification")
        a, _, b = ports.partition("-")
        if not a.isdigit() or b and not b.isdigit():
            raise _param(f"Port `{ports}' not valid\n")
        plo = int(a)
        phi = int(b) if b else plo
        flags |= 2
    return lo, hi, plo, phi, flags


def _show_nat(r: tuple) -> str:
    lo, hi, plo, phi, flags = r
    out = ""
    if flags & 1:
        out = ipv4.ntoa(lo) + ("" if hi == lo else "-" + ipv4.ntoa(hi))
    if flags & 2:
        out += ":" + _range(plo, phi, "-")
    return out


def _flag_names(v: int) -> str:
    if v == 0:
        return "NONE"
    return ",".join(n for n, bit in TCP_FLAGS.items() if n not in ("ALL", "NONE") and v & bit)


def _service(port: int, proto: str, numeric: bool) -> str:
    if not numeric:
        try:
            return socket.getservbyport(port, proto)
        except OSError:
            pass
    return str(port)


def _quote(text: str) -> str:
    """xtables_save_string(): bare when only [A-Za-z0-9_-], else quoted with \\ before " \\ '."""
    if text and all(c.isalnum() and c.isascii() or c in "_-" for c in text):
        return text
    return '"' + "".join("\\" + c if c in "\"\\'" else c for c in text) + '"'


def _show_addr(spec, numeric: bool) -> str:
    if spec is None:
        return " " + ("0.0.0.0/0" if numeric else "anywhere")
    addr, plen, inv = spec
    text = ipv4.ntoa(addr) if plen == 32 else f"{ipv4.ntoa(addr)}/{plen}"
    if plen == 0 and not numeric:
        text = "anywhere"
    return ("!" if inv else " ") + text


# -- the commands ------------------------------------------------------------
def _chain(nf: Netfilter, table: str, name: str | None, *, builtin_only=False):
    t = nf.tables[table]
    if name not in t.chains:
        raise Fail(1, "iptables: No chain/target/match by that name.\n")
    c = t.chains[name]
    if builtin_only and c.policy is None:
        raise Fail(1, "iptables: Bad built-in chain name.\n")
    return c


def _make_rule(nf: Netfilter, table: str, chain: str, words: list[str], op: str = "RULE_APPEND") -> Rule:
    spec = RuleSpec(words, table, nf.sets)
    t = nf.tables[table]
    target = spec.target
    if target and target not in VERDICTS + ("RETURN",) and target not in TARGETS and target not in t.chains:
        raise _param(f"Chain '{target}' does not exist")
    if not spec.errno_check():
        raise Fail(4, f"{VERSION}:  {op} failed (Invalid argument): rule in chain {chain}\n")
    if spec.ctstate:
        nf.needs_conntrack = True          # as loading xt_conntrack starts tracking
    hooks = sum(1 << h for h in TARGET_HOOKS.get(target, ()))
    return Rule(spec.matches(), target, spec.tg(), spec.goto, spec.reject_with, spec.save_words(),
                (spec, spec.extra(True), spec.extra(False)), hooks)


def iptables(nf: Netfilter, argv: list[str]) -> tuple[int, str, str]:
    try:
        out = _iptables(nf, list(argv))
    except Fail as f:
        return f.status, "", f.text
    nf.changed()
    return 0, out, ""


COMMANDS = {"-A": "append", "--append": "append", "-I": "insert", "--insert": "insert", "-D": "delete",
            "--delete": "delete", "-R": "replace", "--replace": "replace", "-F": "flush", "--flush": "flush",
            "-Z": "zero", "--zero": "zero", "-N": "new", "--new-chain": "new", "-X": "delete-chain",
            "--delete-chain": "delete-chain", "-P": "policy", "--policy": "policy", "-L": "list", "--list": "list",
            "-S": "list-rules", "--list-rules": "list-rules", "-C": "check", "--check": "check",
            "-E": "rename", "--rename-chain": "rename"}
TAKES_CHAIN = {"append", "insert", "delete", "replace", "new", "policy", "check", "rename"}


def _iptables(nf: Netfilter, argv: list[str]) -> str:
    table, cmd, chain, rest = "filter", None, None, []
    verbose = numeric = exact = linenumbers = False
    i = 0
    while i < len(argv):
        w = argv[i]
        if w in ("-t", "--table"):
            if i + 1 >= len(argv):
                raise _param("option \"-t\" requires an argument")
            table = argv[i + 1]
            i += 2
            continue
        if w in COMMANDS:
            if cmd is not None:
                raise _param("Cannot use -" + w.lstrip("-")[:1] + " with -" + cmd[:1].upper())
            cmd = COMMANDS[w]
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                chain = argv[i + 1]
                i += 1
            elif cmd in TAKES_CHAIN:
                raise _param(f"option \"{w}\" requires an argument")
            i += 1
            continue
        if w in ("-v", "--verbose"):
            verbose = True
        elif w in ("-n", "--numeric"):
            numeric = True
        elif w in ("-x", "--exact"):
            exact = True
        elif w == "--line-numbers":
            linenumbers = True
        elif w.startswith("-") and len(w) > 2 and not w.startswith("--") and all(c in "vnxL" for c in w[1:]):
            verbose |= "v" in w
            numeric |= "n" in w
            exact |= "x" in w
            if "L" in w:
                cmd = "list"
        else:
            rest.append(w)
        i += 1
    if table == "security":
        raise Fail(2, f"{VERSION}: pktflow has no security table (raw, mangle, nat and filter)\n")
    if table not in nf.tables:
        raise Fail(3, f"{VERSION}: table '{table}' does not exist\n"
                      "Perhaps iptables or your kernel needs to be upgraded.\n")
    if cmd is None:
        raise _param("no command specified")
    t = nf.tables[table]
    if cmd in ("append", "insert", "check", "delete", "replace"):
        c = _chain(nf, table, chain)
        pos = None
        if cmd in ("insert", "delete", "replace") and rest and rest[0].isdigit():
            pos = int(rest.pop(0))
        if cmd == "delete" and pos is not None and not rest:
            if not 1 <= pos <= len(c.rules):
                raise Fail(1, "iptables: Index of deletion too big.\n")
            del c.rules[pos - 1]
            return ""
        op = {"insert": "RULE_INSERT", "replace": "RULE_REPLACE"}.get(cmd, "RULE_APPEND")
        rule = _make_rule(nf, table, chain, rest, op)
        before = list(c.rules)
        if cmd == "append":
            c.rules.append(rule)
        elif cmd == "insert":
            pos = pos or 1
            if pos > len(c.rules) + 1:
                raise Fail(1, "iptables: Index of insertion too big.\n")
            c.rules.insert(pos - 1, rule)
        elif cmd == "replace":
            if pos is None:
                raise _param("-R requires a rule number")
            if not 1 <= pos <= len(c.rules):
                raise Fail(1, "iptables: Index of replacement too big.\n")
            c.rules[pos - 1] = rule
        else:
            found = next((k for k, r in enumerate(c.rules) if r.words == rule.words), None)
            if found is None:
                raise Fail(1, "iptables: Bad rule (does a matching rule exist in that chain?).\n")
            if cmd == "delete":
                del c.rules[found]
        if t.check_hooks() is not None:         # a target reached from a hook it may not run at
            c.rules[:] = before
            raise Fail(4, f"{VERSION}:  {op} failed (Invalid argument): rule in chain {chain}\n")
        t.exists = True
        return ""
    if cmd == "flush":
        for c in ([_chain(nf, table, chain)] if chain else t.chains.values()):
            c.rules.clear()
        return ""
    if cmd == "zero":
        for c in ([_chain(nf, table, chain)] if chain else t.chains.values()):
            c.pcnt = c.bcnt = 0
            for r in c.rules:
                r.pcnt = r.bcnt = 0
        return ""
    if cmd == "new":
        if chain in t.chains:
            raise Fail(1, "iptables: Chain already exists.\n")
        if chain in VERDICTS + ("RETURN",) or len(chain) > 28:
            raise _param(f"chain name `{chain}' not allowed")
        t.chains[chain] = x.Chain(chain)
        t.exists = True
        return ""
    if cmd == "delete-chain":
        names = [chain] if chain else [n for n, c in t.chains.items() if c.policy is None]
        for name in names:
            c = _chain(nf, table, name)
            if c.policy is not None:
                raise Fail(4, f"{VERSION}:  CHAIN_DEL failed (Operation not permitted): chain {name}\n")
            if t.references(name) or (chain and c.rules):
                raise Fail(4, f"{VERSION}:  CHAIN_DEL failed (Device or resource busy): chain {name}\n")
        for name in names:
            del t.chains[name]
        return ""
    if cmd == "rename":
        c = _chain(nf, table, chain)
        new = rest[0] if rest else None
        if not new:
            raise _param("option \"-E\" requires an argument")
        if new in t.chains:
            raise Fail(1, "iptables: File exists.\n")
        if c.policy is not None:
            raise _param("cannot rename a built-in chain")
        c.name = new
        t.chains = {(new if k == chain else k): v for k, v in t.chains.items()}
        for ch in t.chains.values():
            for r in ch.rules:
                if r.target == chain:
                    r.target = new
                    r.words = tuple(new if w == chain else w for w in r.words)
        return ""
    if cmd == "policy":
        if chain not in t.chains:
            raise Fail(1, "iptables: Bad built-in chain name.\n")
        c = _chain(nf, table, chain, builtin_only=True)
        target = rest[0] if rest else ""
        if table == "nat" and target == "DROP":
            raise Fail(2, f"{VERSION}: \nThe \"nat\" table is not intended for filtering, the use of DROP is "
                          f"therefore inhibited.\n\n\n{TRY}")
        if target not in ("ACCEPT", "DROP"):
            raise Fail(1, "iptables: Bad policy name. Run `dmesg' for more information.\n")
        c.policy = target
        t.exists = True
        return ""
    if cmd == "list-rules":
        return list_rules(t, chain)
    if cmd == "list":
        if chain and chain not in t.chains:
            raise Fail(1, f"{VERSION}: chain `{chain}' in table `{table}' is incompatible, use 'nft' tool.\n")
        return listing(t, chain, verbose, numeric, exact, linenumbers)
    raise _param("no command specified")


def list_rules(t, chain: str | None) -> str:
    lines = []
    chains = [t.chains[chain]] if chain else list(t.chains.values())
    for c in chains:
        if c.policy is not None:
            lines.append(f"-P {c.name} {c.policy}")
        else:
            lines.append(f"-N {c.name}")
    for c in chains:
        lines += [" ".join(("-A", c.name) + r.words) for r in c.rules]
    return "".join(line + "\n" for line in lines)


def _num(n: int, exact: bool) -> str:
    """xtables_print_num(): counters in K, M, G... unless -x."""
    if exact:
        return f"{n:8d} "
    for unit in ("", "K", "M", "G", "T"):
        if n <= 99999 or unit == "T":
            return f"{n:5d}{unit} " if unit else f"{n:5d} "
        n //= 1000
    return f"{n:5d} "


def listing(t, chain: str | None, verbose: bool, numeric: bool, exact: bool, linenumbers: bool) -> str:
    out = []
    for c in ([t.chains[chain]] if chain else t.chains.values()):
        if c.policy is not None:
            head = f"Chain {c.name} (policy {c.policy}"
            head += f" {c.pcnt} packets, {c.bcnt} bytes)" if verbose else ")"
        else:
            head = f"Chain {c.name} ({t.references(c.name)} references)"
        hdr = ""
        if linenumbers:
            hdr += f"{'num':<4} "
        if verbose:
            hdr += (f"{'pkts':>8} {'bytes':>10} " if exact else f"{'pkts':>5} {'bytes':>5} ")
        hdr += f"{'target':<9}  prot opt"
        if verbose:
            hdr += f" {'in':<6} {'out':<6} "
        hdr += f" {'source':<19}  {'destination':<19} "
        lines = [head, hdr]
        for k, r in enumerate(c.rules, 1):
            spec, extra_n, extra_names = r.listing
            line = f"{k:<4} " if linenumbers else ""
            if verbose:
                line += (f"{r.pcnt:8d} {r.bcnt:8d} " if exact else _num(r.pcnt, False) + _num(r.bcnt, False))
            target = "CT" if r.target == "NOTRACK" else r.target        # NOTRACK is CT --notrack
            line += f"{target:<9} "
            proto = spec.proto
            line += "!" if proto and proto[2] else " "
            pname = str(proto[0]) if numeric and proto else (proto[1] if proto else ("0" if numeric else "all"))
            line += f"{pname:<5}"
            line += ("!" if spec.fragment else "-") + ("f" if spec.fragment is not None else "-") + " "
            if verbose:
                anyif = "*" if numeric else "any"
                (i_name, o_name) = (("!" if f[1] else "") + f[0] if f else anyif for f in (spec.iif, spec.oif))
                line += f" {i_name:<6} {o_name:<6} "
            src, dst = _show_addr(spec.src, numeric), _show_addr(spec.dst, numeric)
            line += f"{src[0]}{src[1:]:<19} {dst[0]}{dst[1:]:<19} "
            line += (extra_n if numeric else extra_names)
            lines.append(line)
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# -- iptables-save and iptables-restore ------------------------------------
def iptables_save(nf: Netfilter, when: str | None = None) -> str:
    """Every table iptables-nft would have made (a rule, a user chain or a policy set
    it), in its order, each framed by its own `# Generated by` and `# Completed on`
    lines; `when` stands in for the time, which is the only thing that changes."""
    when = when or time.strftime("%a %b %e %H:%M:%S %Y")
    out = []
    for name in SAVE_ORDER:
        t = nf.tables[name]
        if not t.exists:
            continue
        out += [f"# Generated by iptables-save v1.8.9 (nf_tables) on {when}", f"*{t.name}"]
        for c in t.chains.values():
            out.append(f":{c.name} {c.policy or '-'} [{c.pcnt}:{c.bcnt}]")
        for c in t.chains.values():
            out += [" ".join(("-A", c.name) + r.words) for r in c.rules]
        out += ["COMMIT", f"# Completed on {when}"]
    return "".join(line + "\n" for line in out)


def _copy_tables(nf: Netfilter) -> Netfilter:
    """A trial Netfilter with copies of nf's tables (rules copied, their closures shared)."""
    trial = Netfilter(nf.sets)
    for name, t in nf.tables.items():
        new = trial.tables[name]
        new.exists = t.exists
        new.chains = {k: x.Chain(c.name, c.policy, [copy.copy(r) for r in c.rules], c.pcnt, c.bcnt)
                      for k, c in t.chains.items()}
    trial.needs_conntrack = nf.needs_conntrack
    return trial


def iptables_restore(nf: Netfilter, text: str, noflush: bool = False) -> tuple[int, str, str]:
    """All or nothing: the rule set is built on a copy and replaces the tables
    only when every line was taken. Without --noflush a table named in the text
    starts empty; tables it does not name stay as they are."""
    trial = _copy_tables(nf)
    table = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("*"):
                table = line[1:]
                if table == "security":
                    raise Fail(2, "pktflow has no security table (raw, mangle, nat and filter)\n")
                if table not in trial.tables:
                    raise Fail(1, f"iptables-restore: table '{table}' does not exist\n")
                if not noflush:
                    trial.tables[table] = x.Table(table)
                trial.tables[table].exists = True
            elif line == "COMMIT":
                table = None
            elif table is None:
                raise Fail(1, "")
            elif line.startswith(":"):
                name, policy, *counters = line[1:].split()
                t = trial.tables[table]
                if name in t.chains and policy != "-":
                    t.chains[name].policy = policy if policy in ("ACCEPT", "DROP") else _bad_policy()
                elif name not in t.chains:
                    if policy != "-":
                        raise Fail(1, "")
                    t.chains[name] = x.Chain(name)
                if counters and counters[0].startswith("["):
                    pcnt, bcnt = counters[0].strip("[]").split(":")
                    t.chains[name].pcnt, t.chains[name].bcnt = int(pcnt), int(bcnt)
            else:
                status, _, err = iptables(trial, ["-t", table] + _split(line))
                if status:
                    raise Fail(status, err)
        except Fail as f:
            return (f.status or 1), "", _restore_error(f, n)
        except (ValueError, IndexError):
            return 1, "", f"iptables-restore: line {n} failed\n"
    if table is not None:
        return 1, "", f"iptables-restore: COMMIT expected at line {len(text.splitlines()) + 1}\n"
    nf.tables = trial.tables
    nf.needs_conntrack |= trial.needs_conntrack
    nf.changed()
    return 0, "", ""


def _restore_error(f: Fail, n: int) -> str:
    """How iptables-restore words a line's failure: a parameter problem with the
    line and its own help; anything else as `line N failed: ...`."""
    if f.status == 2 and f.text.startswith(VERSION):
        why = f.text[len(VERSION) + 2:].replace(TRY, "")
        return (f"iptables-restore v1.8.9 (nf_tables): {why}Error occurred at line: {n}\n"
                "Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n")
    if f.text.startswith("iptables: "):
        return f"iptables-restore: line {n} failed: {f.text[len('iptables: '):]}"
    return f"iptables-restore: line {n} failed\n"


def _bad_policy():
    raise Fail(1, "")


def _split(line: str) -> list[str]:
    import shlex
    return shlex.split(line)
