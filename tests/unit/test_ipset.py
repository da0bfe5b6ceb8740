"""ipset's hash:ip, hash:net and hash:ip,port sets and the `ipset` command. The
messages, exit statuses and listings were captured from ipset v7.17 (protocol 7)
on Linux 6.18 inside a scratch network namespace; member order and initval are
the kernel's hash order and a random number there, ours are insertion order and
a value derived from the name."""
from dataclasses import dataclass

from pktflow.services.ip.netfilter import ipset as ipset_mod
from pktflow.services.ip.netfilter.ipset import IpSets
from pktflow.services.wire import ipv4

SEC = ipset_mod.S
HELP = "Try `ipset help' for more information.\n"


@dataclass
class P:
    saddr: int
    daddr: int
    proto: int = 6
    sport: int = 0
    dport: int = 0
    icmp_type: int = -1
    icmp_code: int = -1


def ip(text):
    return ipv4.aton(text)


def run(sets, line, **kw):
    return sets.ipset(line.split(), **kw)


def test_hash_ip_membership_and_messages():
    s = IpSets()
    assert run(s, "create s1 hash:ip") == (0, "", "")
    assert s.exists("s1") and not s.exists("s2")
    assert run(s, "create s1 hash:ip") == (
        1, "", "ipset v7.17: Set cannot be created: set with the same name already exists\n")
    assert run(s, "create s1 hash:ip -exist") == (0, "", "")
    assert run(s, "create s1 hash:net -exist")[0] == 1           # -exist never hides another type
    assert run(s, "add s1 10.0.0.1") == (0, "", "")
    assert run(s, "add s1 10.0.0.1") == (
        1, "", "ipset v7.17: Element cannot be added to the set: it's already added\n")
    assert run(s, "add s1 10.0.0.1 -exist") == (0, "", "")
    assert run(s, "-! add s1 10.0.0.1") == (0, "", "")
    assert run(s, "test s1 10.0.0.1") == (0, "", "Warning: 10.0.0.1 is in set s1.\n")
    assert run(s, "test s1 10.0.0.9") == (1, "", "10.0.0.9 is NOT in set s1.\n")
    assert run(s, "del s1 10.0.0.9") == (
        1, "", "ipset v7.17: Element cannot be deleted from the set: it's not added\n")
    assert run(s, "del s1 10.0.0.9 -exist") == (0, "", "")
    assert s.test("s1", P(ip("10.0.0.1"), ip("1.1.1.1")), ["src"])
    assert not s.test("s1", P(ip("10.0.0.1"), ip("1.1.1.1")), ["dst"])
    assert s.test("s1", P(ip("1.1.1.1"), ip("10.0.0.1")), ["dst", "src"])
    assert run(s, "del s1 10.0.0.1") == (0, "", "")
    assert not s.test("s1", P(ip("10.0.0.1"), 0), ["src"])
    # a range stops at the first member already there; what came before stays
    run(s, "add s1 10.0.0.1")
    assert run(s, "add s1 10.0.0.0/30")[0] == 1
    assert run(s, "list s1")[1].endswith("Members:\n10.0.0.1\n10.0.0.0\n")
    assert run(s, "add s1 10.0.0.5-10.0.0.7") == (0, "", "")
    assert run(s, "test s1 10.0.0.6")[0] == 0
    assert run(s, "test s1 10.0.0.4/30") == (1, "", "10.0.0.4/30 is NOT in set s1.\n")
    assert run(s, "add s1 0.0.0.0") == (
        1, "", "ipset v7.17: Null-valued element, cannot be stored in a hash type of set\n")


def test_bad_words_and_missing_sets():
    s = IpSets()
    run(s, "create s1 hash:ip")
    nosuch = (1, "", "ipset v7.17: The set with the given name does not exist\n")
    for line in ("add nosuch 1.2.3.4", "test nosuch 1.2.3.4", "list nosuch", "flush nosuch", "destroy nosuch",
                 "rename nosuch s8", "swap nosuch s1"):
        assert run(s, line) == nosuch, line
    assert run(s, "add s1 300.1.1.1") == (
        1, "", "ipset v7.17: Syntax error: cannot parse 300.1.1.1: resolving to IPv4 address failed\n")
    assert run(s, "add s1 foo")[2] == "ipset v7.17: Syntax error: cannot parse foo: resolving to IPv4 address failed\n"
    assert run(s, "create b1 bogus:type") == (1, "", "ipset v7.17: Syntax error: typename 'bogus:type' is unknown\n")
    assert run(s, "create") == (2, "", "ipset v7.17: Missing mandatory argument to command create\n" + HELP)
    assert run(s, "") == (2, "", "ipset v7.17: No command specified.\n" + HELP)
    assert run(s, "foo") == (2, "", "ipset v7.17: No command specified: unknown argument foo\n" + HELP)
    assert run(s, "test") == (2, "", "ipset v7.17: Missing mandatory argument to command test\n" + HELP)
    assert run(s, "add s1") == (2, "", "ipset v7.17: Missing second mandatory argument to command add\n" + HELP)
    assert run(s, "list s1 s2") == (2, "", "ipset v7.17: Unknown argument s2\n" + HELP)
    assert run(s, "add s1 1.1.1.2 timeout 10") == (
        1, "", "ipset v7.17: Timeout cannot be used: set was created without timeout support\n")
    assert run(s, "create d hash:ip timeout 3000000") == (
        1, "", "ipset v7.17: Syntax error: '3000000' is out of range 0-2147483\n")
    assert run(s, "version") == (0, "ipset v7.17, protocol version: 7\n", "")


def test_hash_net_several_prefix_lengths():
    s = IpSets()
    run(s, "create n1 hash:net")
    for net in ("10.0.0.0/8", "192.168.1.0/24", "192.168.1.7", "10.1.0.0/16"):
        assert run(s, f"add n1 {net}") == (0, "", ""), net
    assert run(s, "add n1 192.168.1.77/24") == (
        1, "", "ipset v7.17: Element cannot be added to the set: it's already added\n")
    assert run(s, "add n1 0.0.0.0/0") == (
        1, "", "ipset v7.17: The value of the CIDR parameter of the IP address is invalid\n")
    assert run(s, "test n1 10.2.3.4") == (0, "", "Warning: 10.2.3.4 is in set n1.\n")
    assert run(s, "test n1 192.168.1.200")[0] == 0
    assert run(s, "test n1 192.168.1.0/24") == (0, "", "Warning: 192.168.1.0/24 is in set n1.\n")
    assert run(s, "test n1 192.168.0.0/16") == (1, "", "192.168.0.0/16 is NOT in set n1.\n")
    assert run(s, "test n1 11.0.0.1") == (1, "", "11.0.0.1 is NOT in set n1.\n")
    assert run(s, "del n1 10.0.0.0/16")[0] == 1                 # only the exact network deletes
    assert s.sets["n1"].cidrs == [32, 24, 16, 8]                # most specific first, as nets[]
    pkt = P(ip("192.168.2.1"), ip("192.168.1.7"))
    assert s.test("n1", pkt, ["dst"]) and not s.test("n1", pkt, ["src"])
    run(s, "del n1 192.168.1.7")
    run(s, "del n1 192.168.1.0/24")
    assert s.sets["n1"].cidrs == [16, 8] and not s.test("n1", pkt, ["dst"])
    run(s, "create f hash:net")
    run(s, "add f 10.0.0.0-10.0.0.5")
    assert run(s, "list f")[1].endswith("Number of entries: 2\nMembers:\n10.0.0.0/30\n10.0.0.4/31\n")


def test_hash_ip_port():
    s = IpSets()
    run(s, "create p1 hash:ip,port")
    for e in ("10.0.0.1,80", "10.0.0.1,udp:53", "10.0.0.2,tcp:22", "10.0.0.4,http", "10.0.0.5,icmp:echo-reply",
              "10.0.0.6,icmp:3/1", "10.0.0.6,gre:0", "10.0.0.7,1000-1002"):
        assert run(s, f"add p1 {e}") == (0, "", ""), e
    assert run(s, "add p1 10.0.0.3") == (1, "", "ipset v7.17: Syntax error: Second element is missing from 10.0.0.3.\n")
    assert run(s, "add p1 10.0.0.5,icmp:8") == (1, "", "ipset v7.17: Cannot parse 8 as an ICMP type/code.\n")
    assert run(s, "add p1 10.0.0.1,tcp:70000")[2] == "ipset v7.17: Syntax error: '70000' is out of range 0-65535\n"
    assert run(s, "test p1 10.0.0.1,80") == (0, "", "Warning: 10.0.0.1,tcp:80 is in set p1.\n")
    assert run(s, "test p1 10.0.0.1,udp:80") == (1, "", "10.0.0.1,udp:80 is NOT in set p1.\n")
    assert run(s, "test p1 10.0.0.7,1001")[0] == 0
    listing = run(s, "list p1")[1].split("Members:\n")[1].splitlines()
    assert {"10.0.0.1,tcp:80", "10.0.0.1,udp:53", "10.0.0.4,tcp:80", "10.0.0.5,icmp:echo-reply",
            "10.0.0.6,icmp:host-unreachable", "10.0.0.6,gre:0"} <= set(listing)
    web = P(ip("192.0.2.9"), ip("10.0.0.1"), 6, 40000, 80)
    assert s.test("p1", web, ["dst", "dst"])
    assert not s.test("p1", web, ["dst", "src"])
    assert not s.test("p1", web, ["dst"])                      # fewer directions than dimensions: no match
    dns = P(ip("10.0.0.1"), ip("192.0.2.9"), 17, 53, 33000)
    assert s.test("p1", dns, ["src", "src"])
    ping_reply = P(ip("10.0.0.5"), ip("192.0.2.9"), 1, icmp_type=0, icmp_code=0)
    assert s.test("p1", ping_reply, ["src", "dst"])
    assert s.test("p1", P(ip("10.0.0.6"), 0, 47), ["src", "src"])


def test_listing_save_and_header_as_ipset_prints_them():
    s = IpSets()
    run(s, "create m1 hash:ip maxelem 2")
    run(s, "add m1 1.1.1.1")
    run(s, "add m1 1.1.1.2")
    assert run(s, "add m1 1.1.1.3") == (1, "", "ipset v7.17: Hash is full, cannot add more elements\n")
    initval = f"{s.sets['m1'].initval:#010x}"
    assert run(s, "list m1") == (0, (
        "Name: m1\nType: hash:ip\nRevision: 6\n"
        f"Header: family inet hashsize 1024 maxelem 2 bucketsize 12 initval {initval}\n"
        "Size in memory: 296\nReferences: 0\nNumber of entries: 2\nMembers:\n1.1.1.1\n1.1.1.2\n"), "")
    run(s, "create h1 hash:ip family inet hashsize 10 maxelem 100")
    assert "hashsize 64 maxelem 100" in run(s, "list h1 -terse")[1]
    assert not run(s, "list h1 -terse")[1].endswith("Members:\n")
    run(s, "create n0 hash:net")
    assert "Size in memory: 456\n" in run(s, "list n0")[1]
    run(s, "add n0 10.0.0.0/8")
    assert "Size in memory: 504\n" in run(s, "list n0")[1]
    out = run(s, "list")[1]
    assert out.count("Name: ") == 3 and "\n\nName: h1\n" in out
    assert run(s, "list -name") == (0, "m1\nh1\nn0\n", "")
    save = run(s, "save")[1]
    assert save.startswith(f"create m1 hash:ip family inet hashsize 1024 maxelem 2 bucketsize 12 initval {initval}\n"
                           "add m1 1.1.1.1\nadd m1 1.1.1.2\ncreate h1 hash:ip")
    assert run(s, "list -o save m1")[1] == run(s, "save m1")[1]
    # save's output restores into a fresh namespace
    fresh = IpSets()
    assert fresh.ipset(["restore"], stdin=save) == (0, "", "")
    assert fresh.ipset(["save"]) == (0, save, "")


def test_timeouts():
    s = IpSets()
    run(s, "create t1 hash:ip timeout 300")
    run(s, "add t1 1.1.1.1", now=0)
    run(s, "add t1 1.1.1.2 timeout 10", now=0)
    run(s, "add t1 1.1.1.3 timeout 0", now=0)                   # 0: permanent
    out = run(s, "list t1", now=SEC // 2)[1]
    assert "maxelem 65536 timeout 300 bucketsize" in out
    assert out.endswith("Members:\n1.1.1.1 timeout 299\n1.1.1.2 timeout 9\n1.1.1.3 timeout 0\n")
    assert "Size in memory: 408\n" in out                       # 216 + 3 * 64
    assert s.test("t1", P(ip("1.1.1.2"), 0), ["src"], now=9 * SEC)
    assert not s.test("t1", P(ip("1.1.1.2"), 0), ["src"], now=10 * SEC)
    assert run(s, "test t1 1.1.1.2", now=10 * SEC)[0] == 1
    assert run(s, "add t1 1.1.1.2", now=10 * SEC) == (0, "", "")   # expired: addable again
    assert run(s, "list t1 -terse", now=301 * SEC)[1].endswith("Number of entries: 2\n")


def test_restore_is_line_by_line():
    s = IpSets()
    text = "create r1 hash:ip family inet hashsize 1024 maxelem 65536\nadd r1 1.2.3.4\nadd r1 1.2.3.5\n"
    assert s.ipset(["restore"], stdin=text) == (0, "", "")
    assert s.ipset(["restore"], stdin="create r1 hash:ip family inet hashsize 1024 maxelem 65536\n") == (
        1, "", "ipset v7.17: Error in line 1: Set cannot be created: set with the same name already exists\n")
    assert s.ipset(["restore"], stdin="add r1 1.2.3.6\nadd r1 1.2.3.4\n") == (
        1, "", "ipset v7.17: Error in line 2: Element cannot be added to the set: it's already added\n")
    assert run(s, "test r1 1.2.3.6")[0] == 0                    # the lines before the error stay
    assert s.ipset(["restore"], stdin="bogus r1 1.2.3.4\n") == (
        2, "", "ipset v7.17: No command specified: unknown argument bogus\n" + HELP)
    assert s.ipset(["-exist", "restore"], stdin="add r1 1.2.3.4\n") == (0, "", "")


def test_swap_rename_destroy_and_references():
    s = IpSets()
    run(s, "create s1 hash:ip")
    run(s, "create n1 hash:net")
    run(s, "create c hash:ip")
    run(s, "add s1 1.1.1.1")
    assert run(s, "swap s1 n1") == (1, "", "ipset v7.17: The sets cannot be swapped: their type does not match\n")
    assert run(s, "swap s1 nosuch") == (
        1, "", "ipset v7.17: Sets cannot be swapped: the second set does not exist\n")
    rule_set = s.ref("s1")                                      # an iptables rule holds s1
    assert "References: 1\n" in run(s, "list s1")[1]
    assert run(s, "swap s1 c") == (0, "", "")
    assert run(s, "list -name")[1] == "s1\nn1\nc\n"
    assert not s.test("s1", P(ip("1.1.1.1"), 0), ["src"]) and s.test("c", P(ip("1.1.1.1"), 0), ["src"])
    assert rule_set is s.get("s1") and "References: 1\n" in run(s, "list s1")[1]
    assert run(s, "rename s1 s9") == (1, "", "ipset v7.17: Set cannot be renamed: it is in use by another system\n")
    assert run(s, "rename c n1") == (
        1, "", "ipset v7.17: Set cannot be renamed: a set with the new name already exists\n")
    assert run(s, "rename c c2") == (0, "", "") and s.exists("c2")
    busy = (1, "", "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component\n")
    assert run(s, "destroy s1") == busy
    assert run(s, "destroy") == busy and run(s, "list -name")[1] == "s1\nn1\nc2\n"   # nothing went
    s.unref(rule_set)
    assert run(s, "flush c2") == (0, "", "") and len(s.get("c2")) == 0
    assert run(s, "destroy") == (0, "", "") and run(s, "list") == (0, "", "")


def test_membership_is_constant_time_with_10000_entries():
    s = IpSets()
    run(s, "create big hash:ip")
    run(s, "create nets hash:net maxelem 100000")
    base = ip("10.0.0.0")
    for i in range(10000):
        s.sets["big"]._insert(base + i, 0)
    for i in range(10000):                                      # 10,000 networks over three prefix lengths
        cidr = (16, 24, 28)[i % 3]
        s.sets["nets"]._insert(((base + (i << 8)) & ipset_mod._mask(cidr), cidr), 0)
    assert len(s.sets["big"]) == 10000 and s.test("big", P(base + 9999, 0), ["src"])
    nets = s.sets["nets"]
    assert len(nets.cidrs) == 3                                 # a lookup touches 3 dicts, not 10,000 entries

    class Spy(dict):
        gets = 0

        def get(self, *a):
            Spy.gets += 1
            return super().get(*a)
    nets.nets = {c: Spy(d) for c, d in nets.nets.items()}
    assert s.test("nets", P(0, base + (4 << 8) + 3), ["dst"])
    assert not s.test("nets", P(0, ip("11.0.0.1")), ["dst"])
    assert Spy.gets <= 2 * 3
