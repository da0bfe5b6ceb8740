"""Every frame the emulator put on a cable, checked by Wireshark's dissectors
(tshark): no malformed packets, no bad checksums, no expert-info errors; and
TCP's loss-recovery flags (retransmission, duplicate ACK, out of order) only
while a test marked `impaired` ran or opened the connection (a FIN lost to netem
is retransmitted after the test ends), or anywhere for a retransmission its
receiver D-SACKed or had acknowledged before the copy reached it (spurious:
nothing was lost; a tail loss probe that raced its ACK), with the duplicate ACK
answering it, or one sent to a receiver that had already reset the connection
(a probe racing the RST: nothing left to recover), or after the last test (the
services stop one by one under connections still closing); frames a test crafted bad on purpose are allowed while a test
marked `malformed` ran."""
import pathlib
import shutil
import subprocess

PI_ERROR = 0x00800000
RECOVERY_FLAGS = ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                  "tcp.analysis.spurious_retransmission", "tcp.analysis.duplicate_ack", "tcp.analysis.out_of_order")
FIELDS = ("frame.number", "frame.time_epoch", "_ws.malformed", "_ws.expert.severity", "_ws.expert.message",
          "tcp.stream", *RECOVERY_FLAGS, "tcp.seq", "tcp.len", "tcp.flags.fin", "tcp.options.sack.dsack_le",
          "tcp.options.sack.dsack_re", "tcp.ack", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
          "tcp.flags.reset", "icmp.type", "icmp.checksum.status", "ip.checksum.status")
ICMP_ERRORS = {"3", "11", "12"}
DSACK = "tcp.options.sack.dsack"
OPENING = "(tcp.flags.syn == 1 and tcp.flags.ack == 0)"      # listed so each connection's first row is its SYN


def available() -> bool:
    return shutil.which("tshark") is not None


def problems(pcap: pathlib.Path) -> list[dict]:
    """Every TCP frame of one capture (each connection's first is its SYN), and any other
    frame tshark finds wrong."""
    # Payloads are random bytes: decoded as data, or a heuristic dissector (Thrift, ...) may
    # mistake them for its protocol and complain about what is not its packet.
    cmd = ["tshark", "-n", "-r", str(pcap), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
           "-o", "tcp.relative_sequence_numbers:FALSE",
           "-o", "udp.check_checksum:TRUE", "-d", "tcp.port==1-65535,data", "-d", "udp.port==1-65535,data",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for f in FIELDS:
        cmd += ["-e", f]
    cmd += ["-Y", " or ".join(["_ws.malformed", f"_ws.expert.severity >= {PI_ERROR}", "tcp"])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t") + [""] * len(FIELDS)
        severities = [int(x) for x in cols[3].split(",") if x.isdigit()]
        bad = bool(cols[2]) or any(s >= PI_ERROR for s in severities)
        if bad and _only_a_quoted_checksum(cols):
            bad = False
        rows.append({
            "file": pcap.name, "frame": cols[0], "time": float(cols[1] or 0),
            "bad": bad,
            "what": cols[4], "stream": cols[5],
            "recovery": any(cols[6 + i] for i in range(len(RECOVERY_FLAGS))),
            **_segment(cols[6 + len(RECOVERY_FLAGS):])})
    return rows


def _only_a_quoted_checksum(cols: list[str]) -> bool:
    """An ICMP error quotes at most 576 bytes of the packet (RFC 1812), so the
    quoted TCP or UDP checksum cannot be verified: tshark's "Bad checksum" there
    is no fault when the error's own ICMP and IP checksums are good."""
    icmp_type, icmp_ok, ip_ok = cols[len(FIELDS) - 3:len(FIELDS)]
    messages = [m for m in cols[4].split(",") if m]
    return (not cols[2] and icmp_type.split(",")[0] in ICMP_ERRORS and icmp_ok == "1"
            and all(s == "1" for s in ip_ok.split(",")) and all(m.startswith("Bad checksum") for m in messages))


def _segment(cols: list[str]) -> dict:
    """The sequence space a frame occupies, and the D-SACK blocks it reports."""
    seq, length, fin, les, res, ack, src, sport, dst, dport, rst = cols[:11]
    occupied = int(length or 0) + (1 if fin in ("1", "True") else 0)
    start = int(seq or 0)
    dsacks = [(int(a), int(b)) for a, b in zip(les.split(","), res.split(",")) if a and b]
    return {"seq": (start, start + occupied), "dsack": dsacks, "ack": int(ack or 0),
            "from": (src, sport), "to": (dst, dport), "rst": rst in ("1", "True")}


HOPS_TAKE = 0.2   # seconds at most from a frame's sighting on one cable to its next on the path


class Connections:
    """What every cable saw of each TCP connection (by its two endpoints, across
    all captures): the D-SACK blocks, per endpoint the ACKs it sent with the
    earliest time each was seen anywhere, and when each segment was seen."""

    def __init__(self, rows: list[dict]):
        self.dsacked: dict = {}         # connection -> D-SACKed ranges
        self.acks: dict = {}            # (connection, endpoint) -> [(time, ack)]
        self.answers: dict = {}         # (connection, endpoint) -> ends of spurious copies it was sent
        self.sightings: dict = {}       # (connection, sender, sequence range) -> [time on any cable]
        self.reset: dict = {}           # (connection, endpoint) -> when its first RST was seen
        for row in rows:
            if row["stream"]:
                conn = frozenset((row["from"], row["to"]))
                self.dsacked.setdefault(conn, []).extend(row["dsack"])
                self.acks.setdefault((conn, row["from"]), []).append((row["time"], row["ack"]))
                self.sightings.setdefault((conn, row["from"], row["seq"]), []).append(row["time"])
                if row["rst"]:
                    at = self.reset.get((conn, row["from"]), row["time"])
                    self.reset[conn, row["from"]] = min(at, row["time"])

    def acked_by(self, conn, endpoint, end: int, before: float) -> bool:
        return any(t <= before and ack >= end for t, ack in self.acks.get((conn, endpoint), ()))

    def spurious(self, row: dict) -> bool:
        """A retransmission that repaired no loss: its receiver reported it as a
        duplicate (D-SACK, RFC 2883), or had sent an ACK covering it before the
        copy reached it (a tail loss probe or an RTO that raced its ACK on a clean
        path, as Linux's do): the copy's last sighting on its way, on the cable
        nearest the receiver, came after that ACK was seen; or the receiver had
        reset the connection before the copy reached it. The duplicate ACK
        carrying that D-SACK, or answering that copy, goes with it."""
        if row["dsack"]:
            return True
        conn = frozenset((row["from"], row["to"]))
        start, end = row["seq"]
        reached = max(t for t in self.sightings.get((conn, row["from"], row["seq"]), [row["time"]])
                      if row["time"] <= t <= row["time"] + HOPS_TAKE)
        if end > start and (any(le <= start and end <= re for le, re in self.dsacked.get(conn, ()))
                            or self.acked_by(conn, row["to"], end, reached)
                            or self.reset.get((conn, row["to"]), reached + 1) <= reached):
            self.answers.setdefault((conn, row["to"]), set()).add(end)
            return True
        return end == start and row["ack"] in self.answers.get((conn, row["from"]), ())


def check(pcap_dir: pathlib.Path, windows: list[tuple]) -> list[str]:
    """windows: (test id, start ns, end ns, set of markers). Returns the complaints."""
    def owner(seconds: float):
        t = int(seconds * 1e9)
        return next((w for w in windows if w[1] <= t <= w[2]), None)

    complaints = []
    last_end = max((w[2] for w in windows), default=0)
    captures = [problems(pcap) for pcap in sorted(pcap_dir.glob("*.pcap"))]
    conns = Connections([row for rows in captures for row in rows])
    for rows in captures:
        opened = {}                     # TCP stream -> when its first listed frame (its SYN) was seen
        for row in rows:
            if row["stream"]:
                opened.setdefault(row["stream"], row["time"])
        for row in rows:
            excused = row["recovery"] and not row["bad"] and (conns.spurious(row) or row["time"] * 1e9 > last_end)
            if not (row["bad"] or row["recovery"]) or excused:
                continue                # nothing lost, or the stack stopping under a closing connection
            now = owner(row["time"])
            markers = now[3] if now else set()
            if row["bad"]:
                allowed = "malformed" in markers
            else:
                opener = owner(opened[row["stream"]])      # a flagged frame is always a TCP stream's
                allowed = bool({"impaired", "malformed"} & (markers | (opener[3] if opener else set())))
            if not allowed:
                kind = "bad frame" if row["bad"] else "TCP loss recovery"
                complaints.append(f"{row['file']} frame {row['frame']}: {kind} ({row['what']}) during "
                                  f"{now[0] if now else 'no test'}")
    return complaints
