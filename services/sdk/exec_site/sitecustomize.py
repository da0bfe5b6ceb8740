"""Run at the start of every Python that `pktflow exec -n HOST` starts (this
directory leads its PYTHONPATH, which its Python children inherit): routes the
process's socket module to emulated host $PKTFLOW_NETNS (pktflow.patch), then
runs the sitecustomize this one stands in front of, if there is one."""
import importlib.machinery
import importlib.util
import os
import sys


def _route() -> None:
    netns = os.environ.get("PKTFLOW_NETNS")
    if not netns:
        return
    try:
        import pktflow
    except ImportError:
        sys.stderr.write(f"pktflow exec: {sys.executable} cannot import pktflow; run the Python it is "
                         "installed in (pktflow exec puts that one first on PATH)\n")
        os._exit(127)
    try:
        pktflow.patch(netns)
    except OSError as e:
        sys.stderr.write(f"pktflow exec: {e.strerror or e}\n")
        os._exit(1)


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_route()
_chain()
