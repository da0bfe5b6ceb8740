"""What the LOG target writes to the kernel log (net/netfilter/nf_log_syslog.c:
nf_log_ip_packet(), dump_ipv4_packet()), field for field, read from the
packet's bytes; `pktflow dmesg -n NETNS` prints the namespace's log as dmesg
does."""
from ...wire import ipv4

TCP_FLAG_NAMES = ((0x80, "CWR"), (0x40, "ECE"), (0x20, "URG"), (0x10, "ACK"), (0x08, "PSH"), (0x04, "RST"),
                  (0x02, "SYN"), (0x01, "FIN"))


def log_packet(prefix: str, iif: str, oif: str, data: bytes, nh: int, mark: int) -> str:
    out = f"{prefix}IN={iif} OUT={oif} "
    if iif:                                         # dump_mac_header(): the frame's header, as received
        out += "MAC=" + (":".join(f"{b:02x}" for b in data[nh - 14:nh]) if nh >= 14 else "") + " "
    out += dump_ipv4_packet(data, nh)
    if mark:
        out += f"MARK=0x{mark:x} "
    return out


def dump_ipv4_packet(data: bytes, nh: int) -> str:
    if len(data) < nh + 20:
        return "TRUNCATED "
    ihl = (data[nh] & 0x0F) * 4
    tos, total = data[nh + 1], int.from_bytes(data[nh + 2:nh + 4], "big")
    ident, frag = int.from_bytes(data[nh + 4:nh + 6], "big"), int.from_bytes(data[nh + 6:nh + 8], "big")
    proto = data[nh + 9]
    out = (f"SRC={ipv4.ntoa(int.from_bytes(data[nh + 12:nh + 16], 'big'))} "
           f"DST={ipv4.ntoa(int.from_bytes(data[nh + 16:nh + 20], 'big'))} "
           f"LEN={total} TOS=0x{tos & 0x1E:02X} PREC=0x{tos & 0xE0:02X} TTL={data[nh + 8]} ID={ident} ")
    out += "".join(name for bit, name in ((0x8000, "CE "), (0x4000, "DF "), (0x2000, "MF ")) if frag & bit)
    offset = frag & ipv4.IP_OFFSET
    if offset:
        out += f"FRAG:{offset} "
    th = nh + ihl
    if proto == ipv4.IPPROTO_TCP:
        out += "PROTO=TCP "
        if offset or len(data) < th + 20:
            return out if offset else out + f"INCOMPLETE [{len(data) - th} bytes] "
        flags = data[th + 13]
        out += (f"SPT={int.from_bytes(data[th:th + 2], 'big')} DPT={int.from_bytes(data[th + 2:th + 4], 'big')} "
                f"WINDOW={int.from_bytes(data[th + 14:th + 16], 'big')} RES=0x{(data[th + 12] & 0x0F) >> 2:02x} ")
        out += "".join(name + " " for bit, name in TCP_FLAG_NAMES if flags & bit)
        return out + f"URGP={int.from_bytes(data[th + 18:th + 20], 'big')} "
    if proto == ipv4.IPPROTO_UDP:
        out += "PROTO=UDP "
        if offset or len(data) < th + 8:
            return out if offset else out + f"INCOMPLETE [{len(data) - th} bytes] "
        return out + (f"SPT={int.from_bytes(data[th:th + 2], 'big')} DPT={int.from_bytes(data[th + 2:th + 4], 'big')} "
                      f"LEN={int.from_bytes(data[th + 4:th + 6], 'big')} ")
    if proto == ipv4.IPPROTO_ICMP:
        out += "PROTO=ICMP "
        if offset or len(data) < th + 4:
            return out if offset else out + f"INCOMPLETE [{len(data) - th} bytes] "
        ty, code = data[th], data[th + 1]
        out += f"TYPE={ty} CODE={code} "
        if ty in (0, 8) and len(data) >= th + 8:
            out += f"ID={int.from_bytes(data[th + 4:th + 6], 'big')} SEQ={int.from_bytes(data[th + 6:th + 8], 'big')} "
        elif ty == 12:
            out += f"PARAMETER={data[th + 4] if len(data) > th + 4 else 0} "
        elif ty == 5 and len(data) >= th + 8:
            out += f"GATEWAY={ipv4.ntoa(int.from_bytes(data[th + 4:th + 8], 'big'))} "
        elif ty in (3, 4, 11):                      # the quoted packet, in brackets
            out += "[" + dump_ipv4_packet(data, th + 8) + "] "
            if ty == 3 and code == 4 and len(data) >= th + 8:
                out += f"MTU={int.from_bytes(data[th + 6:th + 8], 'big')} "
        return out
    return out + f"PROTO={proto} "


def dmesg(lines, args: list[str]) -> tuple[int, str, str]:
    """dmesg [-c|-C]: the ring's lines as `[seconds.micro] message`."""
    if args and args[0] not in ("-c", "--read-clear", "-C", "--clear"):
        return 1, "", f"dmesg: unrecognized option '{args[0]}' (pktflow has -c and -C)\n"
    out = "" if args and args[0] in ("-C", "--clear") else \
        "".join(f"[{t // 1_000_000_000:5d}.{t // 1000 % 1_000_000:06d}] {line}\n" for t, line in lines)
    if args:
        lines.clear()
    return 0, out, ""
