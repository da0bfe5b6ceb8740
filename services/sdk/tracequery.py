"""Reading traces back through Jaeger's HTTP query API (the embedded store or a
real Jaeger) and printing a packet's journey as a tree."""
import json
import os
import urllib.error
import urllib.parse
import urllib.request


def query_url() -> str:
    return os.environ.get("PKTFLOW_QUERY_ENDPOINT", "http://localhost:16686").rstrip("/")


def _get(path: str, params: dict | None = None, base: str | None = None):
    url = (base or query_url()) + path
    if params:
        url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {"data": None}
        raise OSError(f"trace query {url} failed: HTTP {e.code}") from None
    except urllib.error.URLError as e:
        raise OSError(f"cannot reach the trace query API at {base or query_url()} ({e.reason}); "
                      "set PKTFLOW_QUERY_ENDPOINT") from None


def services(base=None) -> list[str]:
    return _get("/api/services", base=base).get("data") or []


def trace(trace_id: str, base=None) -> dict | None:
    data = _get(f"/api/traces/{trace_id}", base=base).get("data")
    return data[0] if data else None


def find(service: str = "socket", operation: str | None = None, tags: dict | None = None, limit: int = 20,
         lookback: str = "1h", base=None) -> list[dict]:
    return _get("/api/traces", {"service": service, "operation": operation, "limit": limit, "lookback": lookback,
                                "tags": json.dumps(tags) if tags else None}, base=base).get("data") or []


def tag(span: dict, key: str, default=None):
    for t in span.get("tags", ()):
        if t["key"] == key:
            return t["value"]
    return default


def journey(tr: dict) -> list[dict]:
    """The spans of a trace in depth-first order, each with `depth` and `service`."""
    by_id = {s["spanID"]: s for s in tr["spans"]}
    children: dict = {}
    roots = []
    for s in tr["spans"]:
        s["service"] = tr["processes"][s["processID"]]["serviceName"]
        parent = next((r["spanID"] for r in s.get("references", ()) if r["refType"] == "CHILD_OF"
                       and r["spanID"] in by_id), None)
        (children.setdefault(parent, []) if parent else roots).append(s)
    out = []

    def walk(s, depth):
        s["depth"] = depth
        out.append(s)
        for c in sorted(children.get(s["spanID"], ()), key=lambda x: x["startTime"]):
            walk(c, depth + 1)

    for r in sorted(roots, key=lambda x: x["startTime"]):
        walk(r, 0)
    return out


def format_trace(tr: dict) -> str:
    spans = journey(tr)
    if not spans:
        return "(empty trace)"
    t0 = min(s["startTime"] for s in spans)
    end = max(s["startTime"] + s["duration"] for s in spans)
    hosts = []
    for s in spans:
        h = tag(s, "pktflow.netns")
        if h and h not in hosts:
            hosts.append(h)
    lines = [f"trace {tr['traceID']}: {len(spans)} spans, hosts {' -> '.join(hosts)}, {(end - t0) / 1000:.3f} ms"]
    for s in spans:
        extra = []
        if tag(s, "source.address"):
            src = tag(s, "source.address")
            dst = tag(s, "destination.address")
            extra.append(f"{src} > {dst} {tag(s, 'network.transport', '')}")
        if tag(s, "pktflow.ifname"):
            extra.append(f"dev {tag(s, 'pktflow.ifname')}")
        if tag(s, "netfilter.hook"):               # which table, chain and rule (0: the policy) decided
            rule = tag(s, "netfilter.rule")
            extra.append(f"{tag(s, 'netfilter.table')} {tag(s, 'netfilter.chain')} "
                         f"{'policy' if rule == 0 else f'rule {rule}'}: {tag(s, 'netfilter.verdict')}"
                         + (f" ({tag(s, 'netfilter.nat')})" if tag(s, "netfilter.nat") else ""))
        if tag(s, "pktflow.xdp.action"):           # the XDP verdict, and which rule (0: none matched) gave it
            rule, filt = tag(s, "pktflow.xdp.rule"), tag(s, "pktflow.xdp.filter")
            extra.append(f"{tag(s, 'pktflow.xdp.action')} " + (f"rule {rule}" if rule else "default")
                         + (f" ({filt})" if filt else "")
                         + (f" -> {tag(s, 'pktflow.xdp.redirect')}" if tag(s, "pktflow.xdp.redirect") else ""))
        if tag(s, "pktflow.xdp.err"):
            extra.append(f"xdp_exception {tag(s, 'pktflow.xdp.err')}")
        reason = tag(s, "pktflow.drop_reason")
        if reason:
            extra.append(f"DROP {reason}")
        links = [r for r in s.get("references", ()) if r["refType"] == "FOLLOWS_FROM"]
        if links:
            extra.append(f"caused by {links[0]['traceID']}")
        name = "  " * min(s["depth"], 1) + s["operationName"]
        lines.append(f"  +{(s['startTime'] - t0) / 1000:8.3f} ms {s['duration']:6d} us  {s['service']:<9} "
                     f"{tag(s, 'pktflow.netns', '?'):<4} {name:<28} {'  '.join(extra)}".rstrip())
    return "\n".join(lines)
