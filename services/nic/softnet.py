"""The per-CPU half of net/core/dev.c's receive path: struct softnet_data (the
NAPI poll list, the backlog that netif_rx() fills, the counters of
/proc/net/softnet_stat), enqueue_to_backlog(), process_backlog(), and one run
of the NET_RX softirq, net_rx_action(), with its budget. Each emulated host is
one CPU.

Which receive path is which, as in Linux: a device with an RX ring (every
interface on a cable or a TAP: a hardware-like NIC with FCS, like virtio-net or
e1000) has its own NAPI instance, polled up to NAPI_POLL_WEIGHT (64, fixed when
the driver registers it, not a sysctl); the loopback device has no ring, its
xmit hands the frame to __netif_rx(), which queues it on this CPU's backlog
(at most netdev_max_backlog: CPU_BACKLOG drops beyond), and the backlog is one
more NAPI instance, polled up to dev_weight. (Linux's veth takes the backlog
path too; pktflow's cables are NICs with rings, so only loopback does here.)

The sysctls are Linux's globals (net.core.*, init_net only there); here every
host is a machine of its own and has its own values.
"""
from collections import deque

HZ = 1000                                  # CONFIG_HZ_1000: netdev_budget_usecs' default is 2 jiffies, 2000 us
NSEC_PER_JIFFY = 1_000_000_000 // HZ


def usecs_to_jiffies(us: int) -> int:
    """Rounded up, as the kernel's."""
    return -(-us * HZ // 1_000_000)


class Napi:
    """struct napi_struct: what net_rx_action() polls."""
    __slots__ = ("owner", "weight", "scheduled")

    def __init__(self, owner, weight: int):
        self.owner = owner                 # the NetDevice whose RX ring it polls, or the SoftnetData (backlog)
        self.weight = weight
        self.scheduled = False             # NAPI_STATE_SCHED: on the poll list, or being polled


class SoftnetData:
    """One CPU's receive state (struct softnet_data)."""

    def __init__(self, sysctl: dict):
        self.sysctl = sysctl               # the host's values, live: `sysctl -w` reaches the next run
        self.poll_list: dict[Napi, None] = {}      # scheduled NAPI instances, in order (an ordered set)
        self.backlog = Napi(self, sysctl["net.core.dev_weight"])
        self.input_pkt_queue: deque = deque()      # what netif_rx() queued
        self.process_queue: deque = deque()        # what process_backlog() took from it and works through
        self.processed = self.dropped = self.time_squeeze = 0

    def napi_schedule(self, n: Napi):
        if not n.scheduled:
            n.scheduled = True
            self.poll_list[n] = None

    def enqueue_to_backlog(self, skb) -> bool:
        """netif_rx()'s queue: taken while the input queue holds no more than
        netdev_max_backlog (so it may reach that plus one, as `qlen <=
        max_backlog` lets it), else dropped and counted in softnet `dropped`."""
        qlen = len(self.input_pkt_queue)
        if qlen > self.sysctl["net.core.netdev_max_backlog"]:
            self.dropped += 1
            return False
        if not qlen:
            self.napi_schedule(self.backlog)
        self.input_pkt_queue.append(skb)
        return True

    def process_backlog(self, quota: int) -> list:
        """The backlog's poll: up to `quota` skbs for __netif_receive_skb(),
        from the process queue, refilled from the input queue in one splice;
        the NAPI completes when both are empty before the quota is reached."""
        out = []
        while True:
            while self.process_queue:
                out.append(self.process_queue.popleft())
                if len(out) >= quota:
                    return out
            if not self.input_pkt_queue:
                self.backlog.scheduled = False          # the inlined __napi_complete()
                return out
            self.process_queue, self.input_pkt_queue = self.input_pkt_queue, self.process_queue

    def net_rx_action(self, now: int, poll) -> list:
        """One NET_RX softirq run: every NAPI instance scheduled when it starts
        is polled once, up to its weight (`poll(self, napi, weight, now)` returns
        the work done and the actions). One that used its whole weight stays
        scheduled and goes to the end of the list; the others completed. When
        netdev_budget is used up the run ends there (time_squeeze) and what was
        not polled leads the next run, which the caller schedules while
        `poll_list` is not empty.

        The time limit (netdev_budget_usecs, in jiffies) is checked as the kernel
        does, but against `now`, which does not move during a run (a core reads
        no clock): it ends a run only when it is 0 jiffies, i.e. netdev_budget_usecs
        is 0 (one poll a run). Otherwise only the packet budget applies."""
        budget = self.sysctl["net.core.netdev_budget"]
        jiffies = now // NSEC_PER_JIFFY
        time_limit = jiffies + usecs_to_jiffies(self.sysctl["net.core.netdev_budget_usecs"])
        self.backlog.weight = self.sysctl["net.core.dev_weight"]     # dev_rx_weight (dev_weight_rx_bias 1)
        todo, self.poll_list = self.poll_list, {}
        repoll: dict[Napi, None] = {}
        out = []
        for n in list(todo):
            del todo[n]
            work, actions = poll(self, n, n.weight, now)
            out += actions
            if n.scheduled:                     # used its whole weight: polled again, after the rest
                repoll[n] = None
            budget -= work
            if budget <= 0 or jiffies >= time_limit:
                self.time_squeeze += 1
                break
        self.poll_list = todo | self.poll_list | repoll
        return out

    def stat(self) -> dict:
        return {"processed": self.processed, "dropped": self.dropped, "time_squeeze": self.time_squeeze,
                "input_qlen": len(self.input_pkt_queue), "process_qlen": len(self.process_queue)}


def softnet_seq_show(sd: SoftnetData, cpu: int = 0) -> str:
    """One line of /proc/net/softnet_stat, as net/core/net-procfs.c prints it:
    processed, dropped, time_squeeze, 0, four zeros where fastroute was, 0 where
    cpu_collision was, received_rps, flow_limit_count, the backlog's length,
    the CPU's index, the input and the process queue's lengths; %08x each."""
    s = sd.stat()
    iq, pq = s["input_qlen"], s["process_qlen"]
    cols = (s["processed"], s["dropped"], s["time_squeeze"], 0, 0, 0, 0, 0, 0, 0, 0, iq + pq, cpu, iq, pq)
    return " ".join(f"{c & 0xFFFFFFFF:08x}" for c in cols) + "\n"
