"""Floods through the real services (bench/flood.py, small counts here): a UDP
flood at a socket that never reads, spoofed SYNs, fragments that never
complete, spoofed ARP. Each is dropped with its reason or answered as Linux
answers it, memory stays bounded, the legitimate client gets through, and no
service crashes or logs a traceback."""
import pytest

from conftest import PORT_BASE

pytestmark = pytest.mark.integration

RSS_GROWTH_MB = 60          # per service and flood; the 50,000-frame runs in the README stay far below


def test_floods_are_dropped_with_their_reasons_and_a_legitimate_client_gets_through():
    pytest.importorskip("scapy")
    from bench import flood
    r = flood.run(frames=3000, port_base=PORT_BASE + 1800)
    assert all(r["alive"].values()) and not r["tracebacks"], (r["alive"], r["tracebacks"])
    assert r["udp"]["counters"]["UdpRcvbufErrors"] > 0 and r["udp"]["drops"].get("SOCKET_RCVBUFF")
    assert r["syn"]["counters"]["TcpExtSyncookiesSent"] > 0
    assert r["frag"]["counters"]["IpReasmReqds"] >= 3000
    assert r["arp"]["counters"]["ArpInRequests"] >= 3000 and r["arp"]["r1_neighbours"] <= 1024   # gc_thresh3
    for kind in ("udp", "syn", "frag"):
        assert r[kind]["legit"]["ok"] >= 1, (kind, r[kind]["legit"])
    for kind in flood.FLOODS:
        for service, (before, peak, _after) in r[kind]["rss_kb"].items():
            assert peak - before < RSS_GROWTH_MB * 1024, (kind, service, before, peak)
