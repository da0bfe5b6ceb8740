"""A TAP device that goes away (its namespace deleted) costs the interface its
carrier, one log line and nothing else: the nic does not spin, frames sent to
it are counted as carrier errors, and a device of that name coming back is
taken again."""
import json
import os
import subprocess
import time

import pytest

from interop.conftest import PORT_BASE, WHY_NOT

pytestmark = pytest.mark.integration


def cpu_seconds(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def nic_link(stack) -> dict:
    from pktflow import _client
    os.environ["PKTFLOW_ENDPOINT"] = stack.endpoint
    return {d["ifname"]: d for d in json.loads(_client.admin("nic", "h1", "link").json)}


def test_a_tap_that_goes_away_loses_carrier_and_comes_back(tmp_path):
    if WHY_NOT:
        pytest.skip(WHY_NOT)
    from pktflow.up import Stack
    tag = os.getpid() % 10000
    tap, netns = f"pfl{tag}", f"pfln{tag}"
    (tmp_path / "t.yaml").write_text(f"""hosts:
  h1:
    interfaces:
      eth0: {{mac: "02:00:00:00:01:0a", addresses: [10.0.1.10/24], tap: {tap}}}
""")
    stack = Stack(str(tmp_path / "t.yaml"), port_base=PORT_BASE + 200, trace_store=False,
                  extra_env={"OTEL_TRACES_EXPORTER": "none"})
    saved = os.environ.get("PKTFLOW_ENDPOINT")
    stack.start()
    try:
        assert nic_link(stack)["eth0"]["carrier"]
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "link", "set", tap, "netns", netns], check=True)
        subprocess.run(["ip", "netns", "del", netns], check=True)           # the TAP goes with it
        deadline = time.monotonic() + 10
        while nic_link(stack)["eth0"]["carrier"]:
            assert time.monotonic() < deadline, "the interface kept its carrier"
            time.sleep(0.1)
        nic = stack.procs["nic"].pid
        before = cpu_seconds(nic)
        time.sleep(2.0)
        assert cpu_seconds(nic) - before < 0.5, "the nic spins on a TAP that is gone"
        subprocess.run(["ip", "tuntap", "add", "mode", "tap", "name", tap], check=True)    # no address, no route
        try:
            deadline = time.monotonic() + 10
            while not nic_link(stack)["eth0"]["carrier"]:
                assert time.monotonic() < deadline, "the TAP came back but the interface did not"
                time.sleep(0.1)
        finally:
            subprocess.run(["ip", "link", "del", tap], capture_output=True, check=False)
    finally:
        stack.stop()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        if saved is None:
            os.environ.pop("PKTFLOW_ENDPOINT", None)
        else:
            os.environ["PKTFLOW_ENDPOINT"] = saved
