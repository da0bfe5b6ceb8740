"""Unit tests of the pcap writer and reader (services/common/pcap.py),
cross-checked with scapy's pcap reader and writer."""
import os
import random
import struct
from decimal import Decimal

import pytest
from pktflow.services.common import pcap
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapReader, RawPcapReader, rdpcap
from scapy.utils import PcapWriter as ScapyPcapWriter
from conftest import LINUX_CAPTURES

LINUX_PCAPS = sorted(str(p) for p in LINUX_CAPTURES.glob("*.pcap"))
T0 = 1_795_555_741_563_155_000


def frame(n: int = 0, size: int = 0) -> bytes:
    f = bytes(Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:01:0a") / IP(src="10.0.1.10", dst="10.0.2.10") /
              UDP(sport=1000 + n, dport=9) / Raw(b"x" * size))
    return f


def write(path, records):
    w = pcap.PcapWriter(path)
    for f, t in records:
        w.write(f, t)
    w.close()
    return w


def scapy_raw(path):
    """(bytes, sec, usec, wirelen) of every record, as scapy reads them."""
    return [(bytes(d), m.sec, m.usec, m.wirelen) for d, m in RawPcapReader(str(path))]


# ---------------------------------------------------------------- file header

def test_file_header_is_classic_pcap_ethernet_microsecond():
    h = pcap.file_header()
    assert len(h) == 24
    assert struct.unpack("<IHHiIII", h) == (0xA1B2C3D4, 2, 4, 0, 0, pcap.SNAPLEN, 1)


def test_scapy_sees_linktype_ethernet(tmp_path):
    path = tmp_path / "a.pcap"
    write(path, [(frame(), T0)])
    with PcapReader(str(path)) as r:
        assert r.linktype == pcap.LINKTYPE_ETHERNET == 1
        pkts = list(r)
    assert isinstance(pkts[0], Ether)


def test_empty_capture_is_readable(tmp_path):
    path = tmp_path / "empty.pcap"
    write(path, [])
    assert path.read_bytes() == pcap.file_header()
    assert len(rdpcap(str(path))) == 0
    assert pcap.read(path) == []


# ---------------------------------------------------------------- writer, read back by scapy

def test_scapy_reads_back_the_same_bytes(tmp_path):
    rng = random.Random(1)
    frames = [frame(i, rng.randrange(0, 1473)) for i in range(50)] + [b"\xff" * 14, bytes(60), rng.randbytes(9014)]
    path = tmp_path / "b.pcap"
    write(path, [(f, T0 + i * 1000) for i, f in enumerate(frames)])
    got = scapy_raw(path)
    assert [g[0] for g in got] == frames
    assert [g[3] for g in got] == [len(f) for f in frames]          # orig_len == incl_len
    assert [bytes(p) for p in rdpcap(str(path))] == frames


@pytest.mark.parametrize("tstamp_ns", [0, 999, 1000, 1_000_000_000, T0, T0 + 999, 1_795_555_741_999_999_999,
                                       2**32 * 1_000_000_000 - 1])
def test_scapy_reads_back_timestamps_to_the_microsecond(tmp_path, tstamp_ns):
    path = tmp_path / "t.pcap"
    write(path, [(frame(), tstamp_ns)])
    (_, sec, usec, _), = scapy_raw(path)
    assert (sec, usec) == divmod(tstamp_ns // 1000, 1_000_000)
    assert 0 <= usec < 1_000_000
    p, = rdpcap(str(path))
    assert Decimal(p.time) == Decimal(tstamp_ns // 1000) / Decimal(1_000_000)


def test_timestamps_of_many_records(tmp_path):
    rng = random.Random(2)
    stamps = sorted(T0 + rng.randrange(10**12) for _ in range(200))
    path = tmp_path / "m.pcap"
    w = write(path, [(frame(i), t) for i, t in enumerate(stamps)])
    assert w.count == 200
    got = scapy_raw(path)
    assert [(s * 1_000_000 + u) for _, s, u, _ in got] == [t // 1000 for t in stamps]


def test_flush_makes_records_visible_before_close(tmp_path):
    path = tmp_path / "f.pcap"
    w = pcap.PcapWriter(path)
    w.write(frame(1), T0)
    w.flush()
    assert [g[0] for g in scapy_raw(path)] == [frame(1)]
    w.write(frame(2), T0 + 1000)
    w.close()
    assert [g[0] for g in scapy_raw(path)] == [frame(1), frame(2)]
    assert w.count == 2


def test_record_layout_and_orig_len():
    f = frame()
    rec = pcap.record(f, T0 + 1234, orig_len=1514)
    assert struct.unpack_from("<IIII", rec) == (T0 // 10**9, (T0 % 10**9 + 1234) // 1000, len(f), 1514)
    assert rec[16:] == f
    assert struct.unpack_from("<IIII", pcap.record(f, T0))[3] == len(f)


# ---------------------------------------------------------------- pcap.read

def test_read_round_trips_writer_output_to_the_microsecond(tmp_path):
    rng = random.Random(3)
    records = [(frame(i, rng.randrange(100)), T0 + rng.randrange(10**9)) for i in range(30)]
    path = tmp_path / "r.pcap"
    write(path, records)
    assert pcap.read(path) == [(t // 1000 * 1000, f) for f, t in records]


def test_read_accepts_str_path(tmp_path):
    path = tmp_path / "s.pcap"
    write(path, [(frame(), T0)])
    assert pcap.read(str(path)) == [(T0, frame())]


@pytest.mark.parametrize("path", LINUX_PCAPS, ids=os.path.basename)
def test_read_linux_capture_matches_scapy(path):
    got = pcap.read(path)
    want = scapy_raw(path)
    assert len(got) == len(want) == len(rdpcap(path))
    for (t, f), (data, sec, usec, _wirelen) in zip(got, want):
        assert f == data
        assert t == sec * 1_000_000_000 + usec * 1000


def test_read_linux_captures_are_not_all_empty():
    counts = {os.path.basename(p): len(pcap.read(p)) for p in LINUX_PCAPS}
    assert len(counts) == 16
    assert sum(counts.values()) == sum(len(rdpcap(p)) for p in LINUX_PCAPS) > 700
    assert counts["net-unreachable.h2.pcap"] == 0


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_read_files_scapy_writes_in_any_byte_order_and_resolution(tmp_path, endianness, nano):
    path = tmp_path / f"scapy-{nano}-{endianness == '<'}.pcap"
    stamps = [T0 + 123_456_789, T0 + 987_654_321_000, T0 + 1]
    frames = [frame(i, i * 10) for i in range(3)]
    w = ScapyPcapWriter(str(path), linktype=1, endianness=endianness, nano=nano, sync=True)
    for f, t in zip(frames, stamps):
        p = Ether(f)
        p.time = Decimal(t) / Decimal(10**9)
        w.write(p)
    w.close()
    got = pcap.read(path)
    assert [f for _, f in got] == frames
    reader = RawPcapReader(str(path))
    assert reader.nano == nano
    scale = 1 if nano else 1000                     # scapy rounds to the microsecond, so ask it what it wrote
    assert [t for t, _ in got] == [m.sec * 10**9 + m.usec * scale for _d, m in reader]
    reader.close()
    if nano:
        assert [t for t, _ in got] == stamps
    else:
        assert all(abs(t - s) <= 500 for (t, _), s in zip(got, stamps))


def test_read_ignores_a_truncated_trailing_record_header(tmp_path):
    path = tmp_path / "trunc.pcap"
    write(path, [(frame(1), T0), (frame(2), T0 + 1000)])
    data = path.read_bytes()
    path.write_bytes(data + b"\0" * 10)
    assert [f for _, f in pcap.read(path)] == [frame(1), frame(2)]
