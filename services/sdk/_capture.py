"""pktflow.capture: a pcap of an interface, read the way tcpdump reads it,
through an AF_PACKET socket with ETH_P_ALL."""
import threading

from ._socket import AF_PACKET, ETH_P_ALL, SOCK_RAW, SO_RCVBUF, SOL_SOCKET, MSG_DONTWAIT, htons, socket
from .services.common.pcap import PcapWriter


class Capture:
    """Writes every frame `ifname` sends or receives to `path` until stop()."""

    def __init__(self, *, netns: str, ifname: str, path, count: int | None = None):
        self.path, self.count_limit = path, count
        self._sock = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL), netns=netns)
        self._sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 1 << 22)
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


def capture(*, netns: str, ifname: str, path, count: int | None = None) -> Capture:
    return Capture(netns=netns, ifname=ifname, path=path, count=count)
