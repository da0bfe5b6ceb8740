"""SNMP-style counters, with the names nstat prints (/proc/net/snmp and
netstat rows joined to their field names)."""
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


class Mib(Counter):
    """One netns's counters. Missing names read as zero."""

    def rows(self, names=()) -> list[tuple[str, int]]:
        """(name, value) for the named counters first (zeros included), then any others."""
        seen = set(names)
        out = [(n, self[n]) for n in names]
        out += sorted((n, v) for n, v in self.items() if n not in seen)
        return out
