"""Reverse-path filtering at r1 (fib_validate_source()): a packet whose source
would not be routed back out of the interface it came in on is dropped with
strict rp_filter (1), one with no route back at all with loose (2) too, as
Linux does; IP_RPFILTER, counted as TcpExtIPReversePathFilter. The effective
value is the larger of conf.all and the interface's own."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pktflow.services.common import topology
from pktflow.services.netstack import Netstack

R1_ETH0, H1 = "02:00:00:00:01:01", "02:00:00:00:01:0a"


def r1_with(**sysctls) -> Netstack:
    topo = topology.load()
    topo.hosts["r1"].sysctls.update({f"net.ipv4.conf.{k}.rp_filter": v for k, v in sysctls.items()})
    k = Netstack(topo)
    k.learn("r1", "eth1", "10.0.2.10", "02:00:00:00:02:0a")
    return k


def send(k: Netstack, src: str, dst: str = "10.0.2.10") -> str:
    """From h1's segment into r1's eth0: 'forwarded', 'delivered' or the drop reason."""
    frame = Ether(dst=R1_ETH0, src=H1) / IP(src=src, dst=dst, ttl=9) / UDP(sport=4, dport=9) / b"x"
    k.receive("r1", "eth0", bytes(frame))
    k.pump()
    if any(ns == "r1" and IP in Ether(f) and Ether(f)[IP].src == src for ns, _, f in k.frames):
        return "forwarded"
    at_r1 = [reason for layer, fn, reason, skb in k.drops if skb.netns == "r1"]
    if at_r1 and at_r1[0] != "NO_SOCKET":              # UDP to r1's port 9: delivered, and no one listens
        return at_r1[0]
    return "delivered"


# (all, eth0) -> what happens to a source that routes back via eth1, and to one with no route back
@pytest.mark.parametrize("conf, other_side, nowhere", [
    ({}, "forwarded", "forwarded"),
    ({"all": 1}, "IP_RPFILTER", "IP_RPFILTER"),
    ({"eth0": 1}, "IP_RPFILTER", "IP_RPFILTER"),
    ({"all": 2}, "forwarded", "IP_RPFILTER"),
    ({"eth0": 2}, "forwarded", "IP_RPFILTER"),
    ({"all": 2, "eth0": 1}, "forwarded", "IP_RPFILTER"),     # the max: loose wins over strict
    ({"all": 1, "eth0": 0}, "IP_RPFILTER", "IP_RPFILTER"),   # an interface cannot turn all's off
    ({"eth1": 1}, "forwarded", "forwarded"),                 # the receiving interface's value counts
])
def test_rp_filter_strict_loose_and_the_max_of_all_and_the_interface(conf, other_side, nowhere):
    k = r1_with(**conf)
    assert send(k, "10.0.2.99") == other_side                # h2's subnet, arriving from h1's side
    k = r1_with(**conf)
    assert send(k, "192.0.2.1") == nowhere                   # r1 has no route back at all
    k = r1_with(**conf)
    assert send(k, "10.0.1.10") == "forwarded"               # the honest source always passes


def test_a_spoofed_packet_to_the_router_itself_is_filtered_and_counted():
    k = r1_with(all=1)
    assert send(k, "10.0.2.99", dst="10.0.1.1") == "IP_RPFILTER"
    assert k.counters("r1")["TcpExtIPReversePathFilter"] == 1
    k = r1_with()
    assert send(k, "10.0.2.99", dst="10.0.1.1") == "delivered"
    assert k.counters("r1")["TcpExtIPReversePathFilter"] == 0


def test_sysctl_w_at_run_time_turns_the_filter_and_forwarding_on_and_off():
    """`pktflow sysctl -n r1 -w ...` as the ip layer's admin runs it: the next
    packet sees the new value, as on Linux."""
    from pktflow.services.common.sysctl import sysctl_tool
    k = r1_with()
    r1 = k.ip.netns["r1"]

    def sysctl(*words):
        status, out, err, written = sysctl_tool(r1.sysctl, set(r1.by_name), ["-w", *words])
        assert status == 0, err
        r1.sysctl_written(written)
    assert send(k, "10.0.2.99") == "forwarded"
    sysctl("net.ipv4.conf.all.rp_filter=1")
    assert send(k, "10.0.2.98") == "IP_RPFILTER"
    sysctl("net.ipv4.conf.all.rp_filter=0")
    assert send(k, "10.0.2.97") == "forwarded"
    k.drops.clear()
    sysctl("net.ipv4.ip_forward=0")
    assert not r1.forwarding and send(k, "10.0.1.10") == "IP_INADDRERRORS"
    sysctl("net.ipv4.ip_forward=1")
    assert send(k, "10.0.1.11") == "forwarded"


def test_log_martians_writes_the_kernels_warning_to_dmesg():
    """conf.all.log_martians: a source the reverse-path filter refuses, as
    ip_handle_martian_source() logs it (daddr first, then the frame's link-layer
    header as print_hex_dump() writes it), rate limited as net_ratelimit()."""
    from pktflow.services.ip.netfilter.nf_log import dmesg
    k = r1_with(all=1)
    k.ip.netns["r1"].sysctl["net.ipv4.conf.all.log_martians"] = 1
    for _ in range(12):
        assert send(k, "10.0.2.99") == "IP_RPFILTER"
    lines = [line.split("] ", 1)[1] for line in dmesg(k.ip.netns["r1"].dmesg, [])[1].splitlines()]
    assert lines[:2] == ["martian source 10.0.2.10 from 10.0.2.99, on dev eth0",
                         "ll header: 00000000: 02 00 00 00 01 01 02 00 00 00 01 0a 08 00"]
    assert len(lines) == 20                                   # 10 warnings in 5 s, then quiet
