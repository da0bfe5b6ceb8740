"""The tracepoints a hop hits, as perf stat counts them."""
import pathlib
import re
from collections import Counter

import pytest

from pktflow.v1.skb_pb2 import Skb
from pktflow.services.netstack import Netstack

from pktflow.services.common import tracepoints
from pktflow.services.common.actions import Step

DATA = pathlib.Path(__file__).parent.parent / "data" / "tracefs"


def connected_pair(net, port=80):
    srv = net.socket("h2")
    assert srv.bind("10.0.2.10", port) == 0 and srv.listen() == 0
    cli = net.socket("h1")
    cli.connect("10.0.2.10", port)
    child = srv.accept()
    assert child is not None
    return srv, cli, child


def test_a_hop_hits_the_tracepoints_of_its_steps_and_a_drop_is_kfree_skb():
    c = Counter()
    for ns, fn, dropped in (("h1", ("dev_queue_xmit", "pfifo_fast_enqueue"), False),
                            ("h1", (Step("pfifo_fast_dequeue", ()),), False), ("h2", "udp_rcv", True),
                            ("h2", "ip_rcv", False)):                 # no tracepoint there
        c.update((ns, tp) for tp, _ in tracepoints.hits(fn, dropped))
    assert c == {("h1", "net:net_dev_queue"): 1, ("h1", "qdisc:qdisc_enqueue"): 1, ("h1", "qdisc:qdisc_dequeue"): 1,
                 ("h2", "skb:kfree_skb"): 1}
    assert tracepoints.hits(("ip_rcv", "udp_rcv"), True) == [("skb:kfree_skb", "udp_rcv")]
    # a qdisc that refuses the skb: no qdisc_enqueue (dev_qdisc_enqueue() fires it on success only)
    assert tracepoints.hits(("dev_queue_xmit", "pfifo_fast_enqueue"), True) == [
        ("net:net_dev_queue", "dev_queue_xmit"), ("skb:kfree_skb", "pfifo_fast_enqueue")]


def test_events_are_names_or_globs_and_an_unknown_one_is_refused():
    assert tracepoints.selected(["skb:kfree_skb", "net:*"]) == [
        "skb:kfree_skb", "net:napi_gro_receive_entry", "net:net_dev_queue", "net:net_dev_xmit",
        "net:netif_receive_skb"]
    with pytest.raises(ValueError, match="sched:sched_switch"):
        tracepoints.selected(["sched:sched_switch"])


def kernel_fields(tp: str) -> set[str]:
    """The field names of the tracepoint's format file as this machine's kernel
    has it (tests/data/tracefs/record.sh copied them), without the common_ ones."""
    text = (DATA / f"{tp.replace(':', '/')}.format").read_text()
    names = {m.group(1) for m in re.finditer(r"field:[^;]*?\b(\w+)(?:\[\d*\])?;", text)}
    return {n for n in names if not n.startswith("common_")}


@pytest.mark.parametrize("tp", tracepoints.ALL)
def test_every_field_is_named_as_the_kernels_format_file_names_it(tp):
    assert set(tracepoints.FIELDS[tp]) <= kernel_fields(tp)


def skb(**kw):
    return Skb(netns="h1", ifindex=2, protocol=0x0800, data=b"\0" * 60, **kw)


@pytest.mark.parametrize("tp", sorted(set(tracepoints.BY_FUNCTION.values()) | {tracepoints.KFREE_SKB}))
def test_a_hops_fields_are_those_listed(tp):
    f = tracepoints.skb_fields(tp, skb(), "udp_rcv", "NO_SOCKET", "eth0")
    listed = set(tracepoints.FIELDS[tp])
    assert set(f) - {"len"} <= listed and (tp.startswith("tcp:") or listed <= set(f))
    if tp == tracepoints.KFREE_SKB:
        assert (f["location"], f["reason"], f["protocol"]) == ("udp_rcv", "NO_SOCKET", 0x0800)
    if tp.startswith("net:"):
        assert (f["name"], f["len"]) == ("eth0", 60)


def test_a_steps_attributes_are_fields_of_its_tracepoint():
    fn = ("dev_queue_xmit", Step("pfifo_fast_dequeue", (("pktflow.qdisc.wait_us", 42),)), "ndo_start_xmit")
    assert tracepoints.step_fields(fn, "pfifo_fast_dequeue") == {"qdisc_wait_us": 42}
    assert tracepoints.step_fields(fn, "dev_queue_xmit") == {} == tracepoints.step_fields("udp_rcv", "udp_rcv")


def test_the_cores_fire_their_tracepoints_only_while_they_are_on():
    net = Netstack()
    probes = net.tr.probes
    connected_pair(net)
    assert probes.events == []                        # nothing on: nothing built
    probes.on = frozenset(tracepoints.ALL)
    srv, cli, child = connected_pair(net, port=81)
    cli.send(b"x" * 100)
    net.advance(0.05)
    events = probes.take()
    states = [(ns, f["oldstate"], f["newstate"]) for tp, ns, f in events if tp == tracepoints.INET_SOCK_SET_STATE]
    assert ("h1", "TCP_CLOSE", "TCP_SYN_SENT") in states and ("h1", "TCP_SYN_SENT", "TCP_ESTABLISHED") in states
    assert ("h2", "TCP_SYN_RECV", "TCP_ESTABLISHED") in states
    probe = [f for tp, ns, f in events if tp == tracepoints.TCP_PROBE and ns == "h2" and f["data_len"] == 100]
    assert len(probe) == 1 and probe[0]["saddr"].startswith("10.0.2.10:81") and probe[0]["snd_cwnd"] == 10
    for tp, _, f in events:
        assert set(f) == set(tracepoints.FIELDS[tp]), tp


def test_an_arp_reply_fires_neigh_update():
    net = Netstack()
    net.link.probes.on = frozenset([tracepoints.NEIGH_UPDATE])
    connected_pair(net)
    events = net.link.probes.take()
    h1 = [f for tp, ns, f in events if ns == "h1"]
    assert h1 and h1[0]["primary_key4"] == "10.0.1.1" and h1[0]["new_state"] == "reachable"
    assert h1[0]["nud_state"] == "incomplete" and len(h1[0]["new_lladdr"]) == 12
    assert all(set(f) == set(tracepoints.FIELDS[tracepoints.NEIGH_UPDATE]) for _, _, f in events)
