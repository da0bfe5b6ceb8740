"""The filter table at r1's hooks, through every core: what a rule drops is
dropped with NETFILTER_DROP and the rule that did it on the span; REJECT answers
as Linux does, so the sender sees the errno Linux gives it (icmp-port-unreachable
and tcp-reset ECONNREFUSED, icmp-host-prohibited EHOSTUNREACH); a namespace
nobody configured has no netfilter at all."""
import errno
import re

import pytest

from pktflow.services.common import uapi
from pktflow.services.common.actions import Step
from pktflow.services.ip.netfilter import tools
from pktflow.services.netstack import Netstack
from pktflow.v1.skb_pb2 import ProtoCall


def r1(k: Netstack, *rules: str):
    for rule in rules:
        assert tools.run(k.ip.netns["r1"], "iptables", rule.split(), k.now) == (0, "", ""), rule


def udp_exchange(k: Netstack, port: int = 7000) -> tuple[bytes, list]:
    srv = k.socket("h2", uapi.SOCK_DGRAM)
    assert srv.bind("10.0.2.10", port) == 0
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    assert cli.connect("10.0.2.10", port) == 0
    cli.call(ProtoCall.SENDMSG, data=b"through r1?", last=True)
    k.pump()
    k.advance(0.01)
    return srv.recv(), cli.errors()


def tcp_connect(k: Netstack, port: int = 80):
    """h1 connects to a listener on h2; (client, accepted child or None)."""
    srv = k.socket("h2")
    srv.bind("10.0.2.10", port)
    srv.listen()
    cli = k.socket("h1")
    cli.connect("10.0.2.10", port)
    return cli, srv.accept()


def test_no_rules_no_netfilter():
    k = Netstack()
    assert udp_exchange(k)[0] == b"through r1?"
    assert all(ns.nf is None for ns in k.ip.netns.values())


def test_a_dropped_packet_says_which_rule_dropped_it():
    k = Netstack()
    r1(k, "-A FORWARD -p udp --dport 7000 -j DROP")
    got, errors = udp_exchange(k)
    assert got == b"" and errors == []                           # DROP: silence
    [(layer, fn, reason, skb)] = [d for d in k.drops if d[3].netns == "r1"]
    step = fn[-1]
    assert reason == "NETFILTER_DROP" and type(step) is Step and step.name == "nf_hook_slow"
    assert dict(step.attrs) == {"netfilter.hook": "FORWARD", "netfilter.table": "filter",
                                "netfilter.chain": "FORWARD", "netfilter.rule": 1, "netfilter.verdict": "DROP"}
    out = tools.run(k.ip.netns["r1"], "iptables", ["-L", "FORWARD", "-v", "-n", "-x"], k.now)[1]
    assert out.splitlines()[2].split()[:2] == ["1", "39"]        # one packet of 39 bytes counted on the rule


# icmp_err_convert[]: net unreachable is not a hard error, so a UDP socket hears of
# it only with IP_RECVERR (__udp4_lib_err()), as on Linux
@pytest.mark.parametrize("kind, errors", [("icmp-port-unreachable", [errno.ECONNREFUSED]),
                                          ("icmp-host-prohibited", [errno.EHOSTUNREACH]),
                                          ("icmp-admin-prohibited", [errno.EHOSTUNREACH]),
                                          ("icmp-net-unreachable", [])])
def test_reject_gives_the_sender_linuxs_errno(kind, errors):
    k = Netstack()
    r1(k, f"-A FORWARD -p udp -j REJECT --reject-with {kind}")
    assert udp_exchange(k) == (b"", errors)


def test_tcp_reset_refuses_a_connect():
    k = Netstack()
    r1(k, "-A FORWARD -p tcp --dport 80 -j REJECT --reject-with tcp-reset")
    srv = k.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen()
    cli = k.socket("h1")
    cli.connect("10.0.2.10", 80)
    k.pump()
    assert errno.ECONNREFUSED in cli.errors() and srv.accept() is None


def test_a_policy_and_the_rules_that_open_it():
    """FORWARD DROP with TCP to port 80 let through both ways: the handshake and
    data pass, UDP does not, and r1's own INPUT is untouched."""
    k = Netstack()
    r1(k, "-P FORWARD DROP", "-A FORWARD -i eth0 -p tcp --dport 80 -j ACCEPT",
       "-A FORWARD -i eth1 -p tcp --sport 80 -j ACCEPT")
    cli, child = tcp_connect(k)
    assert child is not None and cli.send(b"GET /") == 5
    k.pump()
    assert child.recv() == b"GET /"
    assert udp_exchange(k)[0] == b""
    assert any(d[2] == "NETFILTER_DROP" for d in k.drops)


def test_output_and_input_chains_see_the_routers_own_traffic():
    k = Netstack()
    r1(k, "-A INPUT -p icmp -j DROP")
    ping = k.socket("h1", uapi.SOCK_DGRAM, proto=1)
    assert ping.connect("10.0.1.1", 0) == 0
    ping.call(ProtoCall.SENDMSG, data=bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"ping", last=True)
    k.pump()
    drops = [d for d in k.drops if d[3].netns == "r1"]
    assert [d[2] for d in drops] == ["NETFILTER_DROP"] and dict(drops[0][1][-1].attrs)["netfilter.hook"] == "INPUT"
    k = Netstack()
    r1(k, "-A OUTPUT -p icmp -j DROP")                         # r1's echo reply goes nowhere
    ping = k.socket("h1", uapi.SOCK_DGRAM, proto=1)
    ping.connect("10.0.1.1", 0)
    ping.call(ProtoCall.SENDMSG, data=bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"ping", last=True)
    k.pump()
    drops = [d for d in k.drops if d[3].netns == "r1"]
    assert [dict(d[1][-1].attrs)["netfilter.hook"] for d in drops] == ["OUTPUT"]


STATEFUL = ("-P FORWARD DROP", "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A FORWARD -i eth0 -m conntrack --ctstate NEW -j ACCEPT")


def conntrack(k: Netstack, *args: str) -> str:
    return tools.run(k.ip.netns["r1"], "conntrack", list(args) or ["-L"], k.now)[1]


def test_a_stateful_firewall_lets_replies_in_and_nothing_else():
    """r1 lets h1's side open connections and their replies (and related ICMP)
    through, nothing new from h2's side; conntrack -L shows the connection."""
    k = Netstack()
    r1(k, *STATEFUL)
    cli, child = tcp_connect(k)
    assert child is not None and cli.send(b"hello") == 5 and child.send(b"world") == 5
    k.pump()
    assert child.recv() == b"hello" and cli.recv() == b"world"
    [line] = conntrack(k).splitlines()
    assert re.fullmatch(r"tcp      6 43\d{4} ESTABLISHED src=10.0.1.10 dst=10.0.2.10 sport=(\d+) dport=80 "
                        r"src=10.0.2.10 dst=10.0.1.10 sport=80 dport=\1 \[ASSURED\] mark=0 use=1", line), line
    back = k.socket("h1")                          # h2's side may not open a connection to h1
    back.bind("10.0.1.10", 81)
    back.listen()
    rev = k.socket("h2")
    rev.connect("10.0.1.10", 81)
    k.pump()
    assert back.accept() is None and conntrack(k, "-C") == "1\n"     # the dropped SYN left no entry


def test_related_icmp_errors_come_back_and_only_with_related():
    k = Netstack()
    r1(k, *STATEFUL)
    assert udp_exchange(k, port=7100)[0] == b"through r1?"           # new from h1's side: through
    k = Netstack()
    r1(k, *STATEFUL)
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    assert cli.connect("10.0.2.10", 9) == 0                           # nobody on h2's port 9
    cli.call(ProtoCall.SENDMSG, data=b"x", last=True)
    k.pump()
    assert cli.errors() == [errno.ECONNREFUSED]                       # the ICMP error is RELATED
    k = Netstack()
    r1(k, "-P FORWARD DROP", "-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
       "-A FORWARD -i eth0 -m state --state NEW -j ACCEPT")
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", 9)
    cli.call(ProtoCall.SENDMSG, data=b"x", last=True)
    k.pump()
    assert cli.errors() == []                                         # without RELATED it is dropped
    assert any(d[2] == "NETFILTER_DROP" and d[3].netns == "r1" for d in k.drops)


def dmz() -> Netstack:
    from pathlib import Path

    from pktflow.services.common import topology
    return Netstack(topology.load(str(Path(__file__).parents[2] / "examples" / "topologies" / "dmz.yaml")))


def connects(k: Netstack, src: str, dst: str, port: int) -> bool | int:
    """True when `src` gets a connection to a listener at `dst`:port, else the errno it saw."""
    srv = k.socket(_owner(k, dst))
    srv.bind(dst, port)
    srv.listen()
    cli = k.socket(src)
    cli.connect(dst, port)
    k.pump()
    return srv.accept() is not None or (cli.errors() or [0])[0]


def _owner(k: Netstack, addr: str) -> str:
    from pktflow.services.wire import ipv4
    return next(name for name, ns in k.ip.netns.items() if ipv4.aton(addr) in ns.ifaddrs)


def test_the_dmz_example_topology_is_a_working_firewall():
    """examples/topologies/dmz.yaml: the rules in the topology file, loaded at start."""
    k = dmz()
    assert connects(k, "h2", "10.0.3.80", 80) is True              # the outside reaches the web server
    assert connects(k, "h1", "10.0.2.10", 80) is True              # the LAN goes anywhere
    assert connects(k, "h1", "10.0.3.80", 22) is True
    assert connects(k, "h2", "10.0.3.80", 22) == errno.ECONNREFUSED   # tcp-reset
    assert connects(k, "h2", "10.0.1.10", 80) == errno.ECONNREFUSED   # nothing else in from outside
    assert connects(k, "web", "10.0.1.10", 80) == errno.ECONNREFUSED  # the DMZ opens nothing
    listing = tools.run(k.ip.netns["r1"], "conntrack", ["-L"], k.now)[1]
    assert listing.count("[ASSURED]") == 3
