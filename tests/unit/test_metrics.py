"""The Prometheus /metrics of the layer services (services/common/metrics.py):
what a scrape shows of cores built here, and the endpoint on a loop."""
import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pktflow.services.common import config, metrics, topology
from pktflow.services.ip.server import IpShell
from pktflow.services.link.server import LinkShell
from pktflow.services.nic.server import NicShell
from pktflow.services.socket.server import SocketShell
from pktflow.services.transport.server import TransportShell


def samples(shell) -> dict:
    """{(name, frozenset(labels)): value} of one scrape."""
    text = metrics.Endpoint(shell.metric_families).scrape().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def labels(**kw):
    return frozenset(kw.items())


@pytest.fixture(scope="module")
def topo():
    return topology.load()


def test_ip_nstat_counters_and_drops_by_reason(topo):
    sh = IpShell(topo)
    sh.ip.netns["h2"].mib["IpInReceives"] += 7
    sh.drop_sites[("h2", "NO_SOCKET", "udp_rcv")] += 2
    s = samples(sh)
    assert s[("pktflow_nstat_total", labels(layer="ip", netns="h2", counter="IpInReceives"))] == 7
    assert s[("pktflow_nstat_total", labels(layer="ip", netns="h1", counter="IpOutNoRoutes"))] == 0
    assert s[("pktflow_nstat_value", labels(layer="ip", netns="r1", counter="IpForwarding"))] == 1
    assert s[("pktflow_nstat_value", labels(layer="ip", netns="h1", counter="IpForwarding"))] == 2
    assert s[("pktflow_drops_total", labels(layer="ip", netns="h2", reason="NO_SOCKET"))] == 2
    assert "IpForwarding" not in sh.ip.netns["h1"].mib          # a scrape changes nothing


def test_transport_tcp_counters_and_fixed_values(topo):
    sh = TransportShell(topo)
    sh.tr.netns["h1"].mib["TcpRetransSegs"] += 3
    sh.tr.netns["h1"].mib["ListenOverflows"] += 1
    s = samples(sh)
    assert s[("pktflow_nstat_total", labels(layer="transport", netns="h1", counter="TcpRetransSegs"))] == 3
    assert s[("pktflow_nstat_total", labels(layer="transport", netns="h1",
                                            counter="TcpExtListenOverflows"))] == 1
    assert s[("pktflow_nstat_value", labels(layer="transport", netns="h1", counter="TcpRtoMin"))] == 200


def test_nic_netdev_and_softnet(topo):
    sh = NicShell(topo)
    dev = next(d for d in sh.nic.devices.values() if d.netns == "h2" and d.name == "eth0")
    dev.stats["rx_packets"] += 5
    dev.stats["rx_crc_errors"] += 1
    s = samples(sh)
    assert s[("pktflow_netdev_rx_packets_total", labels(layer="nic", netns="h2", dev="eth0"))] == 5
    assert s[("pktflow_netdev_tx_dropped_total", labels(layer="nic", netns="h2", dev="eth0"))] == 0
    assert s[("pktflow_netdev_rx_crc_errors_total", labels(layer="nic", netns="h2", dev="eth0"))] == 1
    assert s[("pktflow_softnet_processed_total", labels(netns="h2"))] == 0
    assert s[("pktflow_softnet_backlog_packets", labels(netns="h2", queue="input"))] == 0


def test_link_qdiscs_and_arp(topo):
    sh = LinkShell(topo)
    ns = sh.link.netns["h1"]
    ns.mib["ArpOutRequests"] += 1
    dev = next(d for d in ns.devices.values() if d.name == "eth0")
    dev.tx_bytes, dev.tx_packets = 1500, 3
    s = samples(sh)
    q = labels(netns="h1", dev="eth0", kind="pfifo_fast", handle="0:", parent="root")
    assert s[("pktflow_qdisc_bytes_total", q)] == 1500 and s[("pktflow_qdisc_packets_total", q)] == 3
    assert s[("pktflow_qdisc_backlog_bytes", q)] == 0
    assert s[("pktflow_nstat_total", labels(layer="link", netns="h1", counter="ArpOutRequests"))] == 1


def test_socket_counts(topo):
    sh = SocketShell(topo)
    s = samples(sh)
    assert s[("pktflow_sockets", labels(netns="h1", family="inet", type="dgram"))] == 0


def test_port_from_the_environment():
    assert metrics.port("socket", {}) == 9464 and metrics.port("nic", {}) == 9468
    assert metrics.port("ip", {"PKTFLOW_METRICS_PORT": "19000"}) == 19000
    assert metrics.port("ip", {"PKTFLOW_METRICS_PORT": "off"}) is None
    assert metrics.port("ip", {"PKTFLOW_METRICS_PORT": "0"}) is None
    with pytest.raises(config.ConfigError):
        metrics.port("ip", {"PKTFLOW_METRICS_PORT": "x"})


def test_endpoint_serves_metrics_and_a_taken_port_is_only_a_warning(topo, caplog):
    sh = IpShell(topo)
    sh.ip.netns["h2"].mib["IpInReceives"] += 4

    async def run():
        await sh.start_metrics(0, "127.0.0.1")          # port 0: any free one
        port = sh.metrics_endpoint.server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await r.read()
        w.close()
        other = metrics.Endpoint(sh.metric_families)
        started = await other.start("127.0.0.1", port, "pktflow ip")
        await sh.metrics_endpoint.close()
        return reply, started, port

    reply, started, port = asyncio.run(run())
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"text/plain" in head
    assert b'pktflow_nstat_total{counter="IpInReceives",layer="ip",netns="h2"} 4.0' in body
    assert not started and f"cannot listen on 127.0.0.1:{port}" in caplog.text


def test_start_metrics_none_listens_nowhere(topo):
    sh = IpShell(topo)
    asyncio.run(sh.start_metrics(None, "127.0.0.1"))
    assert sh.metrics_endpoint.server is None


def test_the_compose_profile_scrapes_every_layer_and_the_dashboard_asks_for_metrics_that_exist(topo):
    """observability/: Prometheus's targets are the layers' default ports, and
    every metric the Grafana dashboard queries is one some layer serves."""
    import json
    import re
    from pathlib import Path

    import yaml
    root = Path(__file__).resolve().parents[2] / "observability"
    conf = yaml.safe_load((root / "prometheus.yml").read_text())
    targets = {t["labels"]["service"]: t["targets"] for t in conf["scrape_configs"][0]["static_configs"]}
    assert targets == {layer: [f"{layer}:{metrics.port(layer, {})}"] for layer in config.LAYERS}
    served = {name for cls in (SocketShell, TransportShell, IpShell, LinkShell, NicShell)
              for name, _ in samples(cls(topo))} | {"pktflow_drops_total"}
    dash = json.loads((root / "grafana" / "dashboards" / "pktflow.json").read_text())
    asked = {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"pktflow_\w+", t["expr"])}
    assert asked and asked <= served, asked - served
