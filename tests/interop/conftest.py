"""The real Linux kernel as a peer: a pktflow stack whose h1 eth0 is a TAP
device, the TAP moved into a network namespace this fixture creates (and
removes), Linux's own tools run inside it. Skipped, saying why, where there is
no CAP_NET_ADMIN, no /dev/net/tun or no iproute2."""
import os
import pathlib
import shutil
import subprocess
import time

import pytest

PORT_BASE = int(os.environ.get("PKTFLOW_TEST_PORT_BASE", "52050")) + 4000
LINUX_ADDR, EMU_ADDR = "10.0.1.99", "10.0.1.10"
# Behind the TAP's namespace, a second one routed through it: loss made by iptables
# in the router's FORWARD chain is real loss to both TCPs (a drop in OUTPUT is not:
# the sender's own stack sees it fail and sends again as new data).
FAR_ADDR, FAR_GW = "10.0.9.2", "10.0.9.1"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the interop tests need root (CAP_NET_ADMIN) for network namespaces and TAP devices"
    if not os.path.exists("/dev/net/tun"):
        return "the interop tests need /dev/net/tun"
    if not shutil.which("ip"):
        return "the interop tests need iproute2 (ip)"
    probe = f"pfprobe{os.getpid() % 10000}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if r.returncode:
        return f"cannot create a network namespace here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


WHY_NOT = _why_not()


class LinuxPeer:
    """The namespace on the Linux side of the TAP."""

    def __init__(self, netns: str, tap: str, stack, wire: pathlib.Path):
        self.netns, self.tap, self.stack, self.wire = netns, tap, stack, wire

    def run(self, *cmd, check=True, timeout=60, text=True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(["ip", "netns", "exec", self.netns, *cmd], capture_output=True, text=text,
                           timeout=timeout, check=False, **kw)
        if check and r.returncode:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr!r}")
        return r

    def popen(self, *cmd, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *cmd], **kw)

    def mib(self) -> dict[str, int]:
        """/proc/net/snmp and /proc/net/netstat as nstat names them (TcpRetransSegs, TcpExtTCPSackRecovery)."""
        out = {}
        for f in ("/proc/net/snmp", "/proc/net/netstat"):
            lines = self.run("cat", f).stdout.splitlines()
            for names, values in zip(lines[::2], lines[1::2]):
                proto, *keys = names.split()
                out.update({proto.rstrip(":") + k: int(v) for k, v in zip(keys, values.split()[1:])})
        return out


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="package")
def linux(tmp_path_factory):
    if WHY_NOT:
        pytest.skip(WHY_NOT)
    from pktflow.up import Stack
    tag = os.getpid() % 10000
    netns, tap = f"pfi{tag}", f"pft{tag}"
    work = tmp_path_factory.mktemp("interop")
    wire = work / "wire"
    topo = work / "tap.yaml"
    topo.write_text(f"""hosts:
  h1:
    interfaces:
      eth0: {{mac: "02:00:00:00:01:0a", addresses: [{EMU_ADDR}/24], tap: {tap}}}
    routes: [default via {LINUX_ADDR}]
""")
    stack = Stack(str(topo), port_base=PORT_BASE, otlp_port=PORT_BASE + 17, query_port=PORT_BASE + 18,
                  trace_store=True, extra_env={"PKTFLOW_WIRE_PCAP": str(wire)})
    stack.start()
    try:
        _ip("netns", "add", netns)
        _ip("link", "set", tap, "netns", netns)
        peer = LinuxPeer(netns, tap, stack, wire)
        peer.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        peer.run("ip", "link", "set", "lo", "up")
        peer.run("ip", "link", "set", tap, "address", "02:00:00:00:01:63")
        peer.run("ip", "addr", "add", f"{LINUX_ADDR}/24", "dev", tap)
        peer.run("ip", "link", "set", tap, "up")
        peer.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        far = LinuxPeer(netns + "f", tap, stack, wire)
        _ip("netns", "add", far.netns)
        peer.run("ip", "link", "add", "fwd0", "type", "veth", "peer", "name", "fwd1", "netns", far.netns)
        peer.run("ip", "addr", "add", f"{FAR_GW}/24", "dev", "fwd0")
        peer.run("ip", "link", "set", "fwd0", "up")
        far.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        far.run("ip", "link", "set", "lo", "up")
        far.run("ip", "addr", "add", f"{FAR_ADDR}/24", "dev", "fwd1")
        far.run("ip", "link", "set", "fwd1", "up")
        far.run("ip", "route", "add", "default", "via", FAR_GW)
        if shutil.which("ethtool"):              # segments on the wire as TCP made them: one drop, one segment
            for p, dev in ((peer, tap), (peer, "fwd0"), (far, "fwd1")):
                p.run("ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
                      check=False)
        peer.far = far
        yield peer
    finally:
        stack.stop()
        subprocess.run(["ip", "netns", "del", netns + "f"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    from conftest import WINDOWS
    from wirecheck import available, check
    if available():
        complaints = check(wire, WINDOWS)
        assert not complaints, "tshark on the TAP's wire:\n" + "\n".join(complaints[:40])


@pytest.fixture(autouse=True)
def _sdk_on_the_tap_stack(request):
    """A test that uses `linux` talks to its stack; the others (and the rest of the
    session) keep talking to the shared one."""
    if "linux" not in request.fixturenames:
        yield
        return
    peer = request.getfixturevalue("linux")
    keys = ("PKTFLOW_ENDPOINT", "PKTFLOW_QUERY_ENDPOINT")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(zip(keys, (peer.stack.endpoint, peer.stack.query_url)))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def wait_port(peer: LinuxPeer, port: int, timeout: float = 10.0):
    """Until something listens on the Linux side's TCP port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f":{port} " in peer.run("ss", "-ltn", check=False).stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} in {peer.netns}")


def _sh(*cmd, check=True) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)}: {r.stderr}")
    return r.stdout


@pytest.fixture(scope="module")
def linux_net():
    """h1, r1, h2 as Linux namespaces, addressed and routed as the default topology."""
    tag = os.getpid() % 10000
    h1, r1, h2 = (f"pfrp{n}{tag}" for n in ("a", "r", "b"))
    for ns in (h1, r1, h2):
        _sh("ip", "netns", "add", ns)
    try:
        for a, aif, b, bif in ((h1, "eth0", r1, "eth0"), (r1, "eth1", h2, "eth0")):
            _sh("ip", "link", "add", f"v{tag}x", "netns", a, "type", "veth", "peer", "name", f"v{tag}y", "netns", b)
            _sh("ip", "-n", a, "link", "set", f"v{tag}x", "name", aif)
            _sh("ip", "-n", b, "link", "set", f"v{tag}y", "name", bif)
        for ns, dev, addr in ((h1, "eth0", "10.0.1.10/24"), (r1, "eth0", "10.0.1.1/24"), (r1, "eth1", "10.0.2.1/24"),
                              (h2, "eth0", "10.0.2.10/24")):
            _sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "-n", h1, "route", "add", "default", "via", "10.0.1.1")
        _sh("ip", "-n", h2, "route", "add", "default", "via", "10.0.2.1")
        _sh("ip", "netns", "exec", r1, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield h1, r1, h2
    finally:
        for ns in (h1, r1, h2):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
