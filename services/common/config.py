"""Where the services listen and find each other. Everything is configurable by
environment, the way compose and Kubernetes hand configuration in."""
import os
import socket
import ssl

import grpc

LAYERS = ("socket", "transport", "ip", "link", "nic")
PORTS = {"socket": 50051, "transport": 50052, "ip": 50053, "link": 50054, "nic": 50055}
OTLP_PORT = 4317
QUERY_PORT = 16686
# Which layer each layer dials: the next one down, and for packet sockets
# (af_packet sits on the device layer, as in the kernel) socket also dials link.
LOWER = {"socket": "transport", "transport": "ip", "ip": "link", "link": "nic"}
UPPERS = {"transport": ("socket",), "ip": ("transport",), "link": ("ip", "socket"), "nic": ("link",)}


def endpoint(layer: str) -> str:
    """PKTFLOW_<LAYER>_ENDPOINT, default localhost and the layer's port; `{shard}` in
    it is this service's shard (a StatefulSet's pods: transport-{shard}.transport:50052)."""
    address = os.environ.get(f"PKTFLOW_{layer.upper()}_ENDPOINT", f"localhost:{PORTS[layer]}")
    return address.replace("{shard}", str(shard() or 0)) if "{shard}" in address else address


def shard() -> int | None:
    """PKTFLOW_SHARD: which shard of a sharded topology this service serves: a
    number, or `ordinal` for the number that ends the host name (a StatefulSet
    pod's, nic-1 -> 1). None when unset."""
    value = os.environ.get("PKTFLOW_SHARD", "")
    if value == "ordinal":
        value = os.environ.get("HOSTNAME", "") or socket.gethostname()
        value = value.rsplit("-", 1)[-1]
    if not value:
        return None
    if not value.isdigit():
        raise ConfigError(f"PKTFLOW_SHARD: {value!r} is not a shard number (or 'ordinal')")
    return int(value)


def shard_endpoints(layer: str) -> list[str]:
    """PKTFLOW_SHARD_<LAYER>S: every shard's address of a layer, in shard order
    (comma-separated): the nics dial each other's for the cables between shards,
    the socket service tells the SDK where each shard's hosts are served."""
    name = f"PKTFLOW_SHARD_{layer.upper()}S"
    value = os.environ.get(name, "")
    if not value.strip():
        return []
    addrs = [a.strip() for a in value.split(",")]
    if "" in addrs:                 # a gap would give every later shard the wrong address
        raise ConfigError(f"{name}={value!r}: address {addrs.index('') + 1} is empty "
                          "(one address per shard, in shard order)")
    return addrs


def sharded(topo):
    """The topology as this service serves it: the whole one, or its shard's view;
    ConfigError when PKTFLOW_SHARD and the topology's `shards:` do not fit."""
    k = shard()
    if topo.shards == 1:
        if k:
            raise ConfigError(f"PKTFLOW_SHARD={k}, but the topology has one shard (no 'shards:')")
        return topo
    if k is None:
        raise ConfigError(f"the topology has {topo.shards} shards: set PKTFLOW_SHARD (0..{topo.shards - 1})")
    if k >= topo.shards:
        raise ConfigError(f"PKTFLOW_SHARD={k}: the topology has shards 0..{topo.shards - 1}")
    return topo.shard_view(k)


def listen_address(layer: str) -> str:
    host = os.environ.get("PKTFLOW_LISTEN", "0.0.0.0")
    return f"{host}:{os.environ.get('PKTFLOW_PORT', PORTS[layer])}"


def stack_secret() -> str:
    """PKTFLOW_SECRET: what a layer must show to join another's Exchange stream
    (`pktflow up` makes one per stack; compose and Kubernetes take it from a
    secret). Empty: the streams are open to any process that can reach them."""
    return os.environ.get("PKTFLOW_SECRET", "")


TLS_VARS = ("PKTFLOW_TLS_CERT", "PKTFLOW_TLS_KEY", "PKTFLOW_TLS_CA")


class ConfigError(Exception):
    """Configuration a service cannot start with; the message names the problem."""


def tls() -> tuple[bytes, bytes, bytes] | None:
    """Mutual TLS for every gRPC connection of the stack: PKTFLOW_TLS_CERT and
    PKTFLOW_TLS_KEY (this process's certificate chain and key, PEM) and
    PKTFLOW_TLS_CA (the CA that signs every party's certificate). Servers then
    require a client certificate from that CA, and clients check the server's
    against it. None when unset; all three or none."""
    paths = {var: os.environ.get(var, "") for var in TLS_VARS}
    if not any(paths.values()):
        return None
    missing = [var for var, path in paths.items() if not path]
    if missing:
        raise ConfigError(f"TLS needs {', '.join(TLS_VARS)}; {', '.join(missing)} is not set")
    pem = {}
    for var, path in paths.items():
        try:
            with open(path, "rb") as f:
                pem[var] = f.read()
        except OSError as e:
            raise ConfigError(f"{var}: cannot read {path}: {e.strerror}") from None
    # grpc would take bad PEM and fail every handshake later: check it now, with the ssl module
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_cert_chain(paths["PKTFLOW_TLS_CERT"], paths["PKTFLOW_TLS_KEY"])
    except (ssl.SSLError, ValueError) as e:
        raise ConfigError(f"PKTFLOW_TLS_CERT/PKTFLOW_TLS_KEY: not a PEM certificate and its key ({e})") from None
    try:
        ctx.load_verify_locations(cadata=pem["PKTFLOW_TLS_CA"].decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as e:
        raise ConfigError(f"PKTFLOW_TLS_CA: not a PEM CA certificate ({e})") from None
    return pem["PKTFLOW_TLS_CERT"], pem["PKTFLOW_TLS_KEY"], pem["PKTFLOW_TLS_CA"]


def server_credentials() -> grpc.ServerCredentials | None:
    t = tls()
    if t is None:
        return None
    cert, key, ca = t
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def channel_credentials() -> grpc.ChannelCredentials | None:
    t = tls()
    if t is None:
        return None
    cert, key, ca = t
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def dial(address: str, options=(), aio: bool = False, tls: bool = True):
    """A channel to one of the stack's services: mutual TLS when configured
    (`tls=False`: the trace store, which speaks plain OTLP as Jaeger does)."""
    mod = grpc.aio if aio else grpc
    creds = channel_credentials() if tls else None
    if creds is None:
        return mod.insecure_channel(address, options=options)
    return mod.secure_channel(address, creds, options=options)


def listen(server, address: str) -> int:
    """Adds the listening port (TLS when configured); 0 when it cannot be had."""
    creds = server_credentials()
    return server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)


def topology_path() -> str | None:
    return os.environ.get("PKTFLOW_TOPOLOGY") or None


# The largest message a service takes or sends: more is RESOURCE_EXHAUSTED (the
# SDK's sendall() goes in 4 MiB pieces, so only a single send() of more fails).
MAX_MESSAGE = 64 << 20
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # a restarted neighbour is found again within a tenth of a second
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
SERVER_OPTIONS = GRPC_OPTIONS + [
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.so_reuseport", 0),
]
