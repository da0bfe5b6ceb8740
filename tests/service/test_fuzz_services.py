"""A few thousand fuzzed frames through the real services (bench/fuzz.py, which
runs 100,000): nothing crashes, nothing logs a traceback, every frame any NIC
received is accounted for (the identities in bench/fuzz.py's docstring), and a
UDP exchange and a ping h1 -> h2 still go through."""
import shutil

import pytest

from conftest import PORT_BASE

pytestmark = pytest.mark.integration


def test_fuzzed_frames_through_the_services_are_all_accounted_for():
    pytest.importorskip("scapy")
    from bench import fuzz
    r = fuzz.run(frames=4000, seed=15, port_base=PORT_BASE + 1600)    # stops every process it started
    assert all(r["alive"].values()), r["alive"]
    assert not r["tracebacks"], "\n".join(f"--- {k}\n{v}" for k, v in r["tracebacks"].items())
    acc = r["accounting"]
    assert acc["holds"], acc
    assert acc["wire"]["tx"] >= r["frames"] == 4000
    assert acc["fate"]["r1"]["forwarded"] and acc["fate"]["r1"]["dropped"] and acc["drops"], acc
    assert r["legitimate_after"], r
    shutil.rmtree(r["logs"])                       # kept when anything above failed
