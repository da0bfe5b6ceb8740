"""The faithfulness report's verdicts (bench/faithfulness.py), without root:
a KNOWN difference holds only for the exact value pktflow is expected to show."""
from bench import faithfulness as fb

IW = "initial window: segments x bytes, no ACK coming back"


def test_a_known_row_must_show_the_expected_pktflow_value():
    known = {IW: ("10 x 1448", "no TLP yet")}
    linux = {IW: "11 x 1448", "SYN: options": "mss 1460"}
    rows = {r[0]: r[3] for r in fb.compare(linux, {IW: "10 x 1448", "SYN: options": "mss 1460"}, known)}
    assert rows == {IW: "known: no TLP yet", "SYN: options": "same"}
    # the busy-machine report: 46 segments, the whole write, is not the known difference
    [row] = fb.compare({IW: "11 x 1448"}, {IW: "45 x 1448 + 1 x 376"}, known)
    assert row[3] == "DIFFERS"
    # once pktflow shows Linux's value the row is the same, KNOWN entry or not
    [row] = fb.compare({IW: "11 x 1448"}, {IW: "11 x 1448"}, known)
    assert row[3] == "same"
    assert fb.compare({"x": "1"}, {"x": "2"}, {})[0][3] == "DIFFERS"


def test_every_known_entry_names_the_value_pktflow_shows():
    for fact, entry in fb.KNOWN.items():
        assert isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(v, str) and v for v in entry), fact


def test_window_shape_lists_every_segment_size():
    assert fb.window_shape([1448] * 10) == "10 x 1448"
    assert fb.window_shape([1448] * 45 + [376]) == "45 x 1448 + 1 x 376"
    assert fb.window_shape([376] + [1448] * 9) == "1 x 376 + 9 x 1448"
    assert fb.window_shape([]) == "0 x 0"
