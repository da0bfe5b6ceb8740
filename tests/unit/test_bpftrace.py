"""pktflow bpftrace: the language subset, the filter the layers apply, the maps
and their text as bpftrace prints them (expected outputs from bpftrace's own
tests/runtime/outputs and the layout of src/output/text.cpp), fed from lists."""
import re
import time

import pytest

from pktflow.bpftrace import Program, cmd_bpftrace, printf_format, printf_parts
from pktflow.services.common.bpftrace_lang import BpftraceError, compile_predicate, parse_probe
from pktflow.services.common.bpftrace_maps import Map, hist_rows, lhist_rows, linear_index, log2_index


def run(src: str, events=(), end=True):
    """The program over (name, fields) events; what it printed."""
    out = []
    prog = Program(src, out=out.append)
    prog.begin()
    for i, (name, fields) in enumerate(events):
        prog.event(name, fields, time_ns=i, netns="h1")
    if end:
        prog.end()
        out.append(prog.finish())
    return "".join(out)


def drops(*reasons):
    return [("skb:kfree_skb", {"skbaddr": 1, "location": "udp_rcv", "protocol": 2048, "reason": r, "len": 28})
            for r in reasons]


# -- the filter the layers apply
@pytest.mark.parametrize("text, fields, want", [
    ('args.reason == "NO_SOCKET"', {"reason": "NO_SOCKET"}, True),
    ('args->reason != "NO_SOCKET"', {"reason": "NO_SOCKET"}, False),
    ("args.len > 100 && args.len <= 1500", {"len": 1500}, True),
    ("args.len < 100 || args.name == \"eth1\"", {"len": 500, "name": "eth1"}, True),
    ("!(args.len >= 100)", {"len": 99}, True),
    ("args.len", {"len": 0}, False),
    ("args.len & 1 == 1", {"len": 3}, True),           # C: == binds tighter than &
    ("(args.len & 1) == 1", {"len": 3}, True),
    ("args.len / 2 == 50", {"len": 101}, True),          # division in parentheses-free form outside slashes
    ("args.sport == 80 && args.dport == 5000 && args.saddr == \"10.0.1.10\"",
     {"sport": 80, "dport": 5000, "saddr": "10.0.1.10"}, True),
    ("args.sport == 80 && args.dport == 5000 && args.saddr == \"10.0.1.10\"",
     {"sport": 80, "dport": 5001, "saddr": "10.0.1.10"}, False),
    ("100 < args.len", {"len": 101}, True),             # a literal on the left
    ("args.len > -1", {"len": 0}, True),
    ("-(1 << 4) < args.len", {"len": -15}, True),            # constants folded, the field put on the left
    ("args.reason != 5", {"reason": "NO_SOCKET"}, False),    # a string is neither equal nor unequal to 5
    ("args.len != 5", {"len": 6}, True),
    ("0x10 == args.len", {"len": 16}, True),
    ("args.snd_cwnd * 2 > args.ssthresh", {"snd_cwnd": 10, "ssthresh": 19}, True),
    ("str(args.name) == \"eth0\"", {"name": "eth0"}, True),
    ("args.reason == \"NO_SOCKET\"", {"len": 5}, False),      # a field the event lacks: no match
    ("!(args.reason == \"NO_SOCKET\")", {"len": 5}, False),
    ("args.len > 5", {"len": "x"}, False),                   # a string where a number goes: no match
    ("/args.len == 1/", {"len": 1}, True),                   # the slashes may be given
])
def test_compile_predicate(text, fields, want):
    assert compile_predicate(text)(fields) is want


@pytest.mark.parametrize("text, message", [
    ("", "an empty filter"),
    ("args.len >", "syntax error, unexpected end of file"),
    ("args.len > 5 5", 'syntax error, unexpected "5"'),
    ('args.reason < "A"', "The < operator can not be used on expressions of type string"),
    ('5 == "5"', "Type mismatch for '==': comparing int64 with string"),
    ("comm == \"nc\"", "comm: not available in pktflow"),
    ("pid == 1", "pid: not available in pktflow"),
    ("probe == \"x\"", "probe: a filter may read args fields and literals only"),
    ("@x > 1", "reading a map (@x) in an expression is not supported"),
    ("$x > 1", "scalar variables ($x) are not supported"),
    ("args.len ? 1 : 0", 'syntax error, unexpected "?"'),
    ("strncmp(args.name, \"e\", 1)", "strncmp(): not supported in an expression"),
    ('args.name == "a\\q"', "invalid escape sequence"),
])
def test_compile_predicate_refuses(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_predicate(text)


def test_a_three_term_filter_is_cheap():
    """The layers call it for every event of a watched tracepoint: a few hundred ns."""
    pred = compile_predicate('args.len > 100 && args.name == "eth0" && args.protocol == 2048')
    ev = {"skbaddr": 1, "len": 1200, "name": "eth0", "protocol": 2048}
    best = min(_timed(pred, ev, 20_000) for _ in range(5))
    print(f"\n3-term predicate: {1 / best / 1e6:.2f} M events/s ({best * 1e9:.0f} ns)")
    assert best < 5e-6


def _timed(fn, arg, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - t) / n


# -- probes
def test_probes_globs_short_names_and_intervals():
    assert parse_probe("t:skb:kfree_skb") == ("tracepoint", "tracepoint:skb:kfree_skb", ["skb:kfree_skb"])
    kind, _, names = parse_probe("tracepoint:net:*")
    assert kind == "tracepoint" and "net:net_dev_queue" in names and "skb:kfree_skb" not in names
    assert parse_probe("interval:s:2")[2] == 2 * 10**9
    assert parse_probe("i:ms:100")[2] == 10**8
    assert parse_probe("interval:1s")[2] == 10**9
    assert parse_probe("interval:hz:4")[2] == 25 * 10**7
    assert parse_probe("BEGIN")[0] == "begin" and parse_probe("end")[0] == "end"


@pytest.mark.parametrize("src, message", [
    ("kprobe:tcp_reset { @ = count(); }",
     "kprobe: probes are not supported (tracepoint:CATEGORY:NAME, interval:s:N, BEGIN, END)"),
    ("uprobe:/bin/bash:readline { }", "uprobe: probes are not supported"),
    ("tracepoint:skb:nothing { }", "tracepoint:skb:nothing: no such tracepoint in pktflow"),
    ("tracepoint:skb { }", "give tracepoint:CATEGORY:NAME"),
    ("interval:m:1 { }", "give interval:s:N"),
    ("t:skb:kfree_skb { @[comm] = count(); }", "comm: not available in pktflow"),
    ("t:skb:kfree_skb { @x = 1; }", "assigning a value to @x is not supported"),
    ("t:skb:kfree_skb { @x++; }", "@x++: only map = count()"),
    ("t:skb:kfree_skb { $x = 1; }", "scalar variables ($x) are not supported"),
    ("t:skb:kfree_skb { if (args.len > 1) { @ = count(); } }", "'if' is not supported"),
    ("t:skb:kfree_skb { @ = count(); @ = hist(args.len); }",
     "Type mismatch for @: trying to assign value of type 'hist_t' when map already contains a value of type "
     "'count_t'"),
    ("t:skb:kfree_skb { @[args.reason] = count(); @ = count(); }", "Argument mismatch for @"),
    ("t:skb:kfree_skb { @ = lhist(args.len, 0, 100, 0); }", "lhist(): step must be >= 1"),
    ("t:skb:kfree_skb { @ = lhist(args.len, 0, args.len, 10); }", "lhist()'s max must be an integer literal"),
    ("t:skb:kfree_skb { @ = hist(args.len, 6); }", "hist(): bits must be between 0 and 5"),
    ("t:skb:kfree_skb { @ = sum(args.reason, 1); }", "sum() takes 1 argument, 2 given"),
    ('t:skb:kfree_skb { @ = sum("x"); }', "sum() expects an integer, not a string"),
    ("t:skb:kfree_skb { count(); }", "count() must be assigned to a map"),
    ("t:skb:kfree_skb { system(\"ls\"); }", "system(): not supported in pktflow bpftrace"),
    ('t:skb:kfree_skb { printf("%d %s\\n", args.len); }',
     "printf: Not enough arguments for format string (1 supplied, 2 expected)"),
    ('t:skb:kfree_skb { printf("%q\\n", args.len); }', "printf: Unknown format string token: %q"),
    ("t:skb:kfree_skb { printf(args.reason); }", "printf: the first argument must be a string literal"),
    ("interval:s:1 { print(@nothing); }", "Undefined map: @nothing"),
    ("BEGIN { @[args.reason] = count(); }", "args: only tracepoint probes have args (BEGIN has none)"),
    ("t:skb:kfree_skb { @ = count() }  config = { x = 1 }", "config: not supported"),
    ("", "no probes"),
    ("t:skb:kfree_skb { @ = count(); ", "syntax error, unexpected end of file"),
    ("/* never closed", "unterminated comment"),
])
def test_programs_outside_the_subset_are_refused(src, message):
    with pytest.raises(BpftraceError, match=re.escape(message)):
        Program(src)


def test_an_error_shows_where(capsys):
    assert cmd_bpftrace(["-e", "t:skb:kfree_skb { @[pid] = count(); }"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["pktflow bpftrace: pid: not available in pktflow (no processes or CPUs here); values are "
                   "args.FIELD, probe, nsecs, elapsed",
                   "stdin:1:21: t:skb:kfree_skb { @[pid] = count(); }",
                   " " * 32 + "~~~"]


# -- maps and their text
def test_count_by_reason_sorted_by_value_then_the_maps_by_name():
    out = run("tracepoint:skb:kfree_skb { @[args.reason] = count(); @total = count(); }",
              drops("NO_SOCKET", "IP_INHDR", "NO_SOCKET", "QDISC_DROP", "NO_SOCKET", "IP_INHDR"))
    assert out == ("\n\n"
                   "@[QDISC_DROP]: 1\n"
                   "@[IP_INHDR]: 2\n"
                   "@[NO_SOCKET]: 3\n"
                   "@total: 6\n")


def test_keys_of_several_fields_sum_avg_min_max():
    events = [("net:net_dev_queue", {"len": n, "name": dev}) for n, dev in ((100, "eth0"), (300, "eth0"),
                                                                            (50, "eth1"), (-7, "eth1"))]
    out = run("t:net:net_dev_queue { @b[args.name, args.netns] = sum(args.len); @a[args.name] = avg(args.len); "
              "@lo = min(args.len); @hi = max(args.len); }", events)
    assert out == ("\n\n"
                   "@a[eth1]: 21\n"                      # (50 - 7) / 2, C's truncation
                   "@a[eth0]: 200\n"
                   "@b[eth1, h1]: 43\n"
                   "@b[eth0, h1]: 400\n"
                   "@hi: 300\n"
                   "@lo: -7\n")


def test_hist_as_bpftrace_prints_it():
    """bpftrace's tests/runtime/outputs/hist.txt: hist(-1), hist(2), hist(3), hist(7), hist(20)."""
    out = run("t:net:net_dev_queue { @ = hist(args.len); }",
              [("net:net_dev_queue", {"len": n}) for n in (-1, 2, 3, 7, 20)])
    assert out == ("\n\n@:\n"
                   "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
                   "[0]                    0 |                                                    |\n"
                   "[1]                    0 |                                                    |\n"
                   "[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
                   "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
                   "[8, 16)                0 |                                                    |\n"
                   "[16, 32)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
                   "\n")


def test_lhist_as_bpftrace_prints_it():
    """bpftrace's tests/runtime/outputs/lhist.txt: lhist(2|3|7|-1|11, 0, 10, 2)."""
    out = run("t:net:net_dev_queue { @ = lhist(args.len, 0, 10, 2); }",
              [("net:net_dev_queue", {"len": n}) for n in (2, 3, 7, -1, 11)])
    assert out == ("\n\n@:\n"
                   "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
                   "[0, 2)                 0 |                                                    |\n"
                   "[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
                   "[4, 6)                 0 |                                                    |\n"
                   "[6, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
                   "[8, 10)                0 |                                                    |\n"
                   "[10, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
                   "\n")


def test_hist_labels_k_suffixes_and_keyed_hists():
    assert [log2_index(v) for v in (-5, 0, 1, 2, 3, 4, 1023, 1024)] == [0, 1, 2, 3, 3, 4, 11, 12]
    assert [log2_index(v, 1) for v in (0, 1, 2, 3, 4, 5, 6)] == [1, 2, 3, 4, 5, 5, 6]
    assert hist_rows({12: 3, 13: 1}).splitlines() == [
        "[1K, 2K)               3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
        "[2K, 4K)               1 |@@@@@@@@@@@@@@@@@                                   |"]
    assert hist_rows({log2_index(5 << 20): 1}).splitlines()[0].startswith("[4M, 8M) ")
    assert hist_rows({log2_index(4, 1): 1, log2_index(6, 1): 1}, 1).splitlines() == [
        "[4, 6)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
        "[6, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"]
    out = run("t:net:net_dev_queue { @us[args.name] = hist(args.len); }",
              [("net:net_dev_queue", {"len": 1, "name": "eth1"})] * 2 + [("net:net_dev_queue", {"len": 0,
                                                                                               "name": "eth0"})])
    assert out == ("\n\n@us[eth0]:\n"
                   "[0]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"
                   "@us[eth1]:\n"
                   "[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n")


def test_lhist_edges_single_values_and_kilo_steps():
    assert [linear_index(v, 0, 100, 10) for v in (-1, 0, 9, 10, 99, 100, 1000)] == [0, 1, 1, 2, 10, 11, 11]
    assert lhist_rows({1: 1, 2: 1}, 0, 10, 1).splitlines()[0].startswith("[0] ")      # step 1: a value each
    assert lhist_rows({2: 1}, 0, 4096, 1024).splitlines()[0].startswith("[1K, 2K) ")
    assert lhist_rows({5: 1}, 0, 4096, 1024).splitlines()[0].startswith("[4K, ...) ")
    assert lhist_rows({11: 2}, 0, 10, 1) == f"{'[10, ...)':<16}{2:>8} |{'@' * 52}|\n"


def test_bars_are_computed_as_bpftrace_does():
    rows = hist_rows({2: 1, 3: 3, 4: 13}).splitlines()
    assert [r.count("@") for r in rows] == [4, 12, 52]         # int(count / (float)max * 52)


def test_print_top_div_clear_zero_in_intervals():
    out = []
    prog = Program("t:skb:kfree_skb { @[args.reason] = count(); @n = count(); } "
                   "interval:s:1 { print(@, 2); print(@n, 0, 2); clear(@); zero(@n); print(@n); }", out=out.append)
    (period, probe, block), = prog.intervals()
    assert (period, probe) == (10**9, "interval:s:1")
    for name, fields in drops("A", "B", "B", "C", "C", "C"):
        prog.event(name, fields)
    prog.interval(block, probe, 0)
    assert "".join(out) == "@[B]: 2\n@[C]: 3\n@n: 3\n@n: 0\n"
    out.clear()
    prog.interval(block, probe, 0)
    assert "".join(out) == "@n: 0\n@n: 0\n"                  # @ was cleared: nothing
    assert prog.finish() == "\n\n@n: 0\n"


def test_printf_probe_nsecs_elapsed_and_formats():
    out = run('BEGIN { printf("Tracing... Hit Ctrl-C to end.\\n"); } '
              't:skb:kfree_skb,t:net:net_dev_xmit { printf("%-10s %5d %u %x %s %lu %s%%\\n", args.reason, '
              'args.len, -1, 255, probe, nsecs, args.netns); }',
              drops("NO_SOCKET") + [("net:net_dev_xmit", {"len": 60, "reason": "-"})])
    assert out.splitlines() == [
        "Tracing... Hit Ctrl-C to end.",
        "NO_SOCKET     28 18446744073709551615 ff tracepoint:skb:kfree_skb 0 h1%",
        "-             60 18446744073709551615 ff tracepoint:net:net_dev_xmit 1 h1%",
        "", ""]
    assert printf_format(printf_parts("%d|%5s|%c", 0, 3), [True, 7, 65]) == "1|    7|A"


def test_filters_exit_and_end():
    out = run('t:skb:kfree_skb /args.reason == "NO_SOCKET"/ { @[args.location] = count(); } '
              't:skb:kfree_skb /args.reason == "QDISC_DROP"/ { printf("qdisc drop\\n"); exit(); '
              'printf("never\\n"); } '
              'END { printf("end\\n"); }',
              drops("NO_SOCKET", "IP_INHDR", "QDISC_DROP", "NO_SOCKET"))
    assert out == "qdisc drop\nend\n\n\n@[udp_rcv]: 1\n"      # nothing runs after exit() but END


def test_exit_code_and_events_lacking_a_field():
    prog = Program("t:skb:kfree_skb { @[args.nothing] = count(); @all = count(); } "
                   "t:net:net_dev_queue { exit(3); }")
    for name, fields in drops("X"):
        prog.event(name, fields)
    prog.event("net:net_dev_queue", {"len": 1})
    assert prog.exit_code == 3
    assert prog.finish() == "\n\n"           # the block stopped at the field the event lacks


def test_what_is_watched_and_attached():
    prog = Program('BEGIN { } t:net:*, t:skb:kfree_skb { @ = count(); } t:skb:kfree_skb /args.len > 1/ { } '
                   't:tcp:tcp_probe /args.len > 1/ { } interval:s:1 { } END { }')
    assert prog.attach_count() == 4 + 1 + 1 + 1 + 3          # net:* is four tracepoints
    groups = {f: (events, len(blocks)) for events, f, blocks in prog.groups()}
    assert groups[""][0] == ["net:napi_gro_receive_entry", "net:net_dev_queue", "net:net_dev_xmit",
                             "net:netif_receive_skb", "skb:kfree_skb"]
    assert groups["args.len > 1"] == (["skb:kfree_skb", "tcp:tcp_probe"], 2)


def test_comments_shebang_and_string_escapes():
    src = ('#!/usr/bin/env bpftrace\n// drops\n/* by reason */\n'
           't:skb:kfree_skb { printf("\\t%s\\x41\\101\\"\\n", args.reason); }')
    assert run(src, drops("X"), end=False) == '\tXAA"\n'


def test_map_text_of_a_scalar_avg_and_empty_maps():
    m = Map("@x", "avg")
    assert m.text() == ""
    m.updater(lambda d: None, lambda d: d)(7)
    m.updater(lambda d: None, lambda d: d)(8)
    assert m.text() == "@x: 7\n"
    m.zero()
    assert m.text() == "@x: 0\n"


def test_the_layers_apply_a_blocks_filter_before_sending():
    """services/common/watch.py compiles the filter text with compile_predicate, as Program.groups() gives it."""
    from pktflow.services.common import watch
    from pktflow.v1 import admin_pb2
    (events, text, _), = Program('t:skb:kfree_skb /args.reason == "NO_SOCKET" && args.len > 20/ '
                                 '{ @ = count(); }').groups()
    w = watch.watcher(admin_pb2.WatchRequest(events=events, netns="h2", filter=text), {"h2": None})
    for netns, reason, length in (("h2", "NO_SOCKET", 28), ("h2", "IP_INHDR", 28), ("h1", "NO_SOCKET", 28),
                                  ("h2", "NO_SOCKET", 8)):
        w.offer(0, netns, "skb:kfree_skb", {"reason": reason, "len": length})
    assert [e[3] for e in w.buf] == [{"reason": "NO_SOCKET", "len": 28}]
    with pytest.raises(ValueError, match="comm: not available"):
        watch.watcher(admin_pb2.WatchRequest(events=events, filter='comm == "nc"'), {})


def test_a_filter_may_name_the_host():
    from pktflow.services.common import watch
    from pktflow.v1 import admin_pb2
    w = watch.watcher(admin_pb2.WatchRequest(events=["skb:kfree_skb"], filter='args.netns == "r1"'), {})
    for netns in ("h1", "r1", "h2"):
        w.offer(0, netns, "skb:kfree_skb", {"reason": "NO_SOCKET"})
    assert [e[1] for e in w.buf] == ["r1"] and "netns" not in w.buf[0][3]
