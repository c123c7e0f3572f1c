"""probes.py: what the benchmarks measure with, from outside registrar.

  - V3Watch, V2Watch: when each key was put or deleted, as a client of
    etcd's watch sees it (v3: the gateway's streaming /v3/watch; v2:
    ?wait=true&recursive=true&stream=true)
  - DockerEvents: when each container's events arrived, as a client of
    Docker's event stream sees them
  - cpu_seconds, memory: the registrar process, from /proc
  - EtcdCounters: requests and key writes etcd itself counted (/metrics)
  - summary: p50 / p99 / max of a list of samples
  - SystemLoad: how busy the machine was while a part ran

Times are time.monotonic() (CLOCK_MONOTONIC, the same in every process).
"""
import base64
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.request


def _b64(s):
    return base64.b64encode(s.encode()).decode()


class _KeyLog:
    """Every put and delete of a key, in arrival order, with its time."""

    def __init__(self):
        self.cond = threading.Condition()
        self.events = []                # (time, kind "PUT"/"DELETE", key, value or None)
        self.present = {}               # key -> value, what the watch has seen so far

    def record(self, when, kind, key, value):
        with self.cond:
            self.events.append((when, kind, key, value))
            if kind == "PUT":
                self.present[key] = value
            else:
                self.present.pop(key, None)
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.events)

    def since(self, mark):
        with self.cond:
            return list(self.events[mark:])

    def count(self):
        with self.cond:
            return len(self.present)

    def wait(self, predicate, timeout):
        """Waits until predicate(self) is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def wait_count(self, n, timeout):
        return self.wait(lambda s: len(s.present) >= n, timeout)

    def first(self, key, kind, after=0.0, mark=0):
        """Time of the first `kind` of `key` at or after `after`."""
        with self.cond:
            for when, k, name, _ in self.events[mark:]:
                if name == key and k == kind and when >= after:
                    return when
        return None

    def last_time(self):
        with self.cond:
            return self.events[-1][0] if self.events else None


class _WatchStream(_KeyLog):
    """A watch read by a thread of its own from self.resp (_follow), over
    self.conn, until close()."""

    def _read(self):
        try:
            self._follow()
        except (OSError, http.client.HTTPException, ValueError):
            pass                        # closed: the watch is over

    def close(self):
        _hang_up(self.conn.sock)


class V3Watch(_WatchStream):
    """An etcd v3 watch (JSON gateway) on every key starting with prefix."""

    def __init__(self, etcd, prefix):
        super().__init__()
        host, port = etcd.host_port.split(":")
        self.conn = http.client.HTTPConnection(host, int(port))
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = json.dumps({"create_request": {"key": _b64(prefix), "range_end": _b64(end)}})
        self.conn.request("POST", "/v3/watch", body=body)
        self.resp = self.conn.getresponse()
        self.created = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.created.wait(10):
            raise RuntimeError("etcd did not create the watch on %s" % prefix)

    def _follow(self):
        for line in self.resp:
            now = time.monotonic()
            result = json.loads(line).get("result", {})
            if result.get("created"):
                self.created.set()
            for ev in result.get("events", []):
                kv = ev["kv"]
                value = base64.b64decode(kv.get("value", "")).decode() if ev.get("type") != "DELETE" else None
                self.record(now, ev.get("type", "PUT"), base64.b64decode(kv["key"]).decode(), value)


class V2Watch(_WatchStream):
    """An etcd v2 streaming watch on a directory, recursively."""

    PUTS = ("set", "create", "update", "compareAndSwap")

    def __init__(self, etcd, prefix):
        super().__init__()
        host, port = etcd.host_port.split(":")
        self.conn = http.client.HTTPConnection(host, int(port))
        self.conn.request("GET", "/v2/keys%s?wait=true&recursive=true&stream=true" % prefix.rstrip("/"))
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError("etcd v2 watch on %s: status %d" % (prefix, self.resp.status))
        threading.Thread(target=self._read, daemon=True).start()

    def _follow(self):
        while True:
            line = self.resp.readline()
            if not line:
                return
            now = time.monotonic()
            if not line.strip():
                continue
            ev = json.loads(line)
            node = ev.get("node", {})
            if node.get("dir"):
                continue
            kind = "PUT" if ev.get("action") in self.PUTS else "DELETE"
            self.record(now, kind, node.get("key"), node.get("value") if kind == "PUT" else None)



class DockerEvents:
    """Docker's container events, read as registrar reads them: when each
    (container, action) first arrived."""

    def __init__(self, socket_path):
        self.seen = {}
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(socket_path)
        self.sock.sendall(b"GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1\r\n"
                          b"Host: docker\r\n\r\n")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            now = time.monotonic()
            buf += data
            with self.cond:
                for m in re.finditer(rb'"Action":"(\w+)","Actor":\{"ID":"([0-9a-f]{64})"', buf):
                    self.seen.setdefault((m.group(2).decode(), m.group(1).decode()), now)
                self.cond.notify_all()
            buf = buf[-4096:]

    def when(self, cid, action):
        with self.cond:
            return self.seen.get((cid, action))

    def wait(self, cid, action, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while (cid, action) not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s event of %s within %ss" % (action, cid[:12], timeout))
                self.cond.wait(left)
            return self.seen[(cid, action)]

    def close(self):
        _hang_up(self.sock)


def _hang_up(sock):
    """Ends a stream a reader thread is blocked on (closing its file would
    wait for that reader's lock instead)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


# ---- the registrar process ------------------------------------------------------

def cpu_seconds(pid):
    """CPU time of every thread of pid, in seconds, to the nanosecond:
    /proc/<pid>/task/*/schedstat (utime + stime in /proc/<pid>/stat
    counts in 10 ms ticks, too coarse for one resync)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def memory(pid):
    """KiB: VmRSS, VmHWM (peak resident), RssAnon (private, anonymous)
    from status; Private_Dirty summed from smaps_rollup."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    out["Private_Dirty"] = int(line.split()[1])
    except OSError:
        pass
    return out


# ---- what etcd counted --------------------------------------------------------------

class EtcdCounters:
    """Requests and key writes as etcd counts them in /metrics: nothing sits
    between registrar and etcd.  v3 requests are gRPC calls started (the
    JSON gateway makes one per HTTP request), v2 requests the keys API's
    HTTP requests; v3 writes are keys put or deleted (a key and its
    ownership record are two), v2 writes the store's writes."""

    def __init__(self, etcd):
        self.url = "http://%s/metrics" % etcd.host_port

    def snapshot(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        text = opener.open(self.url, timeout=10).read().decode()
        c = {"v3_requests": 0.0, "v3_writes": 0.0, "v2_requests": 0.0, "v2_writes": 0.0}
        methods, v2_methods = {}, {}
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            name, _, value = line.rpartition(" ")
            metric = name.split("{")[0]
            v = float(value)
            if metric == "grpc_server_started_total":
                c["v3_requests"] += v
                m = re.search(r'grpc_method="(\w+)"', name)
                if m and v:
                    methods[m.group(1)] = methods.get(m.group(1), 0) + v
            elif metric in ("etcd_mvcc_put_total", "etcd_mvcc_delete_total"):
                c["v3_writes"] += v
            elif metric == "etcd_http_received_total":
                c["v2_requests"] += v
                m = re.search(r'method="(\w+)"', name)
                if m and v:
                    v2_methods[m.group(1)] = v2_methods.get(m.group(1), 0) + v
            elif metric == "etcd_debugging_store_writes_total":
                c["v2_writes"] += v
        c["v3_methods"], c["v2_methods"] = methods, v2_methods
        return c

    @staticmethod
    def delta(before, after):
        out = {k: after[k] - before[k] for k in after if not k.endswith("_methods")}
        for k in ("v3_methods", "v2_methods"):
            out[k] = {m: after[k][m] - before[k].get(m, 0) for m in after[k] if after[k][m] - before[k].get(m, 0)}
        return out


# ---- figures ----------------------------------------------------------------------------

def percentile(sorted_samples, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_samples:
        return None
    rank = max(1, int(round(q / 100.0 * len(sorted_samples) + 0.5 - 1e-9)))
    return sorted_samples[min(rank, len(sorted_samples)) - 1]


def summary(samples):
    """{n, p50, p99, max, mean} of samples (ms); missing ones (None) are
    counted as `missing`."""
    got = sorted(s for s in samples if s is not None)
    return {"n": len(got), "missing": len(samples) - len(got), "p50": percentile(got, 50),
            "p99": percentile(got, 99), "max": got[-1] if got else None,
            "mean": sum(got) / len(got) if got else None}


class SystemLoad:
    """The machine while a part runs: load average at the start and end,
    how busy its CPUs were, and how much of that was not this bench (its
    process tree: daemons, registrar, containers), in cores."""

    def __init__(self):
        self.start_load = _loadavg()
        self.start = _cpu_jiffies()
        self.start_ours = _tree_jiffies(os.getpid())
        self.t0 = time.monotonic()

    def finish(self):
        end, ours = _cpu_jiffies(), _tree_jiffies(os.getpid())
        total = max(1, end[1] - self.start[1])
        cpus = os.cpu_count() or 1
        busy = (end[0] - self.start[0]) / total
        others = max(0.0, busy - (ours - self.start_ours) / total)
        return {"load_start": self.start_load, "load_end": _loadavg(), "cpu_busy": round(busy, 3),
                "other_cores": round(others * cpus, 2), "seconds": round(time.monotonic() - self.t0, 1)}


def _loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def _cpu_jiffies():
    """(busy, total) jiffies over every CPU since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _tree_jiffies(root):
    """CPU jiffies of root and its live descendants, with what the
    children they reaped used (cutime, cstime)."""
    parent, used = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(x) for x in fields[11:15])
    total, todo, seen = 0, [root], set()
    children = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += used.get(pid, 0)
        todo += children.get(pid, [])
    return total
