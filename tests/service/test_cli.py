"""The pktflow command: `pktflow up` for real, and the iproute2-style tools."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import pktflow
from conftest import PORT_BASE, Bulk, eventually, sdk_endpoint

pytestmark = pytest.mark.integration


def cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=(env or os.environ))


def port_free(port: int) -> bool:
    """Nothing listens there (SO_REUSEADDR: closed connections may linger in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_pktflow_up_runs_the_stack_and_stops_on_ctrl_c(tmp_path):
    base = PORT_BASE + 1000
    ports = [base + i for i in range(1, 6)] + [base + 17, base + 18]
    env = os.environ | {"PKTFLOW_ENDPOINT": f"127.0.0.1:{base + 1}"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    proc = subprocess.Popen([sys.executable, "-m", "pktflow.cli", "up", "--port-base", str(base),
                             "--otlp-port", str(base + 17), "--query-port", str(base + 18)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "ready" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        script = """
import pktflow
srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2"); srv.bind(("10.0.2.10", 7000))
cli = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
cli.sendto(b"hello", ("10.0.2.10", 7000))
srv.settimeout(5)
data, (host, port) = srv.recvfrom(2048)
assert data == b"hello" and host == "10.0.1.10", (data, host)
print("ok")
"""
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30)
        assert out.stdout.strip() == "ok", out.stderr
        ping = cli("ping", "-n", "h1", "10.0.2.10", "-c", "3", "-i", "0.1", env=env)
        assert ping.returncode == 0, ping.stderr
        assert len(re.findall(r"icmp_seq=\d ttl=63 time=", ping.stdout)) == 3
        deadline = time.monotonic() + 20
        while True:
            tr = cli("trace", "--operation", "udp_rcv", "--query", f"http://127.0.0.1:{base + 18}", env=env)
            if tr.returncode == 0 and "sock_queue_rcv_skb" in tr.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert tr.returncode == 0, tr.stderr
        for fn in ("sock_sendmsg", "udp_sendmsg", "ip_queue_xmit", "dev_queue_xmit", "ndo_start_xmit",
                   "netif_receive_skb", "ip_rcv", "ip_forward", "ip_output", "udp_rcv", "sock_queue_rcv_skb"):
            assert fn in tr.stdout
        assert "hosts h1 -> r1 -> h2" in tr.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        if proc.stdout.readline() == "pktflow: stopping\n":
            proc.send_signal(signal.SIGINT)            # an impatient second Ctrl-C while it stops
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert all(port_free(p) for p in ports), "a service outlived pktflow up"


def _up(base: int) -> subprocess.Popen:
    env = os.environ | {"PKTFLOW_ENDPOINT": f"127.0.0.1:{base + 1}"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return subprocess.Popen([sys.executable, "-m", "pktflow.cli", "up", "--port-base", str(base),
                             "--otlp-port", str(base + 17), "--query-port", str(base + 18)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _all_free(ports, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not all(port_free(p) for p in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
def test_services_end_with_pktflow_up_however_it_dies(sig):
    """SIGHUP (the terminal closed) is a clean stop; after SIGKILL, which runs
    no cleanup, the services still go (PR_SET_PDEATHSIG): no port stays taken."""
    base = PORT_BASE + 1200 + (sig == signal.SIGKILL) * 50
    ports = [base + i for i in range(1, 6)] + [base + 17, base + 18]
    proc = _up(base)
    try:
        line = proc.stdout.readline()
        assert "ready" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(sig)
        rc = proc.wait(20)
        assert rc == (0 if sig == signal.SIGHUP else -signal.SIGKILL)
        assert _all_free(ports), "a service outlived pktflow up"
    finally:
        proc.kill()
        proc.wait()


def test_a_second_pktflow_up_on_busy_ports_refuses_in_one_line():
    base = PORT_BASE + 1300
    first = _up(base)
    try:
        assert "ready" in first.stdout.readline()
        second = _up(base)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 1 and "ready" not in out and "Traceback" not in err
        assert re.fullmatch(rf"pktflow: port {base + 1} \(socket\) is in use by pid \d+ \(.*\)\n", err), err
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(20)


def test_pktflow_up_refuses_a_bad_topology(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  h1:\n    interfaces:\n      eth0: {addresses: [10.0.1.300/24]}\n")
    r = cli("up", "--topology", str(bad), "--port-base", str(PORT_BASE + 1100))
    assert r.returncode == 2
    assert re.search(r"bad\.yaml:4: .*10\.0\.1\.300.* is not an IPv4 address", r.stderr), r.stderr
    assert "Traceback" not in r.stderr


def test_ping_cli_prints_like_iputils(stack):
    r = cli("ping", "-n", "h1", "10.0.2.10", "-c", "2", "-i", "0.1")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "PING 10.0.2.10 (10.0.2.10) 56(84) bytes of data."
    assert re.fullmatch(r"64 bytes from 10\.0\.2\.10: icmp_seq=1 ttl=63 time=[\d.]+ ms", lines[1])
    assert "--- 10.0.2.10 ping statistics ---" in lines
    assert re.search(r"2 packets transmitted, 2 received, 0% packet loss", r.stdout)
    assert re.search(r"rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", r.stdout)


def test_ping_cli_reports_errors_and_exits_1(stack):
    r = cli("ping", "-n", "h1", "10.0.3.5", "-c", "1", "-W", "0.5")
    assert r.returncode == 1
    assert "From 10.0.1.1 icmp_seq=1 Destination Net Unreachable" in r.stdout
    assert "1 packets transmitted, 0 received, +1 errors, 100% packet loss" in r.stdout


def test_nstat_cli(stack):
    pktflow.ping("10.0.2.10", netns="h1")
    r = cli("nstat", "-n", "h2")
    assert r.returncode == 0
    assert r.stdout.startswith("#kernel\n")
    assert re.search(r"^IcmpInEchos\s+\d+\s+0\.0$", r.stdout, re.M)
    assert re.search(r"^IpOutDiscards\s+0\s", cli("nstat", "-n", "h2", "-z").stdout, re.M)   # -z: zeros too
    assert not re.search(r"^IpOutDiscards\s", r.stdout, re.M)
    bad = cli("nstat", "-n", "nosuch")
    assert bad.returncode == 1 and "no network namespace 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr


def test_nstat_names_as_linux_prints_them(stack):
    """TcpExt counters carry their table's prefix; no ARP counters (Linux's MIBs
    have none); the fixed Tcp values and gauges nstat leaves out stay out; the
    tables in nstat's order (snmp, then netstat)."""
    from conftest import counters
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2") as srv:
        srv.bind(("10.0.2.10", 0))
        srv.listen(1)
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as c:
            c.connect(("10.0.2.10", srv.getsockname()[1]))
            srv.accept()[0].close()
    out = cli("nstat", "-n", "h2", "-z").stdout
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert {"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPTimeouts", "IpExtInOctets"} <= set(names)
    assert not any(n.startswith("Arp") for n in names)
    assert not {"ListenOverflows", "TCPTimeouts", "DelayedACKs"} & set(names)
    assert not {"TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax", "TcpMaxConn", "TcpCurrEstab", "IpForwarding"} & set(names)
    tables = [next(t for t in ("TcpExt", "IpExt", "Icmp", "Tcp", "Udp", "Ip") if n.startswith(t)) for n in names]
    firsts = [t for i, t in enumerate(tables) if t not in tables[:i]]
    assert firsts == ["Ip", "Icmp", "Tcp", "Udp", "TcpExt", "IpExt"]
    c = counters("h2")           # the kernel's view, /proc/net/snmp: the fixed values as Linux reports them
    assert (c["TcpRtoAlgorithm"], c["TcpRtoMin"], c["TcpRtoMax"], c["TcpMaxConn"]) == (1, 200, 120000, -1)
    assert "ArpInRequests" in counters("h2")       # still there for the link layer's own view


def test_ip_cli(stack):
    link = cli("ip", "-s", "link", "-n", "r1")
    assert link.returncode == 0, link.stderr
    assert "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500" in link.stdout
    assert "link/ether 02:00:00:00:02:01 brd ff:ff:ff:ff:ff:ff" in link.stdout
    assert "RX:  bytes packets errors dropped  missed   mcast" in link.stdout
    route = cli("ip", "route", "-n", "h1").stdout.splitlines()
    assert route == ["default via 10.0.1.1 dev eth0", "10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.10"]
    assert "local 10.0.1.10 dev eth0 proto kernel scope host src 10.0.1.10" in \
        cli("ip", "-n", "h1", "route", "show", "table", "local").stdout
    assert "inet 10.0.2.1/24 brd 10.0.2.255 scope global eth1" in cli("ip", "addr", "-n", "r1").stdout
    pktflow.ping("10.0.2.10", netns="h1")
    assert re.search(r"^10\.0\.1\.1 dev eth0 lladdr 02:00:00:00:01:01 \w+$", cli("ip", "neigh", "-n", "h1").stdout,
                     re.M)
    assert cli("ip", "link").returncode == 2


def test_capture_cli(stack, tmp_path):
    path = tmp_path / "c.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "pktflow.cli", "capture", "-n", "h2", "-i", "eth0", "-w", str(path),
                             "-c", "2"], stderr=subprocess.PIPE, text=True)
    assert "listening on h2:eth0" in proc.stderr.readline()
    pktflow.ping("10.0.2.10", netns="h1")
    assert proc.wait(20) == 0
    from scapy.utils import rdpcap
    assert len(rdpcap(str(path))) == 2


def test_the_sdk_finds_a_stack_restarted_at_the_same_address():
    """A process's channel outlives a stack (the benchmarks start several on one
    address): after a restart its next call connects, even though its Session
    stream kept the channel retrying while nothing listened."""
    from pktflow.up import Stack
    base = PORT_BASE + 1400
    with sdk_endpoint(f"127.0.0.1:{base + 1}"):
        for _ in range(2):
            s = Stack(port_base=base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
            s.start()
            try:
                with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as sock:
                    sock.bind(("10.0.1.10", 0))
            finally:
                s.stop()
            time.sleep(3)                     # the session's retries back off meanwhile


def test_a_layer_killed_mid_transfer_is_started_again_and_tcp_completes_byte_identical():
    """pktflow up supervises its services as a restart policy would: SIGKILL ip
    (a crash) while a TCP transfer runs; it comes back after a short delay,
    transport's stream finds it, TCP retransmits what was lost, and the bytes
    arrive whole. The other layers run on undisturbed."""
    from pktflow.up import Stack
    base = PORT_BASE + 1500
    s = Stack(port_base=base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
    s.start()
    try:
        with sdk_endpoint(s.endpoint):
            others = {name: p.pid for name, p in s.procs.items() if name != "ip"}
            bulk = Bulk(42900, size=1 << 20)
            time.sleep(0.5)
            s.procs["ip"].kill()
            assert 0 < len(bulk.got) < len(bulk.data), "the transfer spans the crash"
            eventually(lambda: s.restarts.get("ip") == 1 and s.procs["ip"].poll() is None, timeout=10)
            assert bulk.finish(timeout=120), f"the transfer did not finish: {len(bulk.got)} of {len(bulk.data)}"
            assert not bulk.errors and bulk.got == bulk.data
            assert {name: p.pid for name, p in s.procs.items() if name != "ip"} == others
            assert s.failed() is None
    finally:
        s.stop()
    assert not s.procs


def test_a_service_that_keeps_failing_makes_the_stack_give_up(monkeypatch):
    from pktflow import up
    monkeypatch.setattr(up, "RESTART_DELAY", 0.01)
    s = up.Stack(port_base=PORT_BASE + 1550, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
    s.start()
    try:
        s._specs["nic"] = ("pktflow.no_such_module", s._specs["nic"][1])   # every restart fails at once
        s.procs["nic"].kill()
        why = eventually(s.failed, timeout=20)
        assert re.fullmatch(r"the nic service exited 5 times in a row within 10 s of starting \(last status 1\)",
                            why), why
    finally:
        s.stop()


def test_pktflow_iptables_drops_what_its_rule_says_and_the_trace_names_the_rule(stack):
    """`pktflow iptables -n r1 ...` as iptables: the rule drops, its counters
    count, the packet's trace ends in a red nf_hook_slow span naming table,
    chain and rule, a bad command fails with iptables' message and status, and
    iptables-save's output restores."""
    from pktflow import tracequery as tq
    try:
        r = cli("iptables", "-n", "r1", "-A", "FORWARD", "-p", "udp", "--dport", "45001", "-j", "DROP")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
                pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
            srv.bind(("10.0.2.10", 45001))
            srv.settimeout(0.5)
            c.sendto(b"filtered", ("10.0.2.10", 45001))
            with pytest.raises(TimeoutError):
                srv.recvfrom(100)
        listing = cli("iptables", "-n", "r1", "-L", "FORWARD", "-v", "-n", "-x").stdout.splitlines()
        assert listing[2].split()[:3] == ["1", "36", "DROP"], listing
        span = eventually(lambda: next((s for t in tq.find(service="ip", operation="nf_hook_slow",
                                                           tags={"pktflow.drop_reason": "NETFILTER_DROP"})
                                        for s in t["spans"] if s["operationName"] == "nf_hook_slow"), None),
                          timeout=30, interval=0.3)
        assert [tq.tag(span, k) for k in ("netfilter.table", "netfilter.chain", "netfilter.rule",
                                          "netfilter.verdict")] == ["filter", "FORWARD", 1, "DROP"]
        bad = cli("iptables", "-n", "r1", "-A", "NOPE", "-j", "ACCEPT")
        assert (bad.returncode, bad.stderr) == (1, "iptables: No chain/target/match by that name.\n")
        saved = cli("iptables-save", "-n", "r1").stdout
        assert "-A FORWARD -p udp -m udp --dport 45001 -j DROP" in saved
        cli("iptables", "-n", "r1", "-F")
        restored = subprocess.run([sys.executable, "-m", "pktflow.cli", "iptables-restore", "-n", "r1"], input=saved,
                                  capture_output=True, text=True, timeout=60)
        assert restored.returncode == 0, restored.stderr
        assert cli("iptables", "-n", "r1", "-S", "FORWARD").stdout.splitlines()[1:] == \
            ["-A FORWARD -p udp -m udp --dport 45001 -j DROP"]
        ct = cli("conntrack", "-n", "r1", "-L")             # no rule tracks connections: none tracked
        assert (ct.returncode, ct.stdout, ct.stderr) == (
            0, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n")
    finally:
        cli("iptables", "-n", "r1", "-F")


def test_a_nat_gateway_end_to_end_through_the_sdk(tmp_path):
    """The issue's NAT scenario on the real services: h1 behind r1's MASQUERADE
    reaches h2, h2 sees r1's address, replies come back to h1, `pktflow
    conntrack` shows the mapping, and an ICMP error comes back through the NAT
    (ECONNREFUSED on h1's connected socket). A stack of its own: once r1 tracks
    connections it keeps doing so (and reassembles fragments), as Linux does."""
    import re
    from conftest import assert_no_tracebacks
    from pktflow.up import Stack
    s = Stack(port_base=PORT_BASE + 1600, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"},
              log_dir=str(tmp_path))
    s.start()
    try:
        with sdk_endpoint(s.endpoint):
            r = cli("iptables", "-n", "r1", "-t", "nat", "-A", "POSTROUTING", "-o", "eth1", "-j", "MASQUERADE")
            assert (r.returncode, r.stderr) == (0, ""), r.stderr
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
                    pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
                srv.bind(("10.0.2.10", 45101))
                srv.settimeout(5)
                c.settimeout(5)
                c.sendto(b"from behind r1", ("10.0.2.10", 45101))
                data, (host, port) = srv.recvfrom(100)
                assert (data, host) == (b"from behind r1", "10.0.2.1")      # h2 sees r1, not h1
                srv.sendto(b"back", (host, port))
                assert c.recvfrom(100) == (b"back", ("10.0.2.10", 45101))
                ct = cli("conntrack", "-n", "r1", "-L").stdout
                sport = c.getsockname()[1]
                assert re.search(rf"udp      17 \d+ src=10.0.1.10 dst=10.0.2.10 sport={sport} dport=45101 "
                                 rf"src=10.0.2.10 dst=10.0.2.1 sport=45101 dport={port} mark=0 use=1", ct), ct
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
                c.settimeout(5)
                c.connect(("10.0.2.10", 45102))                  # nobody listens there
                c.send(b"anyone?")
                with pytest.raises(ConnectionRefusedError):
                    c.recv(100)
    finally:
        s.stop()
    assert_no_tracebacks(tmp_path)


def test_pktflow_sysctl_writes_at_run_time_in_every_layer(stack):
    """`pktflow sysctl -n h1 -w` as procps' sysctl: the ip layer validates, the
    value reaches the layer that uses it (here transport's ephemeral ports), a
    bad key or value fails as sysctl does and changes nothing."""
    try:
        r = cli("sysctl", "-n", "h1", "-w", "net.ipv4.ip_local_port_range=45200 45209")
        assert (r.returncode, r.stdout, r.stderr) == (0, "net.ipv4.ip_local_port_range = 45200\t45209\n", "")
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
            c.sendto(b"x", ("10.0.2.10", 9))
            assert 45200 <= c.getsockname()[1] <= 45209
        bad = cli("sysctl", "-n", "h1", "-w", "net.ipv4.ip_default_ttl=0", "net.ipv4.nope=1")
        assert bad.returncode == 1 and bad.stderr == (
            'sysctl: setting key "net.ipv4.ip_default_ttl": Invalid argument\n'
            "sysctl: cannot stat /proc/sys/net/ipv4/nope: No such file or directory\n")
        assert cli("sysctl", "-n", "h1", "net.ipv4.ip_default_ttl").stdout == "net.ipv4.ip_default_ttl = 64\n"
    finally:
        cli("sysctl", "-n", "h1", "-w", "net.ipv4.ip_local_port_range=32768 60999")


def test_pktflow_softnet_shows_backlog_drops_and_time_squeezes_set_by_sysctl(tmp_path):
    """`pktflow sysctl -w net.core.*` reaches the nic: with netdev_max_backlog -1
    h1's pings to itself (its loopback device's frames go through the host's
    backlog) are dropped there, with netdev_budget 1 every NET_RX run on r1 ends
    squeezed yet forwards everything on the next; `pktflow softnet -n NETNS` prints
    /proc/net/softnet_stat's line, and the nic's counters name them. A stack of its own."""
    from conftest import assert_no_tracebacks
    from pktflow import _client
    from pktflow.up import Stack
    s = Stack(port_base=PORT_BASE + 2350, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"},
              log_dir=str(tmp_path))
    s.start()

    def softnet(netns: str) -> list[int]:
        r = cli("softnet", "-n", netns)
        assert r.returncode == 0 and re.fullmatch(r"([0-9a-f]{8} ){14}[0-9a-f]{8}\n", r.stdout), r
        return [int(c, 16) for c in r.stdout.split()]
    try:
        with sdk_endpoint(s.endpoint):
            base = softnet("h1")                # IPv6's start (DAD, MLD reports) has had frames processed
            assert base[1:3] == [0, 0]
            r = cli("sysctl", "-n", "h1", "-w", "net.core.netdev_max_backlog=-1")
            assert (r.returncode, r.stdout, r.stderr) == (0, "net.core.netdev_max_backlog = -1\n", "")
            assert pktflow.ping("127.0.0.1", netns="h1", count=2, timeout=0.5).replies == [None, None]
            assert softnet("h1")[1] == 2
            c = {x.name: x.value for x in _client.admin("nic", "h1", "counters").counters}
            assert (c["SoftnetDropped"], c["DropCPU_BACKLOG"]) == (2, 2), c
            cli("sysctl", "-n", "h1", "-w", "net.core.netdev_max_backlog=1000")
            assert None not in pktflow.ping("127.0.0.1", netns="h1", count=2).replies
            processed, dropped = softnet("h1")[:2]
            assert processed - base[0] >= 2 + 2 and dropped == 2    # requests and replies, each up once

            assert cli("sysctl", "-n", "r1", "-qw", "net.core.netdev_budget=1").returncode == 0
            assert None not in pktflow.ping("10.0.2.10", netns="h1", count=3, interval=0.05).replies
            processed, _, squeezed = softnet("r1")[:3]
            assert processed >= 6 and 3 <= squeezed <= processed, (processed, squeezed)   # each run squeezed
            assert "--json" in cli("softnet", "--help").stdout
    finally:
        s.stop()
    assert_no_tracebacks(tmp_path)


def test_pktflow_ip_route_and_rule_change_the_fib_at_run_time(stack):
    """`pktflow ip route add|del`, `ip rule add|show|del` on a running r1, with
    iproute2's words, output and errors; `ip route get` follows at once."""
    try:
        assert cli("ip", "-n", "r1", "route", "add", "10.99.0.0/16", "via", "10.0.2.10").returncode == 0
        got = cli("ip", "-n", "r1", "route", "get", "10.99.1.1").stdout
        assert got.startswith("10.99.1.1 via 10.0.2.10 dev eth1 src 10.0.2.1 uid 0"), got
        dup = cli("ip", "-n", "r1", "route", "add", "10.99.0.0/16", "via", "10.0.2.10")
        assert (dup.returncode, dup.stderr) == (2, "RTNETLINK answers: File exists\n")
        bad = cli("ip", "-n", "r1", "route", "add", "10.98.0.0/16", "via", "10.7.0.1")
        assert (bad.returncode, bad.stderr) == (2, "Error: Nexthop has invalid gateway.\n")
        assert cli("ip", "-n", "r1", "route", "add", "default", "via", "10.0.1.10", "table", "100").returncode == 0
        assert cli("ip", "-n", "r1", "rule", "add", "fwmark", "5", "lookup", "100").returncode == 0
        assert "32765:\tfrom all fwmark 0x5 lookup 100\n" in cli("ip", "-n", "r1", "rule").stdout
        got = cli("ip", "-n", "r1", "route", "get", "192.0.2.1", "mark", "5").stdout
        assert got.startswith("192.0.2.1 via 10.0.1.10 dev eth0 table 100 src 10.0.1.1 mark 0x5 uid 0"), got
    finally:
        cli("ip", "-n", "r1", "rule", "del", "fwmark", "5", "lookup", "100")
        cli("ip", "-n", "r1", "route", "flush", "table", "100")
        cli("ip", "-n", "r1", "route", "del", "10.99.0.0/16")
    assert cli("ip", "-n", "r1", "rule").stdout.count("\n") == 3


def test_pktflow_ip_addr_and_link_set_at_run_time(tmp_path):
    """`pktflow ip addr add|del` and `ip link set` on a stack of its own: a new
    address of h2 answers ARP and takes traffic; h2's eth0 down leaves r1's eth1
    without carrier and takes h2's routes through it (the static default too, as
    Linux), up brings the connected route back; the MTU reaches every layer."""
    from conftest import assert_no_tracebacks
    from pktflow.up import Stack
    s = Stack(port_base=PORT_BASE + 1700, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"},
              log_dir=str(tmp_path))
    s.start()

    def reaches(addr: str, port: int, tries: int = 1) -> bool:
        """A datagram from h1 arrives (up to `tries` sends: r1 may still be giving
        up on an ARP resolution the downed link made fail)."""
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
                pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
            srv.bind(("0.0.0.0", port))
            srv.settimeout(1.5)
            for _ in range(tries):
                c.sendto(b"here?", (addr, port))
                try:
                    return srv.recvfrom(100)[0] == b"here?"
                except TimeoutError:
                    pass
            return False
    try:
        with sdk_endpoint(s.endpoint):
            assert cli("ip", "-n", "h2", "addr", "add", "10.0.2.20/24", "dev", "eth0").returncode == 0
            assert "inet 10.0.2.20/24" in cli("ip", "-n", "h2", "addr").stdout
            assert reaches("10.0.2.20", 45301)
            dup = cli("ip", "-n", "h2", "addr", "add", "10.0.2.20/24", "dev", "eth0")
            assert (dup.returncode, dup.stderr) == (2, "Error: ipv4: Address already assigned.\n")
            assert cli("ip", "-n", "h2", "addr", "del", "10.0.2.20/24", "dev", "eth0").returncode == 0
            assert not reaches("10.0.2.20", 45302)
            assert cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "down").returncode == 0
            assert "eth1: <NO-CARRIER" in cli("ip", "-n", "r1", "link").stdout
            assert not reaches("10.0.2.10", 45303)
            assert cli("ip", "-n", "h2", "route").stdout == ""
            assert cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "up", "mtu", "1400").returncode == 0
            assert cli("ip", "-n", "h2", "route", "add", "default", "via", "10.0.2.1").returncode == 0
            assert reaches("10.0.2.10", 45304, tries=4)
            assert "mtu 1400" in cli("ip", "-n", "h2", "link", "show", "eth0").stdout
            assert cli("ethtool", "-n", "r1", "eth1").stdout == (
                "Settings for eth1:\n\tSpeed: 10000Mb/s\n\tDuplex: Full\n\tAuto-negotiation: off\n"
                "\tPort: Twisted Pair\n\tLink detected: yes\n")
            # offloads: TSO and GSO are the link layer's, GRO the NIC's; a UDP datagram still goes
            assert cli("ethtool", "-n", "h1", "-K", "eth0", "tso", "off", "gro", "off").returncode == 0
            assert cli("ethtool", "-n", "h1", "-k", "eth0").stdout == (
                "Features for eth0:\ntcp-segmentation-offload: off\ngeneric-segmentation-offload: on\n"
                "generic-receive-offload: off\n")
            bad = cli("ethtool", "-n", "h1", "-K", "eth0", "lro", "on")
            assert bad.returncode == 1 and "lro" in bad.stderr
            assert cli("ethtool", "-n", "h1", "-k", "eth9").returncode == 1
            assert cli("ethtool", "-n", "r1", "-s", "eth1", "speed", "10").returncode == 0   # a line rate now
            assert "\tSpeed: 10Mb/s\n" in cli("ethtool", "-n", "r1", "eth1").stdout
            assert cli("ethtool", "-n", "r1", "-s", "eth1", "speed", "0").returncode != 0
            assert reaches("10.0.2.10", 45305)
    finally:
        s.stop()
    assert_no_tracebacks(tmp_path)
