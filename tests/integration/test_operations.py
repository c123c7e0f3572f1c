"""Operating registrar, on a real dockerd and etcd: host documents, the
/health, /metrics and /services endpoints (checked with promtool and
scraped by a real Prometheus server), `registrar status`, a slow client
on the listen port, deregister_on_exit, draining at stop, the changed()
hook signalling a container, a three-member etcd cluster losing a
member, and kill -9 in the middle of a start-up.  Each test ends by
comparing the whole keyspace with the running containers."""
import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness as h
from common import REGISTRAR, DockerTest, EtcdTest, start_registrar
from support.util import _find

HOST = "opshost"
IPADDRESS = "10.0.8.8"


def get(port, path, timeout=5):
    """(status, body) of GET http://127.0.0.1:port/path, no proxy."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def listen_port(reg):
    m = reg.wait_log(r"serving /health, /metrics and /services on \S+ \(port (\d+)\)")
    return int(m.group(1))


class Keyspace:
    """What the whole etcd v3 keyspace must hold for the running containers
    of this host: their keys, this host's document, one record for each."""

    def key_of(self, cid, port="80"):
        i = self.docker.inspect(cid)
        env = dict(e.partition("=")[::2] for e in i["Config"]["Env"] or [])
        host_port = i["NetworkSettings"]["Ports"]["%s/tcp" % port][0]["HostPort"]
        return "/services/%s/%s/%s/%s" % (env["NAME"], port, host_port, i["Config"]["Hostname"])

    def running_keys(self, ports=("80",)):
        keys = set()
        for cid in self.docker.docker("ps", "-q", "--no-trunc").split():
            i = self.docker.inspect(cid)
            if any(e.startswith("NAME=") for e in i["Config"]["Env"] or []):
                keys |= {self.key_of(cid, p) for p in ports if "%s/tcp" % p in (i["NetworkSettings"]["Ports"] or {})}
        return keys

    def host_document(self):
        text = self.etcd.v3_get("/hosts/%s" % HOST)
        return json.loads(text) if text is not None else None

    def expected_keyspace(self, service_keys, host=HOST):
        keys = set(service_keys) | {"/hosts/%s" % host}
        return keys | {"/hosts/%s/keys%s" % (host, k) for k in keys}

    def assertKeyspace(self, service_keys, extra=(), timeout=15):
        """The whole keyspace: exactly these services, this host's document
        listing them, the records, and `extra` (other hosts' keys)."""
        want = self.expected_keyspace(service_keys) | set(extra)
        h.wait_until(lambda: set(self.etcd.v3_prefix("/")) == want and
                     (self.host_document() or {}).get("keys") == sorted(service_keys),
                     timeout=timeout, message="the keyspace equal to the running containers")


def web(docker, image, name, *extra):
    return docker.run("--name", name, "-e", "NAME=" + name, "-P", "--expose", "80", *extra,
                      image, "sleep", "3600")


class EmptyEtcd(Keyspace, EtcdTest):
    """Each test on an empty etcd v3, with a registrar at a 300 ms interval."""

    def setUp(self):
        super().setUp()
        self.etcd.v3_delete("/", prefix=True)

    def registrar(self, *args, env=None):
        return start_registrar(self, "run", "-B", "etcd3://" + self.etcd.host_port, "-D", self.docker.socket,
                               "-H", HOST, "-a", IPADDRESS, "-i", "300", "--log-level", "debug", *args, env=env)


@h.skip_unless_available(h.Dockerd, h.Etcd)
class HostDocuments(EmptyEtcd):

    def revision(self):
        return int(self.etcd.v3("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])

    def test_the_document_follows_the_containers_and_idle_writes_nothing(self):
        a = web(self.docker, self.image, "hd-a")
        self.registrar()
        self.assertKeyspace({self.key_of(a)})
        doc = self.host_document()
        self.assertEqual(set(doc), {"hostname", "ipaddress", "version", "services", "keys", "synced"})
        self.assertEqual((doc["hostname"], doc["ipaddress"], doc["services"]), (HOST, IPADDRESS, 1))
        self.assertRegex(doc["synced"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(doc["version"], r"^\d+\.\d+\.\d+$")

        b = web(self.docker, self.image, "hd-b")
        self.assertKeyspace({self.key_of(a), self.key_of(b)})
        self.assertEqual(self.host_document()["services"], 2)

        # idle: several intervals, not one write
        before = self.revision()
        time.sleep(2.0)
        self.assertEqual(self.revision(), before, "an idle host wrote to etcd")

        self.docker.docker("rm", "-f", a)
        self.assertKeyspace({self.key_of(b)})

    def test_in_ttl_mode_the_document_expires_with_the_services(self):
        a = web(self.docker, self.image, "hd-ttl")
        reg = self.registrar("-m", "ttl", "-t", "2000")
        self.assertKeyspace({self.key_of(a)})
        reg.kill9()
        h.wait_until(lambda: self.etcd.v3_prefix("/") == {}, timeout=15, message="everything expired")


@h.skip_unless_available(h.Dockerd, h.Etcd)
class Endpoints(Keyspace, EtcdTest):
    def setUp(self):
        super().setUp()
        self.etcd.v3_delete("/", prefix=True)
        if not self.etcd.alive():
            self.etcd.start()

    def registrar(self, *args, env=None):
        reg = start_registrar(self, "run", "-B", "etcd3://" + self.etcd.host_port, "-D", self.docker.socket,
                              "-H", HOST, "-a", IPADDRESS, "-i", "300", "--listen", "0", *args, env=env)
        return reg, listen_port(reg)

    def health(self, port):
        status, body = get(port, "/health")
        return status, json.loads(body)

    def test_health_goes_503_while_etcd_is_down_and_200_when_it_is_back(self):
        a = web(self.docker, self.image, "ep-health")
        reg, port = self.registrar()
        h.wait_until(lambda: self.health(port)[0] == 200, message="healthy")
        self.etcd.stop()
        h.wait_until(lambda: self.health(port)[0] == 503, timeout=10, message="unhealthy")
        status, doc = self.health(port)
        self.assertFalse(doc["registry"]["healthy"])
        self.assertIn("unreachable_since", doc["registry"])
        self.assertTrue(doc["docker"]["healthy"])
        self.etcd.start()
        h.wait_until(lambda: self.health(port)[0] == 200, timeout=15, message="healthy again")
        self.assertKeyspace({self.key_of(a)})

    def test_metrics_pass_promtool_and_a_prometheus_server_scrapes_them(self):
        a = web(self.docker, self.image, "ep-metrics")
        reg, port = self.registrar()
        self.assertKeyspace({self.key_of(a)})
        status, text = get(port, "/metrics")
        self.assertEqual(status, 200)
        for name in ("registrar_registrations_total", "registrar_containers", "registrar_services",
                     "registrar_docker_events_total", "registrar_docker_requests_total",
                     "registrar_registry_requests_total", "registrar_resync_seconds",
                     "registrar_script_memory_bytes"):
            self.assertRegex(text, r"(?m)^%s(\{[^}]*\})? [0-9.e+-]+$" % name)
        lint = subprocess.run([_find("promtool"), "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        # a real Prometheus server, on loopback, scraping us every second
        tmp = tempfile.mkdtemp(prefix="registrar-prom-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: registrar\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % port)
        prom_port = h.free_port()
        prom = h.Process([_find("prometheus"), "--config.file", conf, "--storage.tsdb.path",
                          os.path.join(tmp, "data"), "--web.listen-address", "127.0.0.1:%d" % prom_port],
                         name="prometheus")
        self.addCleanup(prom.cleanup)
        prom.start()

        def scraped():
            q = urllib.parse.quote("registrar_services{job='registrar'}")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open("http://127.0.0.1:%d/api/v1/query?query=%s" % (prom_port, q), timeout=2) as r:
                    result = json.load(r)["data"]["result"]
            except OSError:
                return False
            return bool(result) and result[0]["value"][1] == "1"
        h.wait_until(scraped, timeout=30, interval=0.5, message="Prometheus scraped registrar_services = 1")

    def test_status_prints_the_entries_and_says_whether_healthy(self):
        a = web(self.docker, self.image, "ep-status")
        reg, port = self.registrar()
        self.assertKeyspace({self.key_of(a)})
        h.wait_until(lambda: self.health(port)[0] == 200, message="healthy")
        r = subprocess.run([REGISTRAR, "status", "--listen", str(port), "-H", HOST, "-a", IPADDRESS],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^/ep-status +\S+ +registered +%s$" % re.escape(self.key_of(a)))
        self.assertRegex(r.stdout, r"(?m)^\(this host\) +host document +registered +/hosts/%s$" % HOST)
        self.assertRegex(r.stdout, r"(?m)^healthy: Docker reached [0-9.]+ s ago, registry reached")
        self.etcd.stop()
        h.wait_until(lambda: self.health(port)[0] == 503, timeout=10, message="unhealthy")
        r = subprocess.run([REGISTRAR, "status", "--listen", str(port), "-H", HOST, "-a", IPADDRESS],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("unhealthy:", r.stdout)
        self.etcd.start()
        self.assertKeyspace({self.key_of(a)})

    def test_a_slow_client_holds_no_registration_up(self):
        reg, port = self.registrar()
        stop = threading.Event()
        socks = []

        def trickle():
            # slowloris: more connections than the server takes, a byte at a time
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"GET /health HTTP/1.1\r\nX-A: ")
                socks.append(s)
            while not stop.is_set():
                for s in socks:
                    try:
                        s.sendall(b"a")
                    except OSError:
                        pass
                stop.wait(0.2)
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        self.addCleanup(lambda: [s.close() for s in socks])
        self.addCleanup(stop.set)
        time.sleep(0.5)
        cids = [web(self.docker, self.image, "ep-slow%d" % i) for i in range(3)]
        self.assertKeyspace({self.key_of(c) for c in cids})
        stop.set()
        t.join(5)
        # the trickling connections were cut at their deadline; the server answers again
        h.wait_until(lambda: self.health(port)[0] == 200, timeout=20, message="answering again",
                     ignore=(OSError, http.client.HTTPException))   # closed at once while full
        self.assertTrue(reg.alive())


@h.skip_unless_available(h.Dockerd, h.Etcd)
class Stopping(EmptyEtcd):
    def services(self):
        return set(self.etcd.v3_prefix("/services/"))

    def test_deregister_on_exit_removes_this_hosts_entries_and_no_others(self):
        other = {"/services/other/80/1/abc": json.dumps({"host": "otherhost"}),
                 "/hosts/otherhost": json.dumps({"hostname": "otherhost"})}
        for k, v in other.items():
            self.etcd.v3_put(k, v)
            self.etcd.v3_put("/hosts/otherhost/keys" + k, json.dumps({"key": k, "value": v}))
        a, b = web(self.docker, self.image, "de-a"), web(self.docker, self.image, "de-b")
        reg = self.registrar(env={"DEREGISTER_ON_EXIT": "true"})
        foreign = set(other) | {"/hosts/otherhost/keys" + k for k in other}
        self.assertKeyspace({self.key_of(a), self.key_of(b)}, extra=foreign)
        self.assertEqual(reg.terminate(timeout=15), 0)
        self.assertIn("deregister_on_exit: this host's entries are removed", reg.log())
        self.assertEqual(set(self.etcd.v3_prefix("/")), foreign)

    def test_without_it_entries_stay_after_sigterm(self):
        a = web(self.docker, self.image, "de-stay")
        reg = self.registrar()
        self.assertKeyspace({self.key_of(a)})
        self.assertEqual(reg.terminate(), 0)
        self.assertKeyspace({self.key_of(a)})

    TRAP = "trap 'sleep 2; exit 0' TERM; trap 'echo usr1' USR1; while :; do sleep 0.1; done"

    def test_with_deregister_stop_a_stopping_container_is_gone_before_it_dies(self):
        c = self.docker.run("--name", "drain", "-e", "NAME=drain", "-P", "--expose", "80", "--stop-timeout", "10",
                            self.image, "sh", "-c", self.TRAP)
        self.registrar(env={"DEREGISTER": "stop"})
        key = self.key_of(c)
        self.assertKeyspace({key})
        stopper = subprocess.Popen([_find("docker"), "-H", self.docker.host_uri, "stop", c],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(stopper.wait)
        h.wait_until(lambda: key not in self.services(), timeout=5, message="the key gone at the stop")
        self.assertTrue(self.docker.inspect(c)["State"]["Running"], "the container had already died")
        self.assertEqual(stopper.wait(30), 0)
        self.assertKeyspace(set())

    def test_a_container_that_survives_the_signal_is_registered_again(self):
        c = self.docker.run("--name", "survivor", "-e", "NAME=survivor", "-P", "--expose", "80",
                            "--stop-timeout", "1", self.image, "sh", "-c", self.TRAP)
        reg = self.registrar(env={"DEREGISTER": "stop"})
        key = self.key_of(c)
        self.assertKeyspace({key})
        self.docker.docker("kill", "-s", "USR1", c)
        reg.wait_log(r"container /survivor \(%s\) is being stopped" % c[:12])
        self.assertKeyspace({key}, timeout=20)     # its stop timeout (1 s) and a margin later
        self.assertTrue(self.docker.inspect(c)["State"]["Running"])


@h.skip_unless_available(h.Dockerd, h.Etcd)
class ChangedHook(Keyspace, EtcdTest):
    SITE = """local registrar = require 'registrar'
function changed(summary)
  registrar.log.info("changed: %d registered, %d deregistered", #summary.registered, #summary.deregistered)
  local ok, err = registrar.docker.signal(registrar.config.site.reload, "HUP")
  if not ok then registrar.log.warn("changed: %s", err) end
end
"""

    def setUp(self):
        super().setUp()
        self.etcd.v3_delete("/", prefix=True)

    def test_one_call_per_batch_and_the_reloaded_container_gets_its_sighup(self):
        tmp = tempfile.mkdtemp(prefix="registrar-changed-")
        self.addCleanup(shutil.rmtree, tmp, True)
        nginx = self.docker.run("--name", "reloadme", self.image, "sh", "-c",
                                "trap 'echo hup >> /tmp/hups' HUP; while :; do sleep 0.1; done")
        site = os.path.join(tmp, "site.lua")
        with open(site, "w") as f:
            f.write(self.SITE)
        conf = os.path.join(tmp, "registrar.yml")
        with open(conf, "w") as f:
            f.write("site:\n  reload: reloadme\nnotify_wait: 3000\n")
        reg = start_registrar(self, "-c", conf, "run", "-B", "etcd3://" + self.etcd.host_port, "-D",
                              self.docker.socket, "-H", HOST, "-a", IPADDRESS, "-i", "300", "--script", site)
        reg.wait_log(r"this host has \d+ entries there")
        threads, cids = [], []

        def start(i):
            cids.append(web(self.docker, self.image, "burst%d" % i))
        for i in range(20):
            t = threading.Thread(target=start, args=(i,))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        self.assertKeyspace({self.key_of(c) for c in cids}, timeout=30)
        reg.wait_log(r"changed: \d+ registered", timeout=15)
        time.sleep(4)           # a second call would come within notify_wait
        calls = re.findall(r"changed: (\d+) registered, (\d+) deregistered", reg.log())
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(int(calls[0][0]), 21)      # the twenty, and this host's document (once)
        hups = self.docker.docker("exec", nginx, "cat", "/tmp/hups").split()
        self.assertEqual(hups, ["hup"])


@h.skip_unless_available(h.Dockerd, h.EtcdCluster)
class Cluster(Keyspace, DockerTest):
    def test_registrations_go_on_when_a_member_of_three_stops(self):
        self.etcd = h.EtcdCluster(3)
        self.addCleanup(self.etcd.cleanup)
        self.etcd.start()
        first = web(self.docker, self.image, "cl-first")
        start_registrar(self, "run", "-B", "etcd3://" + self.etcd.endpoints, "-D", self.docker.socket,
                        "-H", HOST, "-a", IPADDRESS, "-i", "300")
        self.assertKeyspace({self.key_of(first)})
        running = [first]
        for i in range(6):
            if i == 2:
                self.etcd.members[0].stop()     # the one registrar speaks to first
            running.append(web(self.docker, self.image, "cl-%d" % i))
            if i % 2:
                self.docker.docker("rm", "-f", running.pop(0))
        self.assertKeyspace({self.key_of(c) for c in running}, timeout=30)
        self.etcd.members[0].start()
        self.assertKeyspace({self.key_of(c) for c in running})


@h.skip_unless_available(h.Dockerd, h.Etcd)
class CrashAtStartup(Keyspace, EtcdTest):
    def test_kill_9_during_a_start_up_of_200_services_leaves_nothing_wrong(self):
        self.etcd.v3_delete("/", prefix=True)
        cids, lock = [], threading.Lock()

        def start(i):
            cid = self.docker.run("--name", "crash%d" % i, "-e", "NAME=crash%d" % i, "-P", "--expose", "80",
                                  "--expose", "81", self.image, "sleep", "3600")
            with lock:
                cids.append(cid)
        threads = [threading.Thread(target=lambda n=n: [start(i) for i in range(n, 100, 4)]) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        args = ("run", "-B", "etcd3://" + self.etcd.host_port, "-D", self.docker.socket, "-H", HOST,
                "-a", IPADDRESS, "-i", "300", "--log-level", "debug")
        reg = start_registrar(self, *args)
        h.wait_until(lambda: len(self.etcd.v3_prefix("/services/")) > 0, timeout=30, interval=0.005,
                     message="a first key written")
        reg.kill9()
        # a container goes while no registrar runs, and the next one starts
        self.docker.docker("rm", "-f", cids.pop())
        start_registrar(self, *args)
        self.assertKeyspace(self.running_keys(ports=("80", "81")), timeout=60)


if __name__ == "__main__":
    unittest.main()
