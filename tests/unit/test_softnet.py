"""Unit tests of the NET_RX softirq's per-CPU side (services/nic/softnet.py
through the NIC core): netdev_budget and time_squeeze, netdev_budget_usecs,
dev_weight, the backlog of netif_rx() with netdev_max_backlog, and
/proc/net/softnet_stat's line. Each host is one CPU."""
import pytest
from scapy.layers.l2 import Ether

from pktflow.services.common import topology
from pktflow.services.common.actions import Drop, Up
from pktflow.services.nic.netdev import NAPI_POLL_WEIGHT, Nic, fcs
from pktflow.services.nic.softnet import softnet_seq_show
from pktflow.v1.skb_pb2 import Skb


@pytest.fixture
def nic():
    return Nic(topology.load())


def ifindex(netns: str, ifname: str) -> int:
    return topology.load().hosts[netns].interfaces[ifname].ifindex


def frame(n: int) -> bytes:
    return bytes(Ether(dst="02:00:00:00:01:01", src="02:00:00:00:01:0a", type=0x88B5) / n.to_bytes(4, "big")
                 / bytes(42))


def fill(nic, netns, ifname, first, count):
    """`count` frames, numbered from `first`, DMA'd into a device's RX ring."""
    dev = nic.device(netns, ifindex(netns, ifname))
    for i in range(first, first + count):
        assert nic.dma_rx(dev, frame(i) + fcs(frame(i)), Skb(), 0) == []


def loop(nic, netns, count, first=0):
    """`count` frames sent on the host's loopback device: its backlog's."""
    lo = nic.device(netns, 1)
    for i in range(first, first + count):
        nic.ndo_start_xmit(Skb(netns=netns, ifindex=lo.ifindex, data=frame(i)), 0)
    return nic.transmit(0, 0)


def got(actions) -> list[tuple[int, int]]:
    """(ifindex, frame number) of each skb handed up."""
    return [(a.skb.ifindex, int.from_bytes(a.skb.data[14:18], "big")) for a in actions if type(a) is Up]


E0, E1, LO = ifindex("r1", "eth0"), ifindex("r1", "eth1"), 1


def test_defaults_are_linuxs(nic):
    sysctl = nic.softnet["r1"].sysctl
    assert (sysctl["net.core.netdev_budget"], sysctl["net.core.netdev_budget_usecs"], sysctl["net.core.dev_weight"],
            sysctl["net.core.netdev_max_backlog"]) == (300, 2000, 64, 1000)


def test_a_used_up_budget_counts_a_time_squeeze_and_the_rest_leads_the_next_run(nic):
    """netdev_budget 50: the first device's poll takes its 64 frames and the run
    ends there (time_squeeze); the next run polls the devices not reached first,
    then the one that used its whole weight. Another host (CPU) is not held up."""
    sd = nic.softnet["r1"]
    sd.sysctl["net.core.netdev_budget"] = 50
    fill(nic, "r1", "eth0", 0, 100)
    fill(nic, "r1", "eth1", 1000, 10)
    loop(nic, "r1", 3, first=2000)
    fill(nic, "h2", "eth0", 3000, 5)
    first = got(nic.net_rx_action(0))
    assert first == [(E0, i) for i in range(64)] + [(ifindex("h2", "eth0"), 3000 + i) for i in range(5)]
    assert (sd.time_squeeze, nic.softnet["h2"].time_squeeze) == (1, 0)
    assert list(nic.rx_pending) == [sd]
    second = got(nic.net_rx_action(0))
    assert second == [(E1, 1000 + i) for i in range(10)] + [(LO, 2000 + i) for i in range(3)] + \
        [(E0, 64 + i) for i in range(36)]
    assert sd.time_squeeze == 1 and nic.rx_pending == {}          # 49 frames: within the budget
    assert sd.processed == 113 and sd.dropped == 0


def test_a_run_polls_each_napi_once_so_a_lone_flood_squeezes_nothing(nic):
    """Linux's net_rx_action() polls what was scheduled when it started, once:
    one device with a full ring takes four runs of 64 and a fifth that finds it
    empty, and never uses up the budget of 300."""
    sd = nic.softnet["r1"]
    fill(nic, "r1", "eth0", 0, 256)
    runs = []
    while nic.rx_pending:
        runs.append(len(nic.net_rx_action(0)))
    assert runs == [64, 64, 64, 64, 0]        # a poll that took its whole weight is polled again: 0, complete
    assert sd.time_squeeze == 0 and sd.processed == 256


def test_budget_usecs_zero_ends_every_run_after_one_poll(nic):
    """netdev_budget_usecs 0: the time limit is now, so a run polls one NAPI and
    squeezes (the only value the core's time, which stands still during a run, can honour)."""
    sd = nic.softnet["r1"]
    sd.sysctl["net.core.netdev_budget_usecs"] = 0
    fill(nic, "r1", "eth0", 0, 2)
    fill(nic, "r1", "eth1", 1000, 2)
    assert got(nic.net_rx_action(0)) == [(E0, 0), (E0, 1)]
    assert got(nic.net_rx_action(0)) == [(E1, 1000), (E1, 1001)]
    assert sd.time_squeeze == 2 and nic.rx_pending == {}


def test_dev_weight_is_the_backlogs_weight_not_the_devices(nic):
    """dev_weight (dev_rx_weight) is how much one poll of the backlog takes; a
    driver's NAPI keeps the weight it registered with (NAPI_POLL_WEIGHT)."""
    sd = nic.softnet["r1"]
    sd.sysctl["net.core.dev_weight"] = 5
    loop(nic, "r1", 12)
    fill(nic, "r1", "eth0", 1000, NAPI_POLL_WEIGHT + 1)
    runs = []
    while nic.rx_pending:
        runs.append([(i, sum(1 for j, _ in got(acts) if j == i)) for acts in [nic.net_rx_action(0)] for i in (LO, E0)])
    assert runs == [[(LO, 5), (E0, 64)], [(LO, 5), (E0, 1)], [(LO, 2), (E0, 0)]]
    assert sd.processed == 12 + NAPI_POLL_WEIGHT + 1


def test_a_full_backlog_drops_with_cpu_backlog_and_counts_softnet_dropped(nic):
    """enqueue_to_backlog() takes an skb while the input queue holds at most
    netdev_max_backlog (so one more than that fits); beyond: CPU_BACKLOG, softnet
    `dropped` and the device's rx_dropped. The loopback device counts what it
    passed, both ways, without the Ethernet header."""
    sd, lo = nic.softnet["r1"], nic.device("r1", LO)
    sd.sysctl["net.core.netdev_max_backlog"] = 3
    out = loop(nic, "r1", 6)
    assert [(type(a), a.fn, a.reason) for a in out] == [(Drop, "netif_rx", "CPU_BACKLOG")] * 2
    assert (sd.dropped, lo.stats["rx_dropped"]) == (2, 2)
    assert (lo.stats["tx_packets"], lo.stats["rx_packets"], lo.stats["rx_bytes"], lo.stats["tx_bytes"]) == \
        (4, 4, 4 * (len(frame(0)) - 14), 4 * (len(frame(0)) - 14))
    assert got(nic.net_rx_action(0)) == [(LO, i) for i in range(4)]
    assert sd.processed == 4 and nic.rx_pending == {}
    sd.sysctl["net.core.netdev_max_backlog"] = -1          # proc_dointvec takes it: nothing fits
    assert [a.reason for a in loop(nic, "r1", 1)] == ["CPU_BACKLOG"]


def test_the_limit_is_the_input_queues_what_a_poll_took_is_not_counted(nic):
    """process_backlog() splices the input queue onto its process queue: the
    input queue takes netdev_max_backlog + 1 again while the rest waits there."""
    sd = nic.softnet["r1"]
    sd.sysctl["net.core.netdev_max_backlog"] = 3
    sd.sysctl["net.core.dev_weight"] = 2
    assert loop(nic, "r1", 4) == []
    assert got(nic.net_rx_action(0)) == [(LO, 0), (LO, 1)]
    assert loop(nic, "r1", 4, first=10) == []
    assert sd.stat() == {"processed": 2, "dropped": 0, "time_squeeze": 0, "input_qlen": 4, "process_qlen": 2}
    assert softnet_seq_show(sd).split() == ["00000002", "00000000", "00000000"] + ["00000000"] * 8 + \
        ["00000006", "00000000", "00000004", "00000002"]
    assert got(nic.net_rx_action(0)) == [(LO, 2), (LO, 3)]
    assert got(nic.net_rx_action(0)) == [(LO, 10), (LO, 11)]


def test_softnet_stat_is_the_kernels_line():
    """net-procfs.c's softnet_seq_show(): 15 columns of %08x, counters wrapping at 32 bits."""
    sd = Nic(topology.load()).softnet["h1"]
    sd.processed, sd.dropped, sd.time_squeeze = 0x9BDA13, 7, 2**32 + 12
    assert softnet_seq_show(sd) == ("009bda13 00000007 0000000c 00000000 00000000 00000000 00000000 00000000 "
                                    "00000000 00000000 00000000 00000000 00000000 00000000 00000000\n")
