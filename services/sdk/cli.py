"""The `pktflow` command: iproute2's and the kernel tools' vocabulary."""
import argparse
import errno
import json
import os
import signal
import statistics
import sys

from . import _client
from .services.iproute2 import iplink_xdp, tc_qdisc
from .services.wire import ipv6


def _die(msg: str, code: int = 2):
    print(f"pktflow: {msg}", file=sys.stderr)
    raise SystemExit(code)


# -- ping
def cmd_ping(a) -> int:
    from ._ping import PingError, is_ipv6, ping
    size = a.s
    v6 = is_ipv6(a.dest)
    if a.family and a.family != (6 if v6 else 4):       # iputils: getaddrinfo() with the family asked
        print(f"ping: {a.dest}: Address family for hostname not supported", file=sys.stderr)
        return 2
    if v6:                                             # ping6_common.c: "%d data bytes"
        print(f"PING {a.dest} ({a.dest}) {size} data bytes", flush=True)
    else:
        print(f"PING {a.dest} ({a.dest}) {size}({size + 28}) bytes of data.", flush=True)

    def show(r):
        if isinstance(r, PingError):
            print(f"From {r.offender} icmp_seq={r.seq} {r.text}", flush=True)
        else:
            print(f"{r.size} bytes from {r.src}: icmp_seq={r.seq} ttl={r.ttl} time={r.rtt * 1000:.3g} ms",
                  flush=True)

    try:
        res = ping(a.dest, netns=a.netns, count=a.c, timeout=a.W, interval=a.i, ttl=a.t, size=size, pmtudisc=a.M,
                   on_reply=show)
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        if e.errno != errno.EMSGSIZE:
            raise
        print("ping: local error: message too long", file=sys.stderr)   # iputils, sendto() EMSGSIZE
        return 1
    rtts = [r.rtt * 1000 for r in res.replies if r]
    lost = 100.0 * (res.transmitted - res.received) / max(1, res.transmitted)
    errs = f", +{len(res.errors)} errors" if res.errors else ""
    print(f"\n--- {a.dest} ping statistics ---")
    print(f"{res.transmitted} packets transmitted, {res.received} received{errs}, {lost:.0f}% packet loss, "
          f"time {res.elapsed * 1000:.0f}ms")
    if rtts:
        mdev = statistics.pstdev(rtts) if len(rtts) > 1 else 0.0
        print(f"rtt min/avg/max/mdev = {min(rtts):.3f}/{statistics.mean(rtts):.3f}/{max(rtts):.3f}/{mdev:.3f} ms")
    return 0 if rtts else 1


# -- nstat
# Counters that nstat does not print (iproute2 misc/nstat.c useless_number()):
# configuration values and gauges, not events.
NSTAT_HIDDEN = frozenset(("IpForwarding", "IpDefaultTTL", "TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax",
                          "TcpMaxConn", "TcpCurrEstab"))
# nstat's order (misc/nstat.c loads /proc/net/netstat, snmp6, then snmp, each in front of
# the last): /proc/net/snmp's tables, /proc/net/snmp6's, then /proc/net/netstat's.
NSTAT_ORDER = ("Ip", "Icmp", "Tcp", "Udp", "Ip6", "Icmp6", "Udp6", "UdpLite6", "TcpExt", "IpExt")
_TABLES = ("TcpExt", "IpExt", "Icmp6", "Ip6", "UdpLite6", "Udp6", "Icmp", "Tcp", "Udp", "Ip")


def _mib_table(name: str) -> str:
    """The table a counter belongs to: its longest known prefix."""
    return next((t for t in _TABLES if name.startswith(t)), "")


def _with_link_icmp6(rows: list, link: dict) -> list:
    """The ICMPv6 messages the link layer sent and took (neighbour discovery, MLD) counted
    in Ip6 and Icmp6 as the kernel counts them: its counters added to ip's, the named
    Icmp6 columns made again from the per-type ones (snmp.icmp6_rows())."""
    from .services.common import snmp
    rows = [(k, v + link.get(k, 0) if k.startswith("Ip6") else v) for k, v in rows]
    raw = {k: v for k, v in rows if k in snmp.ICMP6 or "Type" in k and k.startswith("Icmp6")}
    for k, v in link.items():
        if k in snmp.ICMP6 or k.startswith(("Icmp6InType", "Icmp6OutType")):
            raw[k] = raw.get(k, 0) + v
    icmp6 = snmp.icmp6_rows(raw)
    at = next((i for i, (k, _) in enumerate(rows) if k.startswith("Icmp6")), len(rows))
    return [r for r in rows[:at] if not r[0].startswith("Icmp6")] + icmp6 + \
        [r for r in rows[at:] if not r[0].startswith("Icmp6")]


def cmd_nstat(a) -> int:
    """nstat -a: /proc/net/snmp's tables, then /proc/net/netstat's (TcpExt, IpExt),
    without the values nstat leaves out (NSTAT_HIDDEN). The link layer's
    ARP counters have no place in Linux's MIBs; only its drops are shown (--drops)."""
    rows, drops, link6 = [], [], {}
    for layer in ("ip", "transport", "link"):
        reply = _client.admin(layer, a.netns, "counters")
        for c in reply.counters:
            if c.name.startswith("Drop"):
                drops.append((c.name, c.value))
            elif layer == "link" and c.name.startswith(("Icmp6", "Ip6")):
                link6[c.name] = c.value
            elif layer != "link" and c.name not in NSTAT_HIDDEN:
                rows.append((c.name, c.value))
    if link6:
        rows = _with_link_icmp6(rows, link6)
    order = {t: i for i, t in enumerate(NSTAT_ORDER)}
    rows.sort(key=lambda r: order.get(_mib_table(r[0]), len(order)))     # stable: each table keeps its order
    if a.drops:
        rows += drops
    if a.json:
        print(json.dumps({"kernel": dict(rows)}, indent=1))
        return 0
    print("#kernel")
    for name, value in rows:
        if value or a.zeros:
            print(f"{name:<32}{value:<16d}{0.0:6.1f}")
    return 0


# -- ip
def _ip_args(argv: list[str]):
    """`ip [-s] [-d] [-force] [-n NETNS] OBJECT [show ...] [-n NETNS]`, options anywhere as iproute2
    accepts them first."""
    stats, netns, rest, flags = 0, None, [], []
    it = iter(argv)
    for w in it:
        if w in ("-s", "-stats", "-statistics"):
            stats += 1
        elif w in ("-n", "-netns"):
            netns = next(it, None)
        elif w in ("-j", "-json"):
            flags.append("-j")
        elif w == "-6":                    # IPv6 (iproute2's -6, i.e. -family inet6)
            flags.append("-6")
        elif w == "-d" or len(w) > 2 and "-details".startswith(w):
            flags.append("-d")
        elif len(w) > 2 and "-force".startswith(w):
            flags.append("-force")
        else:
            rest.append(w)
    if not netns:
        _die("ip: which host? give -n NETNS")
    if not rest:
        _die("ip: give an object: link, addr, route or neigh")
    return stats, netns, rest + flags


_FLAGS_UP = "<BROADCAST,MULTICAST,UP,LOWER_UP>"


def _ip_change(netns: str, command: str, args: list[str], force: bool = False) -> int:
    """`ip link set ...` / `ip addr add|del ...`: the ip layer checks and applies
    it (answering as iproute2), then the device layers follow: the link layer's
    addresses (what ARP answers for) and MTU, the NIC's MTU and up/down; and
    the NIC's XDP program, which iproute2's part (iplink_xdp) read and compiled."""
    xdp = None
    at = iplink_xdp.find(args) if command == "link" else None
    if at is not None:
        ifname = (args[2:3] if args[1:2] == ["dev"] else args[1:2]) or [""]
        names = {d["ifname"] for d in json.loads(_client.admin("nic", netns, "link").json)}
        try:
            xdp, tail = iplink_xdp.xdp_parse(args[at:], ifname[0], force, names)
        except iplink_xdp.XdpParseError as e:
            print(e, file=sys.stderr)
            return e.status
        args = args[:at] + tail
    reply = json.loads(_client.admin("ip", netns, command, *args).json)
    if reply["status"] == 0:
        if command == "link":
            rest = args[1:][1:] if args[1:2] == ["dev"] else args[1:]      # set [dev] IF ...
            for layer in ("link", "nic"):
                _client.admin(layer, netns, "link", "set", *rest)
        else:
            ifname = args[args.index("dev") + 1]
            dev = next(d for d in json.loads(_client.admin("ip", netns, "addr").json) if d["ifname"] == ifname)
            _client.admin("link", netns, "addrs", ifname, *(f"{a['local']}/{a['prefixlen']}" for a in dev["addresses"]))
    sys.stdout.write(reply["out"])
    sys.stderr.write(reply["err"])
    if reply["status"] == 0 and xdp is not None:        # IFLA_XDP: dev_change_xdp_fd()
        answer = _client.query("nic", netns, "xdp", xdp=xdp)
        if answer.err:
            print(iplink_xdp.extack(answer.detail), file=sys.stderr)
            return 2
    return reply["status"]


def cmd_ip(argv: list[str]) -> int:
    stats, netns, words = _ip_args(argv)
    obj, args = words[0], [w for w in words[1:] if w not in ("show", "list", "ls", "-j", "-d", "-force")]
    as_json = "-j" in words
    if "-6" in words and obj and ("route".startswith(obj) or "address".startswith(obj)):
        return _ip6(netns, "route" if "route".startswith(obj) else "addr",
                    [w for w in words[1:] if w not in ("-6", "-j", "-d", "-force")])
    if "-6" in words and not (obj and ("neighbour".startswith(obj) or "neighbor".startswith(obj))):
        _die(f"ip -6 {obj}: only `ip -6 route|addr|neigh` are there yet")
    if obj and ("link".startswith(obj) and args[:1] == ["set"] or "address".startswith(obj) and
                args[:1] in (["add"], ["del"], ["delete"])):
        return _ip_change(netns, "link" if "link".startswith(obj) else "addr", args, "-force" in words)
    if "link".startswith(obj) and obj:
        links = json.loads(_client.admin("link", netns, "link").json)
        nic = {d["ifindex"]: d for d in json.loads(_client.admin("nic", netns, "link").json)}
        ip = {d["ifindex"]: d for d in json.loads(_client.admin("ip", netns, "link").json)}
        if args:
            links = [d for d in links if d["ifname"] in args]
        if as_json:
            print(json.dumps([d | {"nic": nic.get(d["ifindex"])} |
                              ({"xdp": x} if (x := iplink_xdp.json_entry(nic.get(d["ifindex"], {}).get("xdp"))) else {})
                              for d in links]))
            return 0
        for d in links:
            n = nic.get(d["ifindex"], {})
            st = n.get("stats", {})
            core = d.get("stats", {})
            otherhost = ip.get(d["ifindex"], {}).get("stats", {}).get("rx_otherhost_dropped", 0)
            xdp_mode = iplink_xdp.mode_word(n.get("xdp"))
            if d["loopback"]:
                print(f"{d['ifindex']}: {d['ifname']}: <LOOPBACK,UP,LOWER_UP> mtu {d['mtu']} {xdp_mode}"
                      f"qdisc {d.get('qdisc', 'noqueue')} state UNKNOWN mode DEFAULT group default qlen 1000")
                print(f"    link/loopback {d['mac']} brd 00:00:00:00:00:00")
            else:
                carrier = n.get("carrier", True)
                flags = _FLAGS_UP if carrier else "<NO-CARRIER,BROADCAST,MULTICAST,UP>"
                print(f"{d['ifindex']}: {d['ifname']}: {flags} mtu {d['mtu']} {xdp_mode}"
                      f"qdisc {d.get('qdisc', 'pfifo_fast')} state {'UP' if carrier else 'DOWN'} mode DEFAULT "
                      "group default qlen 1000")
                print(f"    link/ether {d['mac']} brd ff:ff:ff:ff:ff:ff")
            for line in iplink_xdp.prog_lines(n.get("xdp"), details="-d" in words):
                print(line)
            if stats:
                rx_dropped = st.get("rx_dropped", 0) + core.get("rx_dropped", 0)
                print("    RX:  bytes packets errors dropped  missed   mcast")
                print(f"    {st.get('rx_bytes', 0):>9} {st.get('rx_packets', 0):>7} {st.get('rx_errors', 0):>6} "
                      f"{rx_dropped:>7} {st.get('rx_missed_errors', 0):>7} {st.get('multicast', 0):>7}")
                if stats > 1:
                    print("    RX errors:  length    crc   frame    fifo overrun otherhost")
                    print(f"    {st.get('rx_length_errors', 0):>17} {st.get('rx_crc_errors', 0):>6} "
                          f"{0:>7} {st.get('rx_fifo_errors', 0):>7} {0:>7} {otherhost:>9}")
                print("    TX:  bytes packets errors dropped carrier collsns")
                print(f"    {st.get('tx_bytes', 0):>9} {st.get('tx_packets', 0):>7} {st.get('tx_errors', 0):>6} "
                      f"{st.get('tx_dropped', 0):>7} {st.get('tx_carrier_errors', 0):>7} {0:>7}")
        return 0
    if "address".startswith(obj) and obj:
        for d in json.loads(_client.admin("ip", netns, "addr").json):
            flags = "<LOOPBACK,UP,LOWER_UP>" if d["loopback"] else _FLAGS_UP
            print(f"{d['ifindex']}: {d['ifname']}: {flags} mtu {d['mtu']}")
            for a in d["addresses"]:
                brd = f" brd {a['broadcast']}" if a["broadcast"] and not d["loopback"] else ""
                scope = "host" if d["loopback"] else "global"
                print(f"    inet {a['local']}/{a['prefixlen']}{brd} scope {scope} {d['ifname']}")
        return 0
    if ("route".startswith(obj) or "rule".startswith(obj) and len(obj) > 1) and obj:
        command = "route" if "route".startswith(obj) else "rule"
        if command == "route" and (args[:1] == ["get"] or args[:2] == ["flush", "cache"]):
            return _route_query(netns, args)
        words = [w for w in words[1:] if w != "-j"]       # `show` is the tools' default; keep the verb
        reply = json.loads(_client.admin("ip", netns, command, *words).json)
        sys.stdout.write(reply["out"])
        sys.stderr.write(reply["err"])
        return reply["status"]
    if "neighbour".startswith(obj) or "neighbor".startswith(obj):
        six = "-6" in words                # nd_tbl; entries in NUD_NONE are not shown, as iproute2 hides them
        for n in json.loads(_client.admin("link", netns, "neigh", *(["-6"] if six else [])).json):
            if six and n["state"] == "NONE":
                continue
            ll = f" lladdr {n['lladdr']}" if n["lladdr"] else ""
            print(f"{n['dst']} dev {n['dev']}{ll}{' router' if n.get('router') else ''} {n['state']}")
        return 0
    _die(f'ip: object "{obj}" is unknown, try "pktflow ip help".')


def _route_query(netns: str, args: list[str]) -> int:
    """`ip [-6] route get ...|flush cache`: the ip layer's lines, or the errno as ip words it."""
    reply = _client.query("ip", netns, "route", *args)
    if reply.err:
        print(f"RTNETLINK answers: {os.strerror(reply.err)}", file=sys.stderr)
        return 2
    for line in json.loads(reply.json):
        print(line)
    return 0


def _ip6(netns: str, obj: str, words: list[str]) -> int:
    """`ip -6 route [show [table T|all] | get ADDR [from ADDR] [oif DEV] | flush cache | add | del ...]`
    and `ip -6 addr [show | add|del ADDR/PLEN dev IF]`: the ip layer answers as the kernel
    does; an address change goes on to the link layer (DAD, its solicited-node group)."""
    verb = [w for w in words if w not in ("show", "list", "ls")]
    if obj == "route" and (verb[:1] == ["get"] or verb[:2] == ["flush", "cache"]):
        return _route_query(netns, ["-6", *verb])
    if obj == "route" or verb[:1] in (["add"], ["del"], ["delete"]):
        reply = json.loads(_client.admin("ip", netns, obj, "-6", *(words if obj == "route" else verb)).json)
        if obj == "addr" and reply["status"] == 0:
            ifname = verb[verb.index("dev") + 1]
            dev = next(d for d in json.loads(_client.admin("ip", netns, "addr", "-6").json) if d["ifname"] == ifname)
            _client.query("link", netns, "addrs6", ifname, *(f"{a}/{p}" for a, p, _ in dev["addrs"]))
        sys.stdout.write(reply["out"])
        sys.stderr.write(reply["err"])
        return reply["status"]
    return _ip6_addr_show(netns, verb)


def _ip6_addr_show(netns: str, verb: list[str]) -> int:
    """`ip -6 addr [show [dev] IF]`: the ip layer's devices and addresses, with what the
    link layer's DAD says of each (tentative, dadfailed) where it answers."""
    from .services.ip import ip6_fib
    words = {w: f for f, w in ip6_fib._FLAG_WORDS}
    reply = _client.query("link", netns, "addrs6")
    dad = json.loads(reply.json) if not reply.err and reply.json else {}
    only = verb[-1] if verb else None
    for d in json.loads(_client.admin("ip", netns, "addr", "-6").json):
        if only and d["ifname"] != only:
            continue
        link = {e["addr"]: sum(words.get(w, 0) for w in e["flags"]) for e in dad.get(d["ifname"], [])}
        addrs = [(ipv6.aton(a), p, f | link.get(a, 0)) for a, p, f in d["addrs"]]
        flags = "<LOOPBACK,UP,LOWER_UP>" if d["loopback"] else _FLAGS_UP if d["up"] else "<BROADCAST,MULTICAST>"
        state = "UNKNOWN" if d["loopback"] else "UP" if d["up"] else "DOWN"
        print(f"{d['ifindex']}: {d['ifname']}: {flags} mtu {d['mtu']} state {state} qlen 1000")
        for line in ip6_fib.addr_lines(addrs):
            print(line)
    return 0


# -- tc
def cmd_tc(argv: list[str]) -> int:
    """`tc [-s] [-n NETNS] qdisc add|change|replace|del|show ...`: the words are read here, as
    tc reads them; the link layer gets the typed request and answers as the kernel does."""
    stats, netns, words = [], None, []
    it = iter(argv)
    for w in it:
        if w in ("-s", "-stats", "-statistics"):
            stats.append("-s")
        elif w in ("-n", "-netns"):
            netns = next(it, None)
        else:
            words.append(w)
    if not netns:
        _die("tc: which host? give -n NETNS")
    if not words or not "qdisc".startswith(words[0]):
        print(f'Object "{words[0] if words else ""}" is unknown, try "tc help".', file=sys.stderr)
        return 255
    def kernel(req):
        reply = _client.query("link", netns, "tc", tc_qdisc=req)
        return reply.err, reply.detail, reply.qdiscs
    try:
        lines = tc_qdisc.tc_qdisc([*stats, *words[1:]], kernel)
    except tc_qdisc.TcError as e:
        print(e, file=sys.stderr)
        return e.exit_code
    for line in lines:
        print(line)
    return 0


# -- netfilter: iptables, iptables-save, iptables-restore, ipset, conntrack, dmesg (the ip layer's TOOLS)
NF_TOOLS = ("iptables", "iptables-save", "iptables-restore", "ipset", "conntrack", "dmesg")


def cmd_netfilter(tool: str, argv: list[str]) -> int:
    """`pktflow TOOL -n NETNS WORDS...`: the words go to the host's ip layer as the
    tool would hand them to the kernel, and its answer is printed as the tool
    prints it (iptables' own `-n`, numeric, is free after the host's). Standard
    input is the rule set for iptables-restore and ipset restore."""
    if argv[:1] not in (["-n"], ["--netns"]) or len(argv) < 2:
        _die(f"{tool}: which host? give -n NETNS first")
    netns, words = argv[1], argv[2:]
    if tool == "iptables-restore" or tool == "ipset" and words[:1] in (["restore"], ["-R"]):
        words = words + [sys.stdin.read()]
    reply = json.loads(_client.admin("ip", netns, tool, *words).json)
    sys.stdout.write(reply["out"])
    sys.stderr.write(reply["err"])
    return reply["status"]


# -- softnet
def cmd_softnet(a) -> int:
    """`pktflow softnet -n NETNS`: `cat /proc/net/softnet_stat` on that host
    (one CPU): processed, dropped (netdev_max_backlog), time_squeeze (netdev_budget
    used up with work left), ..., in hex as the kernel prints them."""
    reply = json.loads(_client.admin("nic", a.netns, "softnet").json)
    if a.json:
        print(json.dumps({k: v for k, v in reply.items() if k != "softnet_stat"}))
    else:
        sys.stdout.write(reply["softnet_stat"])
    return 0


# -- sysctl
LAYERS_WITH_SYSCTLS = ("transport", "socket", "link", "nic")     # besides ip, which validates


def cmd_sysctl(argv: list[str]) -> int:
    """`pktflow sysctl -n NETNS [-w|-q|-n|-a] KEY[=VALUE]...` as procps' sysctl:
    the ip layer reads and validates; what it wrote is written in every layer
    that keeps sysctls, so each one's core sees the new value."""
    if argv[:1] not in (["-n"], ["--netns"]) or len(argv) < 2:
        _die("sysctl: which host? give -n NETNS first")
    netns, words = argv[1], argv[2:]
    reply = json.loads(_client.admin("ip", netns, "sysctl", *words).json)
    if reply["written"]:
        again = ["-qw"] + [f"{k}={v}" for k, v in reply["written"].items()]
        for layer in LAYERS_WITH_SYSCTLS:
            _client.admin(layer, netns, "sysctl", *again)
    sys.stdout.write(reply["out"])
    sys.stderr.write(reply["err"])
    return reply["status"]


# -- capture, tcpdump (services/sdk/tcpdump.py)
def cmd_capture(a) -> int:
    from . import tcpdump
    return tcpdump.run(a, "capture")


def cmd_tcpdump(a) -> int:
    from . import tcpdump
    return tcpdump.run(a)


def cmd_dropwatch(a) -> int:
    from . import dropwatch
    return dropwatch.run(a)


# -- ss
def sprint_bw(bw: float) -> str:
    """iproute2 ss's sprint_bw(): G, M, K with one decimal, else %g."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if bw > scale:
            return f"{bw / scale:.1f}{unit}"
    return f"{bw:g}"


def cmd_ss(a) -> int:
    """`ss -tan` and `ss -tin`: TCP sockets, their queues and their internals."""
    rows = json.loads(_client.admin("transport", a.netns, "sockets").json)
    if a.listening:
        rows = [r for r in rows if r["state"] == "LISTEN"]
    elif not a.all:
        rows = [r for r in rows if r["state"] not in ("LISTEN", "UNCONN")]
    print(f"{'State':<11}{'Recv-Q':>6} {'Send-Q':>6} {'Local Address:Port':>21}  {'Peer Address:Port':<21}")
    for r in sorted(rows, key=lambda r: (r.get("family", 2), r["local"], r["peer"])):
        local, peer = ss_addr(r, "local"), ss_addr(r, "peer")
        print(f"{r['state']:<11}{r['recv_q']:>6} {r['send_q']:>6} {local:>21}  {peer:<21}")
        if a.info and r["state"] not in ("LISTEN", "UNCONN"):
            print("\t " + " ".join(ss_info(r)))
    return 0


def ss_addr(r: dict, which: str) -> str:
    """An address as ss prints it: IPv6 in brackets ([::]:8080, [::ffff:10.0.1.10]:80),
    a peer not known yet as the wildcard with port * (0.0.0.0:*, [::]:*)."""
    host, port = r[which]
    v6 = r.get("family") == 10
    if which == "peer" and not port:
        host, port = ("::" if v6 else "0.0.0.0"), "*"
    return f"[{host}]:{port}" if v6 else f"{host}:{port}"


def ss_info(r: dict) -> list[str]:
    """`ss -i`'s fields in the order tcp_show_info() prints them."""
    parts = [name for name in ("ts", "sack", "ecn", "ecnseen") if r.get(name)] + [r["ca"]]
    if r["wscale"]:
        parts.append(f"wscale:{r['wscale'][0]},{r['wscale'][1]}")
    parts.append(f"rto:{r['rto']:g}")
    if r["backoff"]:
        parts.append(f"backoff:{r['backoff']}")
    parts += [f"rtt:{r['rtt']:.3g}/{r['rttvar']:.3g}", f"mss:{r['mss']}", f"cwnd:{r['cwnd']}"]
    if r["ssthresh"] is not None:
        parts.append(f"ssthresh:{r['ssthresh']}")
    parts += [f"bytes_acked:{r['bytes_acked']}", f"bytes_received:{r['bytes_received']}",
              f"segs_out:{r['segs_out']}", f"segs_in:{r['segs_in']}", f"data_segs_out:{r['data_segs_out']}",
              f"data_segs_in:{r['data_segs_in']}"]
    if r.get("bbr"):
        b = r["bbr"]
        parts.append(f"bbr:(bw:{sprint_bw(b['bw'] * 8.0)}bps,mrtt:{b['min_rtt'] / 1000.0:g}"
                     f",pacing_gain:{b['pacing_gain'] / 256.0:g},cwnd_gain:{b['cwnd_gain'] / 256.0:g})")
    if r["pacing_rate"]:
        parts.append(f"pacing_rate {sprint_bw(r['pacing_rate'] * 8)}bps")
    if r.get("delivery_rate"):
        parts.append(f"delivery_rate {sprint_bw(r['delivery_rate'] * 8.0)}bps")
    parts.append(f"delivered:{r['delivered']}")
    if r.get("app_limited"):
        parts.append("app_limited")
    if r["unacked"]:
        parts.append(f"unacked:{r['unacked']}")
    if r["retrans"][1]:
        parts.append(f"retrans:{r['retrans'][0]}/{r['retrans'][1]}")
    for name in ("lost", "sacked", "dsack_dups"):
        if r[name]:
            parts.append(f"{name}:{r[name]}")
    if r["reordering"] != 3:
        parts.append(f"reordering:{r['reordering']}")
    if r["reord_seen"]:
        parts.append(f"reord_seen:{r['reord_seen']}")
    parts.append(f"rcv_ssthresh:{r['rcv_ssthresh']}")
    if r["minrtt"]:
        parts.append(f"minrtt:{r['minrtt']:.3g}")
    parts += [f"snd_wnd:{r['snd_wnd']}", f"rcv_wnd:{r['rcv_wnd']}"]
    return parts


# -- traffic
def cmd_traffic(a) -> int:
    from .traffic import run
    signal.signal(signal.SIGTERM, signal.default_int_handler)     # `docker stop`: stop like Ctrl-C
    stats = run(a.src, a.dst, a.addr, interval=a.interval, rounds=a.rounds,
                log=lambda line: print(line, flush=True))
    return 0 if stats["ok"] else 1


# -- trace
def cmd_trace(a) -> int:
    from . import tracequery as tq
    base = a.query
    if a.trace_id:
        tr = tq.trace(a.trace_id, base=base)
        if tr is None:
            _die(f"no trace {a.trace_id}", 1)
        found = [tr]
    else:
        tags = {"error": "true"} if a.dropped else None
        if a.netns:
            tags = (tags or {}) | {"pktflow.netns": a.netns}
        if a.service:
            services = [a.service]
        elif a.operation or a.dropped or a.netns:   # the layer that has this span, drop or host
            services = tq.services(base=base)
        else:
            services = ["socket"]
        found = []
        for service in services:
            found = found or tq.find(service=service, operation=a.operation, tags=tags, limit=a.limit, base=base)
        if not found:
            _die("no traces found (send some traffic first)", 1)
    for tr in found:
        print(json.dumps(tr) if a.json else tq.format_trace(tr))
        if not a.json:
            print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pktflow", description="The Linux network stack as gRPC services, traced.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    up = sub.add_parser("up", help="run the five layer services (and a trace store) on this machine")
    up.add_argument("--topology", metavar="FILE", help="topology file (default: h1 -- r1 -- h2)")
    up.add_argument("--port-base", type=int, default=50050, help="socket listens on BASE+1, transport BASE+2, ...")
    up.add_argument("--shards", type=int, metavar="N", help="run N complete stacks, each serving a shard of the "
                    "hosts (the file's shard: keys, else placed automatically); shard k's ports are BASE+100k+1..5")
    up.add_argument("--otlp-port", type=int, default=4317)
    up.add_argument("--query-port", type=int, default=16686)
    up.add_argument("-v", "--verbose", action="store_true", help="the services log at INFO")

    pg = sub.add_parser("ping", help="ICMP echo, like iputils ping")
    pg.add_argument("-n", "--netns", required=True, help="the host to ping from")
    pg.add_argument("-c", type=int, default=4, metavar="COUNT")
    pg.add_argument("-i", type=float, default=1.0, metavar="INTERVAL")
    pg.add_argument("-W", type=float, default=1.0, metavar="TIMEOUT", help="seconds to wait for each reply")
    pg.add_argument("-t", type=int, default=None, metavar="TTL")
    pg.add_argument("-s", type=int, default=56, metavar="SIZE")
    pg.add_argument("-M", choices=("do", "want", "dont", "probe"), default=None, metavar="PMTUDISC_OPT",
                    help="path MTU discovery: do (DF, never fragment), want (DF when it fits), dont, probe")
    pg.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    pg.add_argument("-6", dest="family", action="store_const", const=6,
                    help="IPv6 only (ICMPv6 echo; also chosen by an IPv6 destination, fe80::1%%eth0 for link-local)")
    pg.add_argument("dest")

    ns = sub.add_parser("nstat", help="SNMP counters of a host, like nstat -a")
    ns.add_argument("-n", "--netns", required=True)
    ns.add_argument("-a", "--absolute", action="store_true", help="(always absolute)")
    ns.add_argument("-z", "--zeros", action="store_true", help="show zero counters too")
    ns.add_argument("--drops", action="store_true", help="also per-layer drop counts by drop reason")
    ns.add_argument("--json", action="store_true")

    sn = sub.add_parser("softnet", help="the NET_RX softirq's counters of a host, like cat /proc/net/softnet_stat")
    sn.add_argument("-n", "--netns", required=True)
    sn.add_argument("--json", action="store_true", help="processed, dropped, time_squeeze and the queues, named")

    sub.add_parser("ip", help="ip link|addr|route|neigh -n NETNS [-s] [-d]; ip link set dev IF xdp ...",
                   add_help=False)
    for tool in NF_TOOLS:
        sub.add_parser(tool, help=f"{tool} -n NETNS ... (as the real {tool.split('-')[0]})", add_help=False)
    sub.add_parser("sysctl", help="sysctl -n NETNS [-w] KEY[=VALUE]... | -a (as procps' sysctl)", add_help=False)
    sub.add_parser("perf", help="perf list | perf stat [-n NETNS] [-e EVENTS] -- COMMAND: count tracepoints",
                   add_help=False)
    sub.add_parser("bpftrace", help="bpftrace [-n NETNS] -e PROGRAM | FILE: bpftrace's one-liners over the "
                   "tracepoints (count, hist, printf, ...)", add_help=False)
    sub.add_parser("exec", help="exec -n NETNS -- PYTHON-PROGRAM [ARG...]: run a Python program with its socket "
                   "module on an emulated host (as ip netns exec)", add_help=False)
    sub.add_parser("ethtool", help="ethtool -n NETNS [-k|-K|-S] IFNAME: speed, link, offloads, driver statistics",
                   add_help=False)
    sub.add_parser("tc", help="tc [-s] -n NETNS qdisc add|change|replace|del|show dev IF root netem ...",
                   add_help=False)

    ss = sub.add_parser("ss", help="TCP sockets of a host, like ss -tan (-i: cwnd, rtt, rto, ...)")
    ss.add_argument("-n", "--netns", required=True)
    ss.add_argument("-t", "--tcp", action="store_true", help="(TCP is what is listed)")
    ss.add_argument("-a", "--all", action="store_true", help="listening sockets too")
    ss.add_argument("-l", "--listening", action="store_true", help="only listening sockets")
    ss.add_argument("-i", "--info", action="store_true", help="TCP internals")
    ss.add_argument("--numeric", action="store_true", help="(addresses are always numeric)")

    from . import tcpdump
    tcpdump.add_arguments(sub.add_parser("capture", help="write a pcap of an interface, like tcpdump -w"),
                          need_file=True)
    tcpdump.add_arguments(sub.add_parser("tcpdump", help="tcpdump on a host: print (or -w) the frames an "
                                                          "interface sends and receives, a pcap-filter to choose"))
    dw = sub.add_parser("dropwatch", help="drops as they happen, by host, function and reason, like dropwatch")
    dw.add_argument("-n", "--netns", help="one host's drops (default: every host's)")
    dw.add_argument("-i", type=float, default=1.0, metavar="SECONDS", help="how often to look (default 1)")
    dw.add_argument("-c", type=int, default=None, metavar="ROUNDS", help="stop after ROUNDS intervals")

    tr = sub.add_parser("trace", help="show packet journeys from the trace store or Jaeger")
    tr.add_argument("trace_id", nargs="?")
    tr.add_argument("--service", help="journeys with a span of this layer (default: socket, or the layer that has "
                                       "--operation)")
    tr.add_argument("--operation", help="... and this span name (ip_forward, udp_rcv, ...)")
    tr.add_argument("-n", "--netns", help="... on this host")
    tr.add_argument("--dropped", action="store_true", help="only journeys that ended in a drop")
    tr.add_argument("--limit", type=int, default=1)
    tr.add_argument("--json", action="store_true")
    tr.add_argument("--query", default=None, help="query API (default $PKTFLOW_QUERY_ENDPOINT or localhost:16686)")

    tf = sub.add_parser("traffic", help="a gentle endless mix of ping, UDP and TCP between two hosts")
    tf.add_argument("--src", default="h1", help="the sending host (default h1)")
    tf.add_argument("--dst", default="h2", help="the answering host (default h2)")
    tf.add_argument("--addr", default="10.0.2.10", help="the answering host's address (default 10.0.2.10)")
    tf.add_argument("-i", "--interval", type=float, default=1.0, help="seconds between rounds (default 1)")
    tf.add_argument("-c", "--rounds", type=int, default=0, help="stop after this many rounds (default: never)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv and argv[0] in ("ip", "tc"):
        command, a = {"ip": cmd_ip, "tc": cmd_tc}[argv[0]], argv[1:]
    elif argv and argv[0] in NF_TOOLS:
        command, a = (lambda words, tool=argv[0]: cmd_netfilter(tool, words)), argv[1:]
    elif argv and argv[0] == "sysctl":
        command, a = cmd_sysctl, argv[1:]
    elif argv and argv[0] == "ethtool":
        from .ethtool import cmd_ethtool
        command, a = cmd_ethtool, argv[1:]
    elif argv and argv[0] == "perf":
        from .perf import cmd_perf
        command, a = cmd_perf, argv[1:]
    elif argv and argv[0] == "exec":
        from .netns_exec import cmd_exec
        command, a = cmd_exec, argv[1:]
    elif argv and argv[0] == "bpftrace":
        from .bpftrace import cmd_bpftrace
        command, a = cmd_bpftrace, argv[1:]
    else:
        a = parser.parse_args(argv)
        if a.cmd is None:
            parser.print_help()
            return 2
        if a.cmd == "up":
            from .up import run
            return run(a)
        command = {"ping": cmd_ping, "nstat": cmd_nstat, "capture": cmd_capture, "tcpdump": cmd_tcpdump,
                   "dropwatch": cmd_dropwatch, "trace": cmd_trace, "ss": cmd_ss, "traffic": cmd_traffic,
                   "softnet": cmd_softnet}[a.cmd]
    try:
        return command(a) or 0
    except OSError as e:
        _die(e.strerror or str(e), 1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
