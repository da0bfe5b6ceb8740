from ..common.shell import main
from .server import SocketShell

main(SocketShell)
