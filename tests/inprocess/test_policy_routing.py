"""Policy routing through every core: iptables' MARK in mangle PREROUTING sets
the fwmark an `ip rule` selects a table by, so r1 routes one port's packets
differently from the rest; and routes added, replaced and deleted at run time
take effect on the next packet (the FIB generation drops cached routes)."""
import errno

from pktflow.services.common import uapi
from pktflow.services.ip import iproute
from pktflow.services.ip.netfilter import tools
from pktflow.services.netstack import Netstack
from pktflow.v1.skb_pb2 import ProtoCall


def run(k, host, fn, *words):
    status, out, err = fn(k.ip.netns[host], list(words))
    assert status == 0, err
    return out


def send(k, port: int) -> tuple[bytes, list]:
    srv = k.socket("h2", uapi.SOCK_DGRAM)
    srv.bind("10.0.2.10", port)
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", port)
    cli.call(ProtoCall.SENDMSG, data=b"which way?", last=True)
    k.pump()
    return srv.recv(), cli.errors()


def test_a_mark_set_by_iptables_selects_the_routing_table():
    k = Netstack()
    r1 = k.ip.netns["r1"]
    assert tools.run(r1, "iptables", "-t mangle -A PREROUTING -p udp --dport 7001 -j MARK --set-mark 1".split(),
                     k.now)[0] == 0
    run(k, "r1", iproute.ip_route, "add", "prohibit", "10.0.2.0/24", "table", "100")
    run(k, "r1", iproute.ip_rule, "add", "fwmark", "1", "lookup", "100")
    assert send(k, 7000) == (b"which way?", [])                           # unmarked: main
    assert send(k, 7001) == (b"", [errno.EHOSTUNREACH])                   # marked: table 100 prohibits
    run(k, "r1", iproute.ip_rule, "del", "fwmark", "1", "lookup", "100")
    assert send(k, 7002)[0] == b"which way?"


def test_routes_changed_at_run_time_take_effect_at_once():
    k = Netstack()
    assert send(k, 7100)[0] == b"which way?"
    run(k, "r1", iproute.ip_route, "add", "blackhole", "10.0.2.10/32")
    assert send(k, 7101) == (b"", [])                                     # a blackhole: silence
    run(k, "r1", iproute.ip_route, "replace", "unreachable", "10.0.2.10/32")
    # host unreachable: sent, but not a hard error for UDP (icmp_err_convert[]), as on Linux
    assert send(k, 7102) == (b"", []) and k.ip.netns["r1"].mib["IcmpOutDestUnreachs"] == 1
    run(k, "r1", iproute.ip_route, "del", "10.0.2.10/32")
    assert send(k, 7103)[0] == b"which way?"
