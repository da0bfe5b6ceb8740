"""Smaller departures from Linux 6.x, fixed: option sysctls, listen queues,
RFC 6528 ISNs, TCP_INFO, the initial window however a write arrives.
In-process (tests/kernel.py Network: every host's cores, a fake clock)."""
import errno

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from kernel import Network
from pktflow.services.transport import tcp as T


def segments(net, netns=None):
    return [p for p in (Ether(f) for ns, _i, f in net.frames if netns is None or ns == netns) if TCP in p]


def pair(net, port=80, backlog=128):
    srv = net.socket("h2")
    assert srv.bind("10.0.2.10", port) == 0 and srv.listen(backlog) == 0
    cli = net.socket("h1")
    assert cli.connect("10.0.2.10", port) == errno.EINPROGRESS
    child = srv.accept()
    assert child is not None and cli.states() == [T.ESTABLISHED]
    return srv, cli, child


# -- net.ipv4.tcp_timestamps, tcp_sack, tcp_window_scaling -------------------
def test_timestamps_off_the_syn_offers_none_and_none_are_used():
    net = Network()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_timestamps"] = 0
    _srv, cli, child = pair(net)
    syn, synack = segments(net, "h1")[0], segments(net, "h2")[0]
    assert [k for k, _ in syn[TCP].options] == ["MSS", "NOP", "NOP", "SAckOK", "NOP", "WScale"]
    assert "Timestamp" not in dict(synack[TCP].options) and "SAckOK" in dict(synack[TCP].options)
    assert not cli.info().ts_ok and not child.info().ts_ok and cli.info().sack_ok
    assert cli.info().mss_cache == 1460


def test_sack_off_at_the_listener_its_synack_does_not_accept_it():
    net = Network()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_sack"] = 0
    _srv, cli, child = pair(net)
    syn, synack = segments(net, "h1")[0], segments(net, "h2")[0]
    assert "SAckOK" in dict(syn[TCP].options)
    assert [k for k, _ in synack[TCP].options] == ["MSS", "NOP", "NOP", "Timestamp", "NOP", "WScale"]
    assert not cli.info().sack_ok and not child.info().sack_ok and cli.info().ts_ok


def test_sack_and_window_scaling_off_the_syn_offers_neither():
    net = Network()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_sack"] = 0
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_window_scaling"] = 0
    _srv, cli, child = pair(net)
    syn = segments(net, "h1")[0]
    assert [k for k, _ in syn[TCP].options] == ["MSS", "NOP", "NOP", "Timestamp"]
    assert not cli.info().wscale_ok and not child.info().wscale_ok and not child.info().sack_ok
