"""scale.py: beyond what one machine runs as real containers.  Docker is
the replay server (replay_docker.py): SYNTHETIC containers, each a copy of
one container a real dockerd ran, with its own id, name, host ports and
address.  The registries are real (etcd 3.4, v2 and v3) or the Consul
stand-in.  For 100, 1 000 and 10 000 containers (two ports each), and each
backend and mode:

  - bulk: registrar started -> all 2N entries (etcd: seen by a watch;
    Consul: by polling the stand-in), and the CPU registrar used for it
  - then `resyncs` quiet resyncs, each a full listing of N containers:
    CPU per resync, Docker requests per resync (counted by the replay
    server), registry requests and writes per resync (counted by etcd,
    or the stand-in)
  - memory at the end: peak resident (VmHWM), resident, private

and, with 1 000 running on etcd v3 (prune), a burst: the replay server
sends the start events of 1 000 more containers back to back; the time
until their 2 000 keys are in etcd, then the same for their removal."""
import re
import time

import idle
import parts
import probes
import registries

CONFIGS = (("v3", "prune"), ("v3", "ttl"), ("v2", "prune"), ("v2", "ttl"), ("consul", "prune"), ("consul", "ttl"))
QUICK_CONFIGS = (("v3", "prune"), ("v2", "ttl"), ("consul", "prune"))
INTERVAL = 3000
# The Consul stand-in (tests/consul_standin) redoes its anti-entropy over
# every service on each registration, so filling it costs N^2: 2 000
# services take minutes, 20 000 would take hours.  Above this many
# containers the Consul rows are left out (--consul-max, 100 by default).



def _latencies(watch, mark, sent, kind):
    """ms from each container's event (sent: [(id, time)]) to the later of
    its two keys' `kind`, and the time of the last of them."""
    by_host = {}
    for when, k, key, _ in watch.since(mark):
        if k == kind:
            by_host.setdefault(key.rsplit("/", 1)[-1], {}).setdefault(key, when)
    out, last = [], None
    for cid, t_sent in sent:
        keys = by_host.get(parts.hostname_of(cid), {})
        if len(keys) < 2:
            out.append(None)
            continue
        t = max(keys.values())
        last = t if last is None else max(last, t)
        out.append((t - t_sent) * 1000)
    return out, last


def burst(reg, registry, replay, base, count):
    """count containers start at once (events only), then are removed at once."""
    watch = registry.watch
    out = {"running_before": base, "containers": count}
    for what, kind, target in (("start", "PUT", 2 * (base + count)), ("remove", "DELETE", 2 * base)):
        mark = watch.mark()
        cpu0, docker0 = probes.cpu_seconds(reg.pid), replay.call(counts=True)
        if what == "start":
            sent = [tuple(x) for x in replay.call(start=count)["started"]]
            ids = [cid for cid, _ in sent]
        else:
            sent = [tuple(x) for x in replay.call(die=ids)["died"]]
        if not watch.wait(lambda w: w.count() == target, timeout=300):
            raise AssertionError("burst %s: %d keys, wanted %d" % (what, watch.count(), target))
        lat, last = _latencies(watch, mark, sent, kind)
        out[what] = dict(probes.summary(lat), all_ms=round((last - sent[0][1]) * 1000, 1),
                         events_sent_ms=round((sent[-1][1] - sent[0][1]) * 1000, 1),
                         cpu_ms=round((probes.cpu_seconds(reg.pid) - cpu0) * 1000, 1),
                         docker_requests=idle._requests(docker0, replay.call(counts=True)))
    return out


def _wait_filled(reg, registry, count, timeout):
    """Waits for `count` entries, and gives up early once registrar has
    logged three times that the registry still refuses its writes with a
    4xx status (etcd's "request is too large"): then waiting longer only
    shows the same refusal.  A timeout is waited out: it may pass."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            return registry.wait_entries(count, timeout=max(0.1, min(5, deadline - time.monotonic())))
        except AssertionError as e:
            refused = re.findall(r"registry still failing: (.*status 4\d\d.*)", reg.log())
            if len(refused) >= 3 or time.monotonic() >= deadline:
                raise AssertionError("%s (waited %.0f s in all); registrar: %s" % (
                    e, time.monotonic() - started, refused[-1] if refused else "no refusal logged"))


def one(ctx, replay, n, api, mode, resyncs, burst_count):
    row = {}
    load = probes.SystemLoad()
    with registries.fresh(ctx, api) as registry:
        docker0 = replay.call(counts=True)
        reg = ctx.registrar_for(api, mode, replay.socket, interval=INTERVAL, consul=registry.consul)
        try:
            reg.start()
            t_all = _wait_filled(reg, registry, 2 * n, timeout=900)
            row["bulk_ms"] = round((t_all - reg.started) * 1000, 1)
            row["bulk_cpu_ms"] = round(probes.cpu_seconds(reg.pid) * 1000, 1)
            row["bulk_docker_requests"] = idle._requests(docker0, replay.call(counts=True))
            row.update(idle.measure_window(reg, registry, resyncs * INTERVAL / 1000.0 - 0.5, settle=2,
                                           docker=replay))
            if burst_count:
                row["burst"] = burst(reg, registry, replay, n, burst_count)
            row["memory_kib_end"] = probes.memory(reg.pid)
        finally:
            reg.stop()
    row["load"] = load.finish()
    return row


def run(ctx):
    sizes = (100, 1000) if ctx.quick else tuple(int(x) for x in ctx.args.scale_sizes.split(","))
    resyncs = 2 if ctx.quick else 5
    burst_count = 100 if ctx.quick else 1000
    ctx.running(0)
    out = {"synthetic": True, "sizes": list(sizes), "ports": 2, "interval_ms": INTERVAL, "ttl_ms": 12000,
           "resyncs": resyncs, "consul_max": ctx.args.consul_max, "runs": {}}
    for n in sizes:
        replay = parts.ReplayServer(ctx.workdir, containers=n)
        try:
            for api, mode in QUICK_CONFIGS if ctx.quick else CONFIGS:
                if ctx.args.scale_configs and "%s %s" % (api, mode) not in ctx.args.scale_configs.split(","):
                    continue
                if api == "consul" and n > ctx.args.consul_max:
                    out.setdefault("left_out", []).append("%s %s/%d" % (api, mode, n))
                    continue
                with_burst = burst_count if (n == 1000 and (api, mode) == ("v3", "prune")) else 0
                print("   %d containers, %s %s%s" % (n, api, mode, ", then a burst" if with_burst else ""), flush=True)
                try:
                    out["runs"]["%s %s/%d" % (api, mode, n)] = one(ctx, replay, n, api, mode, resyncs, with_burst)
                except AssertionError as e:
                    out["runs"]["%s %s/%d" % (api, mode, n)] = {"error": str(e)[:2000]}
                    print("   failed: %s" % str(e)[:2000], flush=True)
                time.sleep(1)
        finally:
            replay.cleanup()
    return out
