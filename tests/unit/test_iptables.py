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


# -- raw, mangle, nat and the further matches and targets (captured from iptables v1.8.9 (nf_tables)) --
from pktflow.services.ip.netfilter import x_tables as xt  # noqa: E402
from pktflow.services.ip.netfilter.x_tables import (NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING,  # noqa: E402
                                                    NF_INET_PRE_ROUTING, Verdict)

TABLES = [
    "-t raw -A PREROUTING -p udp --dport 53 -j CT --notrack",
    "-t raw -A OUTPUT -p udp --sport 53 -j NOTRACK",
    "-t raw -A PREROUTING -s 10.9.0.0/16 -j DROP",
    "-t mangle -A PREROUTING -i eth0 -j MARK --set-mark 0x10",
    '-t mangle -A INPUT -m mark --mark 0x10/0xf0 -j LOG --log-prefix "IN: " --log-level 4',
    "-t mangle -A INPUT -m mark ! --mark 3 -j LOG",
    "-t mangle -A FORWARD -j MARK --set-xmark 0x5/0xff",
    "-t mangle -A OUTPUT -j MARK --and-mark 0xf0",
    "-t mangle -A POSTROUTING -j MARK --or-mark 7",
    "-t mangle -A POSTROUTING -j MARK --set-mark 1/0xff",
    "-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.2.10:8080",
    "-t nat -A PREROUTING -p tcp --dport 81 -j DNAT --to-destination 10.0.2.10-10.0.2.20:8000-8010",
    "-t nat -A PREROUTING -j DNAT --to-destination 10.0.2.10",
    "-t nat -A PREROUTING -p tcp -j REDIRECT",
    "-t nat -A INPUT -j SNAT --to-source 5.5.5.5",
    "-t nat -A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 3128",
    "-t nat -A POSTROUTING -o eth1 -j MASQUERADE",
    "-t nat -A POSTROUTING -o eth1 -p udp -j MASQUERADE --to-ports 1000-2000",
    "-t nat -A POSTROUTING -s 10.0.1.0/24 -j SNAT --to-source 1.2.3.4",
    "-t nat -A POSTROUTING -p tcp -j SNAT --to-source 1.2.3.4:1024-2048 --random",
]
SAVED = """\
# Generated by iptables-save v1.8.9 (nf_tables) on Fri Dec  4 03:48:27 2026
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -j MARK --set-xmark 0x10/0xffffffff
-A INPUT -m mark --mark 0x10/0xf0 -j LOG --log-prefix "IN: "
-A INPUT -m mark ! --mark 0x3 -j LOG
-A FORWARD -j MARK --set-xmark 0x5/0xff
-A OUTPUT -j MARK --set-xmark 0x0/0xffffff0f
-A POSTROUTING -j MARK --set-xmark 0x7/0x7
-A POSTROUTING -j MARK --set-xmark 0x1/0xff
COMMIT
# Completed on Fri Dec  4 03:48:27 2026
# Generated by iptables-save v1.8.9 (nf_tables) on Fri Dec  4 03:48:27 2026
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack
-A PREROUTING -s 10.9.0.0/16 -j DROP
-A OUTPUT -p udp -m udp --sport 53 -j NOTRACK
COMMIT
# Completed on Fri Dec  4 03:48:27 2026
# Generated by iptables-save v1.8.9 (nf_tables) on Fri Dec  4 03:48:27 2026
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.2.10:8080
-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.0.2.10-10.0.2.20:8000-8010
-A PREROUTING -j DNAT --to-destination 10.0.2.10
-A PREROUTING -p tcp -j REDIRECT
-A INPUT -j SNAT --to-source 5.5.5.5
-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128
-A POSTROUTING -o eth1 -j MASQUERADE
-A POSTROUTING -o eth1 -p udp -j MASQUERADE --to-ports 1000-2000
-A POSTROUTING -s 10.0.1.0/24 -j SNAT --to-source 1.2.3.4
-A POSTROUTING -p tcp -j SNAT --to-source 1.2.3.4:1024-2048 --random
COMMIT
# Completed on Fri Dec  4 03:48:27 2026
"""
RAW_LIST = """\
Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 CT         17   --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpt:53 CT notrack
2        0     0 DROP       0    --  *      *       10.9.0.0/16          0.0.0.0/0           

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 CT         17   --  *      *       0.0.0.0/0            0.0.0.0/0            udp spt:53 NOTRACK
"""
MANGLE_LIST = """\
Chain PREROUTING (policy ACCEPT)
target     prot opt source               destination         
MARK       all  --  anywhere             anywhere             MARK set 0x10

Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
LOG        all  --  anywhere             anywhere             mark match 0x10/0xf0 LOG level warn prefix "IN: "
LOG        all  --  anywhere             anywhere             mark match ! 0x3 LOG level warn

Chain FORWARD (policy ACCEPT)
target     prot opt source               destination         
MARK       all  --  anywhere             anywhere             MARK xset 0x5/0xff

Chain OUTPUT (policy ACCEPT)
target     prot opt source               destination         
MARK       all  --  anywhere             anywhere             MARK and 0xf0

Chain POSTROUTING (policy ACCEPT)
target     prot opt source               destination         
MARK       all  --  anywhere             anywhere             MARK or 0x7
MARK       all  --  anywhere             anywhere             MARK xset 0x1/0xff
"""
NAT_LIST = """\
Chain PREROUTING (policy ACCEPT)
target     prot opt source               destination         
DNAT       6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 to:10.0.2.10:8080
DNAT       6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:81 to:10.0.2.10-10.0.2.20:8000-8010
DNAT       0    --  0.0.0.0/0            0.0.0.0/0            to:10.0.2.10
REDIRECT   6    --  0.0.0.0/0            0.0.0.0/0           

Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
SNAT       0    --  0.0.0.0/0            0.0.0.0/0            to:5.5.5.5

Chain OUTPUT (policy ACCEPT)
target     prot opt source               destination         
REDIRECT   6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 redir ports 3128

Chain POSTROUTING (policy ACCEPT)
target     prot opt source               destination         
MASQUERADE  0    --  0.0.0.0/0            0.0.0.0/0           
MASQUERADE  17   --  0.0.0.0/0            0.0.0.0/0            masq ports: 1000-2000
SNAT       0    --  10.0.1.0/24          0.0.0.0/0            to:1.2.3.4
SNAT       6    --  0.0.0.0/0            0.0.0.0/0            to:1.2.3.4:1024-2048 random
"""
MATCH_RULES = [
    "-A INPUT -p tcp -m multiport --dports 22,80,8000:8080 -j ACCEPT",
    "-A INPUT -p udp -m multiport --sports 53,123 -j ACCEPT",
    "-A INPUT -p tcp -m multiport ! --ports 1:1023 -j ACCEPT",
    "-A INPUT -p icmp --icmp-type echo-request -m limit --limit 5/sec --limit-burst 10 -j ACCEPT",
    "-A INPUT -m limit --limit 3/minute -j LOG --log-prefix drop. --log-level debug",
    "-A INPUT -m limit --limit 1/hour -j ACCEPT",
    "-A INPUT -m limit -j ACCEPT",
    "-A INPUT -m mark --mark 0xffffffff/0xff -j ACCEPT",
    "-A INPUT -j MARK --set-mark 5",
    "-A INPUT -p tcp --syn -j REJECT --reject-with tcp-reset",
    "-A INPUT -p icmp --icmp-type 3/4 -j ACCEPT",
    "-A INPUT -p icmp -m icmp ! --icmp-type port-unreachable -j ACCEPT",
    "-A INPUT -f -j DROP",
    "-A INPUT -m conntrack ! --ctstate INVALID -j ACCEPT",
    "-A INPUT -j LOG --log-level alert",
    "-A INPUT -m set --match-set foo src,dst -j DROP",
]
MATCH_S = """\
-P INPUT ACCEPT
-A INPUT -p tcp -m multiport --dports 22,80,8000:8080 -j ACCEPT
-A INPUT -p udp -m multiport --sports 53,123 -j ACCEPT
-A INPUT -p tcp -m multiport ! --ports 1:1023 -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec --limit-burst 10 -j ACCEPT
-A INPUT -m limit --limit 3/min -j LOG --log-prefix "drop." --log-level 7
-A INPUT -m limit --limit 1/hour -j ACCEPT
-A INPUT -m limit --limit 3/hour -j ACCEPT
-A INPUT -m mark --mark 0xffffffff/0xff -j ACCEPT
-A INPUT -j MARK --set-xmark 0x5/0xffffffff
-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT --reject-with tcp-reset
-A INPUT -p icmp -m icmp --icmp-type 3/4 -j ACCEPT
-A INPUT -p icmp -m icmp ! --icmp-type 3/3 -j ACCEPT
-A INPUT -f -j DROP
-A INPUT -m conntrack ! --ctstate INVALID -j ACCEPT
-A INPUT -j LOG --log-level 1
-A INPUT -m set --match-set foo src,dst -j DROP
"""
MATCH_LIST = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination         
       0        0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            multiport dports 22,80,8000:8080
       0        0 ACCEPT     17   --  *      *       0.0.0.0/0            0.0.0.0/0            multiport sports 53,123
       0        0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            multiport ports  !1:1023
       0        0 ACCEPT     1    --  *      *       0.0.0.0/0            0.0.0.0/0            icmptype 8 limit: avg 5/sec burst 10
       0        0 LOG        0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: avg 3/min burst 5 LOG flags 0 level 7 prefix "drop."
       0        0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: avg 1/hour burst 5
       0        0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: avg 3/hour burst 5
       0        0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            mark match 0xffffffff/0xff
       0        0 MARK       0    --  *      *       0.0.0.0/0            0.0.0.0/0            MARK set 0x5
       0        0 REJECT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp flags:0x17/0x02 reject-with tcp-reset
       0        0 ACCEPT     1    --  *      *       0.0.0.0/0            0.0.0.0/0            icmptype 3 code 4
       0        0 ACCEPT     1    --  *      *       0.0.0.0/0            0.0.0.0/0            icmp !type 3 code 3
       0        0 DROP       0    -f  *      *       0.0.0.0/0            0.0.0.0/0           
       0        0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ! ctstate INVALID
       0        0 LOG        0    --  *      *       0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 1
       0        0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            match-set foo src,dst
"""
MORE_ERRORS = [
    ("-t raw -A INPUT -j ACCEPT", 1, "iptables: No chain/target/match by that name.\n"),
    ("-t raw -A PREROUTING -j REJECT", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING\n"),
    ("-t mangle -A INPUT -j REJECT", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT\n"),
    ("-t nat -A POSTROUTING -j DNAT --to-destination 1.1.1.1", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING\n"),
    ("-t nat -A PREROUTING -j MASQUERADE", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING\n"),
    ("-t nat -I POSTROUTING 1 -j N", 4,
     "iptables v1.8.9 (nf_tables):  RULE_INSERT failed (Invalid argument): rule in chain POSTROUTING\n"),
    ("-t nat -A INPUT -j DROP", 2, 'iptables v1.8.9 (nf_tables): \nThe "nat" table is not intended for filtering, '
     "the use of DROP is therefore inhibited.\n\n\n" + TRY),
    ("-t nat -P PREROUTING DROP", 2, 'iptables v1.8.9 (nf_tables): \nThe "nat" table is not intended for filtering, '
     "the use of DROP is therefore inhibited.\n\n\n" + TRY),
    ("-t nat -A POSTROUTING -j SNAT", 2,
     'iptables v1.8.9 (nf_tables): SNAT: option "--to-source" must be specified\n\n' + TRY),
    ("-t nat -A POSTROUTING -j SNAT --to-source 1.2.3.4:80", 2,
     "iptables v1.8.9 (nf_tables): Need TCP, UDP, SCTP or DCCP with port specification\n" + TRY),
    ("-A INPUT -j DNAT --to-destination 1.1.1.1", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT\n"),
    ("-A INPUT -j CT --notrack", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT\n"),
    ("-A INPUT -m multiport --dports 22 -j ACCEPT", 2, "iptables v1.8.9 (nf_tables): multiport needs `-p tcp', "
     "`-p udp', `-p udplite', `-p sctp' or `-p dccp'\n" + TRY),
    ("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j ACCEPT", 2,
     "iptables v1.8.9 (nf_tables): too many ports specified\n" + TRY),
    ("-A INPUT -p tcp -m multiport --dports 80 --sports 90 -j ACCEPT", 2,
     'iptables v1.8.9 (nf_tables): multiport: option "--source-ports" cannot be used together with '
     '"--destination-ports".\n\n' + TRY),
    ("-A INPUT -m limit --limit 100000/sec -j ACCEPT", 2,
     'iptables v1.8.9 (nf_tables): Rate too fast "100000/sec"\n' + TRY),
    ("-A INPUT -m limit --limit 5/fortnight -j ACCEPT", 2,
     'iptables v1.8.9 (nf_tables): bad rate "5/fortnight"\'\n' + TRY),
    ("-A INPUT -m limit --limit-burst 10001 -j ACCEPT", 2, 'iptables v1.8.9 (nf_tables): limit: bad value for option '
     '"--limit-burst", or out of range (0-10000).\n\n' + TRY),
    ("-A INPUT -m set --match-set bar src -j DROP", 2, "iptables v1.8.9 (nf_tables): Set bar doesn't exist.\n\n" + TRY),
    ("-A INPUT -m set --match-set foo bogus -j DROP", 2, "iptables v1.8.9 (nf_tables): You must spefify (the comma "
     "separated list of) 'src' or 'dst'.\n" + TRY),
    ("-A INPUT -m mark -j ACCEPT", 2, 'iptables v1.8.9 (nf_tables): mark: option "--mark" must be specified\n\n' + TRY),
    ("-A INPUT -m mark --mark foo -j ACCEPT", 2,
     'iptables v1.8.9 (nf_tables): mark: bad integer value for option "--mark", or out of range.\n\n' + TRY),
    ("-A INPUT -j MARK", 2, "iptables v1.8.9 (nf_tables): MARK: One of the --set-xmark, --{and,or,xor,set}-mark "
     "options is required\n" + TRY),
    ("-A INPUT -j MARK --set-mark 1 --or-mark 2", 2, 'iptables v1.8.9 (nf_tables): MARK: option "--set-mark" cannot '
     'be used together with "--or-mark".\n\n' + TRY),
    ("-A INPUT -j LOG --log-level 8", 2, 'iptables v1.8.9 (nf_tables): log level "8" unknown\n\n' + TRY),
    ("-A INPUT -j LOG --log-prefix a -j ACCEPT", 2, "iptables v1.8.9 (nf_tables): multiple -j flags not allowed\n"
     + TRY),
    ("-A INPUT -m foo -j ACCEPT", 2,
     "iptables v1.8.9 (nf_tables): Couldn't load match `foo':No such file or directory\n\n" + TRY),
    ("-A INPUT -m conntrack -j ACCEPT", 2, "iptables v1.8.9 (nf_tables): conntrack: At least one option is required\n"
     + TRY),
    ("-A INPUT -m state --state FOO", 2, 'iptables v1.8.9 (nf_tables): Bad state "FOO"\n' + TRY),
]


class Sets:
    """ipset's kernel side as the -m set match sees it: set name -> addresses."""

    def __init__(self, **sets):
        self.sets = {k: {ipv4.aton(a) for a in v} for k, v in sets.items()}

    def exists(self, name):
        return name in self.sets

    def test(self, name, pkt, dirs, now=None):
        return (pkt.saddr if dirs[0] == "src" else pkt.daddr) in self.sets[name]


def _load(nf, lines):
    for line in lines:
        assert iptables(nf, _words(line)) == (0, "", ""), line


def _words(line):
    import shlex
    return shlex.split(line)


def test_ct_state_bits_are_the_kernels():
    from pktflow.services.ip.netfilter import nf_conntrack as ct
    assert (xt.INVALID, xt.ESTABLISHED, xt.RELATED, xt.NEW, xt.UNTRACKED) == (1, 2, 4, 8, 64)
    assert (ct.INVALID, ct.ESTABLISHED, ct.RELATED, ct.NEW, ct.UNTRACKED) == (1, 2, 4, 8, 64)


def test_raw_mangle_nat_listings_and_save_are_iptables_own():
    nf = Netfilter()
    _load(nf, TABLES)
    assert iptables_save(nf, when="Fri Dec  4 03:48:27 2026") == SAVED
    assert iptables(nf, "-t raw -L -v -n --line-numbers".split())[1] == RAW_LIST
    assert iptables(nf, "-t mangle -L".split())[1] == MANGLE_LIST
    assert iptables(nf, "-t nat -L -n".split())[1] == NAT_LIST
    fresh = Netfilter()
    assert iptables_restore(fresh, SAVED) == (0, "", "")
    assert iptables_save(fresh, when="Fri Dec  4 03:48:27 2026") == SAVED


def test_more_matches_and_targets_as_iptables_shows_them():
    nf = Netfilter(Sets(foo=["10.0.1.10"]))
    _load(nf, MATCH_RULES)
    assert iptables(nf, ["-S"])[1].split("-P FORWARD")[0] + "".join(
        line + "\n" for line in iptables(nf, ["-S"])[1].splitlines() if line.startswith("-A")) == MATCH_S
    assert iptables(nf, "-L INPUT -v -x -n".split())[1] == MATCH_LIST


@pytest.mark.parametrize("command, status, message", MORE_ERRORS)
def test_more_bad_commands_fail_as_iptables_does(command, status, message):
    nf = Netfilter(Sets(foo=[]))
    _load(nf, ["-t nat -N N", "-t nat -A N -j DNAT --to-destination 1.1.1.1", "-t nat -A PREROUTING -j N"])
    before = iptables_save(nf, when="x")
    assert iptables(nf, command.split()) == (status, "", message)
    assert iptables_save(nf, when="x") == before


def test_set_match_without_sets_is_refused():
    assert iptables(Netfilter(), "-A INPUT -m set --match-set foo src -j DROP".split()) == (
        2, "", "iptables v1.8.9 (nf_tables): Set foo doesn't exist.\n\n" + TRY)


def test_the_tables_in_priority_order_at_each_hook():
    nf = Netfilter()
    _load(nf, TABLES + ["-A INPUT -m mark --mark 0x10 -j DROP", "-P FORWARD DROP"])
    # PREROUTING: raw's notrack, mangle's mark, nat's DNAT, in that order
    p = pkt(proto=17, dport=53, oif="")
    v = nf.hook(NF_INET_PRE_ROUTING, p, 0)
    assert v.notrack and p.ctstate == xt.UNTRACKED and v.mark == 0x10
    assert (v.verdict, v.table, v.chain, v.rule) == ("ACCEPT", "mangle", "PREROUTING", 0)   # untracked: no nat
    p = pkt(dport=80, oif="")
    v = nf.hook(NF_INET_PRE_ROUTING, p, 0)
    assert (v.verdict, v.table, v.rule, v.mark) == ("NAT", "nat", 1, 0x10)
    assert v.nat == ("DNAT", ipv4.aton("10.0.2.10"), ipv4.aton("10.0.2.10"), 8080, 8080, 3)
    # the mark the mangle table set is what filter's INPUT sees; LOG lines in the kernel's order
    p = pkt(flags=0x12, mark=0x10, ctstate=xt.ESTABLISHED)
    v = nf.hook(NF_INET_LOCAL_IN, p, 0)
    assert (v.verdict, v.table, v.chain, v.rule) == ("DROP", "filter", "INPUT", 1)
    assert v.logs == [("IN: ", 0x10), ("", 0x10)]                   # nf_log.py writes the lines
    # nat sees a connection's first packet only
    v = nf.hook(NF_INET_POST_ROUTING, pkt(proto=17, ctstate=xt.ESTABLISHED), 0)
    assert (v.verdict, v.nat, v.mark) == ("ACCEPT", None, 0x1)    # or 7, then xset 1/0xff
    v = nf.hook(NF_INET_POST_ROUTING, pkt(proto=17, ctstate=xt.NEW), 0)
    assert v.nat == ("MASQUERADE", 0, 0, 0, 0, 0) and v.rule == 1        # the first MASQUERADE matched
    v = nf.hook(NF_INET_LOCAL_OUT, pkt(dport=80, mark=0xff), 0)
    assert v.mark == 0xf0 and v.nat[0] == "REDIRECT" and v.nat[3] == 3128
    # raw's DROP ends everything before conntrack, mangle or filter see the packet
    v = nf.hook(NF_INET_PRE_ROUTING, pkt(src="10.9.1.1"), 0)
    assert (v.verdict, v.table, v.mark) == ("DROP", "raw", None)
    assert nf.hook(NF_INET_FORWARD, pkt(), 0) == Verdict("DROP", "filter", "FORWARD", 0, mark=0x5)


def test_limit_is_a_token_bucket_in_now():
    nf = Netfilter()
    _load(nf, ["-A INPUT -m limit --limit 2/sec --limit-burst 3 -j ACCEPT", "-A INPUT -j DROP"])
    S = 1_000_000_000
    got = [nf.hook(NF_INET_LOCAL_IN, pkt(), t).verdict for t in (0, 0, 0, 0, S // 4, S // 2, S // 2, 10 * S)]
    assert got == ["ACCEPT"] * 3 + ["DROP", "DROP", "ACCEPT", "DROP", "ACCEPT"]


def test_multiport_mark_set_and_icmp_matches():
    nf = Netfilter(Sets(blk=["10.0.1.66"]))
    _load(nf, ["-A INPUT -m set --match-set blk src -j DROP",
               "-A INPUT -p tcp -m multiport --dports 22,8000:8080 -j ACCEPT",
               "-A INPUT -m mark --mark 0x1/0xf -j ACCEPT",
               "-A INPUT -p icmp --icmp-type port-unreachable -j REJECT",
               "-P INPUT DROP"])
    assert nf.hook(NF_INET_LOCAL_IN, pkt(src="10.0.1.66"), 0).rule == 1
    assert nf.hook(NF_INET_LOCAL_IN, pkt(dport=8001), 0).rule == 2
    assert nf.hook(NF_INET_LOCAL_IN, pkt(dport=8001, fragment=True), 0).rule == 0
    assert nf.hook(NF_INET_LOCAL_IN, pkt(dport=9000, mark=0x31), 0).rule == 3
    v = nf.hook(NF_INET_LOCAL_IN, pkt(proto=1, icmp_type=3, icmp_code=3), 0)
    assert (v.verdict, v.rule, v.reject_with) == ("REJECT", 4, "icmp-port-unreachable")
    assert nf.hook(NF_INET_LOCAL_IN, pkt(proto=1, icmp_type=3, icmp_code=1), 0).rule == 0


def test_restore_touches_only_the_tables_it_names_and_is_all_or_nothing():
    nf = Netfilter()
    _load(nf, TABLES)
    assert iptables_restore(nf, "*filter\n-A INPUT -j DROP\nCOMMIT\n") == (0, "", "")
    assert iptables(nf, "-t nat -S POSTROUTING".split())[1].count("-A") == 4
    before = iptables_save(nf, when="x")
    status, _, err = iptables_restore(nf, "*nat\n-A POSTROUTING -j DNAT --to-destination 1.1.1.1\nCOMMIT\n")
    assert status == 4 and iptables_save(nf, when="x") == before


@pytest.mark.skipif(not shutil.which("iptables-restore") or not shutil.which("ip"), reason="no iptables here")
def test_every_table_pktflow_saves_passes_linux_iptables_restore_test():
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    nf = Netfilter()
    _load(nf, TABLES + [r for r in MATCH_RULES if "match-set" not in r])
    ns = f"pfipt{os.getpid() % 10000}t"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode:
        pytest.skip("cannot create a network namespace")
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "--test"], input=iptables_save(nf),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input=iptables_save(nf),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for table in ("raw", "mangle", "nat", "filter"):
            linux = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-t", table, "-S"], capture_output=True,
                                   text=True).stdout
            assert linux == iptables(nf, ["-t", table, "-S"])[1], table
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_an_empty_hook_costs_one_lookup_and_nat_binds_at_all_four_of_its_hooks():
    nf = Netfilter()
    _load(nf, ["-A FORWARD -p udp -j DROP"])
    assert [nf.empty(h) for h in range(5)] == [True, True, False, True, True]
    assert nf.hook(NF_INET_LOCAL_IN, pkt(), 0) is None
    _load(nf, ["-t nat -A POSTROUTING -o eth1 -j MASQUERADE"])
    assert [nf.empty(h) for h in range(5)] == [False, False, False, False, False]
