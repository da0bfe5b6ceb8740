"""iptables(8), iptables-save and iptables-restore for the filter table, with
iptables-nft 1.8's words, listings, messages and exit statuses (the oracle:
this machine's /usr/sbin/iptables in a namespace). A command that fails
changes nothing. Each returns (exit status, stdout, stderr)."""
import socket
import time

from ...wire import ipv4
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
ICMP_TYPES = {"any": (-1, None), "echo-reply": (0, None), "destination-unreachable": (3, None),
              "network-unreachable": (3, 0), "host-unreachable": (3, 1), "protocol-unreachable": (3, 2),
              "port-unreachable": (3, 3), "fragmentation-needed": (3, 4), "source-quench": (4, None),
              "redirect": (5, None), "echo-request": (8, None), "time-exceeded": (11, None),
              "ttl-zero-during-transit": (11, 0), "ttl-zero-during-reassembly": (11, 1),
              "parameter-problem": (12, None), "timestamp-request": (13, None), "timestamp-reply": (14, None)}
UNSUPPORTED_TABLES = ("raw", "mangle", "nat", "security")


class Fail(Exception):
    def __init__(self, status: int, text: str):
        self.status, self.text = status, text


def _param(text: str) -> Fail:
    """A parameter problem: the version line, and where to find help (exit 2)."""
    return Fail(2, f"{VERSION}: {text}\n{TRY}")


# -- parsing a rule --------------------------------------------------------
def _addr(text: str) -> tuple[int, int]:
    host, _, plen = text.partition("/")
    try:
        addr = ipv4.aton(host)
        n = int(plen) if plen else 32
        if not 0 <= n <= 32:
            raise ValueError
    except (ValueError, OSError):
        raise _param(f"host/network `{host}' not found") from None
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


def _ifname_match(name: str):
    if name.endswith("+"):
        stem = name[:-1]
        return lambda dev: dev.startswith(stem)
    return lambda dev: dev == name


class RuleSpec:
    """One rule's words, read as iptables reads them."""

    def __init__(self, words: list[str]):
        self.src = self.dst = None           # (addr, plen, inverted)
        self.proto = None                    # (number, name, inverted)
        self.iif = self.oif = None           # (name, inverted)
        self.fragment = None                 # inverted?
        self.sport = self.dport = None       # ((lo, hi), inverted)
        self.tcp_flags = None                # (mask, comp, inverted)
        self.icmp = None                     # ((type, code), name, inverted)
        self.comment = None
        self.ctstate = None                  # (module, bits, inverted): -m conntrack --ctstate / -m state --state
        self.target, self.goto, self.reject_with = "", False, ""
        self.modules: list[str] = []
        self._read(words)

    def _read(self, words: list[str]):
        inv = False

        def value(i: int, opt: str) -> str:
            if i + 1 >= len(words):
                raise _param(f"option \"{opt}\" requires an argument")
            return words[i + 1]
        i = 0
        while i < len(words):
            w = words[i]
            if w == "!":
                inv = True
                i += 1
                continue
            step = 2
            if w in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
                addr, plen = _addr(value(i, w))
                spec = (addr, plen, inv)
                if w.startswith("-s") or w.startswith("--s"):
                    self.src = spec
                else:
                    self.dst = spec
            elif w in ("-p", "--protocol"):
                name = value(i, w).lower()
                if name.isdigit() and int(name) < 256:
                    num = int(name)
                elif name in PROTOS:
                    num = PROTOS[name]
                else:
                    raise _param(f"unknown protocol \"{value(i, w)}\" specified")
                self.proto = (num, PROTO_NAMES.get(num, str(num)), inv)
            elif w in ("-i", "--in-interface", "-o", "--out-interface"):
                name = value(i, w)
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
                m = value(i, w)
                if m not in ("tcp", "udp", "icmp", "comment", "conntrack", "state"):
                    raise Fail(2, f"{VERSION}: pktflow has no match `{m}' yet (tcp, udp, icmp, comment, conntrack,"
                                  f" state)\n{TRY}")
                self.modules.append(m)
            elif w in ("--sport", "--source-port", "--dport", "--destination-port", "--syn", "--tcp-flags"):
                proto = self.proto[1] if self.proto else ""
                if proto not in ("tcp", "udp") or (w in ("--syn", "--tcp-flags") and proto != "tcp"):
                    raise _param(f"unknown option \"{w}\"")
                if w == "--syn":
                    self.tcp_flags = (0x17, 0x02, inv)
                    step = 1
                elif w == "--tcp-flags":
                    if i + 2 >= len(words):
                        raise _param("--tcp-flags requires two args.")
                    self.tcp_flags = (_flags(words[i + 1]), _flags(words[i + 2]), inv)
                    step = 3
                else:
                    rng = _ports(value(i, w), proto)
                    if w in ("--sport", "--source-port"):
                        self.sport = (rng, inv)
                    else:
                        self.dport = (rng, inv)
            elif w == "--icmp-type":
                if not self.proto or self.proto[1] != "icmp":
                    raise _param(f"unknown option \"{w}\"")
                t = value(i, w)
                if t in ICMP_TYPES:
                    self.icmp = (ICMP_TYPES[t], t, inv)
                else:
                    try:
                        ty, _, code = t.partition("/")
                        self.icmp = ((int(ty), int(code) if code else None), t, inv)
                    except ValueError:
                        raise _param(f"Invalid ICMP type `{t}'") from None
            elif w == "--comment":
                self.comment = value(i, w)
            elif w in ("--ctstate", "--state"):
                module = "conntrack" if w == "--ctstate" else "state"
                if module not in self.modules:
                    raise _param(f"unknown option \"{w}\"")
                try:
                    self.ctstate = (module, parse_states(value(i, w)), inv)
                except ValueError as e:
                    raise _param(f"Bad ctstate \"{e}\"") from None
            elif w in ("-j", "--jump", "-g", "--goto"):
                self.target, self.goto = value(i, w), w in ("-g", "--goto")
            elif w == "--reject-with":
                kind = REJECT_ALIASES.get(value(i, w), value(i, w))
                if kind not in REJECT_WITH:
                    raise _param(f"unknown reject type \"{value(i, w)}\"")
                self.reject_with = kind
            else:
                raise _param(f"unknown option \"{w}\"")
            if inv and w not in ("-s", "--source", "--src", "-d", "--destination", "--dst", "-p", "--protocol",
                                 "-i", "--in-interface", "-o", "--out-interface", "-f", "--fragment", "--sport",
                                 "--source-port", "--dport", "--destination-port", "--syn", "--tcp-flags",
                                 "--icmp-type", "--ctstate", "--state"):
                raise _param(f"cannot have ! before {w}")
            inv = False
            i += step
        if self.target == "REJECT":
            self.reject_with = self.reject_with or "icmp-port-unreachable"
            if self.reject_with == "tcp-reset" and (not self.proto or self.proto[0] != 6 or self.proto[2]):
                raise Fail(4, f"{VERSION}:  RULE_APPEND failed (Invalid argument): rule in chain {{chain}}\n")
        elif self.reject_with:
            raise _param("unknown option \"--reject-with\"")

    # -- what the rule does
    def matches(self) -> list:
        out = []
        for spec, field in ((self.src, "saddr"), (self.dst, "daddr")):
            if spec:
                addr, plen, inv = spec
                mask = ipv4.prefix_mask(plen)
                out.append(lambda p, a=addr, m=mask, f=field, inv=inv: ((getattr(p, f) & m) == a) != inv)
        if self.proto and self.proto[0]:
            num, _, inv = self.proto
            out.append(lambda p, n=num, inv=inv: (p.proto == n) != inv)
        for spec, field in ((self.iif, "iif"), (self.oif, "oif")):
            if spec:
                name, inv = spec
                test = _ifname_match(name)
                out.append(lambda p, t=test, f=field, inv=inv: t(getattr(p, f)) != inv)
        if self.fragment is not None:
            out.append(lambda p, inv=self.fragment: p.fragment != inv)
        # port, flag and type matches never match a non-first fragment (there is no header to read)
        for spec, field in ((self.sport, "sport"), (self.dport, "dport")):
            if spec:
                (lo, hi), inv = spec
                out.append(lambda p, lo=lo, hi=hi, f=field, inv=inv: not p.fragment and
                           (lo <= getattr(p, f) <= hi) != inv)
        if self.tcp_flags:
            mask, comp, inv = self.tcp_flags
            out.append(lambda p, m=mask, c=comp, inv=inv: not p.fragment and ((p.tcp_flags & m) == c) != inv)
        if self.icmp:
            (ty, code), _, inv = self.icmp
            if ty < 0:
                out.append(lambda p: not p.fragment)
            else:
                out.append(lambda p, t=ty, c=code, inv=inv: not p.fragment and
                           (p.icmp_type == t and (c is None or p.icmp_code == c)) != inv)
        if self.ctstate:
            _, bits, inv = self.ctstate
            out.append(lambda p, b=bits, inv=inv: bool(p.ctstate & b) != inv)
        return out

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
        proto = self.proto[1] if self.proto else ""
        if (self.sport or self.dport or self.tcp_flags) and proto in ("tcp", "udp"):
            w += ["-m", proto]
            for spec, opt in ((self.sport, "--sport"), (self.dport, "--dport")):
                if spec:
                    (lo, hi), inv = spec
                    w += (["!"] if inv else []) + [opt, str(lo) if lo == hi else f"{lo}:{hi}"]
            if self.tcp_flags:
                mask, comp, inv = self.tcp_flags
                w += (["!"] if inv else []) + ["--tcp-flags", _flag_names(mask), _flag_names(comp)]
        if self.icmp:
            w += ["-m", "icmp"] + (["!"] if self.icmp[2] else []) + ["--icmp-type", _icmp_save(self.icmp)]
        if self.ctstate:
            module, bits, inv = self.ctstate
            w += ["-m", module] + (["!"] if inv else []) + \
                ["--ctstate" if module == "conntrack" else "--state", state_names(bits)]
        if self.comment is not None:
            w += ["-m", "comment", "--comment", _quote(self.comment)]
        if self.target:
            w += ["-g" if self.goto else "-j", self.target]
        if self.target == "REJECT":
            w += ["--reject-with", self.reject_with]
        return tuple(w)

    def extra(self, numeric: bool) -> str:
        """The match and target words of an -L line."""
        out = ""
        proto = self.proto[1] if self.proto else ""
        if (self.sport or self.dport or self.tcp_flags) and proto in ("tcp", "udp"):
            out += f" {proto}"
            for spec, one, many in ((self.sport, "spt", "spts"), (self.dport, "dpt", "dpts")):
                if spec:
                    (lo, hi), inv = spec
                    neg = "!" if inv else ""
                    if lo == hi:
                        out += f" {one}:{neg}{_service(lo, proto, numeric)}"
                    else:
                        out += f" {many}:{neg}{_service(lo, proto, numeric)}:{_service(hi, proto, numeric)}"
            if self.tcp_flags:
                mask, comp, inv = self.tcp_flags
                neg = "!" if inv else ""
                out += (f" flags:{neg}0x{mask:02X}/0x{comp:02X}" if numeric
                        else f" flags:{neg}{_flag_names(mask)}/{_flag_names(comp)}")
        if self.icmp:
            (ty, code), name, inv = self.icmp
            out += " icmp" + (" !" if inv else "") + (" any" if ty < 0 else f" type {ty}" +
                                                       (f" code {code}" if code is not None else ""))
        if self.ctstate:
            module, bits, inv = self.ctstate
            out += f" {'! ' if inv else ''}{'ctstate' if module == 'conntrack' else 'state'} {state_names(bits)}"
        if self.comment is not None:
            out += f" /* {self.comment} */"
        if self.target == "REJECT":
            out += f" reject-with {self.reject_with}"
        return out


def _flag_names(v: int) -> str:
    if v == 0:
        return "NONE"
    return ",".join(n for n, bit in TCP_FLAGS.items() if n not in ("ALL", "NONE") and v & bit)


def _icmp_save(icmp) -> str:
    (ty, code), name, _ = icmp
    if ty < 0:
        return "any"
    return str(ty) if code is None else f"{ty}/{code}"


def _service(port: int, proto: str, numeric: bool) -> str:
    if not numeric:
        try:
            return socket.getservbyport(port, proto)
        except OSError:
            pass
    return str(port)


def _quote(text: str) -> str:
    return f'"{text}"' if not text or any(c.isspace() or c in "\"'" for c in text) else text


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


def _make_rule(nf: Netfilter, table: str, chain: str, words: list[str]) -> Rule:
    spec = RuleSpec(words)
    t = nf.tables[table]
    target = spec.target
    if target and target not in VERDICTS + ("RETURN",) and target not in t.chains:
        raise _param(f"Chain '{target}' does not exist")
    if spec.ctstate:
        nf.needs_conntrack = True          # as loading xt_conntrack starts tracking
    return Rule(spec.matches(), target, spec.goto, spec.reject_with, spec.save_words(),
                (spec, spec.extra(True), spec.extra(False)))


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
    if table in UNSUPPORTED_TABLES:
        raise Fail(2, f"{VERSION}: pktflow has only the filter table yet (raw, mangle and nat are to come)\n")
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
        try:
            rule = _make_rule(nf, table, chain, rest)
        except Fail as f:
            f.text = f.text.replace("{chain}", chain)
            raise
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
        from .x_tables import Chain
        t.chains[chain] = Chain(chain)
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
        if target not in ("ACCEPT", "DROP"):
            raise Fail(1, "iptables: Bad policy name. Run `dmesg' for more information.\n")
        c.policy = target
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
                line += (f"{r.pcnt:8d} {r.bcnt:10d} " if exact else _num(r.pcnt, False) + _num(r.bcnt, False))
            target = ("" if not r.target else r.target)
            line += f"{target:<9} "
            proto = spec.proto
            line += "!" if proto and proto[2] else " "
            pname = str(proto[0]) if numeric and proto else (proto[1] if proto else ("0" if numeric else "all"))
            line += f"{pname:<5}"
            line += ("!" if spec.fragment else "-") + ("f" if spec.fragment is not None else "-") + " "
            if verbose:
                (i_name, o_name) = (("!" if f[1] else "") + f[0] if f else "*" for f in (spec.iif, spec.oif))
                line += f" {i_name:<6} {o_name:<6} "
            src, dst = _show_addr(spec.src, numeric), _show_addr(spec.dst, numeric)
            line += f"{src[0]}{src[1:]:<19} {dst[0]}{dst[1:]:<19} "
            line += (extra_n if numeric else extra_names)
            lines.append(line)
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# -- iptables-save and iptables-restore ------------------------------------
def iptables_save(nf: Netfilter, when: str | None = None) -> str:
    when = when or time.strftime("%a %b %e %H:%M:%S %Y")
    out = [f"# Generated by iptables-save v1.8.9 (nf_tables) on {when}"]
    for t in nf.tables.values():
        out.append(f"*{t.name}")
        for c in t.chains.values():
            out.append(f":{c.name} {c.policy or '-'} [{c.pcnt}:{c.bcnt}]")
        for c in t.chains.values():
            out += [" ".join(("-A", c.name) + r.words) for r in c.rules]
        out.append("COMMIT")
    out.append(f"# Completed on {when}")
    return "\n".join(out) + "\n"


def iptables_restore(nf: Netfilter, text: str, noflush: bool = False) -> tuple[int, str, str]:
    """All or nothing: the rule set is built on a copy and replaces the tables
    only when every line was taken."""
    import copy
    trial = Netfilter(nf.sets) if not noflush else copy.deepcopy(nf)
    table = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("*"):
                table = line[1:]
                if table in UNSUPPORTED_TABLES:
                    raise Fail(2, f"pktflow has only the filter table yet, not {table}\n")
                if table not in trial.tables:
                    raise Fail(1, f"iptables-restore: table '{table}' does not exist\n")
            elif line == "COMMIT":
                table = None
            elif table is None:
                raise Fail(1, "")
            elif line.startswith(":"):
                name, policy, *_ = line[1:].split()
                t = trial.tables[table]
                if name in t.chains and policy != "-":
                    t.chains[name].policy = policy if policy in ("ACCEPT", "DROP") else _bad_policy()
                elif name not in t.chains:
                    if policy != "-":
                        raise Fail(1, "")
                    from .x_tables import Chain
                    t.chains[name] = Chain(name)
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
