"""Policy routing rules (net/core/fib_rules.c, net/ipv4/fib_rules.c): an
ordered list of selectors, each naming a routing table to look in (or an
answer: blackhole, unreachable, prohibit). fib_lookup() walks them by
priority; a table without a route for the destination lets the walk go on.
A namespace starts with Linux's three: 0 lookup local, 32766 lookup main,
32767 lookup default."""
import errno
from dataclasses import dataclass

from ..wire.ipv4 import ntoa, prefix_mask

FR_ACT_TO_TBL, FR_ACT_BLACKHOLE, FR_ACT_UNREACHABLE, FR_ACT_PROHIBIT = 1, 6, 7, 8
ACTION_NAMES = {FR_ACT_BLACKHOLE: "blackhole", FR_ACT_UNREACHABLE: "unreachable", FR_ACT_PROHIBIT: "prohibit"}
ACTION_ERRNO = {FR_ACT_BLACKHOLE: errno.EINVAL, FR_ACT_UNREACHABLE: errno.ENETUNREACH,
                FR_ACT_PROHIBIT: errno.EACCES}          # fib4_rule_action()
TABLE_DEFAULT, TABLE_MAIN, TABLE_LOCAL = 253, 254, 255
TABLE_NAMES = {TABLE_DEFAULT: "default", TABLE_MAIN: "main", TABLE_LOCAL: "local"}
DETACHED = -1                                           # an iif/oif that names no device of the host


@dataclass(frozen=True)
class FibRule:
    priority: int
    table: int = TABLE_MAIN
    action: int = FR_ACT_TO_TBL
    src: int = 0
    src_len: int = 0
    dst: int = 0
    dst_len: int = 0
    mark: int = 0
    mark_mask: int = 0
    iif: int = 0                # ifindex; 0: any
    oif: int = 0
    iifname: str = ""
    oifname: str = ""
    invert: bool = False        # `not`

    def matches(self, daddr: int, saddr: int, iif: int, oif: int, mark: int) -> bool:
        """fib_rule_match() and fib4_rule_match()."""
        hit = (not self.iif or self.iif == iif) and (not self.oif or self.oif == oif) and \
            not (self.mark ^ mark) & self.mark_mask and \
            (saddr & prefix_mask(self.src_len)) == self.src and (daddr & prefix_mask(self.dst_len)) == self.dst
        return hit != self.invert

    def show(self) -> str:
        """One `ip rule show` line (iproute2 6.1)."""
        out = f"{self.priority}:\t" + ("not " if self.invert else "")
        out += "from " + (_prefix(self.src, self.src_len) if self.src_len else "all")
        if self.dst_len:
            out += " to " + _prefix(self.dst, self.dst_len)
        if self.mark_mask:
            out += f" fwmark 0x{self.mark:x}" + (f"/0x{self.mark_mask:x}" if self.mark_mask != 0xFFFFFFFF else "")
        for name, index, word in ((self.iifname, self.iif, "iif"), (self.oifname, self.oif, "oif")):
            if name:
                out += f" {word} {name}" + (" [detached]" if index == DETACHED else "")
        if self.action == FR_ACT_TO_TBL:
            return out + " lookup " + TABLE_NAMES.get(self.table, str(self.table))
        return out + " " + ACTION_NAMES[self.action]


def _prefix(addr: int, plen: int) -> str:
    return ntoa(addr) if plen == 32 else f"{ntoa(addr)}/{plen}"


def default_rules() -> list[FibRule]:
    """fib_default_rules_init()"""
    return [FibRule(0, TABLE_LOCAL), FibRule(32766, TABLE_MAIN), FibRule(32767, TABLE_DEFAULT)]


def default_priority(rules: list[FibRule]) -> int:
    """fib_default_rule_pref(): one below the second rule's priority (the first is local's 0)."""
    if len(rules) > 1 and rules[1].priority > 0:
        return rules[1].priority - 1
    return 0
