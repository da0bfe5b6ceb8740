"""The faithfulness report (bench/faithfulness.py) as a test: the real Linux
kernel in namespaces and the shared pktflow stack run the same scenarios, and
every fact on the wire is the same or is a difference the README explains."""
import json
import shutil

import pytest

from bench import faithfulness
from conftest import eventually
from interop.conftest import WHY_NOT
from pktflow import _client

# The probe for the initial window drops ACKs on purpose (TTL 1): retransmissions follow.
pytestmark = [pytest.mark.integration, pytest.mark.impaired]


@pytest.fixture
def rows(stack, tmp_path):
    if WHY_NOT:
        pytest.skip(WHY_NOT)
    for tool in ("tcpdump", "ping"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    rows = faithfulness.run(stack, tmp_path)
    # The ACK-less probe's connection closes late; its last retransmissions belong in this test's window.
    eventually(lambda: not [r for ns in ("h1", "h2") for r in json.loads(_client.admin("transport", ns, "sockets").json)
                            if faithfulness.TCP_PORT in (r["local"][1], r["peer"][1])
                            and r["state"] not in ("TIME-WAIT", "LISTEN")], timeout=30, interval=0.2)
    return rows


def test_emulator_and_linux_agree_on_the_wire(rows):
    table = "\n".join(f"{f}: Linux {a!r}, pktflow {b!r} ({v})" for f, a, b, v in rows)
    assert not [r for r in rows if r[3] == "DIFFERS"], table
    facts = {f: (a, b) for f, a, b, _ in rows}
    assert facts["SYN: options"] == ("mss 1460,sackOK,TS,nop,wscale 7",) * 2
    assert facts["TTL expiry: ICMP type/code from"] == ("11/0 from 10.0.1.1",) * 2
    assert facts["closed UDP port: recv() on the connected socket"] == ("ECONNREFUSED",) * 2
    assert len(rows) >= 15
