"""Shards in the topology file: the keys, their refusals, the placement, a shard's view,
and the service configuration that picks a shard (services/common/topology.py, config.py)."""
import itertools

import pytest
from hypothesis import given, settings, strategies as st

from conftest import sharded_default
from pktflow.services.common import config, topology as t

DEFAULT = t.default_path().read_text()


def test_one_shard_unless_the_file_says():
    topo = t.load()
    assert topo.shards == 1 and set(topo.placement.values()) == {0} and topo.shard is None


def test_pinned_hosts_and_the_view_of_each_shard():
    topo = t.loads(sharded_default(2, h1=0, r1=1, h2=1))
    assert topo.placement == {"h1": 0, "r1": 1, "h2": 1}
    assert [topo.cross_shard(link) for link in topo.links] == [True, False]
    zero, one = topo.shard_view(0), topo.shard_view(1)
    assert list(zero.hosts) == ["h1"] and sorted(zero.remote) == ["h2", "r1"] and zero.shard == 0
    assert sorted(one.hosts) == ["h2", "r1"] and list(one.remote) == ["h1"]
    assert zero.links is topo.links                       # every cable, the remote ends too
    # names resolve alike on every shard, in the file's order
    assert zero.hosts_file() == one.hosts_file() == topo.hosts_file()
    assert list(zero.hosts_file())[2:] == ["h1", "r1", "h2"]


@pytest.mark.parametrize("text, problem", [
    ("shards: 0\n" + DEFAULT, "shards: 0 is out of range 1..64"),
    ("shards: two\n" + DEFAULT, "shards: 'two' is not an integer"),
    (sharded_default(2, h1=2), "host 'h1' shard: 2 is not one of the topology's shards (shards: 2, numbered from 0)"),
    (DEFAULT.replace("\n  h1:\n", "\n  h1:\n    shard: 1\n", 1), "is not one of the topology's shards"),
])
def test_bad_shard_keys_are_refused_naming_the_line(text, problem):
    with pytest.raises(t.TopologyError) as e:
        t.loads(text, "topo.yaml")
    assert problem in str(e.value) and str(e.value).startswith("topo.yaml:")


def test_automatic_placement_of_the_default_topology_cuts_one_cable():
    topo = t.loads("shards: 2\n" + DEFAULT)
    assert sorted(topo.placement.values()) == [0, 0, 1]
    assert sum(topo.cross_shard(link) for link in topo.links) == 1


def chain(n):
    hosts = [f"n{i}" for i in range(n)]
    return hosts, [t.Link([(hosts[i], "e1"), (hosts[i + 1], "e0")]) for i in range(n - 1)]


def cut(links, where):
    return sum(len({where[h] for h, _ in link.endpoints}) > 1 for link in links)


def test_a_chain_is_cut_once_per_shard_boundary():
    hosts, links = chain(12)
    for shards in (2, 3, 4):
        where = t.place(hosts, links, shards, {})
        assert cut(links, where) == shards - 1
        assert max(list(where.values()).count(s) for s in range(shards)) == 12 // shards


def test_independent_pairs_never_cross():
    hosts = [f"p{i}{end}" for i in range(12) for end in "ab"]
    links = [t.Link([(f"p{i}a", "eth0"), (f"p{i}b", "eth0")]) for i in range(12)]
    where = t.place(hosts, links, 4, {})
    assert cut(links, where) == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 7), st.integers(2, 3), st.data())
def test_placement_is_balanced_keeps_pins_and_no_move_or_swap_cuts_fewer(n, shards, data):
    hosts = [f"x{i}" for i in range(n)]
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(hosts), st.sampled_from(hosts)).filter(
        lambda p: p[0] != p[1]), max_size=10))
    links = [t.Link([(a, f"e{i}"), (b, f"f{i}")]) for i, (a, b) in enumerate(pairs)]
    pins = data.draw(st.dictionaries(st.sampled_from(hosts), st.integers(0, shards - 1), max_size=1))
    where = t.place(hosts, links, shards, pins)
    assert set(where) == set(hosts) and all(where[h] == s for h, s in pins.items())
    cap = -(-n // shards)
    sizes = [list(where.values()).count(s) for s in range(shards)]
    assert max(sizes) <= cap
    free = [h for h in hosts if h not in pins]
    best = cut(links, where)
    for h, s in itertools.product(free, range(shards)):          # no single move with room helps
        if sizes[s] < cap and s != where[h]:
            assert cut(links, where | {h: s}) >= best
    for a, b in itertools.combinations(free, 2):                  # nor any swap
        assert cut(links, where | {a: where[b], b: where[a]}) >= best


def test_the_service_shard_from_the_environment(monkeypatch):
    topo = t.loads(sharded_default(2, h1=0, r1=1, h2=1))
    monkeypatch.delenv("PKTFLOW_SHARD", raising=False)
    with pytest.raises(config.ConfigError, match=r"has 2 shards: set PKTFLOW_SHARD \(0\.\.1\)"):
        config.sharded(topo)
    monkeypatch.setenv("PKTFLOW_SHARD", "1")
    assert sorted(config.sharded(topo).hosts) == ["h2", "r1"]
    monkeypatch.setenv("PKTFLOW_SHARD", "ordinal")
    monkeypatch.setenv("HOSTNAME", "transport-0")
    assert list(config.sharded(topo).hosts) == ["h1"]
    monkeypatch.setenv("PKTFLOW_TRANSPORT_ENDPOINT", "transport-{shard}.transport:50052")
    assert config.endpoint("transport") == "transport-0.transport:50052"
    monkeypatch.setenv("PKTFLOW_SHARD", "2")
    with pytest.raises(config.ConfigError, match=r"PKTFLOW_SHARD=2: the topology has shards 0\.\.1"):
        config.sharded(topo)
    with pytest.raises(config.ConfigError, match="one shard"):
        config.sharded(t.load())
    monkeypatch.setenv("PKTFLOW_SHARD", "x")
    with pytest.raises(config.ConfigError, match="not a shard number"):
        config.shard()
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", "nic-0.nic:50055, nic-1.nic:50055")
    assert config.shard_endpoints("nic") == ["nic-0.nic:50055", "nic-1.nic:50055"]


def test_shard_addresses_with_a_gap_are_refused(monkeypatch):
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", "nic-0:50055,,nic-2:50055")
    with pytest.raises(config.ConfigError, match=r"PKTFLOW_SHARD_NICS=.*: address 2 is empty"):
        config.shard_endpoints("nic")
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", " ")
    assert config.shard_endpoints("nic") == []


def test_a_sharded_socket_service_needs_every_shards_address(monkeypatch):
    from pktflow.services.socket.server import SocketShell
    view = t.loads(sharded_default(2, h1=0, r1=1, h2=1)).shard_view(0)
    monkeypatch.setenv("PKTFLOW_SHARD_SOCKETS", "127.0.0.1:50051")
    with pytest.raises(config.ConfigError, match="2 shards, but PKTFLOW_SHARD_SOCKETS names 1 socket address"):
        SocketShell(view)
    monkeypatch.setenv("PKTFLOW_SHARD_SOCKETS", "127.0.0.1:50051,127.0.0.1:50061")
    assert SocketShell(view).shard_sockets == ["127.0.0.1:50051", "127.0.0.1:50061"]
