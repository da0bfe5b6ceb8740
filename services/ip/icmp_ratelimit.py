"""ICMP rate limits (net/ipv4/icmp.c, inetpeer.c): a host-wide token bucket
(icmp_msgs_per_sec, icmp_msgs_burst) and one per destination
(inet_peer_xrlim_allow: one message per icmp_ratelimit ms, bursts of six), for
the types in icmp_ratemask (destination unreachable, source quench, time
exceeded, parameter problem). Echo replies are never limited.

ICMPv6 (net/ipv6/icmp.c) shares the host-wide bucket (icmpv6_global_allow() calls
icmp_global_allow()) and has its own peers (net->ipv6.peers) with
net.ipv6.icmp.ratelimit, for the types in net.ipv6.icmp.ratemask (default
0-1,3-127: every error but packet too big)."""

ICMP_RATEMASK = 0x1818          # net.ipv4.icmp_ratemask default
XRLIM_BURST_FACTOR = 6
MS = 1_000_000
_S = 1_000_000_000


class RateLimits:
    def __init__(self, sysctl: dict):
        self.timeout = sysctl["net.ipv4.icmp_ratelimit"] * MS
        self.per_sec = sysctl["net.ipv4.icmp_msgs_per_sec"]
        self.burst = sysctl["net.ipv4.icmp_msgs_burst"]
        self.credit = self.burst
        self.stamp = None
        self.peers: dict[int, tuple[int, int]] = {}    # daddr -> (tokens, last)
        self.peers6: dict[int, tuple[int, int]] = {}   # the same for IPv6 destinations

    def global_allow(self, now: int) -> bool:
        """icmp_global_allow()."""
        if self.stamp is None:
            self.stamp = now
        elapsed = min(now - self.stamp, _S)         # delta = min(now - stamp, HZ)
        if elapsed >= _S // 50:
            incr = elapsed * self.per_sec // _S
            if incr:                                 # the stamp moves only when credit is granted
                self.credit = min(self.burst, self.credit + incr)
                self.stamp = now
        if self.credit > 0:
            self.credit -= 1
            return True
        return False

    def peer_allow(self, daddr: int, now: int, timeout: int | None = None, peers: dict | None = None) -> bool:
        """inet_peer_xrlim_allow(): a new peer starts with a full burst. IPv6 passes its
        own table (peers6) and timeout (icmpv6_xrlim_allow())."""
        timeout = self.timeout if timeout is None else timeout
        peers = self.peers if peers is None else peers
        if not timeout:
            return True
        cap = XRLIM_BURST_FACTOR * timeout
        tokens, last = peers.get(daddr, (cap, now))
        tokens = min(cap, tokens + now - last)
        ok = tokens >= timeout
        if ok:
            tokens -= timeout
        if len(peers) > 4096:
            peers.clear()
        peers[daddr] = (tokens, now)
        return ok

    @staticmethod
    def limited_type(type_: int, code: int) -> bool:
        return bool((1 << type_) & ICMP_RATEMASK) and not (type_ == 3 and code == 4)

    @staticmethod
    def limited_type6(type_: int) -> bool:
        """icmpv6_mask_allow()'s opposite: the type is in net.ipv6.icmp.ratemask (0-1,3-127)."""
        return type_ < 128 and type_ != 2
