"""The sysctls a topology may set, with Linux's defaults and ranges.

Names are the kernel's (`sysctl -a` spelling). Per-interface `conf.<ifname>`
keys accept `all`, `default` or an interface name of the host.
"""
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Knob:
    default: object
    parse: Callable[[str], object]
    doc: str


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise ValueError(f"{value} is out of range {lo}..{hi}")
        return value
    return parse


def _port_range(text: str) -> tuple[int, int]:
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not two port numbers ('32768 60999')")
    lo, hi = (_int_range(1, 65535)(p) for p in parts)
    if lo > hi:
        raise ValueError(f"{text!r}: the first port is above the second")
    return lo, hi


def _triple(text: str) -> tuple[int, int, int]:
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not three sizes ('min default max')")
    lo, mid, hi = (_int_range(1, 2**31 - 1)(p) for p in parts)
    if not lo <= mid <= hi:
        raise ValueError(f"{text!r}: min <= default <= max")
    return lo, mid, hi


# The congestion controls compiled in (net/ipv4/tcp_cong.c's list), named here
# so that every layer validates the sysctl without importing the transport room;
# transport's tcp_cong registers the same names (a test keeps them equal).
CONGESTION_CONTROLS = ("reno", "cubic", "bbr")


def _congestion(text: str) -> str:
    if text not in CONGESTION_CONTROLS:
        raise ValueError(f"{text!r} is not available (available: {' '.join(CONGESTION_CONTROLS)})")
    return text


DEFAULT_QDISCS = ("pfifo_fast", "fq_codel", "pfifo", "bfifo")


def _default_qdisc(text: str) -> str:
    if text not in DEFAULT_QDISCS:
        raise ValueError(f"{text!r} is not a qdisc that needs no options here ({' '.join(DEFAULT_QDISCS)})")
    return text


def _read_only(text: str) -> str:
    raise ValueError("read-only: the congestion controls compiled in")


def _only(value: int, why: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        v = _int_range(0, 2)(text)
        if v != value:
            raise ValueError(f"only {value} is supported: {why}")
        return v
    return parse


_BOOL = _int_range(0, 1)

KNOBS: dict[str, Knob] = {
    "net.ipv4.ip_forward": Knob(0, _BOOL, "forward IPv4 packets between interfaces"),
    "net.ipv4.ip_default_ttl": Knob(64, _int_range(1, 255), "TTL of locally generated packets"),
    "net.ipv4.ip_local_port_range": Knob((32768, 60999), _port_range, "ephemeral ports"),
    "net.ipv4.icmp_echo_ignore_all": Knob(0, _BOOL, "do not answer echo requests"),
    "net.ipv4.icmp_echo_ignore_broadcasts": Knob(1, _BOOL, "do not answer echo requests to broadcast"),
    "net.ipv4.icmp_ratelimit": Knob(1000, _int_range(0, 2**31 - 1), "ms between ICMP errors to one peer (0: off)"),
    "net.ipv4.icmp_msgs_per_sec": Knob(1000, _int_range(0, 2**31 - 1), "ICMP messages a second, host-wide"),
    "net.ipv4.icmp_msgs_burst": Knob(50, _int_range(0, 2**31 - 1), "burst of the host-wide ICMP limit"),
    "net.ipv4.ipfrag_high_thresh": Knob(4194304, _int_range(0, 2**31 - 1),
                                        "bytes of fragments queued for reassembly above which none is taken"),
    "net.ipv4.ipfrag_low_thresh": Knob(3145728, _int_range(0, 2**31 - 1), "obsolete since Linux 4.17: unused"),
    "net.ipv4.ipfrag_time": Knob(30, _int_range(1, 2**31 - 1), "s an incomplete datagram waits for its fragments"),
    "net.ipv4.ipfrag_max_dist": Knob(64, _int_range(0, 2**31 - 1),
                                     "fragments of one source a queue may fall behind before it restarts (0: off)"),
    "net.ipv4.route.min_pmtu": Knob(552, _int_range(68, 65535), "smallest path MTU ICMP may set (below: locked)"),
    "net.ipv4.route.mtu_expires": Knob(600, _int_range(1, 2**31 - 1), "s a learned path MTU lasts"),
    "net.core.rmem_default": Knob(212992, _int_range(2304, 2**31 - 1), "default SO_RCVBUF"),
    "net.core.rmem_max": Knob(212992, _int_range(2304, 2**31 - 1), "largest SO_RCVBUF a process may set"),
    "net.core.wmem_default": Knob(212992, _int_range(4608, 2**31 - 1), "default SO_SNDBUF"),
    "net.core.wmem_max": Knob(212992, _int_range(4608, 2**31 - 1), "largest SO_SNDBUF a process may set"),
    # The receive softirq's (Linux: globals, proc_dointvec; here per host, each host one CPU)
    "net.core.netdev_max_backlog": Knob(1000, _int_range(-2**31, 2**31 - 1),
                                        "skbs netif_rx() may queue on a CPU's backlog (loopback's path)"),
    "net.core.netdev_budget": Knob(300, _int_range(-2**31, 2**31 - 1), "skbs one NET_RX softirq run may take"),
    "net.core.netdev_budget_usecs": Knob(2000, _int_range(0, 2**31 - 1),
                                         "us one NET_RX softirq run may take (2 jiffies at HZ=1000)"),
    "net.core.dev_weight": Knob(64, _int_range(1, 2**31 - 1), "skbs one poll of a CPU's backlog may take"),
    "net.core.default_qdisc": Knob("pfifo_fast", _default_qdisc, "the root qdisc a device gets when none is set"),
    "net.ipv4.tcp_syncookies": Knob(1, _int_range(0, 2), "SYN cookies when the SYN queue overflows (2: always)"),
    "net.ipv4.tcp_congestion_control": Knob("cubic", _congestion, "default congestion control"),
    "net.ipv4.tcp_available_congestion_control": Knob(" ".join(CONGESTION_CONTROLS), _read_only,
                                                      "what tcp_congestion_control may name"),
    "net.ipv4.tcp_slow_start_after_idle": Knob(1, _BOOL, "restart from the initial window after an idle RTO"),
    "net.ipv4.tcp_syn_retries": Knob(6, _int_range(1, 127), "SYN retransmissions before ETIMEDOUT"),
    "net.ipv4.tcp_synack_retries": Knob(5, _int_range(1, 255), "SYN-ACK retransmissions"),
    "net.ipv4.tcp_retries2": Knob(15, _int_range(1, 255), "retransmissions before an established connection dies"),
    "net.ipv4.tcp_fin_timeout": Knob(60, _int_range(1, 2**31 - 1), "s an orphaned FIN-WAIT-2 waits"),
    "net.ipv4.tcp_keepalive_time": Knob(7200, _int_range(1, 32767), "s idle before keepalive probes"),
    "net.ipv4.tcp_keepalive_intvl": Knob(75, _int_range(1, 32767), "s between keepalive probes"),
    "net.ipv4.tcp_keepalive_probes": Knob(9, _int_range(1, 127), "unanswered probes before giving up"),
    "net.ipv4.tcp_rmem": Knob((4096, 131072, 6291456), _triple, "receive buffer min, default, max"),
    "net.ipv4.tcp_wmem": Knob((4096, 16384, 4194304), _triple, "send buffer min, default, max"),
    "net.ipv4.tcp_max_syn_backlog": Knob(4096, _int_range(128, 2**31 - 1), "the SYN queue's bound"),
    "net.core.somaxconn": Knob(4096, _int_range(1, 2**31 - 1), "the largest listen() backlog"),
    "net.ipv4.tcp_timestamps": Knob(1, _BOOL, "offer RFC 7323 timestamps"),
    "net.ipv4.tcp_sack": Knob(1, _BOOL, "offer SACK"),
    "net.ipv4.tcp_window_scaling": Knob(1, _BOOL, "offer window scaling"),
    "net.ipv4.tcp_abort_on_overflow": Knob(0, _BOOL, "RST a connection the accept queue has no room for"),
    "net.ipv4.tcp_recovery": Knob(1, _int_range(0, 7), "RACK loss detection (1), static window (2), no DupThresh (4)"),
    "net.ipv4.tcp_early_retrans": Knob(3, _int_range(0, 4), "tail loss probes (3, 4: on)"),
    "net.ipv4.tcp_frto": Knob(2, _int_range(0, 2), "F-RTO: detect spurious retransmission timeouts"),
    "net.ipv4.tcp_dsack": Knob(1, _BOOL, "send D-SACK blocks for duplicates"),
    "net.ipv4.tcp_ecn": Knob(2, _int_range(0, 2), "ECN: 1 ask for it, 2 accept when asked, 0 off"),
    "net.ipv4.tcp_reordering": Knob(3, _int_range(1, 300), "initial reordering degree (DupThresh)"),
    "net.ipv4.tcp_max_reordering": Knob(300, _int_range(1, 2**31 - 1), "the reordering degree's bound"),
    "net.ipv4.tcp_pacing_ss_ratio": Knob(200, _int_range(0, 1000), "% of cwnd/srtt paced in slow start"),
    "net.ipv4.tcp_tso_win_divisor": Knob(3, _int_range(1, 256),
                                         "TSO deferral: send once 1/N of the window can go in one packet"),
    "net.ipv4.tcp_pacing_ca_ratio": Knob(120, _int_range(0, 1000), "% of cwnd/srtt paced in congestion avoidance"),
    "net.ipv4.tcp_invalid_ratelimit": Knob(500, _int_range(0, 2**31 - 1),
                                           "ms between duplicate ACKs for invalid segments"),
    "net.ipv4.tcp_challenge_ack_limit": Knob(2**31 - 1, _int_range(0, 2**31 - 1), "challenge ACKs a second"),
    "net.ipv4.tcp_rto_min_us": Knob(200000, _int_range(1, 2**31 - 1), "the RTO's floor, us"),
    "net.ipv4.tcp_min_rtt_wlen": Knob(300, _int_range(0, 86400), "s a minimum RTT sample counts"),
    # Not a Linux sysctl: TIME-WAIT lasts TCP_TIMEWAIT_LEN (60 s) in the kernel; tests shorten it here.
    "net.ipv4.tcp_timewait_len": Knob(60, _int_range(0, 2**31 - 1), "s in TIME-WAIT (pktflow only)"),
    "net.ipv4.neigh.default.base_reachable_time_ms": Knob(30000, _int_range(1, 2**31 - 1), "NUD reachable time base"),
    "net.ipv4.neigh.default.retrans_time_ms": Knob(1000, _int_range(1, 2**31 - 1), "ARP retransmit interval"),
    "net.ipv4.neigh.default.delay_first_probe_time": Knob(5, _int_range(0, 2**31 - 1), "s in DELAY before probing"),
    "net.ipv4.neigh.default.mcast_solicit": Knob(3, _int_range(0, 255), "broadcast probes before FAILED"),
    "net.ipv4.neigh.default.ucast_solicit": Knob(3, _int_range(0, 255), "unicast probes before FAILED"),
    "net.ipv4.neigh.default.unres_qlen_bytes": Knob(212992, _int_range(0, 2**31 - 1), "bytes queued awaiting ARP"),
    "net.ipv4.neigh.default.gc_stale_time": Knob(60, _int_range(1, 2**31 - 1), "s a stale entry lives"),
    "net.ipv4.neigh.default.gc_thresh1": Knob(128, _int_range(0, 2**31 - 1), "entries below which GC leaves the table"),
    "net.ipv4.neigh.default.gc_thresh2": Knob(512, _int_range(0, 2**31 - 1), "entries above which GC is forced"),
    "net.ipv4.neigh.default.gc_thresh3": Knob(1024, _int_range(0, 2**31 - 1), "the most entries the table holds"),
}
# nf_conntrack's timeouts (seconds; net.netfilter.nf_conntrack_<key>), read once tracking starts
CONNTRACK_TIMEOUTS = {
    "tcp_timeout_syn_sent": 120, "tcp_timeout_syn_recv": 60, "tcp_timeout_established": 432000,
    "tcp_timeout_fin_wait": 120, "tcp_timeout_close_wait": 60, "tcp_timeout_last_ack": 30,
    "tcp_timeout_time_wait": 120, "tcp_timeout_close": 10, "tcp_timeout_max_retrans": 300,
    "tcp_timeout_unacknowledged": 300, "udp_timeout": 30, "udp_timeout_stream": 120,
    "icmp_timeout": 30, "generic_timeout": 600,
}
KNOBS.update({
    "net.netfilter.nf_conntrack_max": Knob(262144, _int_range(0, 2**31 - 1), "the most connections tracked"),
    "net.netfilter.nf_conntrack_tcp_loose": Knob(1, _BOOL, "pick up TCP connections mid-stream"),
    **{f"net.netfilter.nf_conntrack_{k}": Knob(v, _int_range(0, 2**31 - 1), f"conntrack: {k.replace('_', ' ')}, s")
       for k, v in CONNTRACK_TIMEOUTS.items()},
})
# IPv6 (net/ipv6/sysctl_net_ipv6.c, icmp.c, reassembly.c, route.c): Linux 6.18's values, as
# ../shared/captures/linux/sysctl6.txt recorded them in fresh namespaces.
_INT = _int_range(-2**31, 2**31 - 1)          # proc_dointvec: any int is taken (and kept)
KNOBS.update({
    "net.ipv6.icmp.ratelimit": Knob(100, _int_range(0, 2**31 - 1),
                                    "ms between ICMPv6 errors to one peer (0: off); Linux 6.18: 100"),
    "net.ipv6.auto_flowlabels": Knob(1, _int_range(0, 3),
                                     "flow labels from the flow's hash: 0 off, 1 on unless IPV6_AUTOFLOWLABEL off, "
                                     "2 only when asked, 3 always"),
    "net.ipv6.bindv6only": Knob(0, _INT, "IPV6_V6ONLY of new AF_INET6 sockets (0: dual-stack, v4-mapped)"),
    "net.ipv6.ip6frag_high_thresh": Knob(4194304, _int_range(0, 2**31 - 1),
                                         "bytes of IPv6 fragments queued for reassembly above which none is taken"),
    "net.ipv6.ip6frag_low_thresh": Knob(3145728, _int_range(0, 2**31 - 1), "obsolete since Linux 4.17: unused"),
    "net.ipv6.ip6frag_time": Knob(60, _int_range(1, 2**31 - 1), "s an incomplete IPv6 datagram waits"),
    "net.ipv6.route.mtu_expires": Knob(600, _int_range(1, 2**31 - 1), "s a path MTU learned from Packet Too Big lasts"),
})
PER_INTERFACE: dict[str, Knob] = {
    "rp_filter": Knob(0, _int_range(0, 2), "reverse-path filter: 1 strict, 2 loose (the max of all and the device)"),
    "forwarding": Knob(None, _BOOL, "forward on this interface (follows ip_forward)"),
    "accept_local": Knob(0, _BOOL, "accept packets with a local source address"),
    "log_martians": Knob(0, _BOOL, "log packets with impossible addresses to the kernel log (pktflow dmesg)"),
}


# net.ipv6.conf.{all,default,<if>}.<key> (struct ipv6_devconf). Defaults are a device's; `all` and
# `default` differ where CONF6_ALL / CONF6_DEFAULT say, lo where CONF6_LO says (Linux 6.18, captured).
PER_INTERFACE6: dict[str, Knob] = {
    "forwarding": Knob(0, _INT, "route IPv6 between interfaces (writing conf.all sets default and every device)"),
    "disable_ipv6": Knob(0, _INT, "no IPv6 at all on the device, not even its link-local address "
                                  "(writing conf.all sets default and every device)"),
    "accept_dad": Knob(1, _INT, "duplicate address detection (a device does it when conf.all or its own is >= 1)"),
    "dad_transmits": Knob(1, _INT, "neighbour solicitations DAD sends for a new address"),
    "hop_limit": Knob(64, _int_range(1, 255), "hop limit of the packets this host sends"),
    "mtu": Knob(None, _int_range(1280, 2**31 - 1), "IPv6 MTU: 1280 (IPV6_MIN_MTU) up to the device's MTU, "
                                                   "its MTU by default"),
}
CONF6_ALL = {"accept_dad": 0, "mtu": 1280}
CONF6_DEFAULT = {"mtu": 1280}
CONF6_LO = {"accept_dad": -1, "mtu": 65536}
IPV6_MIN_MTU = 1280


def conf6_default(name: str, mtu: int = 1500):
    """The value a net.ipv6.conf.<if>.<key> has before anyone writes it; a device's
    MTU is its own (`mtu`; layers that keep IPv6 state know each device's)."""
    _, _, _, dev, key = name.split(".")
    own = {"all": CONF6_ALL, "default": CONF6_DEFAULT, "lo": CONF6_LO}.get(dev, {"mtu": mtu})
    return own.get(key, PER_INTERFACE6[key].default)


def conf6(writes: dict, mtus: dict[str, int]) -> dict[str, dict[str, int]]:
    """The IPv6 devconf of a namespace whose devices (name -> MTU) exist when the
    sysctls `writes` are written, in their order: {"all": {...}, "default": {...},
    "<if>": {...}} with every key of PER_INTERFACE6."""
    conf = {dev: {k: conf6_default(f"net.ipv6.conf.{dev}.{k}", mtus.get(dev, 1500)) for k in PER_INTERFACE6}
            for dev in ("all", "default", *mtus)}
    for name, value in writes.items():
        if name.startswith("net.ipv6.conf."):
            conf6_write(conf, name, value)
    return conf


def conf6_write(conf: dict, name: str, value: int) -> list[str]:
    """One write of net.ipv6.conf.<if>.<key>, as the kernel's handlers do it: forwarding
    and disable_ipv6 written to `all` set `default` and every device too, whatever they
    had (addrconf_fixup_forwarding(), addrconf_disable_ipv6()); anything else is the
    one entry's. Returns the devices whose value was set (for their consequences:
    anycast routes, addresses)."""
    _, _, _, dev, key = name.split(".")
    if dev == "all" and key in ("forwarding", "disable_ipv6"):
        for d in conf:
            conf[d][key] = value
        return [d for d in conf if d not in ("all", "default")]
    conf[dev][key] = value
    return [dev] if dev not in ("all", "default") else []


class Unknown(ValueError):
    """No such sysctl (here: the kernel has no such file under /proc/sys)."""


def knob_of(name: str, ifnames: set[str] | None) -> Knob:
    """The knob of a name; a per-interface name needs the interface (unless ifnames is None)."""
    knob = KNOBS.get(name)
    for prefix, table in (("net.ipv4.conf.", PER_INTERFACE), ("net.ipv6.conf.", PER_INTERFACE6)):
        if knob is None and name.startswith(prefix):
            parts = name.split(".")
            if len(parts) == 5 and parts[4] in table:
                if ifnames is not None and parts[3] not in ifnames | {"all", "default"}:
                    raise Unknown(f"no interface {parts[3]!r} on this host")
                knob = table[parts[4]]
    if knob is None:
        raise Unknown("unknown sysctl (supported: " + ", ".join(sorted(KNOBS)) +
                      ", net.ipv4.conf.<if>.{" + ",".join(PER_INTERFACE) + "}" +
                      ", net.ipv6.conf.<if>.{" + ",".join(PER_INTERFACE6) + "})")
    return knob


def parse(name: str, text: str, ifnames: set[str]) -> tuple[str, object]:
    """Validates one sysctl; returns its canonical name and value. Raises
    ValueError naming the problem (Unknown for a name that does not exist)."""
    return name, knob_of(name, ifnames).parse(str(text))


def show(value) -> str:
    """A value as /proc/sys prints it (several numbers: tab-separated)."""
    return "\t".join(map(str, value)) if isinstance(value, tuple) else str(value)


def sysctl_tool(values: dict, ifnames: set[str] | None, args: list[str]) -> tuple[int, str, str, list[str]]:
    """sysctl(8) as procps-ng 4.0 answers, on one namespace's values: `KEY...`,
    `-a`, `-n` (values only), `-q` (quiet writes), `-w KEY=VALUE...` (a word
    with `=` writes without -w too); keys with dots or slashes. Returns (exit
    status, stdout, stderr, the names written), each write validated on its own."""
    opts, words = set(), []
    for w in args:
        if w.startswith("-") and len(w) > 1 and not words:
            opts |= set(w[1:])
        else:
            words.append(w)
    bad = opts - set("wqnaA")
    if bad:
        return 1, "", f"sysctl: invalid option -- '{sorted(bad)[0]}'\n", []
    status, out, err, written = 0, [], [], []

    def line(name, value):
        return show(value) if "n" in opts else f"{name} = {show(value)}"
    if "a" in opts or "A" in opts:
        return 0, "".join(line(k, values[k]) + "\n" for k in sorted(values)), "", []
    for w in words:
        name, eq, text = w.partition("=")
        name = name.strip().replace("/", ".")
        if "w" in opts and not eq:
            status = 1
            err.append("sysctl: command line(0): invalid syntax, continuing...")
            continue
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            knob = knob_of(name, ifnames)
        except Unknown:
            status = 1
            err.append(f"sysctl: cannot stat {path}: No such file or directory")
            continue
        if not eq:
            if name.startswith("net.ipv6.conf."):    # seeded by the layers that keep IPv6 state (conf6())
                value = values.get(name, conf6_default(name))
            else:
                value = values.get(name, knob.default)
            if value is None:                       # conf.<if>.forwarding follows ip_forward
                value = values.get("net.ipv4.ip_forward", 0)
            out.append(line(name, value))
            continue
        try:
            values[name] = knob.parse(text.strip())
        except ValueError:
            status = 1
            err.append(f'sysctl: setting key "{name}": Invalid argument')
            continue
        written.append(name)
        if "q" not in opts:
            out.append(line(name, values[name]))
    return status, "".join(x + "\n" for x in out), "".join(x + "\n" for x in err), written


def defaults() -> dict[str, object]:
    return {name: knob.default for name, knob in KNOBS.items()}
