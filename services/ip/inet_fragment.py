"""What IPv4 and IPv6 reassembly share (net/ipv4/inet_fragment.c): a queue of
one datagram's fragments kept as runs of contiguous bytes
(inet_frag_queue_insert(): a fragment inside one already queued is a
duplicate, any other overlap kills the queue, RFC 5722), and the per-namespace
directory of queues (struct fqdir) with its memory accounting, its timeout and
its timers. ip_fragment.py (IPv4) and reassembly.py (IPv6) build on it with
their own keys, header checks and counters."""
from ..common.actions import Cancel

SKB_TRUESIZE_OVERHEAD = 576            # what one queued fragment costs beyond its bytes (SKB_TRUESIZE)


class FragQueue:
    """struct inet_frag_queue: one datagram's fragments as they came, in runs."""
    __slots__ = ("key", "runs", "len", "meat", "first_in", "last_in", "truesize", "skbs", "rid", "first",
                 "expires", "max_size", "max_df_size", "iif", "nhoff")

    def __init__(self, key, expires: int):
        self.key = key
        self.runs: list[list] = []        # [start, end, [(offset, bytes)]], sorted, never overlapping
        self.len = 0                      # the datagram's payload length, as far as known
        self.meat = 0                     # payload bytes queued
        self.first_in = self.last_in = False
        self.truesize = 0
        self.skbs: list = []              # every fragment queued, for their drops or their journeys
        self.rid = 0                      # the source's fragment count at this queue's last (IPv4)
        self.first = None                 # the offset-0 fragment (its header becomes the datagram's)
        self.expires = expires
        self.max_size = self.max_df_size = 0
        self.iif = 0                      # the device the last fragment came in on (IPv6's frag_queue.iif)
        self.nhoff = None                 # IPv6: the first fragment's extension header chain

    def insert(self, offset: int, end: int, data: bytes) -> str:
        """inet_frag_queue_insert(): "ok", "dup" (inside a run already there) or "overlap"."""
        runs = self.runs
        if not runs or runs[-1][1] <= offset:
            if runs and runs[-1][1] == offset:
                runs[-1][1] = end              # fragrun_append_to_last()
                runs[-1][2].append((offset, data))
            else:
                runs.append([offset, end, [(offset, data)]])
            return "ok"
        for i, (start, run_end, _) in enumerate(runs):
            if end <= start:
                runs.insert(i, [offset, end, [(offset, data)]])
                return "ok"
            if offset < run_end:
                return "dup" if start <= offset and end <= run_end else "overlap"
        raise AssertionError("unreachable: the last run ends after offset")

    def payload(self) -> bytes:
        return b"".join(d for run in self.runs for _, d in run[2])

    def complete(self) -> bool:
        """INET_FRAG_FIRST_IN | INET_FRAG_LAST_IN and every byte there."""
        return self.first_in and self.last_in and self.meat == self.len


class FragDir:
    """struct fqdir: one namespace's reassembly queues of one family. `tag` names
    its timers (timer key (tag, netns, queue key)); `high_thresh` bytes queued
    refuse new fragments (since Linux 4.17 nothing is evicted: queues leave by
    completing or expiring)."""

    def __init__(self, tag: str, high_thresh: int, timeout_ns: int, max_dist: int = 0):
        self.tag = tag
        self.queues: dict[tuple, FragQueue] = {}
        self.mem = 0
        self.peer_rid: dict[int, int] = {}   # inet_peer's rid: fragments seen from each source
        self.set_limits(high_thresh, timeout_ns, max_dist)

    def set_limits(self, high_thresh: int, timeout_ns: int, max_dist: int = 0):
        self.high_thresh, self.timeout_ns, self.max_dist = high_thresh, timeout_ns, max_dist

    def full(self) -> bool:
        """inet_frag_find() refuses: the directory holds high_thresh bytes (or is off: 0)."""
        return self.mem > self.high_thresh or not self.high_thresh

    def timer_key(self, netns: str, key: tuple) -> tuple:
        return (self.tag, netns, key)

    def account(self, q: FragQueue, skb, truesize: int):
        """A fragment joins the queue: its memory and its skb."""
        q.truesize += truesize
        self.mem += truesize
        q.skbs.append(skb)

    def forget(self, netns: str, q: FragQueue) -> list:
        """inet_frag_kill(): the queue leaves the table and its timer stops."""
        if self.queues.get(q.key) is q:
            del self.queues[q.key]
            self.mem -= q.truesize
            return [Cancel(self.timer_key(netns, q.key))]
        return []
