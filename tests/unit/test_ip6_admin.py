"""`pktflow ip -6 route|addr`, `pktflow nstat`'s IPv6 tables and `sysctl
net.ipv6.conf.*` through the ip layer's shell, without services: the CLI's
calls answered by the shells here (the link layer's by a stand-in)."""
import io
import json
import re
from contextlib import redirect_stdout

import pytest
from ip6_frames import A6, frames, rcv

from pktflow.services.common import topology
from pktflow.services.ip.server import IpShell
from pktflow import cli
from pktflow.v1 import admin_pb2

DATA = __import__("pathlib").Path(__file__).parent.parent / "data" / "ip6"


@pytest.fixture
def shell(monkeypatch):
    sh = IpShell(topology.load())
    link = {"counters": [], "addrs6": {}}

    def query(layer, netns, command, *args, **typed):
        if layer == "ip":
            return sh.admin(admin_pb2.AdminRequest(layer=layer, netns=netns, command=command, args=list(args)))
        if command == "counters" and layer == "link":
            return admin_pb2.AdminReply(counters=[admin_pb2.Counter(name=k, value=v) for k, v in link["counters"]])
        if command == "addrs6":
            link.setdefault("set", []).append(list(args))
            return admin_pb2.AdminReply(json=json.dumps(link["addrs6"]))
        return admin_pb2.AdminReply()
    monkeypatch.setattr(cli._client, "query", query)
    monkeypatch.setattr(cli._client, "admin", query)
    sh.link = link
    return sh


def run(*argv) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(list(argv)) == 0
    return out.getvalue()


@pytest.mark.parametrize("host", ["h1", "h2"])
def test_ip6_addr_and_route_print_what_linux_printed(shell, host):
    recorded = re.sub(r"@if\d+:", ":", (DATA / f"{host}.ip-6-addr.txt").read_text())   # (a veth's peer)
    assert run("ip", "-6", "addr", "-n", host) == recorded
    recorded = (DATA / f"{host}.ip-6-route-show-table-all.txt").read_text().splitlines()
    assert run("ip", "-6", "route", "-n", host).splitlines() == [ln for ln in recorded if " table " not in ln]
    assert run("ip", "-n", host, "-6", "route", "show", "table", "all").splitlines() == recorded


def test_ip6_addr_shows_dad_state_from_the_link_layer(shell):
    shell.link["addrs6"] = {"eth0": [{"addr": "2001:db8:1::10", "plen": 64, "flags": ["tentative"]}]}
    assert "    inet6 2001:db8:1::10/64 scope global tentative \n" in run("ip", "-6", "addr", "-n", "h1")


def test_ip6_addr_add_del_and_routes_follow(shell):
    run("ip", "-6", "-n", "h1", "addr", "add", "2001:db8:9::1/64", "dev", "eth0")
    assert shell.link["set"][-1] == ["eth0", "fe80::ff:fe00:10a/64", "2001:db8:1::10/64", "2001:db8:9::1/64"]
    assert "2001:db8:9::/64 dev eth0 proto kernel metric 256 pref medium" in run("ip", "-6", "route", "-n", "h1")
    assert run("ip", "-6", "route", "get", "2001:db8:9::5", "-n", "h1") == \
        "2001:db8:9::5 from :: dev eth0 proto kernel src 2001:db8:9::1 metric 256 pref medium\n"
    run("ip", "-6", "-n", "h1", "addr", "del", "2001:db8:9::1/64", "dev", "eth0")
    assert "2001:db8:9::" not in run("ip", "-6", "route", "-n", "h1")


def test_ip6_route_add_and_refusals(shell, capsys):
    assert cli.main(["ip", "-6", "-n", "h1", "route", "add", "2001:db8:7::/48", "via", "2001:db8:1::2"]) == 0
    shown = run("ip", "-6", "route", "-n", "h1")
    assert "2001:db8:7::/48 via 2001:db8:1::2 dev eth0 metric 1024 pref medium\n" in shown
    assert cli.main(["ip", "-6", "-n", "h1", "route", "add", "2001:db8:7::/48", "via", "2001:db8:1::2"]) == 2
    assert cli.main(["ip", "-6", "-n", "h1", "route", "add", "2001:db8:8::/48", "via", "2001:db8:1::10"]) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == ["RTNETLINK answers: File exists",
                                                         "Error: Gateway can not be a local address."]
    assert cli.main(["ip", "-6", "-n", "h1", "route", "del", "2001:db8:7::/48"]) == 0
    assert cli.main(["ip", "-6", "-n", "h1", "route", "get", "2001:db8:7::1"]) == 0
    assert cli.main(["ip", "-6", "-n", "r1", "route", "get", "2001:db8:7::1"]) == 2
    assert capsys.readouterr().err.endswith("RTNETLINK answers: Network is unreachable\n")


def test_nstat_ip6_and_icmp6_after_snmp_in_kernel_order(shell):
    ip = shell.ip
    rcv(ip, "h2", "eth0", frames("ipv6-echo.h2")[2])
    shell.link["counters"] = [("Icmp6OutMsgs", 2), ("Icmp6OutType135", 1), ("Icmp6OutType136", 1),
                              ("Icmp6OutNeighborSolicits", 1), ("Icmp6InMsgs", 1), ("Icmp6InType136", 1),
                              ("Ip6OutRequests", 2)]
    rows = [line.split()[:2] for line in run("nstat", "-n", "h2").splitlines()[1:]]
    names = [n for n, _ in rows]
    assert names == ["Ip6InReceives", "Ip6InDelivers", "Ip6OutRequests", "Ip6InOctets", "Ip6OutOctets",
                     "Ip6InNoECTPkts", "Ip6OutTransmits", "Icmp6InMsgs", "Icmp6OutMsgs", "Icmp6InEchos",
                     "Icmp6InNeighborAdvertisements", "Icmp6OutEchoReplies", "Icmp6OutNeighborSolicits",
                     "Icmp6OutNeighborAdvertisements", "Icmp6InType128", "Icmp6InType136", "Icmp6OutType129",
                     "Icmp6OutType135", "Icmp6OutType136"]
    got = dict(rows)
    assert (got["Icmp6InMsgs"], got["Icmp6OutMsgs"], got["Ip6OutRequests"]) == ("2", "3", "3")


def test_sysctl_reads_the_devconf_and_writes_propagate(shell):
    def sysctl(*args):
        return json.loads(shell.admin(admin_pb2.AdminRequest(layer="ip", netns="r1", command="sysctl",
                                                             args=list(args))).json)
    assert sysctl("-n", "net.ipv6.conf.eth1.forwarding")["out"] == "1\n"       # all.forwarding=1 from the file
    assert sysctl("net.ipv6.conf.lo.mtu")["out"] == "net.ipv6.conf.lo.mtu = 65536\n"
    assert sysctl("-w", "net.ipv6.conf.all.forwarding=0")["status"] == 0
    assert sysctl("-n", "net.ipv6.conf.eth0.forwarding", "net.ipv6.conf.default.forwarding")["out"] == "0\n0\n"
    assert not shell.ip.netns["r1"].v6.forwarding
    assert sysctl("-w", "net.ipv6.conf.eth1.mtu=1400")["status"] == 0
    assert shell.ip.route_output6("r1", A6("2001:db8:2::10")).mtu == 1400
    assert sysctl("-w", "net.ipv6.conf.eth1.mtu=9000")["status"] == 0            # above the device's: its MTU
    assert sysctl("-n", "net.ipv6.conf.eth1.mtu")["out"] == "1500\n"
    assert sysctl("-w", "net.ipv6.conf.eth1.disable_ipv6=1")["status"] == 0
    assert shell.ip.route_output6("r1", A6("2001:db8:2::10")).err == 101        # ENETUNREACH


def test_route_output_rpc_and_span_attributes(shell):
    import asyncio
    from pktflow.v1.layers_pb2 import RouteRequest
    from pktflow.v1.skb_pb2 import Skb
    reply = asyncio.run(shell.RouteOutput(RouteRequest(netns="h1", daddr6=A6("2001:db8:2::10").to_bytes(16, "big")),
                                          None))
    assert (reply.err, reply.oif, reply.saddr6) == (0, 2, A6("2001:db8:1::10").to_bytes(16, "big"))
    assert asyncio.run(shell.RouteOutput(RouteRequest(netns="h1", daddr=0x0A00020A), None)).oif == 2     # IPv4 still
    pkt = frames("ipv6-echo.h2")[2]
    attrs = shell.span_attrs(Skb(data=pkt, network_header=14))
    assert b"ipv6" in attrs and b"2001:db8:1::10" in attrs and b"ipv6-icmp" in attrs
