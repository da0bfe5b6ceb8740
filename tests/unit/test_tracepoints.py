"""The tracepoints a hop hits, as perf stat counts them."""
from collections import Counter

import pytest

from pktflow.services.common import tracepoints
from pktflow.services.common.actions import Step


def test_a_hop_counts_the_tracepoints_of_its_steps_and_a_drop_is_kfree_skb():
    c = Counter()
    tracepoints.count(c, "h1", ("dev_queue_xmit", "pfifo_fast_enqueue"), False)
    tracepoints.count(c, "h1", (Step("pfifo_fast_dequeue", ()),), False)
    tracepoints.count(c, "h2", "udp_rcv", True)
    tracepoints.count(c, "h2", "ip_rcv", False)                      # no tracepoint there
    assert c == {("h1", "net:net_dev_queue"): 1, ("h1", "qdisc:qdisc_dequeue"): 1, ("h2", "skb:kfree_skb"): 1}


def test_events_are_names_or_globs_and_an_unknown_one_is_refused():
    assert tracepoints.selected(["skb:kfree_skb", "net:*"]) == [
        "skb:kfree_skb", "net:napi_gro_receive_entry", "net:net_dev_queue", "net:net_dev_xmit",
        "net:netif_receive_skb"]
    with pytest.raises(ValueError, match="sched:sched_switch"):
        tracepoints.selected(["sched:sched_switch"])
