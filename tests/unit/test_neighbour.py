"""Unit tests of the neighbour table and its NUD state machine
(services/link/neighbour.py), driven with a fake clock (ns) and fake skbs.

Expected behaviour is Linux's net/core/neighbour.c with the default
net.ipv4.neigh.default.* sysctls: mcast_solicit=3, ucast_solicit=3,
retrans_time=1 s, base_reachable_time=30 s, delay_first_probe_time=5 s,
gc_stale_time=60 s, unres_qlen_bytes=212992."""
import random
from types import SimpleNamespace

import pytest
from pktflow.services.common import sysctl
from pktflow.services.link import neighbour as nd
from pktflow.services.link.neighbour import (
    DROP,
    FAILED,
    NUD_DELAY,
    NUD_FAILED,
    NUD_INCOMPLETE,
    NUD_NONE,
    NUD_PERMANENT,
    NUD_PROBE,
    NUD_REACHABLE,
    NUD_STALE,
    QUEUED,
    SEND,
    SOLICIT,
    TIMER,
    NeighParms,
    NeighTable,
)
from pktflow.services.wire.ipv4 import aton

S = 1_000_000_000
MS = 1_000_000
IF = 2
IP = aton("10.0.1.1")
MAC = bytes.fromhex("020000000101")
MAC2 = bytes.fromhex("0200000001ff")
T0 = 1000 * S                          # an arbitrary monotonic start


def table(seed: int = 1, **over) -> NeighTable:
    s = sysctl.defaults()
    s.update({f"net.ipv4.neigh.default.{k}": v for k, v in over.items()})
    return NeighTable(NeighParms(s), random.Random(seed))


def skb(n: int = 100, tag: int = 0):
    return SimpleNamespace(data=bytes([tag]) * n)


def kinds(actions) -> list[str]:
    return [a[0] for a in actions]


def of_kind(actions, kind) -> list:
    return [a for a in actions if a[0] == kind]


def timer(actions):
    """The payload of the (single) TIMER action."""
    ts = of_kind(actions, TIMER)
    assert len(ts) == 1, actions
    return ts[0][2]


def state(t: NeighTable) -> int:
    return t.lookup(IF, IP).state


def resolved(t: NeighTable, now: int = T0) -> int:
    """Resolves IP (INCOMPLETE, then an ARP reply); returns the REACHABLE expiry."""
    t.output(IF, IP, skb(), now)
    out = t.update(IF, IP, MAC, NUD_REACHABLE, now, create=False)
    return timer(out)


def to_stale(t: NeighTable) -> int:
    """REACHABLE, unused, until its timer: STALE. Returns the time it went stale."""
    expiry = resolved(t)
    t.timer(IF, IP, expiry)
    assert state(t) == NUD_STALE
    return expiry


# ------------------------------------------------------------ INCOMPLETE

def test_first_output_starts_resolution():
    t = table()
    p = skb()
    out = t.output(IF, IP, p, T0)
    n = t.lookup(IF, IP)
    assert n.state == NUD_INCOMPLETE and n.lladdr is None
    assert sorted(kinds(out)) == sorted([TIMER, SOLICIT, QUEUED])
    assert of_kind(out, SOLICIT) == [(SOLICIT, n, (p, None))]        # broadcast
    assert of_kind(out, QUEUED) == [(QUEUED, n, p)]
    assert timer(out) == T0 + 1 * S
    assert list(n.queue) == [p] and n.queue_bytes == 100


def test_more_output_while_incomplete_only_queues():
    t = table()
    t.output(IF, IP, skb(tag=1), T0)
    p2 = skb(tag=2)
    out = t.output(IF, IP, p2, T0 + 300 * MS)
    assert out == [(QUEUED, t.lookup(IF, IP), p2)]
    assert len(t.lookup(IF, IP).queue) == 2


def test_entries_are_per_interface_and_address():
    t = table()
    t.output(IF, IP, skb(), T0)
    t.output(3, IP, skb(), T0)
    t.output(IF, aton("10.0.1.2"), skb(), T0)
    assert len(t.entries) == 3 and len(t.show()) == 3


def test_three_broadcast_probes_then_failed():
    t = table()
    queued = [skb(tag=i) for i in range(3)]
    out = t.output(IF, IP, queued[0], T0)
    solicits = [(T0, a[2]) for a in of_kind(out, SOLICIT)]
    t.output(IF, IP, queued[1], T0 + 100 * MS)
    t.output(IF, IP, queued[2], T0 + 200 * MS)
    now = timer(out)
    for expected_next in (T0 + 2 * S, T0 + 3 * S):
        out = t.timer(IF, IP, now)
        assert state(t) == NUD_INCOMPLETE
        solicits += [(now, a[2]) for a in of_kind(out, SOLICIT)]
        assert timer(out) == expected_next
        now = expected_next
    assert [when for when, _ in solicits] == [T0, T0 + S, T0 + 2 * S]
    assert all(dst is None for _, (_, dst) in solicits), "INCOMPLETE probes are broadcast"
    # the later probes carry the newest queued packet (neigh_probe: skb_peek_tail)
    assert solicits[1][1][0] is queued[2] and solicits[2][1][0] is queued[2]
    out = t.timer(IF, IP, now)                                   # t = 3 s
    assert state(t) == NUD_FAILED
    assert kinds(out) == [FAILED, FAILED, FAILED]
    assert [a[2] for a in out] == queued
    n = t.lookup(IF, IP)
    assert not n.queue and n.queue_bytes == 0


def test_mcast_solicit_sets_the_number_of_broadcast_probes():
    t = table(mcast_solicit=5)
    out = t.output(IF, IP, skb(), T0)
    probes, now = 1, timer(out)
    while state(t) == NUD_INCOMPLETE:
        out = t.timer(IF, IP, now)
        probes += len(of_kind(out, SOLICIT))
        now = now + S
    assert probes == 5
    assert t.lookup(IF, IP).updated == T0 + 5 * S


def test_retrans_time_sets_the_probe_interval():
    t = table(retrans_time_ms=250)
    out = t.output(IF, IP, skb(), T0)
    assert timer(out) == T0 + 250 * MS
    assert timer(t.timer(IF, IP, T0 + 250 * MS)) == T0 + 500 * MS


def test_mcast_solicit_zero_fails_at_once_without_probing():
    # __neigh_event_send(): with MCAST_PROBES + APP_PROBES == 0 the entry goes
    # straight to NUD_FAILED and the skb is freed (SKB_DROP_REASON_NEIGH_FAILED);
    # no ARP request is sent.
    t = table(mcast_solicit=0)
    out = t.output(IF, IP, skb(), T0)
    assert state(t) == NUD_FAILED
    assert not of_kind(out, SOLICIT) and not of_kind(out, QUEUED)


def test_arp_reply_releases_the_queue_in_order():
    t = table()
    queued = [skb(tag=i) for i in range(4)]
    for i, p in enumerate(queued):
        t.output(IF, IP, p, T0 + i * MS)
    out = t.update(IF, IP, MAC, NUD_REACHABLE, T0 + 10 * MS, create=False)
    n = t.lookup(IF, IP)
    assert n.state == NUD_REACHABLE and n.lladdr == MAC
    assert [a[2] for a in of_kind(out, SEND)] == queued
    assert all(a[1] is n for a in out)
    assert not of_kind(out, DROP) and not of_kind(out, FAILED)
    assert not n.queue and n.queue_bytes == 0
    assert T0 + 10 * MS + 15 * S <= timer(out) < T0 + 10 * MS + 45 * S


def test_reply_after_some_probes_still_releases():
    t = table()
    p = skb()
    t.output(IF, IP, p, T0)
    t.timer(IF, IP, T0 + S)
    t.timer(IF, IP, T0 + 2 * S)
    out = t.update(IF, IP, MAC, NUD_REACHABLE, T0 + 2500 * MS, create=False)
    assert of_kind(out, SEND) == [(SEND, t.lookup(IF, IP), p)]
    assert state(t) == NUD_REACHABLE and t.lookup(IF, IP).probes == 0


def test_queue_overflow_drops_the_oldest():
    t = table(unres_qlen_bytes=250)
    a, b, c = skb(100, 1), skb(100, 2), skb(100, 3)
    t.output(IF, IP, a, T0)
    t.output(IF, IP, b, T0)
    out = t.output(IF, IP, c, T0)
    n = t.lookup(IF, IP)
    assert out == [(DROP, n, (a, "NEIGH_QUEUEFULL")), (QUEUED, n, c)]
    assert list(n.queue) == [b, c] and n.queue_bytes == 200


def test_queue_overflow_drops_as_many_as_needed():
    t = table(unres_qlen_bytes=300)
    small = [skb(100, i) for i in range(3)]
    for p in small:
        t.output(IF, IP, p, T0)
    big = skb(250, 9)
    out = t.output(IF, IP, big, T0)
    assert [a[2] for a in of_kind(out, DROP)] == [(small[0], "NEIGH_QUEUEFULL"), (small[1], "NEIGH_QUEUEFULL"),
                                                  (small[2], "NEIGH_QUEUEFULL")]
    assert list(t.lookup(IF, IP).queue) == [big]


def test_default_queue_holds_212992_bytes():
    t = table()
    drops = []
    for i in range(142):
        drops += of_kind(t.output(IF, IP, skb(1500, i % 256), T0), DROP)
    assert len(drops) == 1                       # 141 * 1500 <= 212992 < 142 * 1500
    assert t.lookup(IF, IP).queue_bytes == 141 * 1500


def test_packet_bigger_than_the_queue_is_still_queued():
    # __neigh_event_send(): the loop dequeues old skbs while over the limit and
    # stops when the queue is empty (`if (!buff) break;`), then queues the new
    # skb unconditionally: the newest packet always waits for the reply.
    t = table(unres_qlen_bytes=50)
    p = skb(100)
    out = t.output(IF, IP, p, T0)
    assert of_kind(out, QUEUED) == [(QUEUED, t.lookup(IF, IP), p)]
    assert not of_kind(out, DROP)


# ------------------------------------------------------------ REACHABLE and STALE

def test_reachable_time_is_random_in_half_to_three_halves_of_base():
    seen = set()
    for seed in range(40):
        t = table(seed=seed)
        expiry = resolved(t)
        rt = expiry - T0
        assert 15 * S <= rt < 45 * S
        assert t.lookup(IF, IP).reachable_time == rt
        seen.add(rt)
    assert len(seen) > 30, "drawn at random"


def test_reachable_time_follows_base_reachable_time():
    for seed in range(10):
        rt = resolved(table(seed=seed, base_reachable_time_ms=1000)) - T0
        assert 500 * MS <= rt < 1500 * MS


def test_reachable_output_sends_at_once():
    t = table()
    resolved(t)
    p = skb()
    assert t.output(IF, IP, p, T0 + S) == [(SEND, t.lookup(IF, IP), p)]
    assert state(t) == NUD_REACHABLE


def test_reachable_timer_before_expiry_rearms():
    t = table()
    expiry = resolved(t)
    out = t.timer(IF, IP, expiry - S)
    assert state(t) == NUD_REACHABLE and timer(out) == expiry


def test_reachable_goes_stale_when_unused():
    t = table()
    expiry = resolved(t)
    out = t.timer(IF, IP, expiry)
    assert state(t) == NUD_STALE
    assert t.lookup(IF, IP).lladdr == MAC
    assert not of_kind(out, SOLICIT)


def test_reachable_goes_delay_when_used_recently():
    t = table()
    expiry = resolved(t)
    t.output(IF, IP, skb(), expiry - 2 * S)               # used within delay_first_probe_time
    out = t.timer(IF, IP, expiry)
    assert state(t) == NUD_DELAY
    assert timer(out) == expiry + 5 * S
    assert not of_kind(out, SOLICIT)


def test_reachable_used_long_before_expiry_goes_stale():
    t = table()
    expiry = resolved(t)
    t.output(IF, IP, skb(), expiry - 6 * S)
    t.timer(IF, IP, expiry)
    assert state(t) == NUD_STALE


def test_stale_output_sends_at_once_and_moves_to_delay():
    t = table()
    stale_at = to_stale(t)
    p = skb()
    now = stale_at + 10 * S
    out = t.output(IF, IP, p, now)
    assert state(t) == NUD_DELAY
    assert of_kind(out, SEND) == [(SEND, t.lookup(IF, IP), p)]
    assert timer(out) == now + 5 * S
    assert not of_kind(out, SOLICIT) and not of_kind(out, QUEUED)


def test_stale_entry_unused_for_gc_stale_time_is_removed():
    t = table()
    expiry = resolved(t)
    when = timer(t.timer(IF, IP, expiry))                     # REACHABLE -> STALE, arms the gc timer
    assert state(t) == NUD_STALE
    assert when >= t.lookup(IF, IP).used + 60 * S
    assert t.timer(IF, IP, when) == []
    assert t.lookup(IF, IP) is None


def test_stale_entry_is_kept_before_gc_stale_time():
    t = table()
    expiry = resolved(t)
    t.timer(IF, IP, expiry)                                   # STALE
    n = t.lookup(IF, IP)
    out = t.timer(IF, IP, n.used + 30 * S)
    assert t.lookup(IF, IP) is n and n.state == NUD_STALE
    assert timer(out) == n.used + 60 * S


# ------------------------------------------------------------ DELAY and PROBE

def delay(t: NeighTable) -> int:
    """An entry in DELAY (a stale entry used); returns the time DELAY began."""
    stale_at = to_stale(t)
    now = stale_at + 10 * S
    t.output(IF, IP, skb(), now)
    assert state(t) == NUD_DELAY
    return now


def test_delay_output_sends():
    t = table()
    start = delay(t)
    p = skb()
    assert t.output(IF, IP, p, start + S) == [(SEND, t.lookup(IF, IP), p)]
    assert state(t) == NUD_DELAY


def test_delay_without_confirmation_probes_by_unicast():
    t = table()
    start = delay(t)
    out = t.timer(IF, IP, start + 5 * S)
    assert state(t) == NUD_PROBE
    [(_, _, (_, dst))] = of_kind(out, SOLICIT)
    assert dst == MAC, "PROBE asks the known address by unicast"
    assert timer(out) == start + 6 * S


def test_probe_three_unicast_probes_then_failed():
    t = table()
    start = delay(t)
    now = start + 5 * S
    probes = []
    while True:
        out = t.timer(IF, IP, now)
        if state(t) != NUD_PROBE:
            break
        probes += [(now, a[2][1]) for a in of_kind(out, SOLICIT)]
        now = timer(out)
    assert probes == [(start + 5 * S, MAC), (start + 6 * S, MAC), (start + 7 * S, MAC)]
    assert now == start + 8 * S and state(t) == NUD_FAILED
    assert not of_kind(out, SOLICIT) and not of_kind(out, TIMER)


def test_probe_output_sends_with_the_old_address():
    t = table()
    start = delay(t)
    t.timer(IF, IP, start + 5 * S)
    p = skb()
    assert t.output(IF, IP, p, start + 5500 * MS) == [(SEND, t.lookup(IF, IP), p)]


def test_ucast_solicit_sets_the_number_of_unicast_probes():
    t = table(ucast_solicit=1)
    start = delay(t)
    out = t.timer(IF, IP, start + 5 * S)
    assert state(t) == NUD_PROBE and len(of_kind(out, SOLICIT)) == 1
    t.timer(IF, IP, start + 6 * S)
    assert state(t) == NUD_FAILED


def test_confirmation_during_delay_returns_to_reachable():
    t = table()
    start = delay(t)
    out = t.update(IF, IP, MAC, NUD_REACHABLE, start + 2 * S, create=False)
    n = t.lookup(IF, IP)
    assert n.state == NUD_REACHABLE and n.confirmed == start + 2 * S
    assert start + 2 * S + 15 * S <= timer(out) < start + 2 * S + 45 * S
    # the stale DELAY timer, should it still fire, finds a REACHABLE entry
    t.timer(IF, IP, start + 5 * S)
    assert state(t) == NUD_REACHABLE


def test_confirmation_during_probe_returns_to_reachable():
    t = table()
    start = delay(t)
    t.timer(IF, IP, start + 5 * S)
    t.timer(IF, IP, start + 6 * S)
    out = t.update(IF, IP, MAC, NUD_REACHABLE, start + 6500 * MS, create=False)
    n = t.lookup(IF, IP)
    assert n.state == NUD_REACHABLE and n.probes == 0
    assert not of_kind(out, SOLICIT)
    assert timer(out) >= start + 6500 * MS + 15 * S


def test_new_address_in_probe_is_taken():
    t = table()
    start = delay(t)
    t.timer(IF, IP, start + 5 * S)
    t.update(IF, IP, MAC2, NUD_REACHABLE, start + 5500 * MS, create=False)
    n = t.lookup(IF, IP)
    assert n.state == NUD_REACHABLE and n.lladdr == MAC2


# ------------------------------------------------------------ FAILED

def test_output_after_failed_resolves_again():
    t = table()
    t.output(IF, IP, skb(), T0)
    for k in (1, 2, 3):
        t.timer(IF, IP, T0 + k * S)
    assert state(t) == NUD_FAILED
    p = skb(tag=7)
    now = T0 + 10 * S
    out = t.output(IF, IP, p, now)
    n = t.lookup(IF, IP)
    assert n.state == NUD_INCOMPLETE
    assert of_kind(out, SOLICIT) == [(SOLICIT, n, (p, None))]
    assert of_kind(out, QUEUED) == [(QUEUED, n, p)]
    assert timer(out) == now + S
    # and again three probes in all
    for k in (1, 2):
        assert len(of_kind(t.timer(IF, IP, now + k * S), SOLICIT)) == 1
    assert kinds(t.timer(IF, IP, now + 3 * S)) == [FAILED]


def test_failed_from_probe_then_output_resolves_by_broadcast():
    t = table()
    start = delay(t)
    for k in (5, 6, 7, 8):
        t.timer(IF, IP, start + k * S)
    assert state(t) == NUD_FAILED
    out = t.output(IF, IP, skb(), start + 20 * S)
    assert state(t) == NUD_INCOMPLETE
    [(_, _, (_, dst))] = of_kind(out, SOLICIT)
    assert dst is None


# ------------------------------------------------------------ update()

def test_unsolicited_reply_does_not_create_an_entry():
    t = table()
    assert t.update(IF, IP, MAC, NUD_REACHABLE, T0, create=False) == []
    assert t.lookup(IF, IP) is None and t.entries == {}


def test_update_with_create_makes_a_stale_entry():
    # arp_process() -> neigh_event_ns(): an ARP request to us creates the sender STALE
    t = table()
    out = t.update(IF, IP, MAC, NUD_STALE, T0, create=True, weak=True)
    n = t.lookup(IF, IP)
    assert n.state == NUD_STALE and n.lladdr == MAC
    assert not of_kind(out, SEND) and not of_kind(out, SOLICIT)
    p = skb()
    out = t.output(IF, IP, p, T0 + S)
    assert of_kind(out, SEND) == [(SEND, n, p)] and n.state == NUD_DELAY


def test_weak_override_keeps_a_valid_entrys_state_when_the_mac_is_unchanged():
    t = table()
    expiry = resolved(t)
    n = t.lookup(IF, IP)
    assert t.update(IF, IP, MAC, NUD_STALE, T0 + S, create=True, weak=True) == []
    assert n.state == NUD_REACHABLE and n.lladdr == MAC
    # and the REACHABLE timer is unchanged
    assert timer(t.timer(IF, IP, expiry - 1)) == expiry


def test_weak_override_with_a_new_mac_takes_it():
    t = table()
    resolved(t)
    t.update(IF, IP, MAC2, NUD_STALE, T0 + S, create=True, weak=True)
    n = t.lookup(IF, IP)
    assert n.lladdr == MAC2 and n.state == NUD_STALE


def test_stale_update_with_unchanged_mac_keeps_a_reachable_entry():
    # __neigh_update(): "If entry was valid and address is not changed, do not
    # change entry state, if new one is STALE" -- new = old unless the update is
    # NEIGH_UPDATE_F_ADMIN (v5.x+; older kernels: when old & NUD_CONNECTED or
    # WEAK_OVERRIDE). arp_process() makes such an update (flags 0 or OVERRIDE)
    # for any ARP from a known neighbour that is not a unicast reply to us, and
    # services/link/arp.py calls update(..., NUD_STALE, create=False) for it.
    t = table()
    resolved(t)
    t.update(IF, IP, MAC, NUD_STALE, T0 + S, create=False)
    assert state(t) == NUD_REACHABLE


def test_stale_update_with_a_new_mac_goes_stale():
    t = table()
    resolved(t)
    out = t.update(IF, IP, MAC2, NUD_STALE, T0 + S, create=False)
    n = t.lookup(IF, IP)
    assert n.state == NUD_STALE and n.lladdr == MAC2
    assert not of_kind(out, SEND)


def test_arp_request_from_the_neighbour_while_incomplete_sends_the_queue_through_delay():
    # __neigh_update() to NUD_STALE from INCOMPLETE flushes arp_queue through
    # neigh->output, which (the entry not being CONNECTED) is neigh_resolve_output():
    # neigh_event_send() turns STALE into DELAY and arms delay_first_probe_time.
    t = table()
    p = skb()
    t.output(IF, IP, p, T0)
    out = t.update(IF, IP, MAC, NUD_STALE, T0 + 300 * MS, create=True, weak=True)
    n = t.lookup(IF, IP)
    assert of_kind(out, SEND) == [(SEND, n, p)]
    assert n.lladdr == MAC
    assert n.state == NUD_DELAY
    assert of_kind(out, TIMER)[-1][2] == T0 + 300 * MS + 5 * S


def test_permanent_entries_are_not_updated():
    t = table()
    t.update(IF, IP, MAC, NUD_PERMANENT, T0, create=True)
    assert t.update(IF, IP, MAC2, NUD_REACHABLE, T0 + S, create=False) == []
    n = t.lookup(IF, IP)
    assert n.state == NUD_PERMANENT and n.lladdr == MAC
    p = skb()
    assert t.output(IF, IP, p, T0 + 2 * S) == [(SEND, n, p)]


def test_timer_of_an_unknown_entry_does_nothing():
    assert table().timer(IF, IP, T0) == []


def test_show():
    t = table()
    resolved(t)
    t.output(IF, aton("10.0.1.2"), skb(), T0)
    assert t.show() == [
        {"dst": IP, "ifindex": IF, "lladdr": MAC, "state": NUD_REACHABLE},
        {"dst": aton("10.0.1.2"), "ifindex": IF, "lladdr": None, "state": NUD_INCOMPLETE},
    ]


def test_state_names():
    assert nd.NAMES[NUD_NONE] == "NONE" and nd.NAMES[NUD_INCOMPLETE] == "INCOMPLETE"
    assert nd.NAMES[NUD_REACHABLE] == "REACHABLE" and nd.NAMES[NUD_FAILED] == "FAILED"
    assert nd.NUD_VALID & NUD_STALE and not nd.NUD_VALID & NUD_INCOMPLETE
    assert nd.NUD_CONNECTED & NUD_REACHABLE and not nd.NUD_CONNECTED & NUD_STALE


@pytest.mark.parametrize("key,attr,value", [
    ("base_reachable_time_ms", "base_reachable_time", 30 * S), ("retrans_time_ms", "retrans_time", S),
    ("delay_first_probe_time", "delay_probe_time", 5 * S), ("mcast_solicit", "mcast_probes", 3),
    ("ucast_solicit", "ucast_probes", 3), ("unres_qlen_bytes", "queue_len_bytes", 212992),
    ("gc_stale_time", "gc_stale_time", 60 * S)])
def test_parms_from_default_sysctls(key, attr, value):
    assert getattr(NeighParms(sysctl.defaults()), attr) == value


# ------------------------------------------------------------ neigh_confirm

def test_a_confirming_skb_keeps_the_entry_reachable():
    """sock_confirm_neigh() -> neigh_confirm(): `confirmed` moves to now, so the
    REACHABLE timer re-arms instead of expiring, and no probe is ever sent."""
    t = table()
    expiry = resolved(t)
    later = expiry - 1 * S
    out = t.output(IF, IP, skb(), later, confirm=True)
    assert kinds(out) == [SEND] and t.lookup(IF, IP).confirmed == later
    out = t.timer(IF, IP, expiry)
    assert state(t) == NUD_REACHABLE and timer(out) == later + t.lookup(IF, IP).reachable_time


def test_a_confirmation_in_delay_returns_to_reachable_without_a_probe():
    t = table()
    went_stale = to_stale(t)
    t.output(IF, IP, skb(), went_stale + 1 * S)                      # STALE -> DELAY
    assert state(t) == NUD_DELAY
    t.output(IF, IP, skb(), went_stale + 2 * S, confirm=True)        # the flow confirms it
    out = t.timer(IF, IP, went_stale + 6 * S)
    assert state(t) == NUD_REACHABLE and not of_kind(out, SOLICIT)


def test_a_spoofed_arp_flood_leaves_the_table_bounded_and_a_real_neighbour_still_resolves():
    """30,000 ARP requests from made-up senders, one a millisecond (each makes a
    STALE entry, as arp_process() does): the table never holds more than
    gc_thresh3 (1024); what cannot get an entry is counted (table_fulls). While
    the flood lasts every entry is younger than 5 s and none can go (Linux's
    "neighbor table overflow" too); 5 s after it, forced GC frees entries, so a
    neighbour we need gets one."""
    t = table()
    now = T0
    sizes = []
    for i in range(30_000):
        now += MS
        t.update(IF, aton("10.200.0.0") + i, MAC2, NUD_STALE, now, create=True)
        sizes.append(len(t.entries))
    assert max(sizes) <= 1024 and t.stats["table_fulls"] > 0 and t.stats["forced_gc_runs"] > 0
    now += 6 * S
    out = t.output(IF, IP, skb(), now)                  # the router we send to, after the flood
    assert [k for k, _, _ in out] == [TIMER, SOLICIT, QUEUED]
    now += 61 * S                                       # past gc_stale_time: the sweep empties the flood
    t.update(IF, aton("10.9.9.9"), MAC2, NUD_STALE, now, create=True)
    assert len(t.entries) <= 3 and t.stats["periodic_gc_runs"] > 0


def test_a_full_table_refuses_a_new_neighbour_with_neigh_createfail():
    t = table(gc_thresh2=2, gc_thresh3=3)
    for i in range(3):                                  # three entries, all waiting (packets queued)
        t.output(IF, aton("10.0.1.1") + i, skb(), T0)
    [(kind, _, (dropped, reason))] = t.output(IF, aton("10.0.1.99"), skb(), T0 + 10 * S)
    assert (kind, reason) == (DROP, "NEIGH_CREATEFAIL") and t.stats["table_fulls"] == 1
