"""Every packet's journey is one trace across layers and hosts, spans named
after the kernel functions, drops ending a span with their reason."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pktflow
from conftest import eventually
from pktflow import tracequery as tq

pytestmark = pytest.mark.integration

# (layer, host, span) from the application's send to the application's receive
UDP_JOURNEY = [
    ("socket", "h1", "sock_sendmsg"), ("transport", "h1", "udp_sendmsg"), ("ip", "h1", "ip_queue_xmit"),
    ("link", "h1", "dev_queue_xmit"), ("nic", "h1", "ndo_start_xmit"),
    ("nic", "r1", "netif_receive_skb"), ("link", "r1", "__netif_receive_skb_core"), ("ip", "r1", "ip_rcv"),
    ("ip", "r1", "ip_forward"), ("ip", "r1", "ip_output"), ("link", "r1", "dev_queue_xmit"),
    ("nic", "r1", "ndo_start_xmit"),
    ("nic", "h2", "netif_receive_skb"), ("link", "h2", "__netif_receive_skb_core"), ("ip", "h2", "ip_rcv"),
    ("ip", "h2", "ip_local_deliver"), ("transport", "h2", "udp_rcv"), ("socket", "h2", "sock_queue_rcv_skb"),
    ("socket", "h2", "skb_recv_datagram"),
]


def complete(traces, n: int):
    """The first trace with all its n spans in the store (each layer exports on its own clock)."""
    for tr in traces:
        if len(tr["spans"]) >= n:
            return tr


def journey_of(payload_port: int):
    """The trace whose udp_rcv span carries this destination port."""
    return eventually(lambda: complete(tq.find(service="transport", operation="udp_rcv",
                                               tags={"destination.port": payload_port}), len(UDP_JOURNEY)),
                      timeout=15, interval=0.2)


def test_udp_datagram_is_one_trace_through_every_layer(stack):
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as cli:
        srv.bind(("10.0.2.10", 41000))
        srv.settimeout(5)
        pktflow.ping("10.0.2.10", netns="h1")         # ARP resolved, so the datagram's trace is the plain path
        cli.sendto(b"hello", ("10.0.2.10", 41000))
        srv.recvfrom(100)
    tr = journey_of(41000)
    spans = tq.journey(tr)
    # one chain: every span is the child of the one before
    assert [(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"]) for s in spans] == UDP_JOURNEY
    assert all(s["depth"] == i for i, s in enumerate(spans))
    assert sorted({p["serviceName"] for p in tr["processes"].values()}) == ["ip", "link", "nic", "socket", "transport"]
    fwd = next(s for s in spans if s["operationName"] == "ip_forward")
    assert tq.tag(fwd, "source.address") == "10.0.1.10" and tq.tag(fwd, "destination.address") == "10.0.2.10"
    assert tq.tag(fwd, "network.transport") == "udp" and tq.tag(fwd, "pktflow.ip.ttl") == 63   # as it left
    rcv = next(s for s in spans if s["operationName"] == "udp_rcv")
    assert tq.tag(rcv, "destination.port") == 41000
    starts = [s["startTime"] for s in spans]
    assert starts == sorted(starts)


def test_fragments_have_their_own_hops_and_the_datagram_links_to_them(stack):
    """A 3,000-byte datagram leaves h1 as three fragments (one journey branching
    at ip_queue_xmit); h2 reassembles it in ip_defrag, whose span links to the
    two fragments that came before the last."""
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as cli:
        srv.bind(("10.0.2.10", 41002))
        srv.settimeout(5)
        pktflow.ping("10.0.2.10", netns="h1")
        cli.sendto(b"f" * 3000, ("10.0.2.10", 41002))
        assert len(srv.recvfrom(4000)[0]) == 3000
    def whole(t):           # every layer has exported its spans (each on its own clock)
        ops = [s["operationName"] for s in t["spans"]]
        return ops.count("ndo_start_xmit") == 6 and ops.count("ip_forward") == 3 and "ip_defrag" in ops \
            and "ip_queue_xmit" in ops and "skb_recv_datagram" in ops
    tr = eventually(lambda: next((t for t in tq.find(service="transport", operation="udp_rcv",
                                                      tags={"destination.port": 41002}) if whole(t)), None),
                    timeout=15, interval=0.2)
    spans = tq.journey(tr)
    names = [(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"]) for s in spans]
    assert names.count(("nic", "h1", "ndo_start_xmit")) == 3 and names.count(("ip", "r1", "ip_forward")) == 3
    [defrag] = [s for s in spans if s["operationName"] == "ip_defrag"]
    links = [r for r in defrag.get("references", ()) if r["refType"] == "FOLLOWS_FROM"]
    by_id = {s["spanID"]: s for s in spans}
    assert len(links) == 2
    assert {by_id[r["spanID"]]["operationName"] for r in links} == {"ip_local_deliver"}   # where each waited
    chain, s = [], defrag
    while s is not None:
        chain.append(s["operationName"])
        s = next((c for c in spans if any(r["refType"] == "CHILD_OF" and r["spanID"] == s["spanID"]
                                          for r in c.get("references", ()))), None)
    assert chain == ["ip_defrag", "ip_local_deliver_finish", "udp_rcv", "sock_queue_rcv_skb", "skb_recv_datagram"]
    parent = next(r["spanID"] for r in defrag["references"] if r["refType"] == "CHILD_OF")
    assert by_id[parent]["operationName"] == "ip_local_deliver"           # the last fragment's hop


@pytest.mark.malformed
def test_drop_ends_the_span_with_the_kernel_reason(stack):
    with pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns="h1") as raw:
        raw.bind(("eth0", 0))
        raw.send(bytes(Ether(dst="02:00:00:00:01:01", src="02:00:00:00:01:0a") /
                       IP(src="10.0.1.10", dst="10.0.2.10", chksum=0x4242) / UDP(sport=1, dport=41001)))

    def crafted():
        """This test's frame's journey (netem's corruption in other tests drops frames with IP_CSUM too)."""
        for tr in tq.find(service="ip", operation="ip_rcv", tags={"pktflow.drop_reason": "IP_CSUM"}):
            if len(tr["spans"]) >= 6 and tq.journey(tr)[0]["operationName"] == "packet_sendmsg":
                return tr
    tr = eventually(crafted, timeout=15, interval=0.2)
    # (a capture another test left open on h1 would add its copy, dev_queue_xmit_nit, as a branch)
    spans = [s for s in tq.journey(tr) if s["operationName"] != "dev_queue_xmit_nit"]
    assert [(s["service"], s["operationName"]) for s in spans] == [
        ("socket", "packet_sendmsg"), ("link", "dev_queue_xmit"), ("nic", "ndo_start_xmit"),
        ("nic", "netif_receive_skb"), ("link", "__netif_receive_skb_core"), ("ip", "ip_rcv")]
    last = spans[-1]
    assert tq.tag(last, "pktflow.netns") == "r1"
    assert tq.tag(last, "error") is True and tq.tag(last, "otel.status_code") == "ERROR"
    assert [f["value"] for f in last["logs"][0]["fields"]] == ["kfree_skb", "IP_CSUM"]


def test_packets_a_layer_creates_link_to_their_cause(stack):
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as cli:
        cli.sendto(b"x", ("10.0.2.10", 41002))       # closed port: h2 answers with ICMP

    def find():
        for tr in tq.find(service="ip", operation="icmp_send"):
            spans = tq.journey(tr)
            if spans[0]["operationName"] == "icmp_send" and any(
                    tq.tag(s, "destination.port") == 41002 for s in
                    tq.journey(tq.trace(spans[0]["references"][0]["traceID"]) or {"spans": [], "processes": {}})):
                return tr
    tr = eventually(find, timeout=15, interval=0.3)
    first = tq.journey(tr)[0]
    assert first["references"][0]["refType"] == "FOLLOWS_FROM"
    assert tq.tag(first, "pktflow.netns") == "h2"


def test_query_api_lists_the_layers_and_operations(stack):
    pktflow.ping("10.0.2.10", netns="h1")
    eventually(lambda: set(tq.services()) >= {"socket", "transport", "ip", "link", "nic"}, timeout=15)
    import json
    import urllib.request
    with urllib.request.urlopen(f"{stack.query_url}/api/services/ip/operations") as r:
        ops = json.load(r)["data"]
    assert "ip_rcv" in ops and "ip_forward" in ops


@pytest.mark.impaired
def test_tcp_segments_acks_and_retransmissions_are_linked_journeys(stack):
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
    srv.bind(("10.0.2.10", 41100))
    srv.listen(1)
    cli = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1")
    cli.settimeout(10)
    cli.connect(("10.0.2.10", 41100))
    conn, _ = srv.accept()
    conn.settimeout(10)
    cli.setsockopt(pktflow.IPPROTO_TCP, pktflow.TCP_NODELAY, 1)
    cli.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL, 1)       # the router will drop it: TTL exceeded
    cli.send(b"lost once")
    cli.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL, 64)      # the tail loss probe gets through
    assert conn.recv(100) == b"lost once"
    cli.close()
    conn.close()
    srv.close()

    def delivered_retransmission():
        """The probe's retransmission that reached h2's receive queue (a later, spurious one would not)."""
        for tr in tq.find(service="transport", operation="tcp_send_loss_probe",
                          tags={"pktflow.netns": "h1", "destination.port": 41100}):
            names = [(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"]) for s in tq.journey(tr)]
            if ("transport", "h2", "tcp_data_queue") in names and names[-1] == ("socket", "h2", "sock_queue_rcv_skb"):
                return tr
    spans = tq.journey(eventually(delivered_retransmission, timeout=15, interval=0.3))
    assert spans[0]["operationName"] == "tcp_send_loss_probe"
    link = spans[0]["references"][0]
    assert link["refType"] == "FOLLOWS_FROM"
    first = tq.trace(link["traceID"])                          # the first transmission, dropped at r1
    first_spans = tq.journey(first)
    assert first_spans[0]["operationName"] == "tcp_write_xmit"
    assert tq.tag(first_spans[-1], "pktflow.drop_reason") == "IP_INHDR"
    assert tq.tag(first_spans[-1], "pktflow.netns") == "r1"
    send = tq.trace(first_spans[0]["references"][0]["traceID"])  # ...which links to the application's send
    assert tq.journey(send)[0]["operationName"] == "sock_sendmsg"
    acks = tq.find(service="transport", operation="tcp_send_ack", tags={"pktflow.netns": "h2"}, limit=50)
    assert any(tq.journey(t)[0]["references"] for t in acks)    # an ACK links to what it acknowledges
