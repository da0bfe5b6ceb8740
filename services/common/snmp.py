"""SNMP-style counters, with the names nstat prints (/proc/net/snmp and
/proc/net/netstat rows joined to their field names: the table's name, then the
field's, as `TcpRetransSegs`, `TcpExtListenOverflows`, `IpExtInOctets`).

Inside a layer the TCP extension counters are kept under the kernel's MIB
field names (LINUX_MIB_LISTENOVERFLOWS is "ListenOverflows", net/ipv4/proc.c
snmp4_net_list); `Mib.rows()` gives them their `TcpExt` prefix for nstat."""
from collections import Counter

# The counters nstat shows for each table, in its order, so a zero is printed
# where the kernel would print one.
IP = ("IpForwarding", "IpDefaultTTL", "IpInReceives", "IpInHdrErrors", "IpInAddrErrors", "IpForwDatagrams",
      "IpInUnknownProtos", "IpInDiscards", "IpInDelivers", "IpOutRequests", "IpOutDiscards", "IpOutNoRoutes",
      "IpReasmTimeout", "IpReasmReqds", "IpReasmOKs", "IpReasmFails", "IpFragOKs", "IpFragFails", "IpFragCreates",
      "IpOutTransmits")
IP_EXT = ("IpExtInNoRoutes", "IpExtInTruncatedPkts", "IpExtInOctets", "IpExtOutOctets", "IpExtInCsumErrors")
ICMP = ("IcmpInMsgs", "IcmpInErrors", "IcmpInCsumErrors", "IcmpInDestUnreachs", "IcmpInTimeExcds",
        "IcmpInParmProbs", "IcmpInEchos", "IcmpInEchoReps", "IcmpOutMsgs", "IcmpOutErrors",
        "IcmpOutRateLimitGlobal", "IcmpOutRateLimitHost", "IcmpOutDestUnreachs", "IcmpOutTimeExcds",
        "IcmpOutParmProbs", "IcmpOutEchos", "IcmpOutEchoReps")
TCP = ("TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax", "TcpMaxConn", "TcpActiveOpens", "TcpPassiveOpens",
       "TcpAttemptFails", "TcpEstabResets", "TcpCurrEstab", "TcpInSegs", "TcpOutSegs", "TcpRetransSegs", "TcpInErrs",
       "TcpOutRsts", "TcpInCsumErrors")
UDP = ("UdpInDatagrams", "UdpNoPorts", "UdpInErrors", "UdpOutDatagrams", "UdpRcvbufErrors", "UdpSndbufErrors",
       "UdpInCsumErrors", "UdpIgnoredMulti", "UdpMemErrors")

# The TcpExt counters pktflow keeps, in snmp4_net_list's order (net/ipv4/proc.c).
TCP_EXT = ("SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "PAWSEstab", "DelayedACKs", "ListenOverflows",
           "ListenDrops", "TCPSackRecovery", "TCPFastRetrans", "TCPTimeouts", "TCPAbortOnData", "TCPOFOQueue",
           "TCPReqQFullDoCookies", "TCPReqQFullDrop")

# Fixed values of the Tcp table (/proc/net/snmp): RFC 2012's tcpRtoAlgorithm
# other(1), the RTO bounds in ms (TCP_RTO_MIN, TCP_RTO_MAX), tcpMaxConn -1
# (no limit), as net/ipv4/proc.c snmp_seq_show_tcp_udp() writes them.
TCP_FIXED = {"TcpRtoAlgorithm": 1, "TcpRtoMin": 200, "TcpRtoMax": 120000, "TcpMaxConn": -1}

class Mib(Counter):
    """One netns's counters. Missing names read as zero."""

    def rows(self, names=(), ext: str = "", ext_names=()) -> list[tuple[str, int]]:
        """(name, value) for the named counters first (zeros included), then the
        extension table `ext`'s (TcpExt: `ListenOverflows` is printed
        `TcpExtListenOverflows`): `ext_names` in order, zeros included, then any others."""
        seen = set(names) | set(ext_names)
        out = [(n, self[n]) for n in names]
        out += [(ext + n, self[n]) for n in ext_names]
        out += sorted((ext + n, v) for n, v in self.items() if n not in seen)
        return out
