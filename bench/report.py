"""report.py: the results of a bench run (bench/results/*.json) as the
markdown tables docs/performance.md shows.  A part that failed shows its
error instead of its table; a part not run shows nothing."""
import json


def _ms(v):
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f ms" % v
    if v >= 10:
        return "%.1f ms" % v
    return "%.2f ms" % v


def _mib(kib):
    return "-" if kib is None else "%.1f MiB" % (kib / 1024.0)


def _num(v):
    if v is None:
        return "-"
    if isinstance(v, list):
        return ", ".join(_num(x) for x in v)
    return ("%d" % v) if float(v).is_integer() else ("%.2f" % v)


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _quick(out):
    return " (quick run: small counts, not figures to quote)" if out.get("quick") else ""


def latency(out):
    n = out["containers"]
    head = ["%d real containers, 2 ports each" % n, "p50", "p99", "max", "missing"]
    rows = []
    for what, label in (("register", "start event -> keys put"), ("deregister", "die event -> keys deleted")):
        for how, name in (("events", "events"), ("polling", "polling every %d ms" % out["interval_ms"])):
            s = out[how][what]
            rows.append(["%s, %s" % (label, name), _ms(s["p50"]), _ms(s["p99"]), _ms(s["max"]), s["missing"]])
        r = out["ratio"][what]
        rows.append(["%s: polling / events" % label] + ["%.0f x" % r[q] if r[q] else "-"
                                                        for q in ("p50", "p99", "max")] + [""])
    return "Latency%s\n\n%s" % (_quick(out), _table(head, rows))


def bulk(out):
    head = ["real containers running", "API", "registrar start -> all keys (median)", "runs", "CPU (median)"]
    rows = []
    for key, r in sorted(out["runs"].items(), key=lambda kv: (int(kv[0].split("/")[1]), kv[0])):
        api, n = key.split("/")
        rows.append([n, "etcd " + api, _ms(r["median_ms"]), ", ".join("%.0f" % x for x in r["ms"]) + " ms",
                     _ms(r["median_cpu_ms"])])
    return "Bulk start-up%s\n\n%s" % (_quick(out), _table(head, rows))


def _cost_row(label, r):
    mem = r.get("memory_kib_end") or r.get("memory_kib") or {}
    return [label, _ms(r["cpu_ms_per_resync"]), "%.1f s" % r["cpu_s_per_hour"],
            _num(r["docker_requests_per_resync"]), _num(r["registry_requests_per_resync"]),
            _num(r["registry_writes_per_resync"]), _mib(mem.get("VmRSS")), _mib(mem.get("VmHWM")),
            _mib(mem.get("RssAnon"))]


COST_HEAD = ["CPU per resync", "CPU per hour", "Docker requests / resync", "registry requests / resync",
             "registry writes / resync", "RSS", "peak RSS", "private (RssAnon)"]


def idle(out):
    head = ["%d real containers, idle" % out["containers"]] + COST_HEAD
    rows = [_cost_row(cfg, r) for cfg, r in out["configs"].items()]
    return "Idle cost, interval %d ms, ttl %d ms%s\n\n%s" % (out["interval_ms"], out["ttl_ms"], _quick(out),
                                                          _table(head, rows))


def drift(out):
    head = ["entry changed by hand (%d real containers)" % out["containers"], "p50", "p99", "max", "rounds",
            "not repaired"]
    rows = []
    for api, r in out["runs"].items():
        for how in ("delete", "overwrite"):
            if how in r:
                s = r[how]
                rows.append(["%s: %s -> written back" % ("etcd " + api if api != "consul" else "Consul agent", how),
                             _ms(s["p50"]), _ms(s["p99"]), _ms(s["max"]), s["tried"], s["missing"]])
    return "Drift repair%s\n\n%s" % (_quick(out), _table(head, rows))


def scale(out):
    head = ["SYNTHETIC containers", "backend, mode", "start -> all entries", "CPU for it"] + COST_HEAD
    rows, errors = [], []
    for key, r in sorted(out["runs"].items(), key=lambda kv: (int(kv[0].split("/")[1]), kv[0])):
        cfg, n = key.split("/")
        if "error" in r:
            errors.append("- %s, %s: %s" % (n, cfg, r["error"].splitlines()[0]))
            continue
        row = _cost_row(cfg, r)
        rows.append([n, row[0], _ms(r["bulk_ms"]), _ms(r["bulk_cpu_ms"])] + row[1:])
    text = "Scale, synthetic containers from the replay server, %d quiet resyncs each%s\n\n%s" % (
        out["resyncs"], _quick(out), _table(head, rows))
    if out.get("left_out"):
        text += "\n\nNot run (the Consul stand-in fills in N^2): " + ", ".join(out["left_out"])
    if errors:
        text += "\n\nFailed:\n" + "\n".join(errors)
    bursts = [(k, r["burst"]) for k, r in out["runs"].items() if "burst" in r]
    for key, b in bursts:
        bhead = ["burst of %d on %d running (%s)" % (b["containers"], b["running_before"], key.split("/")[0]),
                 "p50", "p99", "max", "event sent -> last key", "events sent in", "CPU", "Docker requests"]
        brows = [[what, _ms(b[what]["p50"]), _ms(b[what]["p99"]), _ms(b[what]["max"]), _ms(b[what]["all_ms"]),
                  _ms(b[what]["events_sent_ms"]), _ms(b[what]["cpu_ms"]), b[what]["docker_requests"]]
                 for what in ("start", "remove")]
        text += "\n\n" + _table(bhead, brows)
    return text


def part(name, out):
    if "error" in out:
        return "%s failed: %s" % (name, out["error"])
    return globals()[name](out)


def tables(results):
    m = results.get("machine", {})
    lines = ["Machine: %s cores (%s), %s MiB, %s, kernel %s, %s, %s" % (
        m.get("cpus"), m.get("cpu"), m.get("memory_mib"), m.get("os"), m.get("kernel"), m.get("docker"),
        m.get("etcd")),
        "Engine: %s (%s)" % (m.get("engine_commit"), m.get("registrar")),
        "Command: %s" % results.get("command"), ""]
    for name in ("latency", "bulk", "idle", "drift", "scale"):
        out = results.get("parts", {}).get(name)
        if out is not None:
            lines += ["finished %s, %s s" % (out.get("finished"), out.get("seconds")), part(name, out), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    with open(sys.argv[1]) as f:
        print(tables(json.load(f)))
