"""Prometheus /metrics on every layer service of a stack of its own: the
counters that traffic moved, as a Prometheus server would scrape them."""
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import pktflow
from conftest import PORT_BASE, assert_no_tracebacks, eventually
from test_cli import sdk_endpoint
from pktflow.services.common import config

BASE = PORT_BASE + 2700
METRICS = BASE + 30                  # socket; transport, ip, link and nic on the next four


def scrape(port: int) -> dict:
    """{(name, frozenset(labels)): value} from http://127.0.0.1:PORT/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def key(name: str, **labels):
    return name, frozenset(labels.items())


def value(port: int, name: str, **labels) -> float | None:
    return scrape(port).get(key(name, **labels))


def test_every_layer_serves_its_counters_on_metrics(tmp_path):
    from pktflow.up import Stack
    s = Stack(port_base=BASE, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"},
              log_dir=str(tmp_path), metrics_port=METRICS)
    s.start()
    port = {layer: METRICS + i for i, layer in enumerate(config.LAYERS)}
    try:
        ip_in = value(port["ip"], "pktflow_nstat_total", layer="ip", netns="h2", counter="IpInReceives")
        assert ip_in is not None
        with sdk_endpoint(s.endpoint):
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
                    pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
                srv.bind(("10.0.2.10", 45301))
                srv.settimeout(5)
                for _ in range(3):
                    c.sendto(b"counted", ("10.0.2.10", 45301))
                    assert srv.recvfrom(100)[0] == b"counted"
                c.sendto(b"nobody", ("10.0.2.10", 45302))              # a closed port: NO_SOCKET in h2
                assert value(port["socket"], "pktflow_sockets", netns="h2", family="inet", type="dgram") == 1

        def moved():          # polled: the receiver's counters move as the packets arrive
            ip, tr, nic, link = (scrape(port[layer]) for layer in ("ip", "transport", "nic", "link"))
            qdisc = [v for (name, lab), v in link.items() if name == "pktflow_qdisc_bytes_total" and
                     dict(lab)["netns"] == "h1" and dict(lab)["dev"] == "eth0"]
            return (ip.get(key("pktflow_nstat_total", layer="ip", netns="h2", counter="IpInReceives"), 0)
                    >= ip_in + 4
                    and tr.get(key("pktflow_drops_total", layer="transport", netns="h2", reason="NO_SOCKET"), 0)
                    >= 1
                    and tr.get(key("pktflow_nstat_total", layer="transport", netns="h2", counter="UdpNoPorts"), 0)
                    >= 1
                    and nic.get(key("pktflow_netdev_rx_packets_total", layer="nic", netns="h2", dev="eth0"), 0)
                    >= 4
                    and qdisc and qdisc[0] > 4 * 42)       # h1's eth0 sent at least the four frames
        eventually(moved)
        assert value(port["socket"], "pktflow_sockets", netns="h2", family="inet", type="dgram") == 0
    finally:
        s.stop()
    assert_no_tracebacks(tmp_path)
