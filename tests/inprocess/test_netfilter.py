"""The filter table at r1's hooks, through every core: what a rule drops is
dropped with NETFILTER_DROP and the rule that did it on the span; REJECT answers
as Linux does, so the sender sees the errno Linux gives it (icmp-port-unreachable
and tcp-reset ECONNREFUSED, icmp-host-prohibited EHOSTUNREACH); a namespace
nobody configured has no netfilter at all."""
import errno

import pytest

from pktflow.services.common import uapi
from pktflow.services.common.actions import Step
from pktflow.services.ip.netfilter import tools
from pktflow.services.netstack import Netstack
from pktflow.v1.skb_pb2 import ProtoCall


def r1(k: Netstack, *rules: str):
    for rule in rules:
        assert tools.run(k.ip.netns["r1"], "iptables", rule.split()) == (0, "", ""), rule


def udp_exchange(k: Netstack, port: int = 7000) -> tuple[bytes, list]:
    srv = k.socket("h2", uapi.SOCK_DGRAM)
    assert srv.bind("10.0.2.10", port) == 0
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    assert cli.connect("10.0.2.10", port) == 0
    cli.call(ProtoCall.SENDMSG, data=b"through r1?", last=True)
    k.pump()
    k.advance(0.01)
    return srv.recv(), cli.errors()


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
    out = tools.run(k.ip.netns["r1"], "iptables", ["-L", "FORWARD", "-v", "-n", "-x"])[1]
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
    srv = k.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen()
    cli = k.socket("h1")
    cli.connect("10.0.2.10", 80)
    child = srv.accept()
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
