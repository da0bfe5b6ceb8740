"""Path MTU arithmetic that ip (which keeps the learned MTU as a route
exception) and transport (which cuts its segments to it) must agree on."""


def learned_pmtu(old: int, mtu: int, min_pmtu: int) -> tuple[int, bool] | None:
    """__ip_rt_update_pmtu(): what ICMP "fragmentation needed" with `mtu` makes
    of a path whose MTU is `old`: (the new MTU, locked), or None when it
    changes nothing (a path MTU is never raised this way). Below
    net.ipv4.route.min_pmtu the MTU is clamped there and locked."""
    if old < mtu:
        return None
    if mtu < min_pmtu:
        return min(old, min_pmtu), True
    return mtu, False


IPV6_MIN_MTU = 1280


def learned_pmtu6(old: int, mtu: int) -> int | None:
    """__ip6_rt_update_pmtu(): what a Packet Too Big with `mtu` makes of an IPv6
    path whose MTU is `old`: the new MTU, or None when it changes nothing. A path
    MTU is never raised this way, and an MTU below 1280 (IPV6_MIN_MTU) is
    ignored: since RFC 8021 no atomic fragments are sent to honour one. IPv6
    has no lock (its PMTU discovery is not optional)."""
    if mtu < IPV6_MIN_MTU or mtu >= old:
        return None
    return mtu
