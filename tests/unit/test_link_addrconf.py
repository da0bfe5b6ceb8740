"""DAD, router solicitations and MLDv2 in the link room (services/link/addrconf.py),
as net/ipv6/addrconf.c and mcast.c do them when a device comes up or an address
is added or deleted, driven through the link cores of the default topology
(linkwire.py) with a fake clock. The frames are Linux 6.18's (ipv6-dad.h1/h2,
ipv6-echo.h1's first), byte for byte."""
from scapy.layers.inet6 import ICMPv6MLReport2, ICMPv6ND_NS, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether

from linkwire import (A, H1, H2, MAC_R1A, MS, R1A, R1B, S, LL_R1A, LinkWire, capture, frame, na_frame, ndp,
                      ns_frame, records)
from pktflow.services.common import topology
from pktflow.services.link import addrconf, neighbour as nd
from pktflow.services.wire import icmpv6, ipv6

NEW_MAC = b"\x02\0\0\0\x09\x09"


def entry(w, netns, ifname, addr: str):
    return w.ns(netns).nd_tbl.lookup(w.ifindex(netns, ifname), A(addr))


def test_an_added_address_dad_and_mld_as_linux_sends_them():
    """ip -6 addr add 2001:db8:1::99/64 dev eth0 on h1 (ipv6-dad.h1): an MLDv2
    report at once (the new solicited-node group first, then the older ones,
    CHANGE_TO_EXCLUDE, from the link-local address to ff02::16, hop limit 1,
    router alert), DAD's NS from :: to ff02::1:ff00:99 with a nonce and no
    link-layer option within rtr_solicit_delay (1 s), the report again within
    1 s; the address tentative until retrans_time (1 s) after the probe. With
    Linux's nonce the NS is the captured one, byte for byte."""
    cap = capture("ipv6-dad.h1")
    w = LinkWire()
    ns_, dev = w.ns("h1"), w.dev("h1", "eth0")
    addrs = [(ifa.addr, ifa.plen) for ifa in dev.idev6.ifa.values()] + [(A("2001:db8:1::99"), 64)]
    w.run(addrconf.set_addrs(ns_, dev, addrs, w.now))
    assert w.on_link(H1) == [cap[0]]
    ifa = dev.idev6.ifa[A("2001:db8:1::99")]
    assert ifa.flags & addrconf.IFA_F_TENTATIVE and len(ifa.nonce) == 6 and any(ifa.nonce)
    ifa.nonce = Ether(cap[1])[IPv6].payload.payload.data       # Linux's nonce (an option scapy does not name)
    w.advance(1)
    sent = w.on_link(H1)
    assert sent[:1] == [cap[0]] and cap[1] in sent and sent.count(cap[0]) == 2
    probe_at = next(t for t, n, _, f in w.frames if f == cap[1])
    assert 0 <= probe_at < S
    assert ifa.flags & addrconf.IFA_F_TENTATIVE
    w.advance((probe_at + S - w.now) / S - 0.001)
    assert ifa.flags & addrconf.IFA_F_TENTATIVE
    w.advance(0.002)
    assert not ifa.flags & addrconf.IFA_F_TENTATIVE
    assert {"addr": "2001:db8:1::99", "plen": 64, "flags": []} in addrconf.addr_lines(dev)


def test_a_deleted_address_its_group_left_as_linux_reports_it():
    """ip -6 addr del 2001:db8:1::99/64 (ipv6-echo.h1's first frame): one
    CHANGE_TO_INCLUDE({}) record for the group left, and again within 1 s; the
    next join reports the groups joined, not the one left."""
    w = LinkWire()
    ns_, dev = w.ns("h1"), w.dev("h1", "eth0")
    base = [(ifa.addr, ifa.plen) for ifa in dev.idev6.ifa.values()]
    w.run(addrconf.set_addrs(ns_, dev, base + [(A("2001:db8:1::99"), 64)], w.now))
    w.advance(3)
    n0 = len(w.frames)
    w.run(addrconf.set_addrs(ns_, dev, base, w.now))
    leave = capture("ipv6-echo.h1")[0]
    assert w.on_link(H1)[n0 - len(w.frames):] == [leave]
    w.advance(1)
    assert [f for _, _, _, f in w.frames[n0:]] == [leave, leave]
    assert ipv6.solicited_node(A("2001:db8:1::99")) not in dev.idev6.groups
    assert ipv6.multicast_mac(ipv6.solicited_node(A("2001:db8:1::99"))) not in dev.idev6.macs
    w.run(addrconf.set_addrs(ns_, dev, base + [(A("2001:db8:1::98"), 64)], w.now))
    assert records(w.frames[-1][3]) == [(4, g) for g in ("ff02::1:ff00:98", "ff02::1:ff00:10", "ff02::1:ff00:10a")]


def test_a_hosts_router_solicitation_as_linux_sends_it():
    """ipv6-dad.h1's RS: from the link-local address to ff02::2 (33:33:00:00:00:02),
    hop limit 255, the source link-layer option; h2's likewise (ipv6-dad.h2)."""
    w = LinkWire()
    w.up_all()
    w.advance(2.5)
    assert ndp(w.on_link(H1), 133) == [capture("ipv6-dad.h1")[3]]
    assert ndp(w.on_link(H2), 133) == [capture("ipv6-dad.h2")[0]]
    rs = Ether(capture("ipv6-dad.h1")[3])
    assert rs[IPv6].src == "fe80::ff:fe00:10a" and rs[ICMPv6ND_RS] and rs[ICMPv6NDOptSrcLLAddr]


def test_start_dad_for_every_address_then_rs_and_mld():
    """Devices up: every address tentative; one NS from :: per address within
    1 s, each ready 1 s after its probe; MLD reports from :: at once; when the
    link-local is ready, MLD reports from it and (hosts only) an RS, then RS
    again ~4 s later, then ~8 s, ~16 s... (RFC 7559 backoff)."""
    w = LinkWire()
    w.up_all()
    for dev in (w.dev(*H1), w.dev(*R1A), w.dev(*R1B), w.dev(*H2)):
        assert all(ifa.flags & addrconf.IFA_F_TENTATIVE for ifa in dev.idev6.ifa.values())
    assert not w.dev("h1", "lo").idev6.ifa[ipv6.IN6ADDR_LOOPBACK].flags & addrconf.IFA_F_TENTATIVE
    w.advance(3.5)
    for end in (H1, R1A, R1B, H2):
        dev = w.dev(*end)
        assert not any(ifa.flags & addrconf.IFA_F_TENTATIVE for ifa in dev.idev6.ifa.values())
        mine = [(t, Ether(f)) for t, n, i, f in w.frames if (n, i) == end]
        probes = [(t, p) for t, p in mine if ICMPv6ND_NS in p]
        assert sorted(p[ICMPv6ND_NS].tgt for _, p in probes) == sorted(ipv6.ntoa(a) for a in dev.idev6.ifa)
        assert all(p[IPv6].src == "::" and t < S for t, p in probes)
        reports = [(t, p[IPv6].src) for t, p in mine if ICMPv6MLReport2 in p]
        # twice at the start (from ::), twice when the link-local is ready (from it); r1 also
        # reports its anycast groups when its global addresses are ready
        assert [src for _, src in reports[:1]] == ["::"] and len(reports) == 4 if end[0] != "r1" else len(reports) >= 4
        rs = [t for t, p in mine if ICMPv6ND_RS in p]
        ll_probe = next(t for t, p in probes if p[ICMPv6ND_NS].tgt.startswith("fe80"))
        assert rs == ([] if end[0] == "r1" else [ll_probe + S])
    w.advance(60)
    rs = [t for t, n, i, f in w.frames if (n, i) == H1 and f[54] == 133]
    gaps = [b - a for a, b in zip(rs, rs[1:])]
    assert [round(g / S) for g in gaps[:3]] in ([4, 8, 16], [4, 8, 15], [4, 7, 16], [4, 7, 15], [4, 8, 17])
    assert 3.6 * S <= gaps[0] <= 4.4 * S


def test_mld_reports_every_group_but_all_nodes():
    """r1's last report (everything joined): its subnet-router anycast group
    (joined when 2001:db8:1::1's DAD is done), its solicited-node groups, and the
    all-routers groups of a forwarding device, newest first, CHANGE_TO_EXCLUDE."""
    w = LinkWire()
    w.up_all()
    w.advance(5)
    sent = [f for _, n, i, f in w.frames if (n, i) == R1A and f[62:63] == b"\x8f"]
    assert records(sent[-1]) == [(4, g) for g in ("ff02::1:ff00:0", "ff02::1:ff00:1", "ff02::1:ff00:101", "ff05::2",
                                                  "ff02::2")]
    assert records(sent[0]) == [(4, g) for g in ("ff02::1:ff00:1", "ff02::1:ff00:101", "ff05::2", "ff02::2")]
    report = Ether(sent[-1])
    assert report[IPv6].hlim == 1 and report[IPv6].dst == "ff02::16" and report.dst == "33:33:00:00:00:16"
    assert report[IPv6].src == "fe80::ff:fe00:101" and report[ICMPv6MLReport2].records_number == 5
    rebuilt = report.copy()
    del rebuilt[ICMPv6MLReport2].cksum
    assert bytes(Ether(bytes(rebuilt))) == sent[-1]             # the checksum as scapy computes it


def test_a_router_advertisement_stops_a_hosts_solicitations():
    w = LinkWire()
    w.up_all()
    w.advance(2.5)
    ra = icmpv6.RouterAdvert(64, 0, 1800, 0, 0, icmpv6.nd_options(source_ll=MAC_R1A))
    w.receive("h1", "eth0", frame(MAC_R1A, bytes.fromhex("333300000001"), LL_R1A, ipv6.IN6ADDR_LINKLOCAL_ALLNODES, ra))
    n = entry(w, "h1", "eth0", "fe80::ff:fe00:101")
    assert n.state == nd.NUD_STALE and n.flags & nd.NTF_ROUTER and n.lladdr == MAC_R1A
    before = len([f for _, n_, i, f in w.frames if (n_, i) == H1 and f[54] == 133])
    w.advance(120)
    assert len([f for _, n_, i, f in w.frames if (n_, i) == H1 and f[54] == 133]) == before


def test_dad_fails_on_an_advertisement_for_a_tentative_address():
    w = LinkWire()
    ns_, dev = w.ns("h1"), w.dev("h1", "eth0")
    new = A("2001:db8:1::99")
    w.run(addrconf.set_addrs(ns_, dev, [(a, i.plen) for a, i in dev.idev6.ifa.items()] + [(new, 64)], w.now))
    w.receive("h1", "eth0", na_frame(new, ipv6.IN6ADDR_LINKLOCAL_ALLNODES, new, icmpv6.ND_NA_OVERRIDE,
                                     NEW_MAC, bytes.fromhex("333300000001")))
    ifa = dev.idev6.ifa[new]
    assert ifa.flags & addrconf.IFA_F_DADFAILED and ifa.flags & addrconf.IFA_F_TENTATIVE
    assert {"addr": "2001:db8:1::99", "plen": 64, "flags": ["dadfailed", "tentative"]} in addrconf.addr_lines(dev)
    w.advance(3)
    assert not ndp(w.on_link(H1), 135)              # its probe was never sent
    # and nobody gets an answer for it
    w.receive("h1", "eth0", ns_frame(A("2001:db8:1::77"), new))
    assert not ndp(w.on_link(H1), 136)


def test_dad_fails_on_another_nodes_probe_but_not_on_its_own():
    w = LinkWire()
    ns_, dev = w.ns("h1"), w.dev("h1", "eth0")
    new = A("2001:db8:1::99")
    w.run(addrconf.set_addrs(ns_, dev, [(a, i.plen) for a, i in dev.idev6.ifa.items()] + [(new, 64)], w.now))
    ifa = dev.idev6.ifa[new]
    w.receive("h1", "eth0", ns_frame(0, new, lladdr=False, nonce=ifa.nonce))           # looped back
    assert not ifa.flags & addrconf.IFA_F_DADFAILED
    w.receive("h1", "eth0", ns_frame(0, new, lladdr=False, nonce=b"\x09" * 6))
    assert ifa.flags & addrconf.IFA_F_DADFAILED
    assert w.ns("h1").mib["NdiscDadFailures"] == 1


def test_no_dad_when_accept_dad_is_off():
    topo = topology.loads("""
hosts:
  a: {interfaces: {eth0: {mac: "02:00:00:00:00:0a", addresses: [2001:db8::a/64]}},
      sysctls: {net.ipv6.conf.eth0.accept_dad: 0}}
  b: {interfaces: {eth0: {mac: "02:00:00:00:00:0b", addresses: [2001:db8::b/64]}}}
links: [{endpoints: [a:eth0, b:eth0]}]
""")
    w = LinkWire(topo)
    w.up_all()
    w.advance(3)
    assert not [f for _, n, _, f in w.frames if n == "a" and f[54:55] == b"\x87"]
    assert len([f for _, n, _, f in w.frames if n == "b" and f[54:55] == b"\x87"]) == 2


def test_the_link_service_is_ready_once_the_starts_dad_is_done(monkeypatch):
    """The shell brings the devices up when the NIC layer is first reachable and
    says NOT_SERVING until no address is tentative any more (so `pktflow up`,
    which waits for health, returns with DAD done); then SERVING."""
    import asyncio

    from grpc_health.v1 import health_pb2

    from pktflow.services.link.server import LinkShell
    monkeypatch.setattr(addrconf, "RTR_SOLICIT_DELAY", 20 * MS)
    sent = []

    async def run():
        shell = LinkShell(topology.load())
        shell.loop = asyncio.get_running_loop()
        shell.send_down = lambda skb: sent.append(skb) and None
        for ns_ in shell.link.netns.values():
            ns_.nd_tbl.parms.retrans_time = 30 * MS
        status = shell.health._server_status
        shell._lower_state("nic", True)
        await asyncio.sleep(0.01)
        assert shell.dad_pending() and status[""] == health_pb2.HealthCheckResponse.NOT_SERVING
        for _ in range(100):
            await asyncio.sleep(0.01)
            if status[""] == health_pb2.HealthCheckResponse.SERVING:
                break
        assert not shell.dad_pending() and status["pktflow.link"] == health_pb2.HealthCheckResponse.SERVING
        shell._lower_state("nic", True)                # reconnected: the devices are not brought up again
        await asyncio.sleep(0.01)
        assert status[""] == health_pb2.HealthCheckResponse.SERVING
        for handle in shell._timers.values():
            handle.cancel()
    asyncio.run(run())
    probes = [s for s in sent if s.data[12:14] == b"\x86\xdd" and s.data[54] == 135]
    assert len(probes) == 8                                 # h1 2, r1 4, h2 2 addresses: one DAD probe each
