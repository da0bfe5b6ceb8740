"""Ethernet II header (IEEE 802.3 with an ethertype)."""
import re
import struct
from typing import NamedTuple

from . import Malformed

ETH_ALEN = 6
ETH_HLEN = 14
ETH_ZLEN = 60          # shortest frame without FCS; a real NIC pads to it
ETH_FCS_LEN = 4
ETH_DATA_LEN = 1500

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD

BROADCAST = b"\xff" * 6
ZERO = b"\0" * 6

_HDR = struct.Struct("!6s6sH")


class EthernetRepr(NamedTuple):
    dst: bytes
    src: bytes
    ethertype: int


def parse(frame, offset: int = 0) -> EthernetRepr:
    if len(frame) - offset < ETH_HLEN:
        raise Malformed("PKT_TOO_SMALL", f"frame of {len(frame) - offset} bytes is shorter than an Ethernet header")
    return EthernetRepr(*_HDR.unpack_from(frame, offset))


def header(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return _HDR.pack(dst, src, ethertype)


def emit(repr_: EthernetRepr, payload: bytes) -> bytes:
    return _HDR.pack(*repr_) + payload


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


_MAC = re.compile(r"[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}")


def mac_from_str(text: str) -> bytes:
    if not isinstance(text, str) or not _MAC.fullmatch(text):
        raise ValueError(f"{text!r} is not a MAC address (six hex octets separated by ':')")
    return bytes(int(p, 16) for p in text.split(":"))
