"""Side by side: the real Linux kernel and pktflow in the same scenario.

    sudo python -m bench.faithfulness [--json]

Builds the default topology twice, once from network namespaces and veth pairs
(h1 -- r1 -- h2, as ../shared/captures/linux/record.sh does, offloads off) and
once as a pktflow stack, runs the same probes in both (the same Python code,
with Linux's socket module or pktflow's), captures h1's and h2's eth0 (tcpdump
on Linux, pktflow.capture in the emulator) and reads the frames with scapy, an
independent parser. Prints one row per fact: a TCP handshake's SYN and SYN-ACK
options, the initial window (a tail loss probe after it), ping TTLs, the ICMP
errors for a closed UDP port and for TTL expiry, the answer to an ECN-setup
SYN; over IPv6 (both worlds dual-stacked as record6.sh does it): ping -6's hop
limits and flow labels, the neighbour solicitation and advertisement for the
router, the ICMPv6 errors for a closed UDP port and hop-limit expiry, the SYN's
and SYN-ACK's options and windows over IPv6. A row
that differs is "known" only when pktflow shows the exact value KNOWN expects
of it, and says why; any other difference is a bug, and the command exits 1.

Needs root, iproute2, tcpdump, ping and scapy (the test extra).
"""
import argparse
import contextlib
import functools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

from . import stacks

H1, ROUTER_H1, H2 = "10.0.1.10", "10.0.1.1", "10.0.2.10"
TCP_PORT, UDP_CLOSED, ECN_PORT = 18080, 9, 18081
H1_MAC, ROUTER_H1_MAC = "02:00:00:00:01:0a", "02:00:00:00:01:01"
# IPv6, as ../shared/captures/linux/record6.sh dual-stacks the topology
H1_6, ROUTER_H1_6, ROUTER_H2_6, H2_6 = "2001:db8:1::10", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::10"
PAYLOAD = 65536

# Facts on which pktflow knowingly differs: the value pktflow shows, and why.
# Any other pktflow value is DIFFERS; once pktflow shows Linux's value the row
# is "same" and its entry here can be deleted.
KNOWN: dict[str, tuple[str, str]] = {
    # "fact": ("the value pktflow shows", "why it differs from Linux's"),
}


# --- The probes: the same code for Linux (socket module) and pktflow (SDK) ---

def probe_tcp_server(sk, ready=print):
    """h2: accept one connection and write PAYLOAD bytes at once: with no ACK coming back
    (the client's TTL is 1 for a while), what h2 sends before it retransmits is its initial window.
    It writes only once the client says its TTL is 1, by opening a second connection
    (a sleep here would race the client on a busy machine, and the ACKs would flow)."""
    srv = sk.socket(sk.AF_INET, sk.SOCK_STREAM)
    srv.setsockopt(sk.SOL_SOCKET, sk.SO_REUSEADDR, 1)
    srv.bind((H2, TCP_PORT))
    srv.listen(1)
    srv.settimeout(10)
    ready("ready")
    conn, _ = srv.accept()
    go, _ = srv.accept()                          # the client has set its TTL to 1
    go.close()
    conn.sendall(b"x" * PAYLOAD)
    conn.close()
    srv.close()


def probe_tcp_client(sk):
    s = sk.socket(sk.AF_INET, sk.SOCK_STREAM)
    s.settimeout(10)
    s.connect((H2, TCP_PORT))
    s.setsockopt(sk.IPPROTO_IP, sk.IP_TTL, 1)     # our ACKs die at the router...
    go = sk.socket(sk.AF_INET, sk.SOCK_STREAM)    # (tell the server so, on a connection of its own)
    go.settimeout(10)
    go.connect((H2, TCP_PORT))
    go.close()
    time.sleep(1.0)
    s.setsockopt(sk.IPPROTO_IP, sk.IP_TTL, 64)    # ...until the server's first retransmission
    got = 0
    while chunk := s.recv(1 << 16):
        got += len(chunk)
    s.close()
    return got


def probe_udp_closed_port(sk, family=None, dst=H2):
    """A connected UDP socket to a closed port: the ICMP error, then the errno recv() gives."""
    s = sk.socket(family or sk.AF_INET, sk.SOCK_DGRAM)
    s.connect((dst, UDP_CLOSED))
    s.send(b"hello")
    s.settimeout(2)
    try:
        s.recv(100)
        return "no error"
    except ConnectionRefusedError:
        return "ECONNREFUSED"
    except (TimeoutError, OSError) as e:
        return type(e).__name__
    finally:
        s.close()


def probe_ttl_expiry(sk):
    """A datagram with TTL 1: the router answers time exceeded."""
    s = sk.socket(sk.AF_INET, sk.SOCK_DGRAM)
    s.setsockopt(sk.IPPROTO_IP, sk.IP_TTL, 1)
    s.sendto(b"ttl", (H2, 33434))
    s.close()


def probe_udp6_closed_port(sk):
    """probe_udp_closed_port over IPv6: ICMPv6 port unreachable, then recv()'s errno."""
    return probe_udp_closed_port(sk, sk.AF_INET6, H2_6)


def probe_hoplimit_expiry(sk):
    """A datagram with hop limit 1: the router answers time exceeded (ICMPv6 3/0)."""
    s = sk.socket(sk.AF_INET6, sk.SOCK_DGRAM)
    s.setsockopt(sk.IPPROTO_IPV6, sk.IPV6_UNICAST_HOPS, 1)
    s.sendto(b"hop", (H2_6, 33434))
    s.close()


def probe_tcp_listener(sk, ready=print, family=None, addr=H2):
    """h2: a listener that never accepts; the kernel answers SYNs on its own."""
    srv = sk.socket(family or sk.AF_INET, sk.SOCK_STREAM)
    srv.setsockopt(sk.SOL_SOCKET, sk.SO_REUSEADDR, 1)
    srv.bind((addr, ECN_PORT))
    srv.listen(1)
    srv.settimeout(1.5)
    ready("ready")
    try:
        srv.accept()[0].close()
    except (TimeoutError, OSError):
        pass
    srv.close()


def probe_tcp6_listener(sk, ready=print):
    """probe_tcp_listener on h2's IPv6 address."""
    probe_tcp_listener(sk, ready, sk.AF_INET6, H2_6)


def probe_tcp6_connect(sk):
    """h1: a TCP handshake over IPv6 (the listener answers it), then a close."""
    s = sk.socket(sk.AF_INET6, sk.SOCK_STREAM)
    s.settimeout(5)
    s.connect((H2_6, ECN_PORT))
    s.close()


def probe_ecn_syn(sk):
    """h1: an ECN-setup SYN (ECE|CWR, RFC 3168 6.1.1) from a packet socket, the same
    bytes in both worlds: what h2's listener, at tcp_ecn=2 (accept when asked), answers."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    frame = bytes(Ether(src=H1_MAC, dst=ROUTER_H1_MAC) / IP(src=H1, dst=H2, flags="DF") /
                  TCP(sport=41000, dport=ECN_PORT, flags="SEC", seq=1000, window=64240,
                      options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
                               ("WScale", 7)]))
    s = sk.socket(sk.AF_PACKET, sk.SOCK_RAW)
    s.bind(("eth0", 0))
    s.send(frame)
    s.close()
    time.sleep(0.3)                               # the SYN-ACK's way back


PROBES = {"tcp_server": probe_tcp_server, "tcp_client": probe_tcp_client,
          "udp_closed_port": probe_udp_closed_port, "ttl_expiry": probe_ttl_expiry,
          "tcp_listener": probe_tcp_listener, "ecn_syn": probe_ecn_syn,
          "udp6_closed_port": probe_udp6_closed_port, "hoplimit_expiry": probe_hoplimit_expiry,
          "tcp6_listener": probe_tcp6_listener, "tcp6_connect": probe_tcp6_connect}
BACKGROUND = {"tcp_server", "tcp_listener", "tcp6_listener"}       # they say "ready" once listening


# --- The two worlds ---

class Linux:
    """The default topology from namespaces and veth pairs; removed on exit."""

    def __init__(self, tag: str):
        self.ns = {h: f"pff{tag}{h}" for h in ("h1", "r1", "h2")}

    def sh(self, host, *cmd, check=True, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns[host], *cmd], check=check, capture_output=True,
                              text=True, **kw)

    def __enter__(self):
        ns = self.ns
        for n in ns.values():
            subprocess.run(["ip", "netns", "add", n], check=True)
        for host in ns:
            self.sh(host, "ip", "link", "set", "lo", "up")
        for host, dev, peer_dev, mac, peer_mac in (("h1", "eth0", "eth0", "02:00:00:00:01:0a", "02:00:00:00:01:01"),
                                                   ("h2", "eth0", "eth1", "02:00:00:00:02:0a", "02:00:00:00:02:01")):
            subprocess.run(["ip", "link", "add", "pffa", "netns", ns[host], "address", mac, "type", "veth",
                            "peer", "name", "pffb", "netns", ns["r1"], "address", peer_mac], check=True)
            self.sh(host, "ip", "link", "set", "pffa", "name", dev)
            self.sh("r1", "ip", "link", "set", "pffb", "name", peer_dev)
        for host, dev, addr in (("h1", "eth0", f"{H1}/24"), ("r1", "eth0", f"{ROUTER_H1}/24"),
                                ("r1", "eth1", "10.0.2.1/24"), ("h2", "eth0", f"{H2}/24")):
            self.sh(host, "ip", "addr", "add", addr, "dev", dev)
            self.sh(host, "ip", "link", "set", dev, "up")
            self.sh(host, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
                    check=False)
        self.sh("h1", "ip", "route", "add", "default", "via", ROUTER_H1)
        self.sh("h2", "ip", "route", "add", "default", "via", "10.0.2.1")
        self.sh("r1", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for host, dev, addr in (("h1", "eth0", H1_6), ("r1", "eth0", ROUTER_H1_6), ("r1", "eth1", ROUTER_H2_6),
                                ("h2", "eth0", H2_6)):
            self.sh(host, "ip", "-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
        self.sh("h1", "ip", "-6", "route", "add", "default", "via", ROUTER_H1_6)
        self.sh("h2", "ip", "-6", "route", "add", "default", "via", ROUTER_H2_6)
        self.sh("r1", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        deadline = time.monotonic() + 5                # the link-local addresses' DAD
        while time.monotonic() < deadline and any(self.sh(h, "ip", "-6", "addr", "show", "tentative").stdout
                                                  for h in ns):
            time.sleep(0.1)
        # Upstream defaults where this machine's differ (../shared/captures/README.md).
        for host in ns:
            self.sh(host, "sysctl", "-qw", "net.ipv4.tcp_congestion_control=cubic",
                    "net.ipv4.tcp_rmem=4096 131072 6291456", check=False)
        return self

    def __exit__(self, *exc):
        for n in self.ns.values():
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True)

    @contextlib.contextmanager
    def capture(self, host, path):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[host], "tcpdump", "--immediate-mode", "-U", "-s", "0",
                              "-i", "eth0", "-w", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        p.stderr.readline()                            # "listening on eth0 ...": capturing from here on
        try:
            yield
        finally:
            time.sleep(0.3)                            # the last replies in flight
            p.send_signal(2)
            p.wait(10)

    def probe(self, host, name, background=False):
        cmd = ["ip", "netns", "exec", self.ns[host], sys.executable, "-m", "bench.faithfulness", "--probe", name]
        root = str(pathlib.Path(__file__).resolve().parent.parent)
        if background:
            p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline().strip() == "ready"
            return p
        return subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    def flush_neighbours(self):
        for host in self.ns:
            self.sh(host, "ip", "neigh", "flush", "all", check=False)
            self.sh(host, "ip", "-6", "neigh", "flush", "all", check=False)

    def ping(self, ttl=None, dst=H2):
        self.sh("h1", "ping", "-c", "1", "-W", "2", *(["-t", str(ttl)] if ttl else []), dst, check=False)


class Emulator:
    """A pktflow stack (or the one given) with the default topology."""

    def __init__(self, stack=None, port_base=58050):
        self.stack, self.port_base, self.own = stack, port_base, stack is None

    def __enter__(self):
        if self.own:
            from pktflow.up import Stack
            self.stack = Stack(port_base=self.port_base, otlp_port=self.port_base + 17,
                               query_port=self.port_base + 18, trace_store=False)
            self.stack.start()
        os.environ["PKTFLOW_ENDPOINT"] = self.stack.endpoint
        stacks.set_offloads(False)              # as record.sh sets Linux's: the wire's segment sizes
        return self

    def __exit__(self, *exc):
        if self.own:
            self.stack.stop()
        else:
            stacks.set_offloads(True)

    @staticmethod
    def sdk(host):
        import pktflow

        class Sk:                      # pktflow's module, with the host filled in, looks like socket's
            def __getattr__(self, name):
                return getattr(pktflow, name)

            socket = staticmethod(functools.partial(pktflow.socket, netns=host))
        return Sk()

    @contextlib.contextmanager
    def capture(self, host, path):
        import pktflow
        with pktflow.capture(netns=host, ifname="eth0", path=path):
            yield
            time.sleep(0.3)

    def probe(self, host, name, background=False):
        if background:
            ready = threading.Event()
            t = threading.Thread(target=PROBES[name], args=(self.sdk(host), lambda _: ready.set()), daemon=True)
            t.start()
            assert ready.wait(10)
            return t
        return str(PROBES[name](self.sdk(host)) or "")

    def ping(self, ttl=None, dst=H2):
        import pktflow
        pktflow.ping(dst, netns="h1", count=1, timeout=2, ttl=ttl)

    def flush_neighbours(self):
        pass                            # a fresh stack: nothing resolved yet


def record(world, out: pathlib.Path) -> dict:
    """Runs every scenario in `world`, capturing h1 and h2; returns what the probes returned."""
    out.mkdir(parents=True, exist_ok=True)
    results = {}

    def scenario(name, run):
        with world.capture("h1", out / f"{name}.h1.pcap"), world.capture("h2", out / f"{name}.h2.pcap"):
            results[name] = run()

    world.flush_neighbours()
    scenario("icmp-echo", world.ping)
    scenario("udp-port-unreachable", lambda: world.probe("h1", "udp_closed_port"))
    scenario("ttl-exceeded", lambda: world.probe("h1", "ttl_expiry"))

    def tcp():
        server = world.probe("h2", "tcp_server", background=True)
        got = world.probe("h1", "tcp_client")
        (server.wait if hasattr(server, "wait") else server.join)(10)
        return got
    scenario("tcp-initial-window", tcp)

    def ecn():
        listener = world.probe("h2", "tcp_listener", background=True)
        world.probe("h1", "ecn_syn")
        (listener.wait if hasattr(listener, "wait") else listener.join)(10)
    scenario("tcp-ecn-setup", ecn)
    world.flush_neighbours()
    scenario("ipv6-echo", lambda: world.ping(dst=H2_6))
    scenario("ipv6-udp-port-unreachable", lambda: world.probe("h1", "udp6_closed_port"))
    scenario("ipv6-hoplimit-exceeded", lambda: world.probe("h1", "hoplimit_expiry"))

    def tcp6():
        listener = world.probe("h2", "tcp6_listener", background=True)
        world.probe("h1", "tcp6_connect")
        (listener.wait if hasattr(listener, "wait") else listener.join)(10)
    scenario("ipv6-tcp-handshake", tcp6)
    return results


# --- What the frames say ---

def _options(tcp) -> str:
    """TCP options as tcpdump names them, values kept where they are not random."""
    out = []
    for kind, value in tcp.options:
        if kind == "Timestamp":
            out.append("TS")
        elif kind == "MSS":
            out.append(f"mss {value}")
        elif kind == "WScale":
            out.append(f"wscale {value}")
        elif kind == "SAckOK":
            out.append("sackOK")
        elif kind == "NOP":
            out.append("nop")
        else:
            out.append(f"{kind} {value}")
    return ",".join(out)


def _ip_flags(ip) -> str:
    return "DF" if ip.flags.DF else "-"


def facts(d: pathlib.Path, results: dict) -> dict:
    from scapy.all import ICMP, IP, TCP, rdpcap
    f = {}

    def frames(name, host):
        return [p for p in rdpcap(str(d / f"{name}.{host}.pcap")) if IP in p]

    echo = frames("icmp-echo", "h1")
    req = next(p for p in echo if ICMP in p and p[ICMP].type == 8)
    rep = next(p for p in echo if ICMP in p and p[ICMP].type == 0)
    f["ping: request TTL, flags (h1)"] = f"{req[IP].ttl} {_ip_flags(req[IP])}"
    f["ping: reply TTL, flags (seen at h1)"] = f"{rep[IP].ttl} {_ip_flags(rep[IP])}"
    at_h2 = next(p for p in frames("icmp-echo", "h2") if ICMP in p and p[ICMP].type == 8)
    f["ping: request TTL at h2 (forwarded)"] = str(at_h2[IP].ttl)

    for name, label in (("udp-port-unreachable", "closed UDP port"), ("ttl-exceeded", "TTL expiry")):
        err = next(p for p in frames(name, "h1") if ICMP in p and p[ICMP].type in (3, 11))
        ip, icmp = err[IP], err[ICMP]
        f[f"{label}: ICMP type/code from"] = f"{icmp.type}/{icmp.code} from {ip.src}"
        f[f"{label}: TTL at h1, TOS, flags"] = f"{ip.ttl} 0x{ip.tos:02x} {_ip_flags(ip)}"
        f[f"{label}: IP total length"] = str(ip.len)
    f["closed UDP port: recv() on the connected socket"] = results["udp-port-unreachable"]

    tcp = [p for p in frames("tcp-initial-window", "h2") if TCP in p]
    syn = next(p for p in tcp if p[TCP].flags == "S")
    synack = next(p for p in tcp if p[TCP].flags == "SA")
    for label, p in (("SYN", syn), ("SYN-ACK", synack)):
        f[f"{label}: options"] = _options(p[TCP])
        f[f"{label}: window, TTL, flags, length"] = f"{p[TCP].window} {p[IP].ttl} {_ip_flags(p[IP])} {p[IP].len}"
    # The initial window: the data segments h2 sends before its first retransmission.
    seen, sizes = set(), []
    for p in tcp:
        if p[IP].src == H2 and len(p[TCP].payload):
            if p[TCP].seq in seen:
                break
            seen.add(p[TCP].seq)
            sizes.append(len(p[TCP].payload))
    f["initial window: segments x bytes, no ACK coming back"] = window_shape(sizes)
    f["TCP transfer: bytes received"] = results["tcp-initial-window"]
    ecn = [p for p in frames("tcp-ecn-setup", "h2") if TCP in p and ECN_PORT in (p[TCP].sport, p[TCP].dport)]
    answer = next((p for p in ecn if p[TCP].sport == ECN_PORT), None)
    f["ECN-setup SYN: the SYN-ACK's flags, TOS"] = \
        f"{answer[TCP].flags} 0x{answer[IP].tos:02x}" if answer is not None else "no answer"
    f.update(facts6(d))
    f["closed UDP port over IPv6: recv() on the connected socket"] = results["ipv6-udp-port-unreachable"]
    return f


def facts6(d: pathlib.Path) -> dict:
    from scapy.all import rdpcap
    from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                    ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6)
    f = {}

    def frames(name, host):
        return [p for p in rdpcap(str(d / f"{name}.{host}.pcap")) if IPv6 in p]

    echo = frames("ipv6-echo", "h1")
    req = next(p for p in echo if ICMPv6EchoRequest in p)
    rep = next(p for p in echo if ICMPv6EchoReply in p)
    f["ping -6: request hop limit, flow label set (h1)"] = f"{req[IPv6].hlim} {bool(req[IPv6].fl)}"
    f["ping -6: reply hop limit, flow label set (seen at h1)"] = f"{rep[IPv6].hlim} {bool(rep[IPv6].fl)}"
    at_h2 = next(p for p in frames("ipv6-echo", "h2") if ICMPv6EchoRequest in p)
    f["ping -6: request hop limit at h2 (forwarded)"] = str(at_h2[IPv6].hlim)
    ns = next((p for p in echo if ICMPv6ND_NS in p and p[ICMPv6ND_NS].tgt == ROUTER_H1_6), None)

    def lladdr(p, opt):
        return p[opt].lladdr if opt in p else "-"
    f["NS from h1 for r1: from, to, hop limit, source lladdr"] = "none" if ns is None else \
        f"{ns[IPv6].src} -> {ns[IPv6].dst} {ns[IPv6].hlim} {lladdr(ns, ICMPv6NDOptSrcLLAddr)}"
    na = next((p for p in echo if ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == ROUTER_H1_6), None)
    f["NA from r1: R S O flags, target lladdr"] = "none" if na is None else \
        f"{na[ICMPv6ND_NA].R}{na[ICMPv6ND_NA].S}{na[ICMPv6ND_NA].O} " \
        f"{lladdr(na, ICMPv6NDOptDstLLAddr)}"
    from scapy.layers.inet import TCP
    tcp = [p for p in frames("ipv6-tcp-handshake", "h2") if TCP in p]
    for label, flags in (("SYN over IPv6", "S"), ("SYN-ACK over IPv6", "SA")):
        p = next((p for p in tcp if p[TCP].flags == flags), None)
        f[f"{label}: options"] = "none" if p is None else _options(p[TCP])
        f[f"{label}: window, hop limit, payload length"] = "none" if p is None else \
            f"{p[TCP].window} {p[IPv6].hlim} {p[IPv6].plen}"
    for name, label in (("ipv6-udp-port-unreachable", "closed UDP port over IPv6"),
                        ("ipv6-hoplimit-exceeded", "hop limit expiry")):
        err = next(p for p in frames(name, "h1") if p[IPv6].nh == 58 and p.payload.payload.type in (1, 3))
        ip, icmp = err[IPv6], err[IPv6].payload
        f[f"{label}: ICMPv6 type/code from"] = f"{icmp.type}/{icmp.code} from {ip.src}"
        f[f"{label}: hop limit at h1, traffic class, payload length"] = f"{ip.hlim} 0x{ip.tc:02x} {ip.plen}"
    return f


def window_shape(sizes: list[int]) -> str:
    """Segment sizes in order, runs of one size joined: "10 x 1448", "45 x 1448 + 1 x 376"."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][1] == size:
            runs[-1][0] += 1
        else:
            runs.append([1, size])
    return " + ".join(f"{n} x {size}" for n, size in runs) or "0 x 0"


def compare(linux: dict, emulated: dict, known: dict | None = None) -> list[tuple]:
    """(fact, Linux, pktflow, verdict) rows; verdict is 'same', 'known: why' (pktflow
    shows exactly the value KNOWN expects of it) or 'DIFFERS'."""
    known = KNOWN if known is None else known
    rows = []
    for k, a in linux.items():
        b = emulated.get(k)
        if a == b:
            verdict = "same"
        elif k in known and b == known[k][0]:
            verdict = f"known: {known[k][1]}"
        else:
            verdict = "DIFFERS"
        rows.append((k, a, b, verdict))
    return rows


def run(stack=None, work: pathlib.Path | None = None) -> list[tuple]:
    work = work or pathlib.Path(tempfile.mkdtemp(prefix="pktflow-faithfulness-"))
    with Linux(str(os.getpid() % 10000)) as linux:
        linux_facts = facts(work / "linux", record(linux, work / "linux"))
    with Emulator(stack) as emu:
        emu_facts = facts(work / "pktflow", record(emu, work / "pktflow"))
    return compare(linux_facts, emu_facts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--probe", choices=PROBES, help=argparse.SUPPRESS)    # run inside a Linux namespace
    args = ap.parse_args()
    if args.probe:
        import socket
        out = PROBES[args.probe](socket, *((functools.partial(print, flush=True),) if args.probe in BACKGROUND
                                           else ()))
        if out is not None:
            print(out)
        return
    if os.geteuid() != 0:
        sys.exit("faithfulness: needs root (network namespaces, tcpdump)")
    rows = run()
    if args.json:
        print(json.dumps([dict(zip(("fact", "linux", "pktflow", "verdict"), r)) for r in rows], indent=2))
    else:
        w = max(len(r[0]) for r in rows)
        wl = max(len(str(r[1])) for r in rows)
        wp = max(len(str(r[2])) for r in rows)
        print(f"{'fact':<{w}}  {'Linux ' + os.uname().release:<{wl}}  {'pktflow':<{wp}}  verdict")
        for fact, a, b, v in rows:
            print(f"{fact:<{w}}  {a!s:<{wl}}  {b!s:<{wp}}  {v}")
    sys.exit(1 if any(r[3] == "DIFFERS" for r in rows) else 0)


if __name__ == "__main__":
    main()
