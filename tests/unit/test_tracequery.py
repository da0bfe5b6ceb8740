"""`pktflow trace`'s text view of a journey, from Jaeger's JSON: a netfilter
step names its table, chain and rule (or the policy), its verdict and a new
NAT binding; a drop its reason."""
from pktflow.tracequery import format_trace


def span(sid, parent, name, start, tags):
    return {"spanID": sid, "operationName": name, "startTime": start, "duration": 10, "processID": "p1",
            "references": [{"refType": "CHILD_OF", "spanID": parent}] if parent else [],
            "tags": [{"key": k, "value": v} for k, v in {"pktflow.netns": "r1", **tags}.items()]}


def nf(hook, table, rule, verdict, **more):
    return {"netfilter.hook": hook, "netfilter.table": table, "netfilter.chain": hook, "netfilter.rule": rule,
            "netfilter.verdict": verdict, **more}


def test_a_netfilter_step_says_which_rule_decided():
    tr = {"traceID": "ab", "processes": {"p1": {"serviceName": "ip"}}, "spans": [
        span("1", None, "ip_rcv", 0, {}),
        span("2", "1", "nf_hook_slow", 5, nf("FORWARD", "filter", 1, "DROP",
                                            **{"pktflow.drop_reason": "NETFILTER_DROP"})),
        span("3", "1", "nf_hook_slow", 6, nf("POSTROUTING", "nat", 0, "ACCEPT",
                                            **{"netfilter.nat": "SNAT 10.0.1.10:5 to 10.0.2.1:5"}))]}
    lines = format_trace(tr).splitlines()
    assert lines[2].endswith("nf_hook_slow               filter FORWARD rule 1: DROP  DROP NETFILTER_DROP")
    assert lines[3].endswith("nf_hook_slow               nat POSTROUTING policy: ACCEPT "
                             "(SNAT 10.0.1.10:5 to 10.0.2.1:5)")
