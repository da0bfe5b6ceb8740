"""`pktflow up`: the five layer services as five processes on this machine,
plus the embedded trace store when no OTLP endpoint is configured."""
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .services.common import config, metrics, otlp_metrics, topology

START_ORDER = ("nic", "link", "ip", "transport", "socket")
# A service that exits is started again after a delay that doubles while it keeps
# failing (as compose's and Kubernetes' restart policies back off); one that ran
# for STABLE_AFTER seconds starts from the first delay again. QUICK_EXITS quick
# exits in a row and the stack gives up (systemd's StartLimitBurst).
RESTART_DELAY, RESTART_DELAY_MAX = 0.1, 16.0
STABLE_AFTER = 10.0
QUICK_EXITS = 5


def _healthy(address: str, tls: bool = True) -> bool:
    try:
        with config.dial(address, tls=tls) as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
            return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def _listener(port: int) -> str | None:
    """`pid N (command)` of the process listening on TCP `port`, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:      # LISTEN
                inodes.add(f"socket:[{f[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")) if inodes else ():
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
                return f"pid {pid} ({cmd})"
        except OSError:
            continue
    return None


class Stack:
    """The running processes; `start()` returns once every one is healthy."""

    def __init__(self, topology_path: str | None = None, port_base: int = 50050, otlp_port: int = config.OTLP_PORT,
                 query_port: int = config.QUERY_PORT, trace_store: bool | None = None, log_level: str = "WARNING",
                 host: str = "127.0.0.1", extra_env: dict | None = None, log_dir: str | None = None,
                 metrics_port: int | None = None, shards: int | None = None):
        self.topology_path = os.path.abspath(topology_path) if topology_path else str(topology.default_path())
        self.log_dir = log_dir            # each service's stderr goes to <log_dir>/<service>.log (default: ours)
        self.host = host
        self.shards, self.refused = self._shards(shards)
        # shard k's services listen on port_base + 100 k + 1..5 (socket, transport, ip, link, nic)
        self.shard_ports = [{layer: port_base + 100 * k + i + 1 for i, layer in enumerate(config.LAYERS)}
                            for k in range(self.shards)]
        self.ports = self.shard_ports[0]
        self.otlp_port, self.query_port = otlp_port, query_port
        # Prometheus /metrics: the socket service's on metrics_port, the others' on the next four, shard k's
        # five further on (None: no endpoints, so stacks side by side never want the same port)
        self.metrics_ports = {self.proc_name(layer, k): metrics_port + 5 * k + i for k in range(self.shards)
                              for i, layer in enumerate(config.LAYERS)} if metrics_port else {}
        env = dict(os.environ) | (extra_env or {})
        tracing_off = env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none" or \
            env.get("OTEL_SDK_DISABLED", "").lower() == "true"
        has_endpoint = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        self.trace_store = (not has_endpoint and not tracing_off) if trace_store is None else trace_store
        if self.trace_store:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{host}:{otlp_port}"
        env["PKTFLOW_TOPOLOGY"] = self.topology_path
        # the layers' streams take only this stack's layers (an impostor gets UNAUTHENTICATED)
        env.setdefault("PKTFLOW_SECRET", secrets.token_hex(32))
        env["PKTFLOW_SUPERVISOR_PID"] = str(os.getpid())     # the services die with this process
        env["PKTFLOW_LISTEN"] = host
        env.setdefault("PKTFLOW_LOG_LEVEL", log_level)
        for layer, port in self.ports.items():
            env[f"PKTFLOW_{layer.upper()}_ENDPOINT"] = f"{host}:{port}"
        if self.shards > 1:             # every shard's nics (for the cables between them) and socket services
            for layer in ("nic", "socket"):
                env[f"PKTFLOW_SHARD_{layer.upper()}S"] = ",".join(f"{host}:{p[layer]}" for p in self.shard_ports)
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self._specs: dict[str, tuple] = {}
        self.restarts: dict[str, int] = {}
        self.gave_up: str | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    def _shards(self, asked: int | None) -> tuple[int, str | None]:
        """How many shards, and why not when the file and `asked` disagree. A file without
        `shards:` run in N shards is handed to the services as a copy that says `shards: N`."""
        try:
            topo = topology.load(self.topology_path)
        except topology.TopologyError:
            return 1, None                    # start() says what is wrong with the file
        if topo.shards > 1:
            if asked not in (None, 1, topo.shards):
                return 1, f"--shards {asked}: {self.topology_path} says shards: {topo.shards}"
            return topo.shards, None
        if not asked or asked == 1:
            return 1, None
        if not 1 <= asked <= topology.MAX_SHARDS:
            return 1, f"--shards {asked}: 1 to {topology.MAX_SHARDS}"
        import atexit
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="pktflow-shards-")
        atexit.register(shutil.rmtree, d, True)        # the copy lives while this process may restart services
        copy = os.path.join(d, os.path.basename(self.topology_path))
        with open(copy, "w") as f:
            f.write(f"shards: {asked}\n" + open(self.topology_path).read())
        self.topology_path = copy
        return asked, None

    def proc_name(self, layer: str, shard: int) -> str:
        return layer if self.shards == 1 else f"{layer}-{shard}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.ports['socket']}"

    @property
    def query_url(self) -> str:
        return f"http://{self.host}:{self.query_port}"

    def _spawn(self, name: str, module: str, env: dict):
        self._specs[name] = (module, env)
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab") if self.log_dir else None
        try:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", module], env=env, stdin=subprocess.DEVNULL,
                                                stderr=log, start_new_session=True)
        finally:
            if log:
                log.close()

    def start(self, timeout: float = 60.0, restart: bool = True):
        """Starts every service and, with `restart`, a supervisor thread that
        starts again any that exits (see RESTART_DELAY)."""
        topology.load(self.topology_path)           # refuse a bad file before starting anything
        if self.refused:
            raise RuntimeError(self.refused)
        try:
            config.tls()
        except config.ConfigError as e:
            raise RuntimeError(str(e)) from None
        busy = self.busy_port()
        if busy:
            raise RuntimeError(busy)
        if self.trace_store:
            self._spawn("tracestore", "pktflow.services.tracestore",
                        self.env | {"PKTFLOW_OTLP_PORT": str(self.otlp_port),
                                    "PKTFLOW_QUERY_PORT": str(self.query_port)})
            self._wait("tracestore", f"{self.host}:{self.otlp_port}", timeout)
        for k, ports in enumerate(self.shard_ports):
            env = self.env if self.shards == 1 else self.env | {"PKTFLOW_SHARD": str(k)} | {
                f"PKTFLOW_{layer.upper()}_ENDPOINT": f"{self.host}:{port}" for layer, port in ports.items()}
            for layer in START_ORDER:
                name = self.proc_name(layer, k)
                self._spawn(name, f"pktflow.services.{layer}",
                            env | {"PKTFLOW_PORT": str(ports[layer]), "OTEL_SERVICE_NAME": layer,
                                   "PKTFLOW_METRICS_PORT": str(self.metrics_ports.get(name, "off"))})
        for k, ports in enumerate(self.shard_ports):
            for layer in START_ORDER:
                self._wait(self.proc_name(layer, k), f"{self.host}:{ports[layer]}", timeout)
        if restart:
            self._stopping.clear()
            self._supervisor = threading.Thread(target=self._supervise, name="pktflow-supervisor", daemon=True)
            self._supervisor.start()

    def _supervise(self):
        started = {name: time.monotonic() for name in self.procs}
        delay = dict.fromkeys(self.procs, RESTART_DELAY)
        quick = dict.fromkeys(self.procs, 0)
        due: dict[str, float] = {}
        while not self._stopping.wait(0.05):
            now = time.monotonic()
            for name, p in list(self.procs.items()):
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        self._spawn(name, *self._specs[name])
                        started[name] = now
                        self.restarts[name] = self.restarts.get(name, 0) + 1
                    continue
                if p.poll() is None:
                    continue
                if now - started[name] >= STABLE_AFTER:
                    delay[name], quick[name] = RESTART_DELAY, 0
                quick[name] += 1
                if quick[name] >= QUICK_EXITS:
                    self.gave_up = (f"the {name} service exited {quick[name]} times in a row within "
                                    f"{STABLE_AFTER:.0f} s of starting (last status {p.returncode})")
                    return
                print(f"pktflow: the {name} service exited with status {p.returncode}; "
                      f"starting it again in {delay[name]:.1f} s", file=sys.stderr, flush=True)
                due[name] = now + delay[name]
                delay[name] = min(delay[name] * 2, RESTART_DELAY_MAX)

    def busy_port(self) -> str | None:
        """Why a port this stack needs is taken, naming the holder where /proc tells."""
        wanted = {self.proc_name(layer, k): port for k, ports in enumerate(self.shard_ports)
                  for layer, port in ports.items()} | (
            {"trace store (OTLP)": self.otlp_port, "trace store (query)": self.query_port} if self.trace_store else {})
        for name, port in wanted.items():
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((self.host, port))
                except OSError:
                    holder = _listener(port)
                    return f"port {port} ({name}) is in use{f' by {holder}' if holder else ''}"
        return None

    def start_service(self, name: str, timeout: float = 30.0):
        """Starts a layer service that exited or was killed (named as in `procs`: "nic",
        or "nic-1" for shard 1's) as it was started before, and waits until it is healthy."""
        where = {self.proc_name(layer, k): port for k, ports in enumerate(self.shard_ports)
                 for layer, port in ports.items()}
        if name not in where or name not in self._specs:
            raise KeyError(f"no {name} service in this stack")
        if self.procs[name].poll() is None:
            raise RuntimeError(f"the {name} service is running")
        self._spawn(name, *self._specs[name])
        self._wait(name, f"{self.host}:{where[name]}", timeout)

    def _wait(self, name: str, address: str, timeout: float):
        deadline = time.monotonic() + timeout
        while not _healthy(address, tls=name != "tracestore"):
            rc = self.procs[name].poll()
            if rc is not None:
                self.stop()
                raise RuntimeError(f"the {name} service exited with status {rc} while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {name} service did not become healthy at {address} in {timeout:.0f} s")
            time.sleep(0.05)

    def failed(self) -> str | None:
        """Why the stack is beyond help: the supervisor gave up on a service
        (or, without a supervisor, a service exited)."""
        if self._supervisor is not None:
            return self.gave_up
        for name, p in self.procs.items():
            if p.poll() is not None:
                return f"the {name} service exited with status {p.returncode}"
        return None

    def stop(self, timeout: float = 10.0):
        """SIGTERM (each service drains and flushes its spans), then SIGKILL."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def run(args) -> int:
    try:
        topo = topology.load(args.topology) if args.topology else topology.load()
    except topology.TopologyError as e:
        print(f"pktflow: {e}", file=sys.stderr)
        return 2
    try:                    # PKTFLOW_METRICS_PORT: the socket service's (default 9464), the others follow
        metrics_port = metrics.port("socket")
        otlp_metrics.settings()             # OTEL_METRICS_EXPORTER & co: refused once here, not by five services
    except config.ConfigError as e:
        print(f"pktflow: {e}", file=sys.stderr)
        return 2
    stack = Stack(args.topology, port_base=args.port_base, otlp_port=args.otlp_port, query_port=args.query_port,
                  log_level="INFO" if args.verbose else "WARNING", metrics_port=metrics_port, shards=args.shards)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGHUP):       # the terminal closing is a clean stop too
        signal.signal(sig, lambda *_: stop.append(1))
    try:
        stack.start()
    except RuntimeError as e:
        print(f"pktflow: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _stop(stack)
        return 130
    traces = f", traces at {stack.query_url}" if stack.trace_store else ""
    if stack.metrics_ports:
        first, last = min(stack.metrics_ports.values()), max(stack.metrics_ports.values())
        traces += f", metrics at http://{stack.host}:{first}-{last}/metrics"
    hosts = ", ".join(topo.hosts)
    if stack.shards > 1:                  # which shard serves which hosts, as the services place them
        topo = topology.load(stack.topology_path)
        hosts = "; ".join(f"shard {k} ({stack.host}:{p['socket']}): " +
                          ", ".join(h for h, s in topo.placement.items() if s == k)
                          for k, p in enumerate(stack.shard_ports))
    print(f"pktflow ready: {len(topo.hosts)} hosts ({hosts}), SDK endpoint {stack.endpoint}{traces}"
          f" -- Ctrl-C stops", flush=True)
    try:
        while not stop:
            why = stack.failed()
            if why:
                print(f"pktflow: {why}; stopping", file=sys.stderr)
                _stop(stack)
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    _stop(stack, "pktflow: stopping")
    return 0


def _stop(stack: Stack, say: str = ""):
    """stop(), which a second Ctrl-C does not interrupt (it is bounded: SIGKILL after
    10 s): ignored from before `say` is printed, the moment a user sees it stopping."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if say:
        print(say, flush=True)
    stack.stop()
