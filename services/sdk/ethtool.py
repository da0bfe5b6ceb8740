"""`pktflow ethtool`: a device's settings, offloads and driver statistics, as
ethtool(8) prints them; the words are read here, the layers that own each
setting (link: speed, TSO, GSO; nic: GRO, the driver's counters) answer."""
import json
import sys

from . import _client
from .cli import _die


ETHTOOL_FEATURES = {"tso": ("link", "tcp-segmentation-offload"), "gso": ("link", "generic-segmentation-offload"),
                    "gro": ("nic", "generic-receive-offload")}
# `ethtool -S`: virtio-net's per-queue statistics (virtnet_rq_stats_desc, virtnet_sq_stats_desc), its one queue;
# what the NIC core keeps under an rtnl_link_stats64 name is read from there
RQ_STATS = {"packets": "rx_packets", "bytes": "rx_bytes", "drops": "rx_dropped", "xdp_packets": None, "xdp_tx": None,
            "xdp_redirects": None, "xdp_drops": None, "kicks": None}
SQ_STATS = {"packets": "tx_packets", "bytes": "tx_bytes", "xdp_tx": None, "xdp_tx_drops": None, "kicks": None,
            "tx_timeouts": None}


def cmd_ethtool(argv: list[str]) -> int:
    """`pktflow ethtool -n NETNS IF`: the device's settings as ethtool prints them;
    a device with no line rate set reports 10000Mb/s, as a veth does.
    `-k IF` shows its offloads, `-K IF tso|gso|gro on|off ...` switches them
    (TSO and GSO are the link layer's, GRO the NIC's NAPI); `-s IF speed N`
    sets its line rate (Mb/s); `-S IF` prints the driver's statistics (XDP's among them)."""
    if argv[:1] not in (["-n"], ["--netns"]) or len(argv) < 3:
        _die("ethtool: give -n NETNS IFNAME, -n NETNS -k IFNAME or -n NETNS -K IFNAME FEATURE on|off...")
    netns = argv[1]
    if argv[2] in ("-k", "--show-features", "-K", "--features"):
        return ethtool_features(netns, argv[3:], show=argv[2] in ("-k", "--show-features"))
    if argv[2] in ("-S", "--statistics"):
        return ethtool_stats(netns, argv[3:])
    if argv[2] in ("-s", "--change"):               # -s IF speed N: the line rate, in Mb/s as ethtool's
        words = argv[3:]
        if len(words) != 3 or words[1] != "speed" or not words[2].isdigit() or not int(words[2]):
            _die("ethtool: -s IFNAME speed N (Mb/s)")
        try:
            _client.admin("link", netns, "link", "set", words[0], "speed", str(int(words[2]) * 1_000_000 // 8))
        except OSError as e:
            print(f"netlink error: {e.strerror} ({words[0]})", file=sys.stderr)
            return 1
        return 0
    if len(argv) != 3:
        _die("ethtool: give -n NETNS IFNAME")
    ifname = argv[2]
    dev = next((d for d in json.loads(_client.admin("link", netns, "link").json) if d["ifname"] == ifname), None)
    if dev is None:
        print(f"netlink error: no device matches name ({ifname})", file=sys.stderr)
        return 1
    carrier = next((d["carrier"] for d in json.loads(_client.admin("nic", netns, "link").json)
                    if d["ifname"] == ifname), True)
    speed = dev.get("speed", 0) * 8 // 1_000_000 or 10000
    print(f"Settings for {ifname}:\n\tSpeed: {speed}Mb/s\n\tDuplex: Full\n\tAuto-negotiation: off\n"
          f"\tPort: Twisted Pair\n\tLink detected: {'yes' if carrier else 'no'}")
    return 0


def ethtool_features(netns: str, words: list[str], show: bool) -> int:
    if not words or show and len(words) != 1 or not show and (len(words) < 3 or len(words) % 2 == 0):
        _die("ethtool: -k IFNAME, or -K IFNAME FEATURE on|off...")
    ifname, pairs = words[0], list(zip(words[1::2], words[2::2]))
    bad = [k for k, v in pairs if k not in ETHTOOL_FEATURES or v not in ("on", "off")]
    if bad:
        print(f"ethtool: bad command line argument(s): {' '.join(bad)} (features: tso, gso, gro; on|off)",
              file=sys.stderr)
        return 1
    state = {}
    try:
        for layer in ("link", "nic"):
            asked = [w for k, v in pairs if ETHTOOL_FEATURES[k][0] == layer for w in (k, v)]
            state.update(json.loads(_client.admin(layer, netns, "features", ifname, *asked).json))
    except OSError as e:
        print(f"netlink error: {e.strerror} ({ifname})", file=sys.stderr)
        return 1
    if show:
        print(f"Features for {ifname}:")
        for key, (_, name) in ETHTOOL_FEATURES.items():
            print(f"{name}: {'on' if state.get(key) else 'off'}")
    return 0


def ethtool_stats(netns: str, words: list[str]) -> int:
    """`ethtool -S IF`: the driver's counters, as virtio-net names them."""
    if len(words) != 1:
        _die("ethtool: -S IFNAME")
    dev = next((d for d in json.loads(_client.admin("nic", netns, "link").json) if d["ifname"] == words[0]), None)
    if dev is None:
        print(f"netlink error: no device matches name ({words[0]})", file=sys.stderr)
        return 1
    if dev["loopback"]:
        print("no stats available", file=sys.stderr)    # the loopback driver has no ethtool stats
        return 94
    st = dev["stats"]
    print("NIC statistics:")
    for prefix, table in (("rx_queue_0_", RQ_STATS), ("tx_queue_0_", SQ_STATS)):
        for name, kept in table.items():
            print(f"     {prefix}{name}: {st.get(kept or prefix + name, 0)}")
    return 0
