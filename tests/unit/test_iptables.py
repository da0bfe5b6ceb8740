"""iptables for the filter table against the real one: the listings, -S,
messages and exit statuses below are what iptables v1.8.9 (nf_tables) printed
for the same commands in a network namespace of this machine; and the walk of
the chains (ipt_do_table()) for packets."""
# ruff: noqa: E501 (iptables' own lines, as it printed them)
import shutil
import subprocess

import pytest

from pktflow.services.ip.netfilter.iptables import iptables, iptables_restore, iptables_save
from pktflow.services.ip.netfilter.x_tables import NF_INET_FORWARD, NF_INET_LOCAL_IN, Netfilter, Pkt
from pktflow.services.wire import ipv4

RULES = """-P FORWARD DROP
-A FORWARD -i eth0 -p tcp --dport 8080 --syn -j ACCEPT
-A FORWARD -s 10.0.1.0/24 ! -d 10.0.2.10 -p udp --sport 1000:2000 -j REJECT --reject-with icmp-host-prohibited
-N LOGDROP
-A LOGDROP -j DROP
-A INPUT -p icmp -j LOGDROP
-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
-A INPUT -j RETURN"""

LIST_VERBOSE = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 LOGDROP    1    --  *      *       0.0.0.0/0            0.0.0.0/0           
2        0     0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp flags:0x12/0x02
3        0     0 RETURN     0    --  *      *       0.0.0.0/0            0.0.0.0/0           

Chain FORWARD (policy DROP 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 ACCEPT     6    --  eth0   *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 flags:0x17/0x02
2        0     0 REJECT     17   --  *      *       10.0.1.0/24         !10.0.2.10            udp spts:1000:2000 reject-with icmp-host-prohibited

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 ACCEPT     0    --  *      lo      0.0.0.0/0            0.0.0.0/0           

Chain LOGDROP (1 references)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0           
"""

LIST_NAMES = """\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
LOGDROP    icmp --  anywhere             anywhere            
ACCEPT     tcp  --  anywhere             anywhere             tcp flags:SYN,ACK/SYN
RETURN     all  --  anywhere             anywhere            

Chain FORWARD (policy DROP)
target     prot opt source               destination         
ACCEPT     tcp  --  anywhere             anywhere             tcp dpt:http-alt flags:FIN,SYN,RST,ACK/SYN
REJECT     udp  --  10.0.1.0/24         !10.0.2.10            udp spts:1000:2000 reject-with icmp-host-prohibited

Chain OUTPUT (policy ACCEPT)
target     prot opt source               destination         
ACCEPT     all  --  anywhere             anywhere            

Chain LOGDROP (1 references)
target     prot opt source               destination         
DROP       all  --  anywhere             anywhere            
"""

LIST_RULES = """\
-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N LOGDROP
-A INPUT -p icmp -j LOGDROP
-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -j ACCEPT
-A INPUT -j RETURN
-A FORWARD -i eth0 -p tcp -m tcp --dport 8080 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT
-A FORWARD -s 10.0.1.0/24 ! -d 10.0.2.10/32 -p udp -m udp --sport 1000:2000 -j REJECT --reject-with icmp-host-prohibited
-A OUTPUT -o lo -j ACCEPT
-A LOGDROP -j DROP
"""

TRY = "Try `iptables -h' or 'iptables --help' for more information.\n"
ERRORS = [
    ("-A NOPE -j ACCEPT", 1, "iptables: No chain/target/match by that name.\n"),
    ("-P NOPE DROP", 1, "iptables: Bad built-in chain name.\n"),
    ("-D INPUT 9", 1, "iptables: Index of deletion too big.\n"),
    ("-D INPUT -s 1.2.3.4 -j DROP", 1, "iptables: Bad rule (does a matching rule exist in that chain?).\n"),
    ("-A INPUT --foo", 2, 'iptables v1.8.9 (nf_tables): unknown option "--foo"\n' + TRY),
    ("-A INPUT -p udp -j REJECT --reject-with tcp-reset", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT\n"),
    ("-X LOGDROP", 4, "iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain LOGDROP\n"),
    ("-N LOGDROP", 1, "iptables: Chain already exists.\n"),
    ("-A INPUT -s 300.1.1.1 -j DROP", 2, "iptables v1.8.9 (nf_tables): host/network `300.1.1.1' not found\n" + TRY),
    ("-A INPUT -p tcp --dport 70000 -j DROP", 2,
     "iptables v1.8.9 (nf_tables): invalid port/service `70000' specified\n" + TRY),
    ("-A INPUT -j FOO", 2, "iptables v1.8.9 (nf_tables): Chain 'FOO' does not exist\n" + TRY),
    ("-P INPUT REJECT", 1, "iptables: Bad policy name. Run `dmesg' for more information.\n"),
    ("-L NOPE", 1, "iptables v1.8.9 (nf_tables): chain `NOPE' in table `filter' is incompatible, use 'nft' tool.\n"),
    ("-I INPUT 99 -j ACCEPT", 1, "iptables: Index of insertion too big.\n"),
]


@pytest.fixture
def nf() -> Netfilter:
    nf = Netfilter()
    for line in RULES.splitlines():
        assert iptables(nf, line.split()) == (0, "", ""), line
    return nf


def test_listings_are_iptables_own(nf):
    assert iptables(nf, "-L -v -n --line-numbers".split())[1] == LIST_VERBOSE
    assert iptables(nf, ["-S"])[1] == LIST_RULES
    if _service_names():
        assert iptables(nf, ["-L"])[1] == LIST_NAMES


def _service_names() -> bool:
    import socket
    try:
        return socket.getservbyport(8080, "tcp") == "http-alt"
    except OSError:
        return False


@pytest.mark.parametrize("command, status, message", ERRORS)
def test_bad_commands_fail_as_iptables_does_and_change_nothing(nf, command, status, message):
    before = iptables(nf, ["-S"])[1]
    assert iptables(nf, command.split()) == (status, "", message)
    assert iptables(nf, ["-S"])[1] == before


def pkt(src="10.0.1.10", dst="10.0.2.10", proto=6, sport=40000, dport=8080, flags=0x02, iif="eth0", oif="eth1",
        length=60, **kw) -> Pkt:
    return Pkt(ipv4.aton(src), ipv4.aton(dst), proto, sport=sport, dport=dport, tcp_flags=flags, iif=iif, oif=oif,
               length=length, **kw)


def test_the_walk_first_match_jumps_returns_and_policies(nf):
    v = nf.hook(NF_INET_FORWARD, pkt(), 0)
    assert (v.verdict, v.chain, v.rule) == ("ACCEPT", "FORWARD", 1)
    v = nf.hook(NF_INET_FORWARD, pkt(flags=0x10), 0)                   # not a SYN: the policy
    assert (v.verdict, v.rule) == ("DROP", 0)
    v = nf.hook(NF_INET_FORWARD, pkt(proto=17, sport=1500, dport=53, dst="10.0.2.20"), 0)
    assert (v.verdict, v.rule, v.reject_with) == ("REJECT", 2, "icmp-host-prohibited")
    v = nf.hook(NF_INET_FORWARD, pkt(proto=17, sport=1500, dst="10.0.2.10"), 0)   # ! -d 10.0.2.10
    assert (v.verdict, v.rule) == ("DROP", 0)
    v = nf.hook(NF_INET_FORWARD, pkt(proto=17, sport=999), 0)           # outside the port range
    assert (v.verdict, v.rule) == ("DROP", 0)
    v = nf.hook(NF_INET_LOCAL_IN, pkt(proto=1, icmp_type=8), 0)         # INPUT -> LOGDROP -> DROP
    assert (v.verdict, v.chain, v.rule) == ("DROP", "LOGDROP", 1)
    v = nf.hook(NF_INET_LOCAL_IN, pkt(flags=0x12), 0)                   # SYN-ACK: not SYN alone, RETURN: policy
    assert (v.verdict, v.chain, v.rule) == ("ACCEPT", "INPUT", 0)
    v = nf.hook(NF_INET_FORWARD, pkt(fragment=True), 0)                 # no ports in a non-first fragment
    assert (v.verdict, v.rule) == ("DROP", 0)
    listing = iptables(nf, "-L FORWARD -v -n -x".split())[1]
    assert "Chain FORWARD (policy DROP 4 packets, 240 bytes)" in listing


def test_no_rules_no_work():
    nf = Netfilter()
    assert all(nf.empty(h) for h in range(5)) and nf.hook(NF_INET_FORWARD, pkt(), 0) is None
    iptables(nf, "-P FORWARD DROP".split())
    assert not nf.empty(NF_INET_FORWARD) and nf.empty(NF_INET_LOCAL_IN)


def test_goto_does_not_come_back():
    nf = Netfilter()
    for line in ("-N A", "-A A -p udp -j RETURN", "-A FORWARD -g A", "-A FORWARD -j DROP"):
        assert iptables(nf, line.split())[0] == 0
    assert nf.hook(NF_INET_FORWARD, pkt(proto=17), 0).verdict == "ACCEPT"    # RETURN from a goto: the policy
    assert nf.hook(NF_INET_FORWARD, pkt(), 0).verdict == "ACCEPT"            # end of A: the policy, not DROP


def test_save_and_restore_round_trip_all_or_nothing(nf):
    saved = iptables_save(nf, when="Thu Dec  3 00:00:00 2026")
    assert saved.splitlines()[1:4] == ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]"]
    fresh = Netfilter()
    assert iptables_restore(fresh, saved) == (0, "", "")
    assert iptables(fresh, ["-S"])[1] == LIST_RULES
    bad = saved.replace("-A OUTPUT -o lo -j ACCEPT", "-A OUTPUT -o lo -j NOWHERE")
    status, _, err = iptables_restore(fresh, bad.replace("DROP [0:0]", "ACCEPT [0:0]"))
    assert (status, err) == (2, "iptables-restore v1.8.9 (nf_tables): Chain 'NOWHERE' does not exist\n"
                                "Error occurred at line: 12\n"
                                "Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n")
    assert iptables(fresh, ["-S"])[1] == LIST_RULES                   # nothing changed


@pytest.mark.skipif(not shutil.which("iptables-restore") or not shutil.which("ip"), reason="no iptables here")
def test_what_pktflow_saves_loads_into_linux_unchanged(nf, tmp_path):
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    ns = f"pfipt{os.getpid() % 10000}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode:
        pytest.skip("cannot create a network namespace")
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input=iptables_save(nf),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        linux = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S"], capture_output=True, text=True).stdout
        assert linux == LIST_RULES
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_conntrack_and_state_matches_as_iptables_shows_them():
    nf = Netfilter()
    for line in ("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", "-A INPUT -m state --state NEW -j ACCEPT"):
        assert iptables(nf, line.split()) == (0, "", "")
    assert nf.needs_conntrack
    assert iptables(nf, "-S INPUT".split())[1] == ("-P INPUT ACCEPT\n"
                                                   "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                                                   "-A INPUT -m state --state NEW -j ACCEPT\n")
    assert iptables(nf, "-L INPUT -n".split())[1] == """\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
ACCEPT     0    --  0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
ACCEPT     0    --  0.0.0.0/0            0.0.0.0/0            state NEW
"""
    from pktflow.services.ip.netfilter.nf_conntrack import ESTABLISHED, NEW
    assert nf.hook(NF_INET_LOCAL_IN, pkt(ctstate=ESTABLISHED), 0).rule == 1
    assert nf.hook(NF_INET_LOCAL_IN, pkt(ctstate=NEW), 0).rule == 2
