"""Every layer's core for every host of a topology, in one process, wired as
the services wire them (the whole packet path in one file: netstack.py)."""
from .netstack import Netstack, Sock

__all__ = ["Netstack", "Sock"]
