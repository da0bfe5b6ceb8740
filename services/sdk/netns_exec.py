"""pktflow exec -n HOST -- PROGRAM [ARG...]: `ip netns exec` for emulated hosts.

Runs a Python program (and the Python programs it starts) with its socket
module routed to emulated host HOST (pktflow.patch): its connections, datagrams
and names are the emulator's, traced, captured and counted like any other.
The program replaces this process, as with ip netns exec; its exit status is
the command's. Programs that are not Python are refused: pktflow routes
Python's socket module, not the kernel's system calls."""
import errno
import os
import shutil
import sys

from . import _client
from ._socket import _interfaces

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_site")
USAGE = "usage: pktflow exec -n NETNS [--] PROGRAM [ARG...]"


def is_python(path: str) -> bool:
    """A Python interpreter (python, python3, python3.11, ...) or a script it runs
    (a #! line naming python, as pip-installed entry points have)."""
    name = os.path.basename(path)
    version = name[len("python"):]
    if name.startswith("python") and (not version or version.replace(".", "").isdigit()):
        return True
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def parse(argv: list[str]) -> tuple[str, list[str]]:
    netns, words = None, list(argv)
    while words and words[0] != "--" and words[0].startswith("-"):
        opt = words.pop(0)
        if opt in ("-n", "--netns") and words:
            netns = words.pop(0)
        elif opt.startswith("--netns="):
            netns = opt.split("=", 1)[1]
        elif opt in ("-h", "--help"):
            print(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1])
            raise SystemExit(0)
        else:
            raise SystemExit(f"pktflow exec: unknown option {opt!r}\n{USAGE}")
    if words[:1] == ["--"]:
        words.pop(0)
    if not netns or not words:
        raise SystemExit(USAGE)
    return netns, words


def cmd_exec(argv: list[str]) -> int:
    netns, command = parse(argv)
    try:
        _interfaces(netns)                 # the stack is up and has that host
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
        raise SystemExit(f'pktflow exec: Cannot open network namespace "{netns}": No such file or directory '
                         '(not a host of the running stack)') from None
    env = dict(os.environ)
    # the Python that has pktflow first, so `python3` is one that can be routed
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    program = shutil.which(command[0], path=env["PATH"])
    if program is None:
        raise SystemExit(f'pktflow exec: {command[0]}: command not found')
    if not is_python(program):
        raise SystemExit(f"pktflow exec: {command[0]} is not a Python program: pktflow routes Python's socket "
                         "module, not the kernel's system calls (run it in a real namespace with ip netns exec, "
                         "or talk to the emulator over a TAP device)")
    env["PKTFLOW_NETNS"] = netns
    env["PKTFLOW_ENDPOINT"] = _client.endpoint()
    env["PYTHONPATH"] = os.pathsep.join([SITE] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(program, command, env)
