"""Classic pcap files (LINKTYPE_ETHERNET), what tcpdump -w writes."""
import struct

MAGIC_USEC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


def file_header(snaplen: int = SNAPLEN) -> bytes:
    return struct.pack("<IHHiIII", MAGIC_USEC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET)


def record(frame: bytes, tstamp_ns: int, orig_len: int | None = None) -> bytes:
    sec, nsec = divmod(tstamp_ns, 1_000_000_000)
    return struct.pack("<IIII", sec, nsec // 1000, len(frame), orig_len or len(frame)) + frame


class PcapWriter:
    """A pcap to `path`, or to a binary stream (a pipe, stdout: `tcpdump -w -`),
    which close() leaves open."""

    def __init__(self, path):
        self.own = not hasattr(path, "write")
        self.f = open(path, "wb") if self.own else path
        self.f.write(file_header())
        self.count = 0

    def write(self, frame: bytes, tstamp_ns: int):
        self.f.write(record(frame, tstamp_ns))
        self.count += 1

    def flush(self):
        self.f.flush()

    def close(self):
        if self.own:
            self.f.close()
        else:
            self.f.flush()


def read(path) -> list[tuple[int, bytes]]:
    """(timestamp ns, frame) of every record; microsecond or nanosecond files."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data)[0]
    endian, scale = {0xA1B2C3D4: ("<", 1000), 0xD4C3B2A1: (">", 1000),
                     0xA1B23C4D: ("<", 1), 0x4D3CB2A1: (">", 1)}[magic]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        out.append((sec * 1_000_000_000 + frac * scale, data[off:off + incl]))
        off += incl
    return out
