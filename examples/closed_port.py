"""Three UDP datagrams from h1 to a port nobody listens on at h2: h2 drops them
(NO_SOCKET at udp_rcv) and answers with ICMP port unreachable (README "Observing")."""
import pktflow

with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
    for _ in range(3):
        s.sendto(b"hello", ("10.0.2.10", 9999))
    s.settimeout(0.3)
    try:
        s.recvfrom(100)              # waits for the ICMP error (ECONNREFUSED) or 0.3 s
    except OSError:
        pass
