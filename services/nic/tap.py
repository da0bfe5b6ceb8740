"""Linux TAP devices (drivers/net/tun.c) as the far end of an emulated cable:
open or create one, read and write whole Ethernet frames."""
import errno
import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16


class TapError(OSError):
    pass


def open_tap(name: str) -> int:
    """A non-blocking fd on TAP device `name`, created if it does not exist
    (a device someone made with `ip tuntap add mode tap` is attached to)."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise TapError(e.errno, f"cannot open /dev/net/tun for TAP device {name!r}: {e.strerror} "
                                f"(TAP devices need /dev/net/tun and CAP_NET_ADMIN)") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode()[:IFNAMSIZ - 1], IFF_TAP | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        hint = " (CAP_NET_ADMIN is needed to create it)" if e.errno == errno.EPERM else \
            " (is it a TUN device, or in use by another process?)" if e.errno in (errno.EINVAL, errno.EBUSY) else ""
        raise TapError(e.errno, f"cannot attach TAP device {name!r}: {e.strerror}{hint}") from None
    return fd


def read_frames(fd: int, limit: int = 64) -> list[bytes]:
    """What is waiting on the TAP, up to `limit` frames. Raises OSError when the
    device is gone (EBADFD: its namespace was deleted, or `ip link del`)."""
    out = []
    for _ in range(limit):
        try:
            out.append(os.read(fd, 65536))
        except BlockingIOError:
            break
    return out


def exists(name: str) -> bool:
    """A network device of that name is in this namespace."""
    return os.path.exists(f"/sys/class/net/{name}")


def write_frame(fd: int, frame: bytes) -> bool:
    """False when the TAP is down or its queue is full (the frame is lost, as on a wire)."""
    try:
        os.write(fd, frame)
        return True
    except (BlockingIOError, OSError):
        return False
