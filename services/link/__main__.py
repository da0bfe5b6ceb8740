from ..common.shell import main
from .server import LinkShell

main(LinkShell)
