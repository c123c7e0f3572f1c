"""bulk.py: start-up with containers already running.  N real containers
(two published ports each) run; registrar is started; the figure is the
time from starting the registrar process to the last of the 2N keys, as
a watch on etcd sees it (v3: /v3/watch, v2: a streaming wait), and the
CPU registrar used until then.  Each run starts from an empty registry;
the median of the runs is reported."""
import statistics
import time

import probes


def watch_for(api, etcd):
    return probes.V3Watch(etcd, "/services/") if api == "v3" else probes.V2Watch(etcd, "/services/")


def once(ctx, api, n):
    etcd = ctx.fresh_etcd()
    watch = watch_for(api, etcd)
    reg = ctx.registrar_for(api, "prune", ctx.docker().socket)
    try:
        reg.start()
        if not watch.wait_count(2 * n, timeout=120):
            raise AssertionError("%s: %d of %d keys after 120 s" % (api, watch.count(), 2 * n))
        took = watch.last_time() - reg.started
        cpu = probes.cpu_seconds(reg.pid)
    finally:
        reg.stop()
        watch.close()
    return took * 1000, cpu * 1000


def run(ctx):
    sizes = (20,) if ctx.quick else (100, 300)
    repeat = 1 if ctx.quick else ctx.args.repeat
    out = {"sizes": list(sizes), "ports": 2, "repeat": repeat, "runs": {}}
    for n in sizes:
        ctx.running(n)
        for api in ("v3", "v2"):
            load = probes.SystemLoad()
            runs = []
            for _ in range(repeat):
                runs.append(once(ctx, api, n))
                time.sleep(0.5)
            out["runs"]["%s/%d" % (api, n)] = {
                "ms": [round(r[0], 1) for r in runs], "cpu_ms": [round(r[1], 1) for r in runs],
                "median_ms": round(statistics.median(r[0] for r in runs), 1),
                "median_cpu_ms": round(statistics.median(r[1] for r in runs), 1),
                "load": load.finish()}
    return out
