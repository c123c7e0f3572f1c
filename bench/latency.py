"""latency.py: Docker's start (die) event, as a client of the event stream
sees it -> the container's keys put (deleted), as an etcd v3 watch sees
them.  Real containers, created one after another and then removed one
after another, each with two published ports; the figure per container is
its later key.

Two registrar runs: with Docker's events (registrar as it is), and with
events withheld (parts.EventlessDocker) and a 3000 ms interval, which is
the old tool's polling."""
import os
import time

import parts
import probes


def _per_container(ids, events, watch, mark, action, kind, ports=2):
    """ms from each container's event to the later of its keys' put (or
    delete); None when a key never came."""
    by_host = {}
    for when, k, key, _ in watch.since(mark):
        if k == kind:
            by_host.setdefault(key.rsplit("/", 1)[-1], {}).setdefault(key, when)
    out = []
    for cid in ids:
        keys = by_host.get(parts.hostname_of(cid), {})
        t_event = events.when(cid, action)
        if len(keys) < ports or t_event is None:
            out.append(None)
        else:
            out.append((max(keys.values()) - t_event) * 1000)
    return out


def measure(ctx, how, count):
    docker = ctx.docker()
    etcd = ctx.fresh_etcd()
    watch = probes.V3Watch(etcd, "/services/")
    events = probes.DockerEvents(docker.socket)
    proxy = None
    socket_path = docker.socket
    if how == "polling":
        proxy = parts.EventlessDocker(docker.socket, os.path.join(ctx.workdir, "eventless.sock"))
        socket_path = proxy.path
    reg = ctx.registrar_for("v3", "prune", socket_path, interval=3000)
    load = probes.SystemLoad()
    try:
        reg.start()
        reg.wait_resyncs(1)
        mark = watch.mark()
        names = ["lat-%s-%d" % (how, i) for i in range(count)]
        ids = [parts.run_container(docker, ctx.image(), name) for name in names]
        if not watch.wait_count(2 * count, timeout=60):
            raise AssertionError("%s: %d of %d keys after 60 s" % (how, watch.count(), 2 * count))
        put = _per_container(ids, events, watch, mark, "start", "PUT")
        mark = watch.mark()
        for cid in ids:
            parts.remove_container(docker, cid)
        if not watch.wait(lambda w: w.count() == 0, timeout=60):
            raise AssertionError("%s: %d keys left 60 s after the removals" % (how, watch.count()))
        gone = _per_container(ids, events, watch, mark, "die", "DELETE")
    finally:
        reg.stop()
        watch.close()
        events.close()
        if proxy is not None:
            proxy.cleanup()
    return {"register": probes.summary(put), "deregister": probes.summary(gone),
            "register_ms": put, "deregister_ms": gone, "load": load.finish()}


def run(ctx):
    count = 20 if ctx.quick else ctx.args.latency_containers
    out = {"containers": count, "ports": 2, "interval_ms": 3000}
    for how in ("events", "polling"):
        out[how] = measure(ctx, how, count)
        time.sleep(1)
    out["ratio"] = {what: {q: _ratio(out["polling"][what][q], out["events"][what][q]) for q in ("p50", "p99", "max")}
                    for what in ("register", "deregister")}
    return out


def _ratio(a, b):
    return round(a / b, 1) if a is not None and b else None
