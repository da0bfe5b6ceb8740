"""AF_XDP sockets (net/xdp/xsk.c): a socket bound to one queue of one device,
fed only by that device's XDP program redirecting frames to it, and sending
whole frames straight to the driver. The frames never meet link, ip, transport
or socket.

What is kept of Linux: a socket binds (sxdp_ifindex, sxdp_queue_id) of a
device of its namespace (ENODEV otherwise), one socket per queue (EBUSY), a
device has one queue (EINVAL for another); rings of a power-of-two size; a
full RX ring drops the frame and counts rx_ring_full, a frame larger than a
UMEM chunk counts rx_dropped, a frame to send that is not one counts
tx_invalid_descs (struct xdp_statistics). Sending is copy mode
(xsk_generic_xmit() -> __dev_direct_xmit()): the frame goes to the driver's
ndo_start_xmit(), past the qdisc. What is not: there is no UMEM shared with
the application, no fill or completion ring: the RX ring holds the frames
themselves and the shell streams them to the application (services/nic/xsk_rpc.py),
whose reads are the ring's consumer. XDP_ZEROCOPY is refused (EOPNOTSUPP), as
by a driver without zero-copy support.
"""
import errno
from collections import Counter, deque

from pktflow.v1.skb_pb2 import Skb

from ..common.skbuff import NEW_JOURNEY
from ..wire import ethernet
from . import xdp

XDP_SHARED_UMEM, XDP_COPY, XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP = 1, 2, 4, 8     # include/uapi/linux/if_xdp.h
XSK_RING_DEFAULT = 2048           # libxdp's XSK_RING_CONS__DEFAULT_NUM_DESCS / XSK_RING_PROD__DEFAULT_NUM_DESCS
XSK_RING_MAX = 1 << 16
XSK_FRAME_SIZE = 4096             # XSK_UMEM__DEFAULT_FRAME_SIZE: the largest frame a chunk holds
STATS = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full", "rx_fill_ring_empty_descs",
         "tx_ring_empty_descs")


class XdpSock:
    """struct xdp_sock, bound: its RX ring and its statistics."""
    __slots__ = ("dev", "queue_id", "token", "rx", "rx_size", "tx_size", "stats")

    def __init__(self, dev, queue_id: int, token: str, rx_size: int, tx_size: int):
        self.dev, self.queue_id, self.token = dev, queue_id, token
        self.rx: deque = deque()            # (frame, tstamp)
        self.rx_size, self.tx_size = rx_size, tx_size
        self.stats: Counter = Counter()

    def key(self):
        return self.dev.netns, self.dev.ifindex, self.queue_id

    def rcv(self, frame: bytes, tstamp: int) -> str | None:
        """__xsk_rcv(): onto the RX ring, or the errno of why not."""
        if len(frame) > XSK_FRAME_SIZE:
            self.stats["rx_dropped"] += 1
            return "ENOSPC"
        if len(self.rx) >= self.rx_size:
            self.stats["rx_ring_full"] += 1
            return "ENOBUFS"
        self.rx.append((frame, tstamp))
        return None

    def take(self, n: int) -> list:
        """What the application consumes: up to `n` frames, oldest first."""
        rx = self.rx
        return [rx.popleft() for _ in range(min(n, len(rx)))]

    def statistics(self) -> dict:
        return {k: self.stats[k] for k in STATS}


def _ring_ok(n: int) -> bool:
    return 0 < n <= XSK_RING_MAX and n & (n - 1) == 0


def xsk_bind(nic, netns: str, ifname: str, queue_id: int, flags: int, token: str,
             rx_size: int = 0, tx_size: int = 0) -> XdpSock:
    """xsk_bind(): raises OSError with the errno Linux gives."""
    if flags & ~(XDP_SHARED_UMEM | XDP_COPY | XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP) or \
            flags & XDP_COPY and flags & XDP_ZEROCOPY:
        raise OSError(errno.EINVAL, "sxdp_flags: XDP_COPY, XDP_ZEROCOPY (not both), XDP_USE_NEED_WAKEUP")
    if flags & XDP_SHARED_UMEM:
        raise OSError(errno.EINVAL, "XDP_SHARED_UMEM: no UMEM to share here")
    rx_size, tx_size = rx_size or XSK_RING_DEFAULT, tx_size or XSK_RING_DEFAULT
    if not _ring_ok(rx_size) or not _ring_ok(tx_size):
        raise OSError(errno.EINVAL, f"ring sizes are powers of two up to {XSK_RING_MAX}")
    dev = next((d for d in nic.devices.values() if d.netns == netns and d.name == ifname), None)
    if dev is None:
        raise OSError(errno.ENODEV, f"no device {ifname!r} in {netns}")
    if queue_id != 0:                         # xsk_reg_pool_at_qid(): one queue per device here
        raise OSError(errno.EINVAL, f"{ifname} has one queue, 0")
    if flags & XDP_ZEROCOPY:
        raise OSError(errno.EOPNOTSUPP, "no zero-copy AF_XDP: pktflow's drivers do copy mode (XDP_COPY)")
    key = (netns, dev.ifindex, queue_id)
    if key in nic.xsks:
        raise OSError(errno.EBUSY, f"queue {queue_id} of {ifname} has an AF_XDP socket bound")
    xs = XdpSock(dev, queue_id, token, rx_size, tx_size)
    nic.xsks[key] = xs
    return xs


def xsk_release(nic, xs: XdpSock):
    """The socket closed: its queue is free, its ring's frames are gone."""
    if nic.xsks.get(xs.key()) is xs:
        del nic.xsks[xs.key()]
    nic.xsk_ready.pop(xs, None)
    xs.rx.clear()


def xsk_sendmsg(nic, xs: XdpSock, frames, now: int) -> tuple[int, list]:
    """sendmsg() after filling the TX ring: each frame straight to the driver
    (__dev_direct_xmit()), a new journey. Returns how many the ring took and
    the actions. Raises OSError(ENETDOWN) for a device that is down."""
    dev = xs.dev
    if not dev.up:
        raise OSError(errno.ENETDOWN, f"{dev.name} is down")
    if nic.xsks.get(xs.key()) is not xs:
        raise OSError(errno.ENXIO, "the socket is not bound")
    out, sent = [], 0
    for frame in frames[:xs.tx_size]:
        if not ethernet.ETH_HLEN <= len(frame) <= XSK_FRAME_SIZE:
            xs.stats["tx_invalid_descs"] += 1
            continue
        skb = Skb(netns=dev.netns, ifindex=dev.ifindex, data=bytes(frame), trace_flags=NEW_JOURNEY)
        out += xdp.xmit(nic, skb, now, ("xsk_sendmsg", "ndo_start_xmit"))
        sent += 1
    return sent, out
