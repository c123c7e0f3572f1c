#!/usr/bin/env python3
"""Measures registrar on real parts: a private dockerd and etcd (v3), as
the integration tests start them.  Prints a markdown table:

  - one container: Docker's start (die) event, as a client of the event
    stream sees it -> the key's put (delete), as an etcd watch sees it
  - a burst: N containers started at once, then removed at once: the
    worst of those delays, and how many keys were left behind
  - idle: CPU time and Docker requests per resync with N containers, RSS

Figures depend on the machine; they are printed, never asserted.
    sudo bench/burst.py [--containers 50] [--idle-seconds 30] [--registrar build/registrar]
"""
import argparse
import base64
import http.client
import json
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402


class Watch:
    """An etcd v3 watch on a prefix: when each key was put or deleted."""

    def __init__(self, etcd, prefix):
        self.seen = {}
        self.lock = threading.Lock()
        host, port = etcd.host_port.split(":")
        self.conn = http.client.HTTPConnection(host, int(port))
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = json.dumps({"create_request": {"key": base64.b64encode(prefix.encode()).decode(),
                                              "range_end": base64.b64encode(end.encode()).decode()}})
        self.conn.request("POST", "/v3/watch", body=body)
        self.resp = self.conn.getresponse()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.resp:
            now = time.monotonic()
            for ev in json.loads(line).get("result", {}).get("events", []):
                key = base64.b64decode(ev["kv"]["key"]).decode()
                with self.lock:
                    self.seen[(key, ev.get("type", "PUT"))] = now

    def when(self, key, kind="PUT"):
        with self.lock:
            return self.seen.get((key, kind))


class DockerEvents:
    """Docker's event stream, read as registrar reads it: when each
    container's start and die arrived."""

    def __init__(self, socket_path):
        import socket
        self.seen = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(socket_path)
        self.sock.sendall(b"GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1\r\n"
                          b"Host: docker\r\n\r\n")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            now = time.monotonic()
            buf += data
            for m in re.finditer(rb'"Action":"(start|die)","Actor":\{"ID":"([0-9a-f]{64})"', buf):
                with self.lock:
                    self.seen.setdefault((m.group(2).decode(), m.group(1).decode()), now)
            buf = buf[-4096:]

    def when(self, cid, action):
        with self.lock:
            return self.seen.get((cid, action))


def key_of(docker, cid, name):
    i = docker.inspect(cid)
    port = i["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    return "/services/%s/80/%s/%s" % (name, port, i["Config"]["Hostname"])


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def parallel(fn, items):
    out = [None] * len(items)

    def run(i):
        out[i] = fn(items[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument("--registrar", default=os.path.join(HERE, "..", "build", "registrar"))
    args = ap.parse_args()
    n = args.containers
    rows = []

    docker = h.Dockerd(userland_proxy=False)
    etcd = h.Etcd(enable_v2=False)
    try:
        docker.start()
        etcd.start()
        image = docker.import_busybox()
        watch = Watch(etcd, "/services/")
        events = DockerEvents(docker.socket)
        reg = h.Process([os.path.abspath(args.registrar), "run", "-B", "etcd3://" + etcd.host_port,
                         "-D", docker.socket, "-H", "bench", "-a", "10.0.0.1", "--log-level", "debug"],
                        inherit_env=False, env={"PATH": h.SYSTEM_PATH})
        reg.start()
        reg.wait_log(r"resync: 0 containers running")

        # one container at a time
        put, gone = [], []
        for i in range(20):
            name = "one%d" % i
            cid = docker.run("--name", name, "-e", "NAME=" + name, "-P", "--expose", "80", image, "sleep", "3600")
            key = key_of(docker, cid, name)
            h.wait_until(lambda: watch.when(key) and events.when(cid, "start"), timeout=10, message=key)
            put.append((watch.when(key) - events.when(cid, "start")) * 1000)
            docker.docker("rm", "-f", cid)
            h.wait_until(lambda: watch.when(key, "DELETE") and events.when(cid, "die"), timeout=10,
                         message="delete " + key)
            gone.append((watch.when(key, "DELETE") - events.when(cid, "die")) * 1000)
        put.sort()
        gone.sort()
        rows.append(("one container: Docker's `start` event -> key in etcd (median / max of 20)",
                     "%.1f ms / %.1f ms" % (put[10], put[-1])))
        rows.append(("one container: Docker's `die` event -> key gone (median / max of 20)",
                     "%.1f ms / %.1f ms" % (gone[10], gone[-1])))

        # a burst
        names = ["burst%d" % i for i in range(n)]
        t0 = time.monotonic()
        cids = parallel(lambda nm: docker.run("--name", nm, "-e", "NAME=" + nm, "-P", "--expose", "80",
                                              image, "sleep", "3600"), names)
        t_started = time.monotonic()
        keys = [key_of(docker, c, nm) for c, nm in zip(cids, names)]
        h.wait_until(lambda: all(watch.when(k) and events.when(c, "start") for k, c in zip(keys, cids)),
                     timeout=60, message="burst keys")
        worst = max(watch.when(k) - events.when(c, "start") for k, c in zip(keys, cids))
        rows.append(("%d started at once (the runs took %.1f s): worst `start` event -> key" % (n, t_started - t0),
                     "%.1f ms" % (worst * 1000)))
        t1 = time.monotonic()
        parallel(lambda c: docker.docker("rm", "-f", c), cids)
        t_removed = time.monotonic()
        h.wait_until(lambda: all(watch.when(k, "DELETE") and events.when(c, "die") for k, c in zip(keys, cids)),
                     timeout=60, message="burst deletes")
        worst = max(watch.when(k, "DELETE") - events.when(c, "die") for k, c in zip(keys, cids))
        rows.append(("%d removed at once (the removals took %.1f s): worst `die` event -> key gone"
                     % (n, t_removed - t1), "%.1f ms" % (worst * 1000)))
        left = etcd.v3_prefix("/services/")
        rows.append(("keys left behind after the burst", str(len(left))))

        # idle
        parallel(lambda nm: docker.run("--name", nm, "-e", "NAME=" + nm, "-P", "--expose", "80",
                                       image, "sleep", "3600"), ["idle%d" % i for i in range(n)])
        h.wait_until(lambda: len(etcd.v3_prefix("/services/")) == n, timeout=60, message="idle keys")
        time.sleep(4)
        rev0 = int(etcd.v3("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        cpu0, mark = cpu_seconds(reg.pid), len(reg.log())
        time.sleep(args.idle_seconds)
        cpu1 = cpu_seconds(reg.pid)
        rev1 = int(etcd.v3("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        resyncs = re.findall(r"resync: %d containers running, (\d+) Docker requests" % n, reg.log()[mark:])
        rows.append(("idle, %d containers: CPU time per hour" % n,
                     "%.1f s" % ((cpu1 - cpu0) / args.idle_seconds * 3600)))
        rows.append(("idle: Docker requests per resync", ", ".join(sorted(set(resyncs))) or "?"))
        rows.append(("idle: etcd writes in %d s" % args.idle_seconds, str(rev1 - rev0)))
        rows.append(("resident memory with %d containers" % n, "%.1f MiB" % (rss_kib(reg.pid) / 1024)))
        reg.terminate()
    finally:
        docker.cleanup()
        etcd.cleanup()

    print("| measurement | result |\n|---|---|")
    for what, result in rows:
        print("| %s | %s |" % (what, result))


if __name__ == "__main__":
    main()
