"""Where the services listen and find each other. Everything is configurable by
environment, the way compose and Kubernetes hand configuration in."""
import os

LAYERS = ("socket", "transport", "ip", "link", "nic")
PORTS = {"socket": 50051, "transport": 50052, "ip": 50053, "link": 50054, "nic": 50055}
OTLP_PORT = 4317
QUERY_PORT = 16686
# Which layer each layer dials: the next one down, and for packet sockets
# (af_packet sits on the device layer, as in the kernel) socket also dials link.
LOWER = {"socket": "transport", "transport": "ip", "ip": "link", "link": "nic"}
UPPERS = {"transport": ("socket",), "ip": ("transport",), "link": ("ip", "socket"), "nic": ("link",)}


def endpoint(layer: str) -> str:
    """PKTFLOW_<LAYER>_ENDPOINT, default localhost and the layer's port."""
    return os.environ.get(f"PKTFLOW_{layer.upper()}_ENDPOINT", f"localhost:{PORTS[layer]}")


def listen_address(layer: str) -> str:
    host = os.environ.get("PKTFLOW_LISTEN", "0.0.0.0")
    return f"{host}:{os.environ.get('PKTFLOW_PORT', PORTS[layer])}"


def stack_secret() -> str:
    """PKTFLOW_SECRET: what a layer must show to join another's Exchange stream
    (`pktflow up` makes one per stack; compose and Kubernetes take it from a
    secret). Empty: the streams are open to any process that can reach them."""
    return os.environ.get("PKTFLOW_SECRET", "")


def topology_path() -> str | None:
    return os.environ.get("PKTFLOW_TOPOLOGY") or None


GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
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
