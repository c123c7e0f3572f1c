"""idle.py: what a quiet host costs.  100 real containers (two published
ports each) run, registrar has registered them and nothing changes; over
a window that starts and ends at a resync it costs:

  - CPU (every thread, /proc/<pid>/task/*/schedstat), per resync and per
    hour (the window, 60 s by default, extrapolated to an hour)
  - Docker requests per resync (registrar's own resync log line)
  - registry requests and writes per resync, counted by the registry:
    etcd's /metrics, the Consul stand-in's request log
  - memory at the end: resident, peak, private (RssAnon, Private_Dirty)

at the default interval (3000 ms; ttl 12000 ms in ttl mode)."""
import time

import parts
import probes
import registries


CONFIGS = (("v3", "prune"), ("v3", "ttl"), ("v2", "ttl"), ("v2", "prune"), ("consul", "prune"), ("consul", "ttl"))
QUICK_CONFIGS = (("v3", "prune"), ("v2", "ttl"))


def measure_window(reg, registry, seconds, settle=1, docker=None):
    """From a resync to the first resync `seconds` later: what it cost.
    docker: a replay server, whose request counts are read too."""
    mark = reg.wait_resyncs(settle, since=reg.mark(), timeout=max(120, seconds))
    docker0 = docker.call(counts=True) if docker else None
    cpu0, t0, counts0 = probes.cpu_seconds(reg.pid), time.monotonic(), registry.counts()
    time.sleep(seconds)
    end = reg.wait_resyncs(1, since=reg.mark(), timeout=120)
    cpu1, t1, counts1 = probes.cpu_seconds(reg.pid), time.monotonic(), registry.counts()
    docker1 = docker.call(counts=True) if docker else None
    resyncs = reg.resyncs(mark)
    resyncs = resyncs[:len(parts.RESYNC.findall(reg.log()[mark:end]))]
    k = max(1, len(resyncs))
    spent = registry.delta(counts0, counts1)
    return {"window_s": round(t1 - t0, 2), "resyncs": len(resyncs),
            "cpu_ms_per_resync": round((cpu1 - cpu0) * 1000 / k, 2),
            "cpu_s_per_hour": round((cpu1 - cpu0) / (t1 - t0) * 3600, 2),
            "docker_requests_per_resync": sorted(set(r[1] for r in resyncs)),
            "registry_requests_per_resync": round(spent["requests"] / k, 2),
            "registry_writes_per_resync": round(spent["writes"] / k, 2),
            "registry_requests_by_kind": {m: round(v / k, 2) for m, v in spent["kinds"].items()},
            "memory_kib": probes.memory(reg.pid),
            **({"docker_requests_per_resync_at_server": round(_requests(docker0, docker1) / k, 2)}
               if docker else {})}


def _requests(before, after):
    """Requests a replay server answered between two of its counts."""
    kinds = ("list", "inspect", "version", "ping", "kill", "events", "other")
    return sum(after.get(x, 0) - before.get(x, 0) for x in kinds)


def run(ctx):
    n = 20 if ctx.quick else 100
    seconds = 10 if ctx.quick else ctx.args.idle_seconds
    ctx.running(n)
    out = {"containers": n, "ports": 2, "interval_ms": 3000, "ttl_ms": 12000, "window_s": seconds,
           "configs": {}}
    for api, mode in QUICK_CONFIGS if ctx.quick else CONFIGS:
        load = probes.SystemLoad()
        with registries.fresh(ctx, api) as registry:
            reg = ctx.registrar_for(api, mode, ctx.docker().socket, consul=registry.consul)
            try:
                reg.start()
                registry.wait_entries(2 * n, timeout=120)
                row = measure_window(reg, registry, seconds, settle=2)
            finally:
                reg.stop()
        row["load"] = load.finish()
        out["configs"]["%s %s" % (api, mode)] = row
    return out
