"""The packet scheduler's user API (include/uapi/linux/pkt_sched.h): netem's
options as the kernel takes them, shared by tc's userland side (iproute2/)
and the qdisc (link/sch_netem.py), and their form on the Admin wire."""
from dataclasses import dataclass, fields

from pktflow.v1.admin_pb2 import NetemQopt

U32_MAX = 0xFFFFFFFF
INT_MAX = 0x7FFFFFFF
NSEC_PER_SEC = 1_000_000_000


@dataclass
class Qopt:
    """What tc hands the kernel: times in ns, probabilities as u32 fractions, rate in bytes/s."""
    limit: int = 1000
    latency: int = 0
    jitter: int = 0
    delay_corr: int = 0
    loss: int = 0
    loss_corr: int = 0
    duplicate: int = 0
    dup_corr: int = 0
    reorder: int = 0
    reorder_corr: int = 0
    gap: int = 0
    corrupt: int = 0
    corrupt_corr: int = 0
    rate: int = 0
    packet_overhead: int = 0
    cell_size: int = 0
    cell_overhead: int = 0
    seed: int | None = None
    ecn: bool = False                  # mark CE instead of dropping ECN-capable packets


def qopt_to_msg(o: Qopt) -> NetemQopt:
    m = NetemQopt(**{f.name: getattr(o, f.name) for f in fields(Qopt) if f.name != "seed"})
    if o.seed is not None:
        m.seed = o.seed
    return m


def qopt_from_msg(m: NetemQopt) -> Qopt:
    """The options off the wire; protobuf's types already bound every field to
    the kernel's (u32, s32, u64)."""
    o = Qopt(**{f.name: getattr(m, f.name) for f in fields(Qopt) if f.name != "seed"})
    o.seed = m.seed if m.HasField("seed") else None
    return o
