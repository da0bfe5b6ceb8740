from ..common.shell import main
from .server import TransportShell

main(TransportShell)
