"""drift.py: someone changes the registry behind registrar's back.  With
100 real containers registered, one entry at a time is deleted by hand
(etcd: a v3 deleterange or a v2 DELETE; Consul: the agent's deregister)
or overwritten with another value, at a random moment of the interval;
the figure is the time until registrar has written it back.

etcd's side is seen by the watch: from the delete (or the overwrite) to
the put that restores the value.  Consul's by polling the agent every
5 ms (the stand-in has no watch on agent services).  An entry not back
within two intervals and two seconds counts as not repaired; after
`give_up` such misses in a row the rest are not tried."""
import json
import random
import time

import probes
import registries

INTERVAL = 3000


def _etcd_round(registry, key, value, overwrite, timeout):
    mark = registry.watch.mark()
    if overwrite:
        tampered = json.dumps(dict(json.loads(value), tampered=True))
        registry.put(key, tampered)
    else:
        registry.delete(key)

    def changed(w):
        return any(k == key for _, _, k, _ in w.since(mark))
    if not registry.watch.wait(changed, 10):
        raise AssertionError("the watch did not see the change of %s" % key)
    t_change = next(when for when, _, k, _ in registry.watch.since(mark) if k == key)

    def restored(w):
        return any(k == key and kind == "PUT" and v == value for _, kind, k, v in w.since(mark))
    if not registry.watch.wait(restored, timeout):
        registry.put(key, value)        # put back by hand: the next rounds start from the same state
        return None
    t_back = next(when for when, kind, k, v in registry.watch.since(mark)
                  if k == key and kind == "PUT" and v == value)
    return (t_back - t_change) * 1000


def _consul_round(registry, sid, service, timeout):
    consul = registry.consul
    status, _ = consul.put("/v1/agent/service/deregister/" + sid)
    t_change = time.monotonic()
    if status != 200:
        raise AssertionError("deregister %s answered %d" % (sid, status))
    deadline = t_change + timeout
    while time.monotonic() < deadline:
        status, _ = consul.get("/v1/agent/service/" + sid)
        if status == 200:
            return (time.monotonic() - t_change) * 1000
        time.sleep(0.005)
    body = {"ID": sid, "Name": service["Service"], "Address": service["Address"], "Port": service["Port"],
            "Tags": service.get("Tags") or [], "Meta": service.get("Meta") or {}}
    consul.put("/v1/agent/service/register", json.dumps(body).encode())
    return None


def rounds(registry, how, count, give_up, timeout):
    """`count` deletions (or overwrites) of entries taken in turn."""
    entries = sorted(registry.entries().items())
    rng = random.Random(15)
    out, misses = [], 0
    for i in range(count):
        time.sleep(rng.uniform(0, INTERVAL / 1000.0))
        name, value = entries[i % len(entries)]
        if isinstance(registry, registries.ConsulRegistry):
            ms = _consul_round(registry, name, value, timeout)
        else:
            ms = _etcd_round(registry, name, value, how == "overwrite", timeout)
        out.append(ms)
        misses = misses + 1 if ms is None else 0
        if misses >= give_up:
            break
    return out


def run(ctx):
    n = 20 if ctx.quick else 100
    deletions = 5 if ctx.quick else ctx.args.drift_deletions
    overwrites = 2 if ctx.quick else 10
    give_up = 3
    timeout = 2 * INTERVAL / 1000.0 + 2
    ctx.running(n)
    out = {"containers": n, "interval_ms": INTERVAL, "timeout_s": timeout, "give_up_after": give_up, "runs": {}}
    for api in ("v3", "v2", "consul"):
        load = probes.SystemLoad()
        with registries.fresh(ctx, api) as registry:
            reg = ctx.registrar_for(api, "prune", ctx.docker().socket, interval=INTERVAL, consul=registry.consul)
            try:
                reg.start()
                registry.wait_entries(2 * n, timeout=120)
                reg.wait_resyncs(1, since=reg.mark())
                row = {}
                hows = ("delete",) if api == "consul" else ("delete", "overwrite")
                for how in hows:
                    samples = rounds(registry, how, deletions if how == "delete" else overwrites, give_up, timeout)
                    row[how] = dict(probes.summary(samples), tried=len(samples),
                                    planned=deletions if how == "delete" else overwrites,
                                    samples_ms=[None if s is None else round(s, 2) for s in samples])
            finally:
                reg.stop()
        row["load"] = load.finish()
        out["runs"][api] = row
    return out
