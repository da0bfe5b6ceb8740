"""Unit tests of XDP in the NIC core (services/nic/xdp.py, xsk.py) and of iproute2's
part (services/iproute2/iplink_xdp.py): each action, first match wins, the counters,
the attach rules of dev_xdp_attach(), AF_XDP sockets' rings, and that a device
without a program works as before."""
import errno

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from pktflow.services.common import topology
from pktflow.services.common.actions import Drop, Step, Stop, Up
from pktflow.services.iproute2 import iplink_xdp
from pktflow.services.iproute2.iplink_xdp import XdpParseError
from pktflow.services.nic import xdp, xsk
from pktflow.services.nic.netdev import Nic, fcs
from pktflow.services.nic.xdp import XdpError
from pktflow.v1.skb_pb2 import Skb

from conftest import needs_libpcap

H2_MAC, R1_MAC = "02:00:00:00:02:0a", "02:00:00:00:02:01"


@pytest.fixture
def nic():
    return Nic(topology.load())


def dev(nic, netns, ifname="eth0"):
    return next(d for d in nic.devices.values() if d.netns == netns and d.name == ifname)


def udp(dport=9000, payload=b"ping") -> bytes:
    return bytes(Ether(dst=H2_MAC, src=R1_MAC) / IP(src="10.0.1.10", dst="10.0.2.10") /
                 UDP(sport=40000, dport=dport) / payload)


def icmp() -> bytes:
    return bytes(Ether(dst=H2_MAC, src=R1_MAC) / IP(src="10.0.1.10", dst="10.0.2.10") / ICMP())


def attach(nic, netns, ifname, *words, force=False):
    """`ip [-force] -n NETNS link set dev IF WORDS...`, through iproute2's parser."""
    req, rest = iplink_xdp.xdp_parse(list(words), ifname, force,
                                     devices={d.name for d in nic.devices.values() if d.netns == netns})
    assert rest == []
    return xdp.dev_change_xdp(nic, netns, req)


def receive(nic, d, *frames) -> list:
    """Frames arrive at `d` (FCS added, as from a cable); one NET_RX run."""
    for f in frames:
        nic.dma_rx(d, f + fcs(f), Skb(), 7)
    return nic.net_rx_action(0)


def verdict(act) -> str:
    fn = act.fn if isinstance(act.fn, tuple) else (act.fn,)
    return dict(next(s for s in fn if type(s) is Step and s.name == "bpf_prog_run_xdp").attrs)["pktflow.xdp.action"]


def test_without_a_program_the_receive_path_is_unchanged(nic):
    h2 = dev(nic, "h2")
    [up] = receive(nic, h2, udp())
    assert type(up) is Up and up.fn == "netif_receive_skb" and up.skb.data == udp()
    assert h2.stats["rx_packets"] == 1 and "rx_queue_0_xdp_packets" not in h2.stats
    assert dev(nic, "h2").xdp_prog is None and xdp.xdp_state(h2) == {"attached": None, "prog": None}


@needs_libpcap
def test_drop_counts_and_drops_with_reason_xdp_and_the_rest_passes(nic):
    h2 = dev(nic, "h2")
    state = attach(nic, "h2", "eth0", "xdp", "drop", "filter", "udp port 9000")
    assert state["attached"] == "drv" and state["prog"]["id"] == 1 and state["prog"]["name"] == "pktflow_rules"
    out = receive(nic, h2, udp(9000), udp(7000), icmp())
    drop, *ups = out
    assert type(drop) is Drop and drop.reason == "XDP" and verdict(drop) == "XDP_DROP"
    assert [type(a) for a in ups] == [Up, Up] and [verdict(a) for a in ups] == ["XDP_PASS", "XDP_PASS"]
    assert ups[0].fn[1] == "netif_receive_skb"
    s = h2.stats
    assert (s["rx_queue_0_xdp_packets"], s["rx_queue_0_xdp_drops"], s["rx_dropped"], s["rx_packets"]) == (3, 1, 1, 3)
    prog = h2.xdp_prog.describe()
    assert prog["verdicts"]["XDP_DROP"] == 1 and prog["verdicts"]["XDP_PASS"] == 2
    assert prog["rules"][0]["hits"] == 1 and prog["default"]["hits"] == 2
    assert nic.softnet["h2"].processed == 2          # the dropped frame never reached __netif_receive_skb_core()


@needs_libpcap
def test_the_first_rule_that_matches_decides(nic):
    h2 = dev(nic, "h2")
    attach(nic, "h2", "eth0", "xdp", "pass", "filter", "udp port 9000", "drop", "filter", "udp", "drop",
           "filter", "icmp")
    out = receive(nic, h2, udp(9000), udp(53), icmp(), bytes(Ether(src=R1_MAC) / ARP()))
    assert [verdict(a) for a in out if type(a) is Drop] == ["XDP_DROP", "XDP_DROP"]
    assert [verdict(a) for a in out if type(a) is Up] == ["XDP_PASS", "XDP_PASS"]
    rules = h2.xdp_prog.describe()["rules"]
    assert [r["hits"] for r in rules] == [1, 1, 1]
    step = dict(next(a for a in out if type(a) is Up).fn[0].attrs)
    assert step["pktflow.xdp.rule"] == 1 and step["pktflow.xdp.filter"] == "udp port 9000"


def test_tx_goes_back_out_the_same_device_with_the_macs_swapped(nic):
    h2, r1 = dev(nic, "h2"), dev(nic, "r1", "eth1")
    attach(nic, "h2", "eth0", "xdp", "tx")
    [stop] = receive(nic, h2, udp())
    assert type(stop) is Stop and stop.fn[1:] == ("ndo_xdp_xmit",)
    assert nic.on_wire == [(h2, stop.skb)]
    nic.transmit(0, 9)
    [back] = r1.rx_ring
    sent = back.data[:-4]
    assert sent[:6] == bytes.fromhex(R1_MAC.replace(":", "")) and sent[6:12] == bytes.fromhex(H2_MAC.replace(":", ""))
    assert sent[12:len(udp())] == udp()[12:]
    s = h2.stats
    assert (s["rx_queue_0_xdp_tx"], s["tx_queue_0_xdp_tx"], s["tx_packets"]) == (1, 1, 1)


def test_redirect_to_another_device_lands_on_its_cable_past_the_stack(nic):
    r1_0, r1_1, h2 = dev(nic, "r1", "eth0"), dev(nic, "r1", "eth1"), dev(nic, "h2")
    frame = bytes(Ether(dst="02:00:00:00:01:01", src="02:00:00:00:01:0a") / IP(src="10.0.1.10", dst="10.0.2.10") /
                  UDP(dport=9))
    # without a program on the target, its ndo_xdp_xmit() refuses: ENXIO, an exception, a drop
    attach(nic, "r1", "eth0", "xdp", "redirect", "eth1")
    [drop] = receive(nic, r1_0, frame)
    assert type(drop) is Drop and drop.reason == "XDP" and drop.fn[-1].attrs == (("pktflow.xdp.err", "ENXIO"),)
    assert r1_0.xdp_prog.exceptions == 1 and r1_0.stats["rx_queue_0_xdp_redirects"] == 1
    attach(nic, "r1", "eth1", "xdp", "pass")
    [stop] = receive(nic, r1_0, frame)
    assert type(stop) is Stop and stop.fn[1:] == ("xdp_do_redirect", "ndo_xdp_xmit")
    nic.transmit(0, 9)
    [arrived] = h2.rx_ring
    assert arrived.data[:-4] == frame + bytes(60 - len(frame))        # unchanged (padded on the wire)
    assert r1_1.stats["tx_queue_0_xdp_tx"] == 1 and r1_1.stats["tx_packets"] == 1
    # a target that is down: ENETDOWN
    r1_1.up = False
    [drop] = [a for a in receive(nic, r1_0, frame) if a.skb.netns == "r1"]
    assert drop.fn[-1].attrs == (("pktflow.xdp.err", "ENETDOWN"),)


def test_an_xsk_gets_what_the_rules_redirect_and_its_full_ring_drops(nic):
    h2 = dev(nic, "h2")
    attach(nic, "h2", "eth0", "xdp", "redirect", "xsk")
    # nothing bound: bpf_redirect_map()'s fallback, XDP_PASS
    [up] = receive(nic, h2, udp())
    assert type(up) is Up and verdict(up) == "XDP_PASS" and dict(up.fn[0].attrs)["pktflow.xdp.xsk"] == "none bound"
    s = xsk.xsk_bind(nic, "h2", "eth0", 0, xsk.XDP_COPY, "tok", rx_size=2)
    out = receive(nic, h2, udp(payload=b"a"), udp(payload=b"b"), udp(payload=b"c"))
    assert [type(a) for a in out] == [Stop, Stop, Drop]
    assert out[0].fn[1:] == ("xdp_do_redirect", "xsk_rcv")
    assert [f for f, _ in s.take(10)] == [udp(payload=b"a"), udp(payload=b"b")]
    assert s.statistics()["rx_ring_full"] == 1 and nic.xsk_ready == {s: None}
    assert [t for _, t in s.rx] == []
    xsk.xsk_release(nic, s)
    assert nic.xsks == {}


def test_xsk_bind_errors_are_linuxs(nic):
    def err(*a, **kw):
        with pytest.raises(OSError) as e:
            xsk.xsk_bind(nic, *a, **kw)
        return e.value.errno
    assert err("h2", "eth9", 0, 0, "t") == errno.ENODEV
    assert err("h2", "eth0", 1, 0, "t") == errno.EINVAL
    assert err("h2", "eth0", 0, xsk.XDP_ZEROCOPY, "t") == errno.EOPNOTSUPP
    assert err("h2", "eth0", 0, xsk.XDP_ZEROCOPY | xsk.XDP_COPY, "t") == errno.EINVAL
    assert err("h2", "eth0", 0, 0, "t", rx_size=1000) == errno.EINVAL
    xsk.xsk_bind(nic, "h2", "eth0", 0, 0, "t")
    assert err("h2", "eth0", 0, 0, "u") == errno.EBUSY


def test_xsk_send_goes_straight_to_the_driver(nic):
    h2, r1 = dev(nic, "h2"), dev(nic, "r1", "eth1")
    s = xsk.xsk_bind(nic, "h2", "eth0", 0, 0, "t")
    sent, out = xsk.xsk_sendmsg(nic, s, [udp(), b"short", udp()], 0)
    assert sent == 2 and s.statistics()["tx_invalid_descs"] == 1
    assert [a.fn for a in out] == [("xsk_sendmsg", "ndo_start_xmit")] * 2
    assert all(a.skb.trace_flags for a in out)                      # new journeys
    nic.transmit(0, 1)
    assert len(r1.rx_ring) == 2 and h2.stats["tx_packets"] == 2
    h2.up = False
    with pytest.raises(OSError) as e:
        xsk.xsk_sendmsg(nic, s, [udp()], 0)
    assert e.value.errno == errno.ENETDOWN


def test_attach_rules_are_dev_xdp_attachs(nic):
    h2 = dev(nic, "h2")
    attach(nic, "h2", "eth0", "xdp", "pass")
    with pytest.raises(XdpError) as e:
        attach(nic, "h2", "eth0", "xdp", "drop")
    assert (e.value.err, e.value.extack) == (errno.EBUSY, "XDP program already attached")
    with pytest.raises(XdpError) as e:
        attach(nic, "h2", "eth0", "xdpgeneric", "drop", force=True)
    assert e.value.err == errno.EEXIST and "Native and generic" in e.value.extack
    first = h2.xdp_prog.id
    attach(nic, "h2", "eth0", "xdp", "drop", force=True)              # -force replaces
    assert h2.xdp_prog.id == first + 1 and h2.xdp_prog.rules[0].action == xdp.XDP_DROP
    # `xdpgeneric off` targets the generic slot: the native program stays, as in Linux
    assert attach(nic, "h2", "eth0", "xdpgeneric", "off")["attached"] == "drv"
    assert attach(nic, "h2", "eth0", "xdp", "off") == {"attached": None, "prog": None}
    assert attach(nic, "h2", "eth0", "xdp", "off")["attached"] is None          # nothing to detach: fine
    with pytest.raises(XdpError) as e:
        attach(nic, "h2", "eth0", "xdpoffload", "pass")
    assert e.value.err == errno.EOPNOTSUPP
    with pytest.raises(XdpError) as e:
        attach(nic, "h2", "lo", "xdpdrv", "pass")
    assert e.value.extack == "Underlying driver does not support XDP in native mode"
    assert attach(nic, "h2", "lo", "xdp", "pass")["attached"] == "skb"          # no ndo_bpf: generic


def test_the_nic_checks_the_instructions_it_is_given(nic):
    req, _ = iplink_xdp.xdp_parse(["xdp", "drop"], "eth0")
    req.rules[0].insns.add(code=0x06, k=0)
    req.rules[0].insns.add(code=0x06, k=0)
    req.rules[0].insns[0].code = 0xFF                                  # no such opcode
    with pytest.raises(XdpError) as e:
        xdp.dev_change_xdp(nic, "h2", req)
    assert e.value.err == errno.EINVAL and "unknown opcode" in e.value.extack
    req.rules[0].action = 9
    with pytest.raises(XdpError):
        xdp.dev_change_xdp(nic, "h2", req)


@needs_libpcap
def test_generic_xdp_runs_after_gro_and_the_driver_counts_nothing(nic):
    h2, r1 = dev(nic, "h2"), dev(nic, "r1", "eth1")
    attach(nic, "h2", "eth0", "xdpgeneric", "drop", "filter", "icmp", "tx", "filter", "udp port 7")
    drop, up, stop = receive(nic, h2, icmp(), udp(9000), udp(7))
    assert type(drop) is Drop and drop.fn[0] == "netif_receive_skb" and drop.reason == "XDP"
    assert type(up) is Up and verdict(up) == "XDP_PASS"
    assert type(stop) is Stop and stop.fn[-1] == "ndo_start_xmit"
    assert "rx_queue_0_xdp_packets" not in h2.stats and h2.stats["tx_packets"] == 1
    nic.transmit(0, 1)
    assert len(r1.rx_ring) == 1
    assert h2.xdp_generic.describe()["verdicts"]["XDP_TX"] == 1


def test_generic_xdp_on_loopback(nic):
    lo = dev(nic, "h1", "lo")
    attach(nic, "h1", "lo", "xdp", "drop")
    nic.loopback_xmit(lo, Skb(netns="h1", ifindex=lo.ifindex, data=udp()), 0)
    [drop] = nic.net_rx_action(0)
    assert type(drop) is Drop and drop.reason == "XDP"
    attach(nic, "h1", "lo", "xdpgeneric", "off")
    nic.loopback_xmit(lo, Skb(netns="h1", ifindex=lo.ifindex, data=udp()), 0)
    [up] = nic.net_rx_action(0)
    assert type(up) is Up and up.fn == "netif_receive_skb" and nic.xdp_lo == set()


@needs_libpcap
def test_a_gso_packet_reaches_a_native_program_as_frames(nic):
    """virtio-net turns its guest TSO off while XDP is on: the program sees frames."""
    from scapy.layers.inet import TCP
    h2 = dev(nic, "h2")
    attach(nic, "h2", "eth0", "xdp", "drop", "filter", "tcp[13] & 8 != 0")       # PSH: the last segment
    big = bytes(Ether(dst=H2_MAC, src=R1_MAC) / IP(src="10.0.1.10", dst="10.0.2.10") /
                TCP(flags="PA") / bytes(3 * 1000))
    nic.dma_rx(h2, big + fcs(big), Skb(gso_size=1000, gso_segs=3), 7)
    out = nic.net_rx_action(0)
    assert [type(a) for a in out] == [Drop, Stop, Up] and h2.stats["rx_queue_0_xdp_packets"] == 3
    assert out[2].skb.gso_segs == 2                                   # GRO merged the two that passed


def test_aborted_is_an_exception_and_a_drop(nic):
    h2 = dev(nic, "h2")
    attach(nic, "h2", "eth0", "xdp", "aborted")
    [drop] = receive(nic, h2, udp())
    assert type(drop) is Drop and verdict(drop) == "XDP_ABORTED" and h2.xdp_prog.exceptions == 1


# --- iproute2's part: the words and what `ip link show` prints --------------------------------------------------

@needs_libpcap
def test_the_words_become_a_request_and_libpcap_refuses_a_bad_expression():
    req, rest = iplink_xdp.xdp_parse(["xdpgeneric", "redirect", "xsk", "filter", "udp port 9000", "drop", "up"],
                                     "eth0", devices={"eth0"})
    assert rest == ["up"] and req.flags == iplink_xdp.XDP_FLAGS_SKB_MODE | iplink_xdp.XDP_FLAGS_UPDATE_IF_NOEXIST
    assert [(r.action, r.redirect_xsk, r.filter, len(r.insns) > 0) for r in req.rules] == \
        [(4, True, "udp port 9000", True), (1, False, "", False)]
    with pytest.raises(XdpParseError) as e:
        iplink_xdp.xdp_parse(["xdp", "drop", "filter", "udp prot 9"], "eth0")
    assert e.value.status == 255 and "syntax error" in str(e.value) and "udp prot 9" in str(e.value)
    with pytest.raises(XdpParseError) as e:
        iplink_xdp.xdp_parse(["xdp", "redirect", "eth7"], "eth0", devices={"eth0"})
    assert (str(e.value), e.value.status) == ('Cannot find device "eth7"', 1)
    for words in (["xdp"], ["xdp", "redirect"], ["xdp", "drop", "filter"]):
        with pytest.raises(XdpParseError, match="not complete"):
            iplink_xdp.xdp_parse(words, "eth0")
    with pytest.raises(XdpParseError, match="not eBPF objects"):
        iplink_xdp.xdp_parse(["xdp", "object", "prog.o"], "eth0")
    req, rest = iplink_xdp.xdp_parse(["xdp", "off", "mtu", "1400"], "eth0", force=True)
    assert req.detach and req.flags == 0 and rest == ["mtu", "1400"]


def test_ip_link_show_prints_the_attachment_as_iproute2(nic):
    attach(nic, "h2", "eth0", "xdp", "drop", "filter", "", "redirect", "xsk")
    state = xdp.xdp_state(dev(nic, "h2"))
    assert iplink_xdp.mode_word(state) == "xdp "
    [line] = iplink_xdp.prog_lines(state)
    assert line == f"    prog/xdp id 1 name pktflow_rules tag {state['prog']['tag']} jited"
    assert len(state["prog"]["tag"]) == 16
    lines = iplink_xdp.prog_lines(state, details=True)
    assert lines[1:3] == ["        rule 1: drop matched 0", "        rule 2: redirect xsk matched 0"]
    assert iplink_xdp.json_entry(state)["mode"] == 1 and iplink_xdp.mode_word(None) == ""
