"""A few thousand fuzzed frames through the real services (bench/fuzz.py, which
runs 100,000): nothing crashes, nothing logs a traceback, every frame r1's NICs
received is accounted for, and a ping still goes through."""
import pytest

from conftest import PORT_BASE

pytestmark = pytest.mark.integration


def test_fuzzed_frames_through_the_services_are_all_accounted_for():
    pytest.importorskip("scapy")
    from bench import fuzz
    r = fuzz.run(frames=4000, seed=15, port_base=PORT_BASE + 1600)
    assert all(r["alive"].values()), r["alive"]
    assert not r["tracebacks"], r["tracebacks"]
    assert r["r1"]["received"] >= r["frames"] and r["r1"]["received"] == r["r1"]["accounted"], r["r1"]
    assert r["r1"]["drops"] and r["ping_after"]
