from ..common.shell import main
from .server import IpShell

main(IpShell)
