"""registries.py: the registry a registrar run writes to, as the bench
sees it: emptied before the run, watched (when each entry came and went),
and counting the requests it served.

    with registries.fresh(ctx, "v3") as r:      # "v3", "v2" or "consul"
        ... r.wait_entries(n), r.counts(), r.delta(a, b), r.entries() ...
"""
import contextlib
import json
import time

import parts
import probes


class EtcdRegistry:
    """etcd (v2 or v3 keyspace): a watch on /services/ and etcd's counters."""

    consul = None

    def __init__(self, ctx, api):
        self.api = api
        self.etcd = ctx.fresh_etcd()
        self.counters = probes.EtcdCounters(self.etcd)
        self.watch = probes.V3Watch(self.etcd, "/services/") if api == "v3" else \
            probes.V2Watch(self.etcd, "/services/")

    def wait_entries(self, n, timeout):
        if not self.watch.wait_count(n, timeout):
            raise AssertionError("etcd %s: %d of %d keys after %s s" % (self.api, self.watch.count(), n, timeout))
        return self.watch.last_time()

    def counts(self):
        return self.counters.snapshot()

    def delta(self, before, after):
        d = probes.EtcdCounters.delta(before, after)
        return {"requests": d[self.api + "_requests"], "writes": d[self.api + "_writes"],
                "kinds": d[self.api + "_methods"]}

    def entries(self):
        """{key: value} the watch has seen, now."""
        with self.watch.cond:
            return dict(self.watch.present)

    def delete(self, key):
        if self.api == "v3":
            self.etcd.v3_delete(key)
        else:
            self.etcd.v2_delete(key)

    def put(self, key, value):
        if self.api == "v3":
            self.etcd.v3_put(key, value)
        else:
            self.etcd.v2_put(key, value)

    def close(self):
        self.watch.close()


class ConsulRegistry:
    """The Consul stand-in (agent API), a process of its own: its request
    log counts, a poll of /v1/agent/services sees the entries."""

    def __init__(self, ctx):
        self.consul = parts.ConsulStandin(ctx.workdir)

    def services(self):
        status, body = self.consul.get("/v1/agent/services")
        if status != 200:
            raise AssertionError("consul stand-in: GET /v1/agent/services answered %d" % status)
        return {sid: s for sid, s in json.loads(body).items()
                if (s.get("Meta") or {}).get("registrar_host") == "bench"}

    def wait_entries(self, n, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = len(self.services())
            if got >= n:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError("consul: %d of %d services after %s s" % (got, n, timeout))
            time.sleep(max(0.05, n / 20000.0))     # each poll is a listing the stand-in builds

    def counts(self):
        return self.consul.requests()

    def delta(self, before, after):
        new = after[len(before):]
        kinds = {}
        for method, path in new:
            kind = method + " " + "/".join(path.split("/")[:4])
            kinds[kind] = kinds.get(kind, 0) + 1
        return {"requests": len(new), "writes": sum(1 for m, _ in new if m in ("PUT", "DELETE", "POST")),
                "kinds": kinds}

    def entries(self):
        return self.services()

    def close(self):
        self.consul.cleanup()


@contextlib.contextmanager
def fresh(ctx, api):
    r = ConsulRegistry(ctx) if api == "consul" else EtcdRegistry(ctx, api)
    try:
        yield r
    finally:
        r.close()
