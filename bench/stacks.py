"""The stacks a benchmark runs against, each started and stopped around one
measurement: the bare chain (bench/bare_chain.py) and pktflow with tracing off
or on (the embedded trace store receiving every span)."""
import contextlib
import os
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
TOPOLOGY = str(HERE / "topology.yaml")


@contextlib.contextmanager
def bare(port_base: int):
    """Five relay processes with pktflow's streams and batching; yields the SDK endpoint."""
    from pktflow import up
    stack = up.Stack(TOPOLOGY, port_base=port_base, trace_store=False,
                     extra_env={"OTEL_TRACES_EXPORTER": "none", "PYTHONPATH": str(HERE.parent)})
    for layer in up.START_ORDER:
        stack._spawn(layer, "bench.bare_chain", stack.env | {"PKTFLOW_PORT": str(stack.ports[layer]),
                                                             "PKTFLOW_LAYER": layer})
    try:
        for layer in up.START_ORDER:
            stack._wait(layer, f"{stack.host}:{stack.ports[layer]}", 60)
        yield stack.endpoint
    finally:
        stack.stop()


@contextlib.contextmanager
def pktflow(port_base: int, tracing: bool):
    """pktflow under `pktflow up`; yields the SDK endpoint."""
    with pktflow_stack(port_base, tracing) as stack:
        yield stack.endpoint


@contextlib.contextmanager
def pktflow_stack(port_base: int, tracing: bool, topology: str = TOPOLOGY):
    """The same, yielding the up.Stack (its procs: each service's process)."""
    from pktflow import up
    env = {} if tracing else {"OTEL_TRACES_EXPORTER": "none"}
    stack = up.Stack(topology, port_base=port_base, trace_store=tracing,
                     otlp_port=port_base + 17, query_port=port_base + 18, extra_env=env)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@contextlib.contextmanager
def started(stack, **start_kw):
    """Starts an up.Stack, points this process's SDK (PKTFLOW_ENDPOINT) at it,
    and on the way out stops it and puts the old endpoint back."""
    saved = os.environ.get("PKTFLOW_ENDPOINT")
    try:
        stack.start(**start_kw)
        os.environ["PKTFLOW_ENDPOINT"] = stack.endpoint
        yield stack
    finally:
        stack.stop()
        if saved is None:
            os.environ.pop("PKTFLOW_ENDPOINT", None)
        else:
            os.environ["PKTFLOW_ENDPOINT"] = saved


def set_offloads(on: bool, hosts=("h1", "r1", "h2")):
    """`ethtool -K IF tso|gso|gro on|off` on every device of `hosts` of the stack
    the SDK points at (PKTFLOW_ENDPOINT): off, every segment crosses every layer
    on its own and is captured as a real wire carries it."""
    import json
    from pktflow import _client
    word = "on" if on else "off"
    for host in hosts:
        for dev in json.loads(_client.admin("link", host, "link").json):
            _client.admin("link", host, "features", dev["ifname"], "tso", word, "gso", word)
            _client.admin("nic", host, "features", dev["ifname"], "gro", word)
