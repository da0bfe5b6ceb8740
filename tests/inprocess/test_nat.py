"""NAT and the other tables at r1, through every core: MASQUERADE hides h1
behind r1's address both ways (TCP, UDP, ping, fragments, ICMP errors with
their quoted packet un-NATed), DNAT forwards a port, REDIRECT takes a
connection to r1 itself; every rewritten frame has correct checksums (scapy
checks them); conntrack -L shows the mapping as conntrack-tools does. Then
mangle's MARK, raw's CT --notrack, LOG with `dmesg`, and -m set with ipset."""
import errno
import re

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from pktflow.services.common import uapi
from pktflow.services.ip.netfilter import tools
from pktflow.services.netstack import Netstack
from pktflow.v1.skb_pb2 import ProtoCall

MASQ = "-t nat -A POSTROUTING -o eth1 -j MASQUERADE"


def run(k: Netstack, tool: str, *words: str, host: str = "r1") -> str:
    status, out, err = tools.run(k.ip.netns[host], tool, list(words), k.now)
    assert status == 0, err
    return out


def r1(k: Netstack, *rules: str):
    for rule in rules:
        run(k, "iptables", *rule.split())


def frames_to(k: Netstack, host: str) -> list:
    """The IP packets r1 put on the cable to `host`, as scapy reads them."""
    ifindex = k.ip.netns["r1"].by_name["eth0" if host == "h1" else "eth1"].ifindex
    return [Ether(f)[IP] for ns, i, f in k.frames if ns == "r1" and i == ifindex and Ether(f).type == 0x0800]


def checksums_hold(pkt) -> bool:
    """scapy recomputes every checksum of a copy with them blanked: equal means they were right."""
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP, ICMP):
        if fresh.haslayer(layer):
            del fresh[layer].chksum
    return bytes(IP(bytes(fresh))) == bytes(pkt)


def test_masquerade_hides_h1_behind_r1_both_ways():
    k = Netstack()
    r1(k, MASQ)
    srv = k.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen()
    cli = k.socket("h1")
    cli.connect("10.0.2.10", 80)
    child = srv.accept()
    assert child is not None and cli.send(b"hello") == 5 and child.send(b"world") == 5
    k.pump()
    assert child.recv() == b"hello" and cli.recv() == b"world"
    out = frames_to(k, "h2")
    assert out and all(p.src == "10.0.2.1" and checksums_hold(p) for p in out)      # h2 sees r1 only
    back = [p for p in frames_to(k, "h1") if p.haslayer(TCP)]
    assert back and all(p.dst == "10.0.1.10" and checksums_hold(p) for p in back)   # un-NATed
    [line] = run(k, "conntrack", "-L").splitlines()
    sport = out[0][TCP].sport
    assert line == (f"tcp      6 432000 ESTABLISHED src=10.0.1.10 dst=10.0.2.10 sport={sport} dport=80 "
                    f"src=10.0.2.10 dst=10.0.2.1 sport=80 dport={sport} [ASSURED] mark=0 use=1"), line


def test_icmp_errors_come_back_through_the_nat():
    """UDP to a closed port on h2: h2's port unreachable quotes r1's address; r1
    rewrites the quoted packet back to h1's, so h1's socket gets ECONNREFUSED."""
    k = Netstack()
    r1(k, MASQ)
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    assert cli.connect("10.0.2.10", 9) == 0
    cli.call(ProtoCall.SENDMSG, data=b"anyone?", last=True)
    k.pump()
    assert cli.errors() == [errno.ECONNREFUSED]
    [err] = [p for p in frames_to(k, "h1") if p.haslayer(ICMP)]
    quoted = err[ICMP].payload
    assert (err.dst, quoted.src, quoted.dst) == ("10.0.1.10", "10.0.1.10", "10.0.2.10")
    assert checksums_hold(err)


def test_a_big_datagram_is_reassembled_for_the_nat_and_fragmented_again():
    k = Netstack()
    r1(k, MASQ)
    srv = k.socket("h2", uapi.SOCK_DGRAM)
    srv.bind("10.0.2.10", 7000)
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", 7000)
    cli.call(ProtoCall.SENDMSG, data=bytes(range(256)) * 12, last=True)
    k.pump()
    assert srv.recv() == bytes(range(256)) * 12
    out = frames_to(k, "h2")
    assert len(out) == 3 and all(p.src == "10.0.2.1" for p in out)     # every fragment NATed
    assert k.ip.netns["r1"].mib["IpReasmOKs"] == 1 and k.ip.netns["r1"].mib["IpFragCreates"] == 3


def test_dnat_forwards_a_port_of_r1_to_h1():
    k = Netstack()
    r1(k, "-t nat -A PREROUTING -i eth1 -p tcp --dport 8080 -j DNAT --to-destination 10.0.1.10:80")
    srv = k.socket("h1")
    srv.bind("10.0.1.10", 80)
    srv.listen()
    cli = k.socket("h2")
    cli.connect("10.0.2.1", 8080)
    child = srv.accept()
    assert child is not None and cli.send(b"via r1") == 6
    k.pump()
    assert child.recv() == b"via r1"
    back = [p for p in frames_to(k, "h2") if p.haslayer(TCP)]
    assert back and all((p.src, p[TCP].sport) == ("10.0.2.1", 8080) and checksums_hold(p) for p in back)
    [line] = run(k, "conntrack", "-L").splitlines()
    assert re.search(r"src=10.0.2.10 dst=10.0.2.1 sport=(\d+) dport=8080 src=10.0.1.10 dst=10.0.2.10 sport=80 "
                     r"dport=\1 \[ASSURED\]", line), line


def test_redirect_takes_a_connection_to_r1_itself():
    k = Netstack()
    r1(k, "-t nat -A PREROUTING -i eth0 -p tcp --dport 80 -j REDIRECT --to-ports 3128")
    proxy = k.socket("r1")
    proxy.bind("", 3128)
    proxy.listen()
    cli = k.socket("h1")
    cli.connect("10.0.2.10", 80)
    assert proxy.accept() is not None                  # a transparent proxy on r1 got it


def test_the_span_says_which_binding_a_connection_got():
    """A DNATed packet that FORWARD then drops: its journey has both hooks' steps."""
    k = Netstack()
    r1(k, "-t nat -A PREROUTING -p udp -j DNAT --to-destination 10.0.1.10:7000", "-A FORWARD -p udp -j DROP")
    cli = k.socket("h2", uapi.SOCK_DGRAM)
    cli.bind("10.0.2.10", 5000)
    cli.connect("10.0.2.1", 53)
    cli.call(ProtoCall.SENDMSG, data=b"x", last=True)
    k.pump()
    [fn] = [d[1] for d in k.drops if d[3].netns == "r1"]
    pre, fwd = [dict(s.attrs) for s in fn if getattr(s, "name", "") == "nf_hook_slow"]
    assert pre == {"netfilter.hook": "PREROUTING", "netfilter.table": "nat", "netfilter.chain": "PREROUTING",
                   "netfilter.rule": 1, "netfilter.verdict": "ACCEPT",
                   "netfilter.nat": "DNAT 10.0.2.1:53 to 10.0.1.10:7000"}
    assert (fwd["netfilter.hook"], fwd["netfilter.verdict"]) == ("FORWARD", "DROP")


def test_mark_in_mangle_is_seen_by_the_filter_table():
    k = Netstack()
    r1(k, "-t mangle -A PREROUTING -i eth0 -p udp -j MARK --set-mark 0x1",
       "-A FORWARD -m mark --mark 0x1 -j DROP")
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", 7000)
    cli.call(ProtoCall.SENDMSG, data=b"x", last=True)
    k.pump()
    assert any(d[2] == "NETFILTER_DROP" and d[3].netns == "r1" and d[3].mark == 1 for d in k.drops)


def test_notrack_in_raw_leaves_a_connection_out_of_the_table():
    k = Netstack()
    r1(k, "-t raw -A PREROUTING -p udp --dport 7000 -j CT --notrack",
       "-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT", "-A FORWARD -p udp -j DROP")
    srv = k.socket("h2", uapi.SOCK_DGRAM)
    srv.bind("10.0.2.10", 7000)
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", 7000)
    cli.call(ProtoCall.SENDMSG, data=b"untracked", last=True)
    k.pump()
    assert srv.recv() == b"untracked" and run(k, "conntrack", "-C") == "0\n"


def test_log_writes_the_kernels_line_to_dmesg():
    k = Netstack()
    r1(k, "-A FORWARD -p udp -j LOG --log-prefix fw:")
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.bind("10.0.1.10", 40000)
    cli.connect("10.0.2.10", 7000)
    cli.call(ProtoCall.SENDMSG, data=b"x", last=True)
    k.pump()
    [line] = run(k, "dmesg").splitlines()
    # MAC= is empty: pktflow's ip_forward() has let go of the Ethernet header by FORWARD
    assert re.fullmatch(r"\[\s*\d+\.\d{6}\] fw:IN=eth0 OUT=eth1 MAC= "
                        r"SRC=10.0.1.10 DST=10.0.2.10 LEN=29 TOS=0x00 PREC=0x00 TTL=63 ID=\d+ (DF )?PROTO=UDP "
                        r"SPT=40000 DPT=7000 LEN=9 ", line), line
    assert run(k, "dmesg", "-c") and run(k, "dmesg") == ""


def test_a_set_match_drops_a_whole_ipset_in_one_rule():
    k = Netstack()
    run(k, "ipset", "create", "blocked", "hash:net")
    run(k, "ipset", "add", "blocked", "10.0.1.0/28")
    r1(k, "-A FORWARD -m set --match-set blocked src -j DROP")
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", 7000)
    cli.call(ProtoCall.SENDMSG, data=b"x", last=True)
    k.pump()
    assert any(d[2] == "NETFILTER_DROP" and d[3].netns == "r1" for d in k.drops)
    run(k, "ipset", "del", "blocked", "10.0.1.0/28")
    assert "Number of entries: 0" in run(k, "ipset", "list", "blocked")


def test_the_nat_gateway_example_topology():
    """examples/topologies/nat-gateway.yaml: h2 has no route to the private LAN;
    only r1's NAT lets the two talk, and only as the rules say."""
    from pathlib import Path

    from pktflow.services.common import topology
    k = Netstack(topology.load(str(Path(__file__).parents[2] / "examples" / "topologies" / "nat-gateway.yaml")))

    def connects(src: str, dst: str, port: int, listen: tuple) -> bool | int:
        srv = k.socket(listen[0])
        srv.bind(listen[1], listen[2])
        srv.listen()
        cli = k.socket(src)
        err = cli.connect(dst, port)
        k.pump()
        if err not in (0, errno.EINPROGRESS):
            return err
        return srv.accept() is not None or (cli.errors() or [0])[0]

    assert connects("h1", "198.51.100.10", 80, ("h2", "198.51.100.10", 80)) is True     # out through NAT
    assert connects("h2", "198.51.100.1", 8080, ("h1", "10.0.1.10", 80)) is True        # the forwarded port
    assert connects("h2", "10.0.1.10", 22, ("h1", "10.0.1.10", 22)) == errno.ENETUNREACH   # no route in
    assert connects("h2", "198.51.100.1", 2222, ("h1", "10.0.1.10", 2222)) == errno.ECONNREFUSED  # r1's own
    lines = run(k, "conntrack", "-L").splitlines()
    assert any("src=10.0.1.10 dst=198.51.100.10" in line and "dst=198.51.100.1 " in line for line in lines)
    assert any("dport=8080 src=10.0.1.10 dst=198.51.100.10 sport=80" in line for line in lines), lines
