"""IP sets (net/netfilter/ipset/ip_set_core.c, ip_set_hash_{ip,net,ipport}.c)
and the `ipset` command (ipset 7.17's messages and exit statuses, captured on
Linux 6.18), sans-I/O: the time comes in as `now` (ns), text in and out.

Types: hash:ip, hash:net, hash:ip,port, family inet. A hash:net keeps one dict
per prefix length present and tries them most specific first, as the kernel
walks its nets[] cidr list, so a lookup touches at most 32 dicts whatever the
set's size. Modelled: create (family, hashsize rounded as the kernel does,
maxelem, timeout), add/del/test with -exist (IP, IP/cidr and IP-IP ranges;
proto:port and port ranges; ICMP type names), list (-terse, -name, -o save),
save, restore (line by line, not atomic, as ipset), flush, destroy, swap,
rename, references held by iptables rules. Not modelled: IPv6 contents, other
set types, counters/comment/skbinfo extensions, nomatch, netmask, the
kernel's hash order (members list in insertion order), a random initval (ours
is derived from the name), and "Size in memory" beyond the kernel's per-element
arithmetic (no bucket sharing).
"""
import zlib

VERSION = "v7.17"
PROG = f"ipset {VERSION}"
S = 1_000_000_000
TYPES = {"hash:ip": (1, 6), "hash:net": (1, 7), "hash:ip,port": (2, 7)}    # dimension, revision
KNOWN_TYPES = {"bitmap:ip", "bitmap:ip,mac", "bitmap:port", "hash:ip,mark", "hash:ip,port,ip", "hash:ip,port,net",
               "hash:mac", "hash:net,net", "hash:net,port", "hash:net,port,net", "hash:net,iface", "hash:ip,mac",
               "list:set"}
MAX_TIMEOUT = 2147483
PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132, "udplite": 136, "gre": 47, "esp": 50, "ah": 51}
PROTO_NAME = {v: k for k, v in PROTO.items()}
PORT_PROTOS = (6, 17, 132, 136)
SERVICES = {"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "pop3": 110, "ntp": 123,
            "imap": 143, "snmp": 161, "ldap": 389, "https": 443, "syslog": 514, "imaps": 993, "pop3s": 995}
ICMP_NAMES = {  # libipset's icmp.c table: name -> (type, code)
    "echo-reply": (0, 0), "pong": (0, 0), "network-unreachable": (3, 0), "host-unreachable": (3, 1),
    "protocol-unreachable": (3, 2), "port-unreachable": (3, 3), "fragmentation-needed": (3, 4),
    "source-route-failed": (3, 5), "network-unknown": (3, 6), "host-unknown": (3, 7),
    "network-prohibited": (3, 9), "host-prohibited": (3, 10), "TOS-network-unreachable": (3, 11),
    "TOS-host-unreachable": (3, 12), "communication-prohibited": (3, 13), "host-precedence-violation": (3, 14),
    "precedence-cutoff": (3, 15), "source-quench": (4, 0), "network-redirect": (5, 0), "host-redirect": (5, 1),
    "TOS-network-redirect": (5, 2), "TOS-host-redirect": (5, 3), "echo-request": (8, 0), "ping": (8, 0),
    "router-advertisement": (9, 0), "router-solicitation": (10, 0), "ttl-zero-during-transit": (11, 0),
    "ttl-zero-during-reassembly": (11, 1), "ip-header-bad": (12, 0), "required-option-missing": (12, 1),
    "timestamp-request": (13, 0), "timestamp-reply": (14, 0), "address-mask-request": (17, 0),
    "address-mask-reply": (18, 0),
}
ICMP_BY_CODE: dict = {}
for _name, _tc in ICMP_NAMES.items():
    ICMP_BY_CODE.setdefault(_tc, _name)
ALIASES = {"-N": "create", "-A": "add", "-D": "del", "-T": "test", "-L": "list", "-S": "save", "-R": "restore",
           "-F": "flush", "-X": "destroy", "-E": "rename", "-W": "swap", "-V": "version", "-H": "help"}
COMMANDS = ("create", "add", "del", "test", "list", "save", "restore", "flush", "destroy", "rename", "swap",
            "version", "help")
HELP = "Try `ipset help' for more information.\n"


class IpsetError(Exception):
    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _ntoa(a: int) -> str:
    return f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"


def _mask(cidr: int) -> int:
    return (0xFFFFFFFF << (32 - cidr)) & 0xFFFFFFFF


def _aton(text: str) -> int:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise IpsetError(f"Syntax error: cannot parse {text}: resolving to IPv4 address failed")
    return int.from_bytes(bytes(int(p) for p in parts), "big")


def _number(text: str, lo: int, hi: int) -> int:
    if not text.isdigit():
        raise IpsetError(f"Syntax error: '{text}' is invalid as number")
    value = int(text)
    if not lo <= value <= hi:
        raise IpsetError(f"Syntax error: '{text}' is out of range {lo}-{hi}")
    return value


def _range_to_cidrs(lo: int, hi: int) -> list[tuple[int, int]]:
    """ip_set_range_to_cidr(): the fewest networks covering lo..hi."""
    out = []
    while lo <= hi:
        cidr = 32
        while cidr > 0:
            size = 1 << (33 - cidr)
            if lo % size or lo + size - 1 > hi:
                break
            cidr -= 1
        out.append((lo, cidr))
        lo += 1 << (32 - cidr)
    return out


def _ip_part(text: str, ranges: bool = True) -> tuple[int, int, int | None]:
    """IP, IP/cidr or IP-IP: (first, last, cidr or None)."""
    if "/" in text:
        addr, _, c = text.partition("/")
        ip = _aton(addr)
        if not c.isdigit() or not 1 <= int(c) <= 32:
            raise IpsetError("The value of the CIDR parameter of the IP address is invalid")
        cidr = int(c)
        first = ip & _mask(cidr)
        return first, first | (~_mask(cidr) & 0xFFFFFFFF), cidr
    if "-" in text and ranges:
        a, _, b = text.partition("-")
        lo, hi = _aton(a), _aton(b)
        if lo > hi:
            lo, hi = hi, lo
        return lo, hi, None
    ip = _aton(text)
    return ip, ip, None


class IpSet:
    """One set: its header and its members (key -> deadline in ns, 0 = permanent)."""

    def __init__(self, name: str, type_: str, family: str = "inet", hashsize: int = 1024, maxelem: int = 65536,
                 timeout: int | None = None):
        self.name, self.type, self.family = name, type_, family
        self.hashsize, self.maxelem, self.timeout = hashsize, maxelem, timeout
        self.dimension, self.revision = TYPES[type_]
        self.initval = zlib.crc32(name.encode()) or 1
        self.references = 0
        self.members: dict = {}                   # insertion order, for list/save
        self.nets: dict[int, dict] = {}           # hash:net: cidr -> {network: deadline}
        self.cidrs: list[int] = []                # hash:net: the prefix lengths present, longest first

    def __len__(self):
        return len(self.members)

    # -- the hash
    def _live(self, deadline, now) -> bool:
        return deadline is not None and (deadline == 0 or now is None or deadline > now)

    def lookup(self, key, now: int | None = None) -> bool:
        """Exact member test, O(1)."""
        return self._live(self.members.get(key), now)

    def match_ip(self, ip: int, now: int | None = None) -> bool:
        """hash:net's test of one address (mtype_test_cidrs()): one dict per prefix length."""
        for cidr in self.cidrs:
            if self._live(self.nets[cidr].get(ip & _mask(cidr)), now):
                return True
        return False

    def _insert(self, key, deadline: int):
        self.members[key] = deadline
        if self.type == "hash:net":
            net, cidr = key
            if cidr not in self.nets:
                self.nets[cidr] = {}
                self.cidrs = sorted(self.nets, reverse=True)
            self.nets[cidr][net] = deadline

    def _remove(self, key):
        del self.members[key]
        if self.type == "hash:net":
            net, cidr = key
            bucket = self.nets[cidr]
            del bucket[net]
            if not bucket:
                del self.nets[cidr]
                self.cidrs = sorted(self.nets, reverse=True)

    def gc(self, now: int):
        for key in [k for k, d in self.members.items() if d and d <= now]:
            self._remove(key)

    def flush(self):
        self.members.clear()
        self.nets.clear()
        self.cidrs = []

    # -- elements as text
    def keys(self, text: str) -> list:
        """The members an `add`/`del` element names (ranges expand)."""
        if self.type == "hash:ip":
            lo, hi, _ = _ip_part(text)
            _bounded(lo, hi)
            return list(range(lo, hi + 1))
        if self.type == "hash:net":
            lo, hi, cidr = _ip_part(text)
            if cidr is not None:
                return [(lo, cidr)]
            if "-" in text:
                return _range_to_cidrs(lo, hi)
            return [(lo, 32)]
        ip_text, sep, port_text = text.partition(",")
        if not sep:
            raise IpsetError(f"Syntax error: Second element is missing from {text}.")
        lo, hi, _ = _ip_part(ip_text)
        _bounded(lo, hi)
        proto, ports = _port_part(port_text)
        return [(ip, proto, port) for ip in range(lo, hi + 1) for port in ports]

    def test_key(self, text: str):
        """(key, how the element prints) for `ipset test`."""
        if self.type == "hash:ip":
            ip = _aton(text.partition("/")[0])
            return ip, text
        if self.type == "hash:net":
            lo, _, cidr = _ip_part(text, ranges=False)
            return (lo, cidr or 32), text
        key = self.keys(text)[0]
        return key, format_key(self.type, key)

    def header(self, now) -> str:
        h = f"family {self.family} hashsize {self.hashsize} maxelem {self.maxelem}"
        if self.timeout is not None:
            h += f" timeout {self.timeout}"
        return h + f" bucketsize 12 initval {self.initval:#010x}"

    def memsize(self) -> int:
        """The kernel's arithmetic: the header, plus a bucket (32 bytes and two
        element slots) per member when no two share a bucket."""
        base = 456 if self.type == "hash:net" else 216
        dsize = 4 if self.type == "hash:ip" else 8
        if self.timeout is not None:
            dsize = 16
        return base + len(self.members) * (32 + 2 * dsize)

    def member_lines(self, now) -> list[str]:
        out = []
        for key, deadline in self.members.items():
            line = format_key(self.type, key)
            if self.timeout is not None:
                left = 0 if deadline == 0 else max(0, (deadline - (now or 0)) // S)
                line += f" timeout {left}"
            out.append(line)
        return out


def _bounded(lo: int, hi: int):
    if hi - lo >= 1 << 20:
        raise IpsetError("pktflow: a range of more than 1048576 addresses is not expanded")


def _port_part(text: str) -> tuple[int, list[int]]:
    proto_name, sep, port = text.partition(":")
    if not sep:
        proto_name, port = "tcp", text
    proto = PROTO.get(proto_name)
    if proto is None:
        raise IpsetError(f"Syntax error: cannot parse '{proto_name}' as a protocol")
    if proto == 1:
        if port in ICMP_NAMES:
            t, c = ICMP_NAMES[port]
        else:
            t_, sep2, c_ = port.partition("/")
            if not (sep2 and t_.isdigit() and c_.isdigit() and int(t_) < 256 and int(c_) < 256):
                raise IpsetError(f"Cannot parse {port} as an ICMP type/code.")
            t, c = int(t_), int(c_)
        return proto, [t << 8 | c]
    if proto not in PORT_PROTOS:
        return proto, [0]
    lo_text, dash, hi_text = port.partition("-")

    def one(p: str) -> int:
        if p in SERVICES:
            return SERVICES[p]
        if not p.isdigit():
            raise IpsetError(f"Syntax error: cannot parse '{p}' as a {proto_name} port")
        return _number(p, 0, 65535)
    lo = one(lo_text)
    hi = one(hi_text) if dash else lo
    if lo > hi:
        lo, hi = hi, lo
    return proto, list(range(lo, hi + 1))


def format_key(type_: str, key) -> str:
    if type_ == "hash:ip":
        return _ntoa(key)
    if type_ == "hash:net":
        net, cidr = key
        return _ntoa(net) if cidr == 32 else f"{_ntoa(net)}/{cidr}"
    ip, proto, port = key
    if proto == 1:
        name = ICMP_BY_CODE.get((port >> 8, port & 255))
        return f"{_ntoa(ip)},icmp:{name or f'{port >> 8}/{port & 255}'}"
    return f"{_ntoa(ip)},{PROTO_NAME.get(proto, str(proto))}:{port}"


class IpSets:
    """One network namespace's sets."""

    def __init__(self):
        self.sets: dict[str, IpSet] = {}

    def exists(self, name: str) -> bool:
        return name in self.sets

    def get(self, name: str) -> IpSet:
        """The set object; an iptables rule keeps it (as the kernel keeps the
        set's index), so rename and swap act on the rule as they do in Linux."""
        return self.sets[name]

    def ref(self, name: str) -> IpSet:
        """ip_set_get_byname(): an iptables rule starts using the set."""
        s = self.sets[name]
        s.references += 1
        return s

    def unref(self, s: IpSet):
        s.references -= 1

    def test(self, name: str, pkt, dirs: list[str], now: int | None = None) -> bool:
        """xt_set's --match-set NAME src|dst[,src|dst]: False when fewer
        directions than the set's dimension (ip_set_test())."""
        s = self.sets.get(name)
        if s is None or len(dirs) < s.dimension or s.family != "inet":
            return False
        ip = pkt.saddr if dirs[0] == "src" else pkt.daddr
        if s.type == "hash:ip":
            return s.lookup(ip, now)
        if s.type == "hash:net":
            return s.match_ip(ip, now)
        proto = pkt.proto
        if proto in PORT_PROTOS:
            port = pkt.sport if dirs[1] == "src" else pkt.dport
        elif proto == 1:
            port = (getattr(pkt, "icmp_type", 0) & 255) << 8 | (getattr(pkt, "icmp_code", 0) & 255)
        else:
            port = 0
        return s.lookup((ip, proto, port), now)

    # -- the command
    def ipset(self, argv: list[str], now: int = 0, stdin: str = "") -> tuple[int, str, str]:
        """`ipset ARGV` (stdin feeds `restore`): (exit status, stdout, stderr)."""
        try:
            out, err = self._run(list(argv), now, stdin)
            return 0, out, err
        except IpsetError as e:
            if str(e).endswith("\n"):           # a test's "is NOT in set" line: printed as is
                return e.status, "", str(e)
            tail = HELP if e.status == 2 else ""
            return e.status, "", f"{PROG}: {e}\n{tail}"

    def _run(self, argv: list[str], now: int, stdin: str) -> tuple[str, str]:
        opts, words = set(), []
        i = 0
        while i < len(argv):
            w = argv[i]
            if w in ("-exist", "-!"):
                opts.add("exist")
            elif w in ("-terse", "-t"):
                opts.add("terse")
            elif w in ("-name", "-n"):
                opts.add("name")
            elif w in ("-quiet", "-q", "-sorted", "-s", "-resolve", "-r"):
                pass
            elif w in ("-output", "-o"):
                i += 1
                fmt = argv[i] if i < len(argv) else ""
                if fmt not in ("plain", "save", "xml", "json"):
                    raise IpsetError(f"Syntax error: unknown output mode '{fmt}'", 2)
                if fmt == "save":
                    opts.add("save")
            else:
                words.append(w)
            i += 1
        if not words:
            raise IpsetError("No command specified.", 2)
        cmd = ALIASES.get(words[0], words[0])
        if cmd not in COMMANDS:
            raise IpsetError(f"No command specified: unknown argument {words[0]}", 2)
        args = words[1:]
        for s in self.sets.values():
            if s.timeout is not None:
                s.gc(now)
        return getattr(self, f"_cmd_{cmd}")(args, opts, now, stdin)

    def _need(self, cmd: str, args: list[str], n: int, most: int | None = None):
        if len(args) < n:
            which = "Missing mandatory argument" if not args else "Missing second mandatory argument"
            raise IpsetError(f"{which} to command {cmd}", 2)
        if most is not None and len(args) > most:
            raise IpsetError(f"Unknown argument {args[most]}", 2)

    def _set(self, name: str) -> IpSet:
        s = self.sets.get(name)
        if s is None:
            raise IpsetError("The set with the given name does not exist")
        return s

    def _cmd_version(self, args, opts, now, stdin):
        return f"ipset {VERSION}, protocol version: 7\n", ""

    def _cmd_help(self, args, opts, now, stdin):
        return f"ipset {VERSION}\n\nUsage: ipset [options] COMMAND\n\nCommands: {', '.join(COMMANDS)}\n", ""

    def _cmd_create(self, args, opts, now, stdin):
        self._need("create", args, 1)
        if len(args) < 2:
            raise IpsetError("Missing second mandatory argument to command create", 2)
        name, type_ = args[0], args[1]
        if type_ not in TYPES:
            if type_ in KNOWN_TYPES:
                raise IpsetError("Kernel error received: set type not supported")    # pktflow models 3 types
            raise IpsetError(f"Syntax error: typename '{type_}' is unknown")
        kw = {"family": "inet", "hashsize": 1024, "maxelem": 65536, "timeout": None}
        rest = args[2:]
        while rest:
            key = rest.pop(0)
            if key not in kw and key not in ("bucketsize", "initval"):
                raise IpsetError(f"Unknown argument {key}", 2)
            if not rest:
                raise IpsetError(f"Missing mandatory argument to option {key}", 2)
            val = rest.pop(0)
            if key == "family":
                if val not in ("inet", "inet6"):
                    raise IpsetError(f"Syntax error: unknown family {val}")
                kw["family"] = val
            elif key == "hashsize":
                n = _number(val, 0, 2**32 - 1)
                kw["hashsize"] = max(64, 1 << (max(n, 1) - 1).bit_length())
            elif key == "maxelem":
                kw["maxelem"] = _number(val, 0, 2**32 - 1)
            elif key == "timeout":
                kw["timeout"] = _number(val, 0, MAX_TIMEOUT)
        if name in self.sets:
            # -exist only hides re-creating the same set, never a different one
            old = self.sets[name]
            same = (old.type, old.family, old.hashsize, old.maxelem, old.timeout) == (
                type_, kw["family"], kw["hashsize"], kw["maxelem"], kw["timeout"])
            if "exist" in opts and same:
                return "", ""
            raise IpsetError("Set cannot be created: set with the same name already exists")
        self.sets[name] = IpSet(name, type_, **kw)
        return "", ""

    def _elem_args(self, cmd, args, s: IpSet):
        self._need(cmd, args, 2)
        timeout = None
        rest = args[2:]
        while rest:
            key = rest.pop(0)
            if key != "timeout" or cmd != "add":
                raise IpsetError(f"Unknown argument {key}", 2)
            if not rest:
                raise IpsetError("Missing mandatory argument to option timeout", 2)
            timeout = _number(rest.pop(0), 0, MAX_TIMEOUT)
            if s.timeout is None:
                raise IpsetError("Timeout cannot be used: set was created without timeout support")
        if s.family != "inet":
            raise IpsetError("pktflow: IPv6 sets hold no members here")
        return timeout

    def _cmd_add(self, args, opts, now, stdin):
        s = self._set(args[0]) if args else None
        self._need("add", args, 2)
        timeout = self._elem_args("add", args, s)
        if timeout is None:
            timeout = s.timeout or 0
        keys = s.keys(args[1])
        if s.type == "hash:ip" and 0 in keys:
            raise IpsetError("Null-valued element, cannot be stored in a hash type of set")
        deadline = now + timeout * S if timeout else 0
        for key in keys:                          # a range stops at the first member already there
            if s.lookup(key, now):
                if "exist" in opts:
                    s.members[key] = deadline if s.timeout is not None else s.members[key]
                    if s.type == "hash:net":
                        s.nets[key[1]][key[0]] = s.members[key]
                    continue
                raise IpsetError("Element cannot be added to the set: it's already added")
            if len(s.members) >= s.maxelem:
                raise IpsetError("Hash is full, cannot add more elements")
            s._insert(key, deadline)
        return "", ""

    def _cmd_del(self, args, opts, now, stdin):
        s = self._set(args[0]) if args else None
        self._need("del", args, 2)
        self._elem_args("del", args, s)
        for key in s.keys(args[1]):
            if not s.lookup(key, now):
                if "exist" in opts:
                    continue
                raise IpsetError("Element cannot be deleted from the set: it's not added")
            s._remove(key)
        return "", ""

    def _cmd_test(self, args, opts, now, stdin):
        self._need("test", args, 1)
        s = self._set(args[0])
        self._need("test", args, 2, 2)
        key, shown = s.test_key(args[1])
        if s.type == "hash:net" and key[1] == 32:
            hit = s.match_ip(key[0], now)
        else:
            hit = s.lookup(key, now)
        if hit:
            return "", f"Warning: {shown} is in set {s.name}.\n"
        raise IpsetError(f"{shown} is NOT in set {s.name}.\n")

    def _listing(self, s: IpSet, opts, now) -> str:
        if "name" in opts:
            return s.name + "\n"
        if "save" in opts:
            return _save(s, now)
        text = (f"Name: {s.name}\nType: {s.type}\nRevision: {s.revision}\nHeader: {s.header(now)}\n"
                f"Size in memory: {s.memsize()}\nReferences: {s.references}\nNumber of entries: {len(s)}\n")
        if "terse" not in opts:
            text += "Members:\n" + "".join(line + "\n" for line in s.member_lines(now))
        return text

    def _cmd_list(self, args, opts, now, stdin):
        if len(args) > 1:
            raise IpsetError(f"Unknown argument {args[1]}", 2)
        chosen = [self._set(args[0])] if args else list(self.sets.values())
        parts = [self._listing(s, opts, now) for s in chosen]
        sep = "" if opts & {"name", "save"} else "\n"
        return sep.join(parts), ""

    def _cmd_save(self, args, opts, now, stdin):
        self._need("save", [""] + args, 1, 2)
        chosen = [self._set(args[0])] if args else list(self.sets.values())
        return "".join(_save(s, now) for s in chosen), ""

    def _cmd_flush(self, args, opts, now, stdin):
        self._need("flush", [""] + args, 1, 2)
        for s in ([self._set(args[0])] if args else self.sets.values()):
            s.flush()
        return "", ""

    def _cmd_destroy(self, args, opts, now, stdin):
        self._need("destroy", [""] + args, 1, 2)
        chosen = [self._set(args[0])] if args else list(self.sets.values())
        if any(s.references for s in chosen):
            raise IpsetError("Set cannot be destroyed: it is in use by a kernel component")
        for s in chosen:
            del self.sets[s.name]
        return "", ""

    def _cmd_rename(self, args, opts, now, stdin):
        self._need("rename", args, 2, 2)
        s = self._set(args[0])
        if args[1] in self.sets:
            raise IpsetError("Set cannot be renamed: a set with the new name already exists")
        if s.references:
            raise IpsetError("Set cannot be renamed: it is in use by another system")
        del self.sets[s.name]
        s.name = args[1]
        self.sets[s.name] = s
        return "", ""

    def _cmd_swap(self, args, opts, now, stdin):
        self._need("swap", args, 2, 2)
        a = self._set(args[0])
        b = self.sets.get(args[1])
        if b is None:
            raise IpsetError("Sets cannot be swapped: the second set does not exist")
        if (a.type, a.family) != (b.type, b.family):
            raise IpsetError("The sets cannot be swapped: their type does not match")
        keep = ("name", "references")             # names and references stay (ip_set_swap())
        da = {k: v for k, v in vars(a).items() if k not in keep}
        db = {k: v for k, v in vars(b).items() if k not in keep}
        vars(a).update(db)
        vars(b).update(da)
        return "", ""

    def _cmd_restore(self, args, opts, now, stdin):
        """Line by line; what ran before an error stays (ipset restore is not atomic)."""
        out = []
        for n, line in enumerate(stdin.splitlines(), 1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "COMMIT":
                continue
            cmd = ALIASES.get(words[0], words[0])
            if cmd not in COMMANDS or cmd in ("restore", "help", "version"):
                raise IpsetError(f"No command specified: unknown argument {words[0]}", 2)
            try:
                o, _ = self._run(words + [w for w in ("-exist",) if "exist" in opts], now, "")
            except IpsetError as e:
                if e.status == 2:
                    raise
                raise IpsetError(f"Error in line {n}: {e}".rstrip("\n"), e.status) from None
            out.append(o)
        return "".join(out), ""


def _save(s: IpSet, now) -> str:
    lines = [f"create {s.name} {s.type} {s.header(now)}"]
    lines += [f"add {s.name} {m}" for m in s.member_lines(now)]
    return "".join(line + "\n" for line in lines)
