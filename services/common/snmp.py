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

# /proc/net/snmp6 (net/ipv6/proc.c, Linux 6.18): snmp6_ipstats_list, then snmp6_icmp6_list,
# then the ICMPv6 message table by name (In for each named type, then Out) and by number
# (Icmp6InType<N>, Icmp6OutType<N>: nonzero ones only), then Udp6 and UdpLite6.
IP6 = ("Ip6InReceives", "Ip6InHdrErrors", "Ip6InTooBigErrors", "Ip6InNoRoutes", "Ip6InAddrErrors",
       "Ip6InUnknownProtos", "Ip6InTruncatedPkts", "Ip6InDiscards", "Ip6InDelivers", "Ip6OutForwDatagrams",
       "Ip6OutRequests", "Ip6OutDiscards", "Ip6OutNoRoutes", "Ip6ReasmTimeout", "Ip6ReasmReqds", "Ip6ReasmOKs",
       "Ip6ReasmFails", "Ip6FragOKs", "Ip6FragFails", "Ip6FragCreates", "Ip6InMcastPkts", "Ip6OutMcastPkts",
       "Ip6InOctets", "Ip6OutOctets", "Ip6InMcastOctets", "Ip6OutMcastOctets", "Ip6InBcastOctets",
       "Ip6OutBcastOctets", "Ip6InNoECTPkts", "Ip6InECT1Pkts", "Ip6InECT0Pkts", "Ip6InCEPkts", "Ip6OutTransmits")
ICMP6 = ("Icmp6InMsgs", "Icmp6InErrors", "Icmp6OutMsgs", "Icmp6OutErrors", "Icmp6InCsumErrors",
         "Icmp6OutRateLimitHost")
# snmp6_seq_show_icmpv6msg()'s names, in type order
ICMP6_TYPE_NAMES = {1: "DestUnreachs", 2: "PktTooBigs", 3: "TimeExcds", 4: "ParmProblems", 128: "Echos",
                    129: "EchoReplies", 130: "GroupMembQueries", 131: "GroupMembResponses",
                    132: "GroupMembReductions", 133: "RouterSolicits", 134: "RouterAdvertisements",
                    135: "NeighborSolicits", 136: "NeighborAdvertisements", 137: "Redirects", 143: "MLDv2Reports"}
UDP6 = ("Udp6InDatagrams", "Udp6NoPorts", "Udp6InErrors", "Udp6OutDatagrams", "Udp6RcvbufErrors",
        "Udp6SndbufErrors", "Udp6InCsumErrors", "Udp6IgnoredMulti", "Udp6MemErrors")


def icmp6_rows(counts) -> list[tuple[str, int]]:
    """The Icmp6 rows of /proc/net/snmp6 from counters kept as ICMP6 plus one per
    message type and direction, `Icmp6InType<N>` / `Icmp6OutType<N>` (ICMP6MSGIN_INC_STATS
    and ICMP6MSGOUT_INC_STATS count only those): the named types (zeros included,
    In then Out), then the numbered ones that are not zero."""
    out = [(n, counts.get(n, 0)) for n in ICMP6]
    for way in ("In", "Out"):
        out += [(f"Icmp6{way}{name}", counts.get(f"Icmp6{way}Type{t}", 0)) for t, name in ICMP6_TYPE_NAMES.items()]
    for way in ("In", "Out"):
        typed = sorted((int(n[len(f"Icmp6{way}Type"):]), v) for n, v in counts.items()
                       if n.startswith(f"Icmp6{way}Type") and v)
        out += [(f"Icmp6{way}Type{t}", v) for t, v in typed]
    return out


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
