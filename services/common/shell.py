"""The gRPC shell every layer service shares: streams to its neighbours, the
action loop around its core, spans, drops, timers, Admin and health.

A layer subclasses LayerShell, builds its per-netns core state, and implements
`egress(skb, now)` (from above), `ingress(skb, now)` (from below), `timer(key,
now)` and `admin(request)`; each of the first three returns actions
(actions.py). Everything that touches gRPC, the clock or OpenTelemetry is here.
"""
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pktflow.v1 import admin_pb2, admin_pb2_grpc

from . import config, healthcheck, metrics, otlp_metrics, rpc_guard, sysctl, topology, tracepoints, watch
from .plumbing import Downlink, Uplinks
from .actions import Arm, Cancel, Down, Drop, Merge, Step, Stop, Up
from .skbuff import NEW_JOURNEY, SAMPLED
from .tracing import Tracer

log = logging.getLogger("pktflow")

# The health service name that answers SERVING while the process runs; "" and
# "pktflow.<layer>" answer SERVING only once the streams to the layers below are up.
LIVENESS = "pktflow.liveness"

_ns = time.time_ns
_mono = time.monotonic_ns


class LayerShell(admin_pb2_grpc.AdminServicer):
    name = "layer"

    def __init__(self, topo: topology.Topology, tracer: Tracer | None = None):
        self.topo = topo
        self.tracer = tracer or Tracer(self.name)
        self.instance = uuid.uuid4().hex
        self.drop_sites: Counter = Counter()     # (netns, reason, the function that dropped) -> count
        self.perf: Counter | None = None         # (netns, tracepoint) -> hits, while `perf stat` counts
        self.watchers: list[watch.Watcher] = []  # perf trace, bpftrace
        self.probes = tracepoints.Probes()       # what the cores fire themselves, and which are on
        self.tracing = False                     # perf stat counts or someone watches: look for tracepoints
        self.downs: dict[str, Downlink] = {}
        self.uplinks: Uplinks | None = None
        self.health = healthcheck.AioHealth()
        self._timers: dict = {}
        self._attr_cache: dict = {}
        self._hits: dict = {}                     # (fn, dropped) -> tracepoints.hits()
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- to be provided by the layer
    def egress(self, skb, now: int) -> list:
        raise NotImplementedError

    def ingress(self, skb, now: int) -> list:
        raise NotImplementedError

    def timer(self, key, now: int) -> list:
        return []

    def admin(self, req: admin_pb2.AdminRequest) -> admin_pb2.AdminReply:
        if req.command == "sysctl":
            known = self.sysctls(req.netns)
            if known is not None:              # `sysctl ...` on the values this layer keeps
                values, ifnames = known
                status, out, err, written = sysctl.sysctl_tool(values, ifnames, list(req.args))
                if written:
                    self.sysctl_written(req.netns, written)
                return admin_pb2.AdminReply(json=json.dumps({"status": status, "out": out, "err": err,
                                                             "written": {n: sysctl.show(values[n]) for n in written}}))
        return admin_pb2.AdminReply(err=95, detail=f"the {self.name} layer has no command {req.command!r}")

    def sysctls(self, netns: str) -> tuple[dict, set] | None:
        """The namespace's sysctl values this layer keeps (live: the core reads
        them) and its interface names; None if the layer keeps none."""
        return None

    def sysctl_written(self, netns: str, names: list[str]):
        """`sysctl -w` changed these: re-read what the core copied at start."""

    def span_attrs(self, skb) -> bytes:
        """Extra span attributes of a sampled skb (addresses, ports, ...),
        encoded: use cached_attrs()."""
        return b""

    def on_upper_connect(self, layer: str, instance: str):
        pass

    def on_lower_state(self, layer: str, up: bool):
        pass

    # -- the action loop
    def egress_for(self, from_layer: str):
        """The core entry for skbs from `from_layer` (link has two uppers)."""
        return self.egress

    async def on_egress_batch(self, batch, from_layer: str):
        now = _mono()
        apply = self.apply
        egress = self.egress_for(from_layer)
        for skb in batch.skbs:
            t0 = _ns()
            try:
                actions = egress(skb, now)
            except Exception:
                actions = self.core_failed(skb, "egress")
            apply(actions, t0, _ns(), "egress")
        for d in self.downs.values():
            await d.room()

    def on_ingress_batch(self, batch):
        now = _mono()
        apply = self.apply
        ingress = self.ingress
        for skb in batch.skbs:
            t0 = _ns()
            try:
                actions = ingress(skb, now)
            except Exception:
                actions = self.core_failed(skb, "ingress")
            apply(actions, t0, _ns(), "ingress")

    def core_failed(self, skb, direction: str) -> list:
        """A bug met by one skb costs that skb, never the stream it came on:
        dropped and counted (NOT_SPECIFIED), the traceback logged once a minute."""
        now = time.monotonic()
        self.core_errors += 1
        if now - self._core_error_logged >= 60:
            self._core_error_logged = now
            log.exception("%s: the %s core failed on an skb (dropped; %d so far)", self.name, direction,
                          self.core_errors)
        return [Drop(skb, f"{self.name}_{direction}", "NOT_SPECIFIED")]

    core_errors = 0
    _core_error_logged = -60.0

    def apply(self, actions, t0: int, t1: int, direction: str):
        for act in actions:
            kind = type(act)
            lost = drop = None
            if kind is Down:
                lost = self.send_down(act.skb)
            elif kind is Up:
                skb = act.skb
                if not skb.tstamp:                # net_timestamp_set(): a packet going up has its time
                    skb.tstamp = t1
                lost = self.uplinks.put(act.to or self.default_upper, skb)
            elif kind is Drop:
                drop = act.reason
            elif kind is Arm:
                self._arm(act.key, act.when)
                continue
            elif kind is Cancel:
                self._arm(act.key, None)
                continue
            elif kind is Merge:
                if act.skb.trace_flags & SAMPLED:          # the links go on the last span of fn
                    *lead, last = (act.fn,) if isinstance(act.fn, str) else act.fn
                    if lead:
                        self._spans(act.skb, tuple(lead), t0, t1, direction, None, ())
                    self._spans(act.skb, last, t0, t1, direction, None, act.links)
                continue
            elif kind is not Stop:
                self.on_action(act)
                continue
            skb = act.skb
            if drop or lost:
                self.drop_sites[(skb.netns, drop or lost, tracepoints.site(act.fn))] += 1
            if self.tracing:
                self.fire(skb, act.fn, drop or lost, t1)
            flags = skb.trace_flags
            if flags:
                fn = act.fn
                if flags & NEW_JOURNEY:
                    links = ((skb.trace_id, skb.span_id),) if flags & SAMPLED and skb.span_id else ()
                    root = fn if isinstance(fn, str) else fn[0]
                    self.tracer.start(skb, root.name if type(root) is Step else root)
                    flags = skb.trace_flags
                else:
                    links = ()
                if flags & SAMPLED:
                    self._spans(skb, fn, t0, t1, direction, drop or lost, links)
        if self.probes.events:
            self.fire_core(t1)

    # -- tracepoints: counted for perf stat, handed to watchers
    def fire(self, skb, fn, reason, t: int):
        """The tracepoints one hop hit."""
        netns = skb.netns
        key = (fn, bool(reason))
        try:
            hits = self._hits[key]
        except KeyError:                   # the hops of a few kernel paths, met again and again
            if len(self._hits) > 10000:
                self._hits.clear()
            hits = self._hits[key] = tracepoints.hits(fn, key[1])
        except TypeError:                  # Steps with attributes: not hashable, not repeated
            hits = tracepoints.hits(fn, key[1])
        for tp, where in hits:
            if self.perf is not None:
                self.perf[(netns, tp)] += 1
            if tp in self.probes.on and self.watchers:
                host = self.topo.hosts.get(netns)
                dev = host and host.interface(skb.ifindex)
                fields = tracepoints.skb_fields(tp, skb, where, reason or "", dev.name if dev else "")
                fields.update(tracepoints.step_fields(fn, where))
                fields.update(self.tracepoint_fields(tp, skb))
                for w in self.watchers:
                    w.offer(t, netns, tp, fields)

    def fire_core(self, t: int):
        """The tracepoints the cores fired (Probes.emit)."""
        for tp, netns, fields in self.probes.take():
            if self.perf is not None:
                self.perf[(netns, tp)] += 1
            for w in self.watchers:
                w.offer(t, netns, tp, fields)

    def tracepoint_fields(self, tp: str, skb) -> dict:
        """A layer's own fields of a tracepoint its hops fire (transport: the socket's)."""
        return {}

    def tracing_changed(self):
        """Enable what perf stat counts (every tracepoint) or a watcher watches; nothing else."""
        on = set(tracepoints.ALL) if self.perf is not None else set()
        for w in self.watchers:
            on |= w.events
        self.probes.on = frozenset(on)
        self.tracing = bool(on)
        if not on:
            self.probes.take()

    def on_action(self, act):
        """An action only this layer's core returns (transport's AskRoute)."""
        raise TypeError(f"the {self.name} layer has no use for {act!r}")

    default_upper = None

    def send_down(self, skb) -> str | None:
        return self.downs[config.LOWER[self.name]].put(skb)

    def _spans(self, skb, fn, t0, t1, direction, drop, links):
        netns = skb.netns
        key = (netns, direction, len(skb.data) - skb.head)
        attrs = self._attr_cache.get(key)
        if attrs is None:
            attrs = self.cached_attrs(key, lambda: (("pktflow.netns", netns), ("pktflow.layer", self.name),
                                                    ("pktflow.direction", direction), ("pktflow.skb.len", key[2])))
        attrs += self.span_attrs(skb)
        hop = self.tracer.hop
        if isinstance(fn, str):
            hop(skb, fn, t0, t1, attrs, drop, links)
        else:
            last = len(fn) - 1
            for i, name in enumerate(fn):
                extra = attrs
                if type(name) is Step:
                    extra = attrs + self.cached_attrs(("step", name.attrs), lambda a=name.attrs: a)
                    name = name.name
                hop(skb, name, t0, t1, extra, drop if i == last else None, links if i == 0 else ())

    @staticmethod
    def features(devices, words: list[str], names: tuple):
        """`features IF [NAME on|off]...` (ethtool -k/-K): the offloads `names`
        that this layer does on device IF, set, then shown."""
        dev = next((d for d in devices if d.name == (words[:1] or [""])[0]), None)
        if dev is None:
            return admin_pb2.AdminReply(err=19, detail=f"no such device {(words[:1] or [''])[0]!r}")
        pairs = dict(zip(words[1::2], words[2::2]))
        if len(words) % 2 == 0 or any(k not in names or v not in ("on", "off") for k, v in pairs.items()):
            return admin_pb2.AdminReply(err=22, detail=f"features {' '.join(words[1:])}: "
                                                       f"{'|'.join(names)} on|off")
        for k, v in pairs.items():
            setattr(dev, k, v == "on")
        return admin_pb2.AdminReply(json=json.dumps({k: getattr(dev, k) for k in names}))

    def cached_attrs(self, key, make) -> bytes:
        """The attribute set make() builds, encoded once per key: a packet's hops
        repeat a few sets, so spans cost a dict lookup, not an encoding."""
        enc = self._attr_cache.get(key)
        if enc is None:
            if len(self._attr_cache) > 50000:
                self._attr_cache.clear()
            enc = self._attr_cache[key] = self.tracer.encode_attributes(make())
        return enc

    def lost(self, skbs, reason: str):
        """Skbs a broken stream took with it: counted and traced as drops."""
        t = _ns()
        fn = "dev_queue_xmit" if self.name == "link" else f"{self.name}_xmit"
        for skb in skbs:
            self.drop_sites[(skb.netns, reason, fn)] += 1
            if skb.trace_flags & SAMPLED:
                self._spans(skb, fn, t, t, "egress", reason, ())

    # -- timers
    def _arm(self, key, when):
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if when is not None:
            delay = max(0.0, (when - _mono()) / 1e9)
            self._timers[key] = self.loop.call_later(delay, self._fire, key)

    def _fire(self, key):
        self._timers.pop(key, None)
        t0 = _ns()
        self.apply(self.timer(key, _mono()), t0, _ns(), "egress")

    # -- Admin: answer for this layer, pass the rest down
    async def Query(self, request, context):
        if request.layer == self.name or not request.layer:
            if request.command == "dropwatch":     # every host's drops, by reason and function
                return admin_pb2.AdminReply(json=json.dumps(self.drop_sites_of(request.netns or None)))
            if request.command == "perf":
                return self.perf_admin(list(request.args))
            try:
                return self.admin(request)
            except Exception as e:          # an Admin bug must not look like success
                log.exception("admin %s failed", request.command)
                return admin_pb2.AdminReply(err=5, detail=f"{self.name}: {e}")
        lower = config.LOWER.get(self.name)
        if lower is None or request.layer not in config.LAYERS:
            return admin_pb2.AdminReply(err=22, detail=f"no layer {request.layer!r} below {self.name}")
        try:
            return await admin_pb2_grpc.AdminStub(self.downs[lower].channel).Query(request, timeout=10)
        except grpc.aio.AioRpcError as e:
            return admin_pb2.AdminReply(err=112, detail=f"the {lower} layer did not answer: {e.code().name}")

    def perf_admin(self, args: list[str]):
        """perf stat: `start` counting tracepoints, `stop` returns the counts."""
        if args not in (["start"], ["stop"]):
            return admin_pb2.AdminReply(err=22, detail="perf start|stop")
        counts, self.perf = self.perf, (Counter() if args == ["start"] else None)
        self.tracing_changed()
        rows = [[ns, tp, n] for (ns, tp), n in sorted((counts or {}).items())]
        return admin_pb2.AdminReply(json=json.dumps(rows))

    async def Watch(self, request, context):
        """Tracepoint events as they happen (watch.py): this layer's, or the
        layer's below, passed up. The first message, empty, says the watch is on."""
        if request.layer not in ("", self.name):
            lower = config.LOWER.get(self.name)
            if lower is None or request.layer not in config.LAYERS:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no layer {request.layer!r} below {self.name}")
            call = admin_pb2_grpc.AdminStub(self.downs[lower].channel).Watch(request)
            try:
                async for batch in call:
                    yield batch
            except grpc.aio.AioRpcError as e:
                await context.abort(e.code(), e.details())
            finally:
                call.cancel()
            return
        try:
            w = watch.watcher(request, self.topo.hosts)
        except LookupError as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e).strip("'\""))
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        self.watchers.append(w)
        self.tracing_changed()
        try:
            yield admin_pb2.TraceEvents(layer=self.name)
            async for batch in w.batches(self.name):
                yield batch
        finally:
            self.watchers.remove(w)
            self.tracing_changed()

    @property
    def drops(self) -> Counter:
        """(netns, reason) -> drops: the drop sites summed over where they happened."""
        out = Counter()
        for (ns, reason, _), v in self.drop_sites.items():
            out[(ns, reason)] += v
        return out

    def drop_sites_of(self, netns: str | None) -> list:
        """`dropwatch`: [netns, reason, function, count] of every drop so far (one host's, or all)."""
        return [[ns, reason, fn, v] for (ns, reason, fn), v in sorted(self.drop_sites.items())
                if netns in (None, ns)]

    def drop_counters(self, netns: str) -> list:
        return [admin_pb2.Counter(name=f"Drop{reason}", value=v)
                for (ns, reason), v in sorted(self.drops.items()) if ns == netns]

    # -- Prometheus (metrics.py): read at scrape time, on the loop, from what the core keeps
    def metric_families(self) -> list:
        """This layer's metric families: drops by reason here; a layer adds
        its MIB counters, device and qdisc statistics, socket counts."""
        return metrics.drops(self.name, self.drops)

    async def start_metrics(self, port: int | None, host: str):
        """`GET /metrics` on host:port (None: no endpoint); the same families over
        OTLP when OTEL_METRICS_EXPORTER=otlp (otlp_metrics.py)."""
        self.metrics_endpoint = metrics.Endpoint(self.metric_families)
        if port is not None:
            await self.metrics_endpoint.start(host, port, f"pktflow {self.name}")
        self.metrics_export = otlp_metrics.start(self.metric_families, self.name)

    metrics_endpoint = None
    metrics_export = None

    def check_netns(self, netns: str):
        if netns not in self.topo.hosts:
            return admin_pb2.AdminReply(err=2, detail=f"no network namespace {netns!r}")
        return None

    # -- life cycle
    def connect_down(self, target: str):
        d = Downlink(self.name, self.instance, target, config.endpoint(target), self.on_ingress_batch,
                     self.lost, lambda up, t=target: self._lower_state(t, up), secret=config.stack_secret())
        self.downs[target] = d
        return d

    def _lower_state(self, target: str, up: bool):
        self.on_lower_state(target, up)
        asyncio.ensure_future(self._update_health())

    async def _update_health(self):
        ready = all(d.connected for d in self.downs.values())
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set("", status)
        await self.health.set(f"pktflow.{self.name}", status)

    def add_services(self, server):
        """Layer-specific gRPC services (the socket layer's syscalls, ...)."""

    def upper_layers(self) -> tuple[str, ...]:
        """Who may open an Exchange stream here (by their layer name)."""
        return config.UPPERS.get(self.name, ())

    async def serve(self, address: str, metrics_port: int | None = None):
        self.loop = asyncio.get_running_loop()
        server = grpc.aio.server(options=config.SERVER_OPTIONS, interceptors=[rpc_guard.RejectUndecodable()])
        uppers = self.upper_layers()
        if uppers:
            from pktflow.v1 import layers_pb2_grpc
            self.uplinks = Uplinks(uppers, self.on_egress_batch, self.on_upper_connect, self.batch_stamp,
                                   secret=config.stack_secret())
            layers_pb2_grpc.add_LayerServicer_to_server(self.uplinks, server)
        admin_pb2_grpc.add_AdminServicer_to_server(self, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.add_services(server)
        if config.listen(server, address) == 0:
            raise SystemExit(f"pktflow {self.name}: cannot listen on {address} (is the port in use?)")
        lower = config.LOWER.get(self.name)
        if lower:
            self.connect_down(lower)
        self.extra_downlinks()
        await self._update_health()
        # Liveness (Kubernetes' livenessProbe): this process works, whether or not its neighbours are up.
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        for d in self.downs.values():
            d.start()
        log.info("%s layer listening on %s", self.name, address)
        await self.start_metrics(metrics_port, address.rsplit(":", 1)[0].strip("[]"))
        if uppers and not config.stack_secret():
            log.warning("no PKTFLOW_SECRET: any process that reaches %s may join the layers' streams", address)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.shutdown(server)

    def batch_stamp(self) -> dict:
        return {}

    def extra_downlinks(self):
        pass

    async def shutdown(self, server):
        """SIGTERM: stop taking new work, drain what is in flight, flush spans."""
        log.info("%s layer shutting down", self.name)
        await self.health.enter_graceful_shutdown()
        for d in self.downs.values():
            await d.drain(2.0)
        if self.uplinks:
            await self.uplinks.drain(2.0)
        await server.stop(1.0)
        if self.metrics_endpoint:
            await self.metrics_endpoint.close()
        if self.metrics_export:                 # the last numbers over OTLP
            await self.metrics_export.close()
        for d in self.downs.values():
            await d.close()
        await asyncio.get_running_loop().run_in_executor(None, self.tracer.flush)


def tune_gc():
    """Millions of short-lived skbs and span records would make the cyclic
    collector run constantly; they hold no cycles, so collect rarely and never
    rescan what start-up left behind."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


def die_with_supervisor():
    """Under `pktflow up` (PKTFLOW_SUPERVISOR_PID), this service gets SIGTERM when
    its supervisor dies, however it dies (PR_SET_PDEATHSIG): no orphan keeps the
    ports. If the supervisor is already gone, stop now."""
    pid = os.environ.get("PKTFLOW_SUPERVISOR_PID")
    if not pid or not sys.platform.startswith("linux"):
        return
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != pid:
        raise SystemExit(f"pktflow: the supervisor (pid {pid}) is gone")


def main(shell_class):
    """Entry point of a layer service: `python -m pktflow.services.<layer>`."""
    logging.basicConfig(level=os.environ.get("PKTFLOW_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s {shell_class.name}: %(message)s", stream=sys.stderr)
    try:
        topo = config.sharded(topology.load(config.topology_path()))
        config.tls()
        metrics_port = metrics.port(shell_class.name)
        otlp_metrics.settings()               # OTEL_METRICS_EXPORTER and its interval, refused here when bad
    except (topology.TopologyError, config.ConfigError) as e:
        print(f"pktflow {shell_class.name}: {e}", file=sys.stderr)
        raise SystemExit(2)
    try:
        shell = shell_class(topo)
    except (OSError, config.ConfigError) as e:     # e.g. a TAP device that cannot be had
        print(f"pktflow {shell_class.name}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        raise SystemExit(2)
    tune_gc()
    die_with_supervisor()
    try:
        asyncio.run(shell.serve(config.listen_address(shell_class.name), metrics_port))
    except KeyboardInterrupt:
        pass

