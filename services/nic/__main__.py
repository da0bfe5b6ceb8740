from ..common.shell import main
from .server import NicShell

main(NicShell)
