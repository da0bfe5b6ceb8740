"""pktflow.capture: a pcap of an interface, read the way tcpdump reads it,
through an AF_PACKET socket with ETH_P_ALL."""
import threading

from ._socket import (AF_PACKET, ETH_P_ALL, MSG_DONTWAIT, SO_ATTACH_FILTER, SO_RCVBUF, SOCK_RAW, SOL_SOCKET, htons,
                      socket)
from .services.common.bpf import compile_filter, sock_filter_bytes
from .services.common.pcap import PcapWriter


class Capture:
    """Writes every frame `ifname` sends or receives to `path` until stop()."""

    def __init__(self, *, netns: str, ifname: str, path, count: int | None = None, filter: str | None = None):
        self.path, self.count_limit = path, count
        # tcpdump's order: the pcap-filter expression compiled by libpcap (an
        # invalid one raises bpf.FilterError with its message), attached before
        # the bind, so the link layer taps only the frames it matches
        prog = compile_filter(filter) if filter else None
        self._sock = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL), netns=netns)
        self._sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 1 << 22)
        if prog is not None:
            self._sock.setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, sock_filter_bytes(prog.insns))
        self._sock.bind((ifname, 0))
        self._writer = PcapWriter(path)
        self._stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{netns}-{ifname}", daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        return self._writer.count

    def _write(self, batch):
        for d in batch:
            self._writer.write(d.data, d.tstamp)
            if self.count_limit and self._writer.count >= self.count_limit:
                self._stop.set()
                break
        self._writer.flush()

    def _run(self):
        self._sock.settimeout(0.1)
        try:
            while not self._stop.is_set():
                try:
                    self._write(self._sock.recv_datagrams(256))
                except TimeoutError:
                    continue
        except OSError:
            pass                              # the stack went away: keep what we have
        finally:
            self.done.set()

    def stop(self) -> int:
        """Stops, writes what is still queued, closes the file; returns the frame count."""
        self._stop.set()
        self._thread.join()
        try:
            while not (self.count_limit and self._writer.count >= self.count_limit):
                self._write(self._sock.recv_datagrams(256, flags=MSG_DONTWAIT))
        except OSError:
            pass
        self._sock.close()
        self._writer.close()
        return self._writer.count

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def capture(*, netns: str, ifname: str, path, count: int | None = None, filter: str | None = None) -> Capture:
    """A pcap of what `ifname` sends and receives (`filter`: a pcap-filter expression, as tcpdump's)."""
    return Capture(netns=netns, ifname=ifname, path=path, count=count, filter=filter)
