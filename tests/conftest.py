"""Shared fixtures: one pktflow stack (five service processes and the trace
store) for the integration tests, started once and stopped at the end."""
import contextlib
import os
import pathlib
import threading
import time
from collections import Counter

import pytest

PORT_BASE = int(os.environ.get("PKTFLOW_TEST_PORT_BASE", "52050"))
# What Linux sent in the default topology (shared/captures/linux, recorded by its record.sh): the golden frames.
LINUX_CAPTURES = pathlib.Path(__file__).parent / "data" / "linux"


# PKTFLOW_TEST_SHARDS=N: the shared stack runs in N shards (the integration tests, unchanged, across them)
SHARDS = int(os.environ.get("PKTFLOW_TEST_SHARDS", "1"))


def sharded_default(shards: int, **where: int) -> str:
    """The default topology in `shards` shards, hosts pinned where given (h1=0, ...)."""
    from pktflow.services.common import topology
    text = f"shards: {shards}\n" + topology.default_path().read_text()
    for host, shard in where.items():
        text = text.replace(f"\n  {host}:\n", f"\n  {host}:\n    shard: {shard}\n", 1)
    return text


WINDOWS: list = []          # (test id, start ns, end ns, markers): which test put a frame on the wire


@pytest.fixture(autouse=True)
def _test_window(request):
    start = time.time_ns()
    yield
    WINDOWS.append((request.node.nodeid, start, time.time_ns(),
                    {m.name for m in request.node.iter_markers()}))


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The shared stack. Every frame on its cables is recorded (PKTFLOW_WIRE_PCAP)
    and checked with tshark when the session ends (tests/wirecheck.py)."""
    from pktflow.up import Stack
    wire = tmp_path_factory.mktemp("wire")
    logs = tmp_path_factory.mktemp("logs")
    topo = None
    if SHARDS > 1:                     # PKTFLOW_TEST_SHARDS=2: h1 on shard 0, r1 and h2 on shard 1
        topo = tmp_path_factory.mktemp("topology") / "sharded.yaml"
        topo.write_text(sharded_default(SHARDS, h1=0, r1=SHARDS - 1, h2=SHARDS - 1))
    s = Stack(topo, port_base=PORT_BASE, otlp_port=PORT_BASE + 17, query_port=PORT_BASE + 18, trace_store=True,
              extra_env={"PKTFLOW_WIRE_PCAP": str(wire)}, log_dir=str(logs))
    s.start()
    os.environ["PKTFLOW_ENDPOINT"] = s.endpoint
    os.environ["PKTFLOW_QUERY_ENDPOINT"] = s.query_url
    yield s
    s.stop()
    assert not s.procs
    assert_no_tracebacks(logs)
    import wirecheck
    if wirecheck.available():
        complaints = wirecheck.check(wire, WINDOWS)
        assert not complaints, "tshark on the wire:\n" + "\n".join(complaints[:40])


def assert_no_tracebacks(log_dir):
    """Whatever the tests threw at them, the services answered without a stack trace."""
    for log in sorted(pathlib.Path(log_dir).glob("*.log")):
        text = log.read_text(errors="replace")
        at = text.find("Traceback")
        assert at < 0, f"{log.name} logged a traceback:\n{text[max(0, at - 300):at + 3000]}"


def issue_certificate(path, name: str, names=(), ca=None):
    """`<name>.key` and `<name>.pem` in `path`: a certificate for `names` (DNS
    names or IP addresses) signed by `ca` (a (key, cert) pair), or a CA when none."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca[1].subject if ca else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))
    if ca is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        def alt(n):
            try:
                return x509.IPAddress(ipaddress.ip_address(n))
            except ValueError:
                return x509.DNSName(n)
        b = b.add_extension(x509.SubjectAlternativeName([alt(n) for n in names]), critical=False)
    cert = b.sign(ca[0] if ca else key, hashes.SHA256())
    (path / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def make_pki(path, names) -> dict:
    """A CA (ca.pem) and one certificate for the whole stack (stack.pem, stack.key)
    valid for `names`; returns the PKTFLOW_TLS_* settings that use them."""
    issue_certificate(path, "stack", names, issue_certificate(path, "ca"))
    return {"PKTFLOW_TLS_CERT": str(path / "stack.pem"), "PKTFLOW_TLS_KEY": str(path / "stack.key"),
            "PKTFLOW_TLS_CA": str(path / "ca.pem")}


def libpcap_missing() -> str | None:
    """Why pcap-filter expressions cannot be compiled here (no system libpcap), or None."""
    from pktflow.services.common import bpf
    try:
        bpf.libpcap_version()
    except OSError as e:
        return str(e)
    return None


needs_libpcap = pytest.mark.skipif(libpcap_missing() is not None, reason=f"{libpcap_missing()}")


def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Polls `check` until it returns a true value (for effects that have no
    event to wait on: a counter moving, a span reaching the store)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s: {check}")
        time.sleep(interval)


def _setenv(values: dict):
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextlib.contextmanager
def environ(**values):
    """This process's environment with `values` set (None: unset) for the duration."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        _setenv(values)
        yield
    finally:
        _setenv(saved)


def sdk_endpoint(address: str):
    """Points this process's SDK at another stack for the duration."""
    return environ(PKTFLOW_ENDPOINT=address)


def counters(netns: str) -> Counter:
    """nstat's view of a host: the ip, transport and link layers' counters (missing ones read 0)."""
    from pktflow import _client
    out = Counter()
    for layer in ("ip", "transport", "link"):
        out.update({c.name: c.value for c in _client.admin(layer, netns, "counters").counters})
    return out


def own_frames(netns: str) -> int:
    """Frames a host's own stack has sent so far: IPv4, IPv6, ARP, and link's own
    ICMPv6 (router solicitations, MLD reports, NDP); not a packet socket's."""
    from pktflow import _client
    own = {f"{layer}.{c.name}": c.value for layer in ("ip", "link")
           for c in _client.admin(layer, netns, "counters").counters}
    return sum(own.get(k, 0) for k in ("ip.IpOutTransmits", "ip.Ip6OutTransmits", "link.ArpOutRequests",
                                       "link.ArpOutReplies", "link.Icmp6OutMsgs"))


def link_stats(netns: str, layer: str = "nic") -> dict:
    import json
    from pktflow import _client
    return {d["ifname"]: d["stats"] for d in json.loads(_client.admin(layer, netns, "link").json)}


class Bulk:
    """A paced TCP transfer h1 -> h2 in threads, so it runs across a restart."""

    def __init__(self, port: int, size: int = 3 << 20, chunk: int = 32 << 10, pause: float = 0.05):
        self.data = os.urandom(size)
        self.got = bytearray()
        self.errors: list = []
        import pktflow
        lst = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
        lst.bind(("10.0.2.10", port))
        lst.listen(1)
        self.cli = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1")
        self.cli.settimeout(10)
        self.cli.connect(("10.0.2.10", port))
        lst.settimeout(10)
        self.conn, _ = lst.accept()
        lst.close()
        self.cli.settimeout(120)
        self.conn.settimeout(120)
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (lambda: self._send(chunk, pause), self._recv)]
        for t in self.threads:
            t.start()

    def _guard(self, f):
        try:
            f()
        except OSError as e:
            self.errors.append(e)

    def _send(self, chunk, pause):
        for i in range(0, len(self.data), chunk):
            self.cli.sendall(self.data[i:i + chunk])
            time.sleep(pause)
        import pktflow
        self.cli.shutdown(pktflow.SHUT_WR)

    def _recv(self):
        while chunk := self.conn.recv(65536):
            self.got += chunk

    def finish(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.cli.close()
        self.conn.close()
        return not any(t.is_alive() for t in self.threads)
