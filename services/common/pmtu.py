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
