"""NAT and a stateful firewall side by side with Linux: the default topology
(h1 - r1 - h2) as Linux namespaces, the same iptables-save rule set loaded
into Linux's r1 (iptables-restore) and into pktflow's; the same probes from h1
(UDP and TCP through MASQUERADE, a ping, UDP and TCP to rejected ports, a closed
port behind the NAT, UDP to a port FORWARD drops) must meet the same fates:
what h2 sees as the source, the errno h1's socket gets, and the connections
conntrack lists with their mappings."""
import errno
import json
import re
import shutil
import subprocess
import sys

import pytest

from interop.conftest import WHY_NOT, _sh
from pktflow.services.common import uapi
from pktflow.services.ip.netfilter import tools
from pktflow.services.netstack import Netstack
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall

pytestmark = pytest.mark.skipif(WHY_NOT is not None or not shutil.which("iptables-restore"),
                                reason=WHY_NOT or "no iptables-restore here")

RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -p udp -m udp --dport 7000 -j ACCEPT
-A FORWARD -i eth0 -p tcp -m tcp --dport 8080:8081 -j ACCEPT
-A FORWARD -i eth0 -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -i eth0 -p udp -m udp --dport 7001 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -i eth0 -p udp -m udp --dport 7003 -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -i eth0 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
COMMIT
"""
# (kind, port): what h1 tries; the fate is what h2 saw (its source address) or h1's errno
PROBES = [("udp", 7000), ("udp", 7001), ("udp", 7002), ("udp", 7003), ("tcp", 80), ("tcp", 8080), ("tcp", 8081),
          ("ping", 0)]

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.2.10", 7000)); s.settimeout(5)
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("10.0.2.10", 8080)); t.listen(); t.settimeout(5)
print("ready", flush=True)
data, addr = s.recvfrom(100)
s.sendto(b"back", addr)
print(addr[0], flush=True)
c, peer = t.accept()
print(peer[0], flush=True)
"""
CLIENT = """
import errno, json, socket, subprocess, sys
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "ping":
    r = subprocess.run(["ping", "-c", "1", "-W", "2", "10.0.2.10"], capture_output=True)
    print(json.dumps("reply" if r.returncode == 0 else "no reply"))
    sys.exit()
if kind == "tcp":
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(("10.0.2.10", port)); print(json.dumps("connected"))
    except OSError as e:
        print(json.dumps(errno.errorcode.get(e.errno, "timeout")))
    sys.exit()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.connect(("10.0.2.10", port)); s.send(b"probe")
try:
    print(json.dumps(s.recv(100).decode()))
except OSError as e:
    print(json.dumps(errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout"))
"""


def linux_fates(net) -> tuple[dict, str]:
    h1, r1, h2 = net
    restore = subprocess.run(["ip", "netns", "exec", r1, "iptables-restore"], input=RULES, capture_output=True,
                             text=True)
    assert restore.returncode == 0, restore.stderr
    fates = {}
    server = subprocess.Popen(["ip", "netns", "exec", h2, sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        for kind, port in PROBES:
            fates[(kind, port)] = json.loads(_sh("ip", "netns", "exec", h1, sys.executable, "-c", CLIENT, kind,
                                                 str(port)))
        fates["seen by h2"], fates["tcp peer seen by h2"] = server.communicate(timeout=10)[0].split()
    finally:
        server.kill()
    ct = _sh("ip", "netns", "exec", r1, "conntrack", "-L") if shutil.which("conntrack") else None
    return fates, ct


def pktflow_fates() -> tuple[dict, str]:
    k = Netstack()
    r1 = k.ip.netns["r1"]
    assert tools.run(r1, "iptables-restore", [RULES], k.now)[0] == 0
    fates = {}
    names = {0: "timeout"}
    listener = k.socket("h2")
    listener.bind("10.0.2.10", 8080)
    listener.listen()
    for kind, port in PROBES:
        srv = None
        if port == 7000:
            srv = k.socket("h2", uapi.SOCK_DGRAM)
            srv.bind("10.0.2.10", 7000)
        if kind == "ping":
            ping = k.socket("h1", uapi.SOCK_DGRAM, uapi.IPPROTO_ICMP)
            ping.connect("10.0.2.10", 0)
            ping.call(ProtoCall.SENDMSG, data=bytes([8, 0, 0, 0, 0, 0, 0, 1]) + b"ping", last=True)
            k.pump()
            fates[(kind, port)] = "reply" if ping.recv() else "no reply"
            continue
        cli = k.socket("h1", uapi.SOCK_DGRAM if kind == "udp" else uapi.SOCK_STREAM)
        if kind == "tcp":
            cli.connect("10.0.2.10", port)
            k.pump()
            err = (cli.errors() or [0])[0]
            child = listener.accept() if port == 8080 else None
            if child is not None:
                fates["tcp peer seen by h2"] = ipv4.ntoa(child.info().raddr)
            fates[(kind, port)] = "connected" if child is not None else errno.errorcode.get(err, names.get(err))
            continue
        cli.connect("10.0.2.10", port)
        cli.call(ProtoCall.SENDMSG, data=b"probe", last=True)
        k.pump()
        if srv is not None:
            [(skb, _)] = list(srv.s.rcvq)
            fates["seen by h2"] = ipv4.ntoa(skb.saddr)
            srv.recv()
            srv.call(ProtoCall.SENDMSG, data=b"back", addr=skb.saddr, port=skb.sport, last=True)
            k.pump()
            fates[(kind, port)] = cli.recv().decode()
            continue
        err = (cli.errors() or [0])[0]
        fates[(kind, port)] = errno.errorcode.get(err, names.get(err))
    return fates, tools.run(r1, "conntrack", ["-L"], k.now)[1]


def _normal(listing: str) -> list[str]:
    """The UDP and ICMP lines of `conntrack -L`, sorted, without what differs by
    nature: timeouts, h1's ephemeral ports, ping ids (TCP's states depend on when
    each side's client closed)."""
    out = []
    for line in listing.splitlines():
        if line.startswith(("udp", "icmp")):
            line = re.sub(r"^(\w+\s+\d+) \d+", r"\1 T", line.strip())
            out.append(re.sub(r"(sport|dport|id)=(?!7000\b)\d+", r"\1=P", line))
    return sorted(out)


def test_the_same_rules_give_the_same_fates_as_linux(linux_net):
    linux, linux_ct = linux_fates(linux_net)
    ours, our_ct = pktflow_fates()
    assert linux["seen by h2"] == "10.0.2.1"                      # the oracle did NAT
    assert ours == linux
    if linux_ct is not None:
        assert len(_normal(our_ct)) == 2 and _normal(linux_ct) == _normal(our_ct)
        assert re.search(r"dport=8080 src=10.0.2.10 dst=10.0.2.1 sport=8080", linux_ct) and \
            re.search(r"dport=8080 src=10.0.2.10 dst=10.0.2.1 sport=8080", our_ct)
