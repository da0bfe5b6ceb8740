"""sysctl(8)'s words, output, messages and exit statuses, as procps-ng 4.0.2
answers in a network namespace here (captured), on a namespace's values."""
from pktflow.services.common.sysctl import defaults, sysctl_tool


def run(*args, values=None):
    values = defaults() if values is None else values
    return sysctl_tool(values, {"eth0"}, list(args)), values


def test_read_write_and_quiet_as_procps():
    (status, out, err, written), values = run("-w", "net.ipv4.conf.all.rp_filter=1")
    assert (status, out, err, written) == (0, "net.ipv4.conf.all.rp_filter = 1\n", "", ["net.ipv4.conf.all.rp_filter"])
    assert values["net.ipv4.conf.all.rp_filter"] == 1
    assert run("net.ipv4.ip_local_port_range", "net/ipv4/ip_default_ttl")[0][:3] == (
        0, "net.ipv4.ip_local_port_range = 32768\t60999\nnet.ipv4.ip_default_ttl = 64\n", "")
    assert run("-n", "net.ipv4.ip_default_ttl")[0][1] == "64\n"
    assert run("-qw", "net.ipv4.ip_default_ttl=9")[0][:3] == (0, "", "")
    assert run("net.ipv4.ip_default_ttl=9")[0][1] == "net.ipv4.ip_default_ttl = 9\n"   # '=' writes without -w
    assert run("net.ipv4.conf.eth0.rp_filter")[0][1] == "net.ipv4.conf.eth0.rp_filter = 0\n"


def test_errors_as_procps_and_the_rest_still_written():
    (status, out, err, written), values = run("-w", "net.ipv4.nope=1", "net.ipv4.ip_default_ttl=0",
                                              "net.ipv4.ip_forward", "net.ipv4.ip_forward=1")
    assert status == 1 and out == "net.ipv4.ip_forward = 1\n" and written == ["net.ipv4.ip_forward"]
    assert err == ("sysctl: cannot stat /proc/sys/net/ipv4/nope: No such file or directory\n"
                   'sysctl: setting key "net.ipv4.ip_default_ttl": Invalid argument\n'
                   "sysctl: command line(0): invalid syntax, continuing...\n")
    assert values["net.ipv4.ip_default_ttl"] == 64                    # a refused value changes nothing
    assert run("net.ipv4.conf.eth9.rp_filter")[0][:3] == (
        1, "", "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/rp_filter: No such file or directory\n")
