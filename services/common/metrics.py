"""Prometheus metrics of a layer service: every counter the core already keeps
(nstat's MIB counters, `ip -s link`, `tc -s qdisc`, softnet_stat, drops by
reason, socket counts), read when /metrics is scraped and never on a packet's
path.

The layer says which counters it has (LayerShell.metric_families(), one list of
metric families per scrape); this module turns them into the Prometheus text
format on a per-process CollectorRegistry and serves `GET /metrics` from the
service's own event loop (no thread reads the core while the loop changes it).

Names (README "Metrics"): `pktflow_nstat_total{layer,netns,counter}` with
nstat's own counter names (IpInReceives, TcpRetransSegs, ...), the few that are
values rather than counts (IpForwarding, TcpCurrEstab, ...) as the gauge
`pktflow_nstat_value`; `pktflow_drops_total{layer,netns,reason}` with the kernel's
SKB_DROP_REASON_* names; `pktflow_netdev_<stat>_total{layer,netns,dev}` with
`ip -s link`'s names; `pktflow_qdisc_*{netns,dev,kind,handle,parent}` with
`tc -s qdisc`'s; `pktflow_softnet_*{netns}`; `pktflow_sockets{netns,family,type}`.
"""
import asyncio
import logging
import os
import re

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import config

log = logging.getLogger("pktflow")

# The OpenTelemetry Prometheus exporter's conventional port: the socket
# service's; transport, ip, link and nic take the next four.
BASE_PORT = 9464
OFF = ("0", "off", "no", "false", "none")

# MIB entries that are values, not counts (RFC 2011/2012's gauges and constants).
NSTAT_GAUGES = frozenset(("IpForwarding", "IpDefaultTTL", "TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax",
                          "TcpMaxConn", "TcpCurrEstab"))
# `ip -s link`'s columns: always shown (zeros included); any other stat a device has follows.
NETDEV_STATS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors",
                "tx_dropped")


def port(layer: str, env=None) -> int | None:
    """The layer's metrics port: PKTFLOW_METRICS_PORT (`0`/`off`: none), by
    default 9464 plus the layer's place in socket, transport, ip, link, nic."""
    env = os.environ if env is None else env
    v = env.get("PKTFLOW_METRICS_PORT", "").strip().lower()
    if v in OFF:
        return None
    if not v:
        return BASE_PORT + config.LAYERS.index(layer)
    if not v.isdigit() or not 0 < int(v) < 65536:
        raise config.ConfigError(f"PKTFLOW_METRICS_PORT={v!r}: a port number, or 0/off for none")
    return int(v)


def nstat(layer: str, rows_by_netns) -> list:
    """`pktflow_nstat_total` and `pktflow_nstat_value` from (netns, [(name, value)...]) pairs."""
    counts = CounterMetricFamily("pktflow_nstat", "SNMP/netstat MIB counters by nstat name",
                                 labels=("layer", "netns", "counter"))
    values = GaugeMetricFamily("pktflow_nstat_value", "SNMP MIB values that are not counts (IpForwarding, "
                               "TcpCurrEstab, ...)", labels=("layer", "netns", "counter"))
    for netns, rows in rows_by_netns:
        for name, v in rows:
            (values if name in NSTAT_GAUGES else counts).add_metric((layer, netns, name), v)
    return [counts, values]


def drops(layer: str, counts) -> list:
    """`pktflow_drops_total` from the shell's Counter of (netns, reason)."""
    fam = CounterMetricFamily("pktflow_drops", "Packets dropped, by the kernel's SKB_DROP_REASON_* name",
                              labels=("layer", "netns", "reason"))
    for (netns, reason), v in sorted(counts.items()):
        fam.add_metric((layer, netns, reason), v)
    return [fam]


_NAME = re.compile(r"[^a-zA-Z0-9_]")


def netdev(layer: str, devices, always=NETDEV_STATS) -> list:
    """`pktflow_netdev_<stat>_total{layer,netns,dev}` from (netns, dev, stats)
    triples: the stats `always` (zeros too), then any other a device has."""
    fams: dict = {}
    for netns, dev, stats in devices:
        names = tuple(always) + tuple(sorted(k for k in stats if k not in always))
        for k in names:
            fam = fams.get(k)
            if fam is None:
                fam = fams[k] = CounterMetricFamily(f"pktflow_netdev_{_NAME.sub('_', k)}",
                                                    f"Device statistic {k} (ip -s link)",
                                                    labels=("layer", "netns", "dev"))
            fam.add_metric((layer, netns, dev), stats.get(k, 0))
    return list(fams.values())


def _tc_handle(h: int) -> str:
    return f"{h >> 16:x}:" if not h & 0xFFFF else f"{h >> 16:x}:{h & 0xFFFF:x}"


def qdiscs(rows) -> list:
    """`pktflow_qdisc_*` from (netns, admin_pb2.Qdisc) pairs (sch_api.dump())."""
    labels = ("netns", "dev", "kind", "handle", "parent")
    c = {k: CounterMetricFamily(f"pktflow_qdisc_{k}", f"tc -s qdisc: {what}", labels=labels)
         for k, what in (("bytes", "bytes sent"), ("packets", "packets sent"), ("drops", "packets dropped"),
                         ("overlimits", "overlimits"), ("requeues", "requeues"))}
    backlog = GaugeMetricFamily("pktflow_qdisc_backlog_bytes", "tc -s qdisc: backlog in bytes", labels=labels)
    qlen = GaugeMetricFamily("pktflow_qdisc_backlog_packets", "tc -s qdisc: backlog in packets (qlen)",
                             labels=labels)
    for netns, q in rows:
        key = (netns, q.dev, q.kind, _tc_handle(q.handle), _tc_handle(q.parent) if q.parent else "root")
        for k, fam in c.items():
            fam.add_metric(key, getattr(q, k))
        backlog.add_metric(key, q.backlog)
        qlen.add_metric(key, q.qlen)
    return [*c.values(), backlog, qlen]


def softnet(by_netns) -> list:
    """`pktflow_softnet_*{netns}` (/proc/net/softnet_stat: one CPU per host) from netns -> SoftnetData."""
    c = {k: CounterMetricFamily(f"pktflow_softnet_{k}", what, labels=("netns",))
         for k, what in (("processed", "packets processed by NAPI and the backlog"),
                         ("dropped", "packets dropped: the backlog was full (netdev_max_backlog)"),
                         ("time_squeeze", "NAPI rounds that ran out of budget or time"))}
    backlog = GaugeMetricFamily("pktflow_softnet_backlog_packets", "packets in the backlog's queues",
                                labels=("netns", "queue"))
    for netns, sd in sorted(by_netns.items()):
        st = sd.stat()
        for k, fam in c.items():
            fam.add_metric((netns,), st[k])
        backlog.add_metric((netns, "input"), st["input_qlen"])
        backlog.add_metric((netns, "process"), st["process_qlen"])
    return [*c.values(), backlog]


FAMILIES = {2: "inet", 10: "inet6", 17: "packet", 44: "xdp"}
TYPES = {1: "stream", 2: "dgram", 3: "raw", 5: "seqpacket"}


def sockets(counts, hosts) -> list:
    """`pktflow_sockets{netns,family,type}` from a Counter of (netns, family, type);
    every host's inet stream and dgram rows are there, zeros included."""
    fam = GaugeMetricFamily("pktflow_sockets", "open sockets", labels=("netns", "family", "type"))
    keys = set(counts) | {(h, 2, t) for h in hosts for t in (1, 2)}
    for netns, f, t in sorted(keys):
        fam.add_metric((netns, FAMILIES.get(f, str(f)), TYPES.get(t, str(t))), counts.get((netns, f, t), 0))
    return [fam]


class _Collector:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families()

    def describe(self):              # no describe-time collection (the registry would call collect())
        return []


class Endpoint:
    """GET /metrics on HOST:PORT, answered on the running event loop."""

    def __init__(self, families):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(families))
        self.server: asyncio.AbstractServer | None = None

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    async def start(self, host: str, port_: int, what: str) -> bool:
        """Listens; a port that cannot be had logs one warning and the service
        goes on without metrics."""
        try:
            self.server = await asyncio.start_server(self._handle, host, port_, reuse_address=True)
        except OSError as e:
            log.warning("%s: no metrics endpoint: cannot listen on %s:%d (%s)", what, host, port_,
                        e.strerror or e)
            return False
        log.info("%s metrics on http://%s:%d/metrics", what, host, port_)
        return True

    async def close(self):
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + [""]
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET /metrics\n"
            elif path in ("/metrics", "/"):
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.scrape()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"GET /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + (body if method != "HEAD" else b""))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("metrics scrape failed")
        finally:
            writer.close()
