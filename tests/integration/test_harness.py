"""Tests of the integration-test harness itself (tests/integration/harness.py
and the modules of tests/integration/support/ behind it).

Run from the repository root, as root:

    /usr/bin/python3 -m unittest -v tests/integration/test_harness.py

Each daemon test ends by cleaning up and checking that no process, bridge,
network namespace, mount or work directory of that instance is left.
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import unittest
import urllib.error
from unittest import mock
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h  # noqa: E402
from support import util  # noqa: E402
from support.busybox import _elf_is_dynamic  # noqa: E402
from support.docker import _docker_cgroups  # noqa: E402
from support.engine import _mounts_under  # noqa: E402
from support.podman import _podman_cgroups  # noqa: E402
from support.processes import _descendants, _proc_table  # noqa: E402


def _http_get(url, timeout=2):
    """GET without any proxy from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return resp.read().decode()


class LeakChecks:
    """Assertions that an instance left nothing behind."""

    def assertNoProcessesUsing(self, workdir):
        marker = workdir.rstrip("/") + "/"
        users = {pid: " ".join(argv) for pid, (_, state, _, argv) in _proc_table().items()
                 if state != "Z" and any(marker in a for a in argv)}
        self.assertEqual(users, {}, "processes still using %s" % workdir)

    def assertNoCgroups(self, relative_paths):
        left = [os.path.join(h_, rel) for h_ in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory",
                                                 "/sys/fs/cgroup/pids")
                for rel in relative_paths if os.path.isdir(os.path.join(h_, rel))]
        self.assertEqual(left, [], "container cgroups left behind")

    def assertNoLeftovers(self, workdir, pid=None, bridge=None, netns=None):
        if pid is not None:
            alive = pid in _proc_table() and _proc_table()[pid][1] != "Z"
            self.assertFalse(alive, "daemon pid %d still running" % pid)
        self.assertNoProcessesUsing(workdir)
        self.assertEqual(_mounts_under(workdir), [], "mounts left under %s" % workdir)
        self.assertFalse(os.path.exists(workdir), "%s not removed" % workdir)
        if bridge is not None:
            links = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE,
                                   text=True, check=True).stdout
            self.assertNotIn(" %s:" % bridge, links, "bridge %s left behind" % bridge)
        if netns is not None:
            self.assertFalse(os.path.exists("/run/netns/" + netns), "netns %s left" % netns)


# ---------------------------------------------------------------------------

class HelperTests(unittest.TestCase):

    def test_free_port_is_bindable(self):
        port = h.free_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def test_wait_until_returns_truthy_value(self):
        values = iter([0, None, "", "done"])
        self.assertEqual(h.wait_until(lambda: next(values), timeout=5), "done")

    def test_wait_until_timeout_names_message_and_last_value(self):
        with self.assertRaises(AssertionError) as cm:
            h.wait_until(lambda: [], timeout=0.1, message="the thing")
        self.assertIn("the thing", str(cm.exception))
        self.assertIn("[]", str(cm.exception))

    def test_wait_until_ignore(self):
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionRefusedError("not yet")
            return "up"
        self.assertEqual(h.wait_until(flaky, timeout=5, ignore=(OSError,)), "up")
        with self.assertRaises(ZeroDivisionError):
            h.wait_until(lambda: 1 / 0, timeout=5)

    def test_process_log_env_and_terminate(self):
        p = h.Process(["/bin/sh", "-c",
                       "echo hello $FOO; echo to-stderr >&2; "
                       "trap 'echo got-term; exit 3' TERM; while :; do sleep 0.05; done"],
                      env={"FOO": "bar"})
        self.addCleanup(p.cleanup)
        p.start()
        m = p.wait_log(r"hello (\w+)")
        self.assertEqual(m.group(1), "bar")
        p.wait_log("to-stderr")
        self.assertTrue(p.alive())
        self.assertIsNone(p.returncode)
        mark = p.mark()
        self.assertEqual(p.terminate(timeout=10), 3)
        p.wait_log("got-term", since=mark)
        self.assertFalse(p.alive())
        log_path = p.log_path
        p.cleanup()
        p.cleanup()
        self.assertFalse(os.path.exists(log_path))

    def test_process_kill9_and_signal(self):
        p = h.Process(["/bin/sh", "-c", "trap 'echo usr1' USR1; while :; do sleep 0.05; done"])
        self.addCleanup(p.cleanup)
        p.start()
        # the trap is set once the loop runs: wait for a sleep child
        h.wait_until(lambda: _descendants(_proc_table(), {p.pid}), message="sleep child")
        p.signal(signal.SIGUSR1)
        p.wait_log("usr1")
        self.assertEqual(p.kill9(), -signal.SIGKILL)
        self.assertEqual(p.returncode, -signal.SIGKILL)

    def test_process_terminate_fails_if_sigterm_ignored(self):
        p = h.Process(["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"])
        self.addCleanup(p.cleanup)
        p.start()
        p.wait_log("ready")
        with self.assertRaises(AssertionError):
            p.terminate(timeout=0.5)
        self.assertFalse(p.alive())

    def test_wait_log_fails_early_when_process_exits(self):
        p = h.Process(["/bin/sh", "-c", "echo bye; exit 7"])
        self.addCleanup(p.cleanup)
        p.start()
        with self.assertRaises(AssertionError) as cm:
            p.wait_log("never printed", timeout=30)
        self.assertIn("exited", str(cm.exception))
        self.assertEqual(p.returncode, 7)

    def test_missing_binary_is_reported_with_package(self):
        with self.assertRaises(h.MissingDependency) as cm:
            h.Process(["registrar-no-such-binary"]).start()
        self.assertIn("registrar-no-such-binary", str(cm.exception))
        with mock.patch.object(util, "_find", lambda name: None):
            self.assertIn("etcd-server", h.Etcd.missing())
            self.assertIn("zookeeper", h.ZooKeeper.missing())
            with self.assertRaises(h.MissingDependency) as cm:
                h.Dockerd().start()
            self.assertIn("docker.io", str(cm.exception))

    @unittest.skipUnless(os.path.exists("/bin/busybox"), "busybox-static not installed")
    def test_busybox_rootfs(self):
        root = h.busybox_rootfs()
        self.assertIs(root, h.busybox_rootfs())  # cached
        self.assertFalse(_elf_is_dynamic(os.path.join(root, "bin/busybox")))
        for applet in ("sh", "sleep", "nc", "httpd", "true", "false", "cat", "echo", "env",
                       "wget"):
            self.assertEqual(os.readlink(os.path.join(root, "bin", applet)), "busybox")
        for f in ("etc/passwd", "etc/group"):
            self.assertTrue(os.path.isfile(os.path.join(root, f)))
        self.assertTrue(os.path.isdir(os.path.join(root, "tmp")))
        out = subprocess.run([os.path.join(root, "bin/echo"), "hi"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        self.assertEqual(out, "hi\n")


# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
class DockerdTests(LeakChecks, unittest.TestCase):

    def test_lifecycle(self):
        d = h.Dockerd(userland_proxy=True)
        self.addCleanup(d.cleanup)
        d.start()
        self.assertTrue(d.socket.startswith("/tmp/") and d.host_uri == "unix://" + d.socket)
        self.assertLessEqual(len(d.bridge), 15)
        addrs = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", d.bridge],
                               stdout=subprocess.PIPE, text=True, check=True).stdout
        self.assertIn(d.gateway_ip + "/24", addrs)
        self.assertEqual(d.api("GET", "/_ping"), (200, "OK"))

        image = d.import_busybox()
        self.assertEqual(image, h.BUSYBOX_IMAGE)
        self.assertEqual(d.import_busybox(), image)  # cached: no second import
        self.assertEqual(len(d.docker("images", "-q", image).split()), 1)

        cid = d.run("-e", "APP=redis", "-P", "--expose", "6379", image, "sleep", "3600")
        bindings = d.port(cid, "6379/tcp")
        self.assertTrue(bindings)
        for host_ip, host_port in bindings:
            self.assertIn(host_ip, ("0.0.0.0", "::"))
            self.assertGreater(host_port, 0)
        self.assertEqual(d.port(cid, "6379"), bindings)
        self.assertEqual(d.port(cid, "1/tcp"), [])
        listed = {c["Id"]: c for c in d.containers()}
        self.assertIn(cid, listed)
        self.assertIn(6379, [p.get("PrivatePort") for p in listed[cid]["Ports"]])
        info = d.inspect(cid)
        self.assertIn("APP=redis", info["Config"]["Env"])
        self.assertTrue(info["NetworkSettings"]["IPAddress"].startswith(d.gateway_ip.rsplit(".", 1)[0]))

        # The userland proxy really forwards a published port into the container.
        web = d.run("-p", "127.0.0.1::80", image, "sh", "-c",
                    "echo hello-docker > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
        (ip, port), = d.port(web, "80/tcp")
        self.assertEqual(ip, "127.0.0.1")
        body = h.wait_until(lambda: _http_get("http://127.0.0.1:%d/index.html" % port),
                            timeout=10, ignore=(OSError,), message="httpd via docker-proxy")
        self.assertEqual(body, "hello-docker\n")

        with self.assertRaises(RuntimeError) as cm:
            d.docker("inspect", "no-such-container")
        self.assertIn("no-such-container", str(cm.exception))
        self.assertEqual(d.api("GET", "/containers/no-such-container/json")[0], 404)

        # restart: plain containers end up stopped, restart=always ones come back
        always = d.run("--restart=always", image, "sleep", "3600")
        old_pid = d.pid
        d.restart()
        self.assertNotEqual(d.pid, old_pid)
        self.assertEqual(d.inspect(cid)["State"]["Status"], "exited")
        h.wait_until(lambda: d.inspect(always)["State"]["Running"], timeout=20,
                     message="restart=always container running again")
        self.assertTrue(d.import_busybox())  # image survives the restart

        workdir, bridge, pid = d.workdir, d.bridge, d.pid
        d.cleanup()
        self.assertNoLeftovers(workdir, pid=pid, bridge=bridge)
        d.cleanup()  # idempotent

    def test_ports_only_recorded_by_default_as_context_manager(self):
        with h.Dockerd() as d:
            image = d.import_busybox()
            cid = d.run("-P", "--expose", "6379", image, "sleep", "3600")
            bindings = d.port(cid, "6379/tcp")
            self.assertTrue(bindings)
            proxies = [argv for pid, (_, _, _, argv) in _proc_table().items()
                       if pid in d._related() and argv and argv[0].endswith("docker-proxy")]
            self.assertEqual(proxies, [])
            # nobody holds the recorded port: we can take it ourselves
            for _, port in bindings:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("0.0.0.0", port))
                    s.listen()
            # dockerd stops the stand-in proxies with their container
            def proxies():
                return [pid for pid, (_, _, _, argv) in _proc_table().items()
                        if pid in d._related() and argv[:2] == ["sleep", "2147483647"]]
            self.assertEqual(len(proxies()), len(bindings))
            d.docker("rm", "-f", cid)
            h.wait_until(lambda: proxies() == [], timeout=10, message="the recording proxies stopped")
            workdir, bridge, pid = d.workdir, d.bridge, d.pid
        self.assertNoLeftovers(workdir, pid=pid, bridge=bridge)

    def test_cleanup_after_daemon_was_killed(self):
        """SIGKILLed dockerd leaves containerd, shims and containers: cleanup
        must still remove every one of them."""
        d = h.Dockerd(userland_proxy=True)
        self.addCleanup(d.cleanup)
        d.start()
        image = d.import_busybox()
        d.run(image, "sleep", "3600")
        d.run("-p", "127.0.0.1::80", image, "sleep", "3600")
        self.assertTrue(any("containerd-shim" in " ".join(argv)
                            for pid, (_, _, _, argv) in _proc_table().items()
                            if pid in d._related()))
        d._proc.kill9()
        workdir, bridge, pid = d.workdir, d.bridge, d.pid
        cgroups = _docker_cgroups(workdir)
        self.assertEqual(len(cgroups), 2)
        d.cleanup()
        self.assertNoLeftovers(workdir, pid=pid, bridge=bridge)
        self.assertNoCgroups(cgroups)


# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Etcd)
class EtcdTests(LeakChecks, unittest.TestCase):

    def _etcd(self, **kw):
        e = h.Etcd(**kw)
        self.addCleanup(e.cleanup)
        return e.start()

    def test_v2_and_v3_and_restart(self):
        e = self._etcd()
        self.assertEqual(e.endpoint, "http://" + e.host_port)
        # v2
        self.assertIsNone(e.v2_get("/registrar/redis/a"))
        e.v2_put("/registrar/redis/a", "127.0.0.1:1")
        e.v2_put("/registrar/redis/b", "127.0.0.1:2", ttl=60)
        e.v2_put("/registrar/web/c", "127.0.0.1:3")
        self.assertEqual(e.v2_get("/registrar/redis/a"), "127.0.0.1:1")
        self.assertEqual(e.v2_tree("/registrar"), {"/registrar/redis/a": "127.0.0.1:1",
                                                   "/registrar/redis/b": "127.0.0.1:2",
                                                   "/registrar/web/c": "127.0.0.1:3"})
        self.assertEqual(e.v2_tree("/nothing"), {})
        status, body = e._http("GET", "/v2/keys/registrar/redis/b")
        self.assertGreater(body["node"]["ttl"], 0)
        self.assertTrue(e.v2_delete("/registrar/redis/a"))
        self.assertFalse(e.v2_delete("/registrar/redis/a"))
        # v3
        self.assertIsNone(e.v3_get("/services/redis/x"))
        lease = e.v3_grant(60)
        e.v3_put("/services/redis/x", "10.0.0.1:6379", lease=lease)
        e.v3_put("/services/redis/y", "v-y")
        e.v3_put("/services/redisx", "not under /services/redis/")
        self.assertEqual(e.v3_get("/services/redis/x"), "10.0.0.1:6379")
        self.assertEqual(e.v3_prefix("/services/redis/"),
                         {"/services/redis/x": "10.0.0.1:6379", "/services/redis/y": "v-y"})
        self.assertIn(lease, e.v3_leases())
        ttl, keys = e.v3_lease_ttl(lease, keys=True)
        self.assertGreater(ttl, 0)
        self.assertEqual(keys, ["/services/redis/x"])
        self.assertEqual(e.v3_delete("/services/redis/", prefix=True), 2)
        self.assertEqual(e.v3_prefix("/services/redis/"), {})
        # data survives stop/start on the same ports
        e.v3_put("/keep", "me")
        endpoint = e.endpoint
        e.stop()
        with self.assertRaises(OSError):
            e.v3_get("/keep")
        e.start()
        self.assertEqual(e.endpoint, endpoint)
        self.assertEqual(e.v3_get("/keep"), "me")
        self.assertEqual(e.v2_get("/registrar/web/c"), "127.0.0.1:3")
        # crash and come back
        self.assertEqual(e.kill(), -signal.SIGKILL)
        e.start()
        self.assertEqual(e.v3_get("/keep"), "me")
        workdir, pid = e.workdir, e.pid
        e.cleanup()
        self.assertNoLeftovers(workdir, pid=pid)
        e.cleanup()

    def test_v2_disabled(self):
        e = self._etcd(enable_v2=False)
        with self.assertRaises(h.EtcdError):
            e.v2_put("/a", "b")
        e.v3_put("/a", "b")
        self.assertEqual(e.v3_get("/a"), "b")

    def test_auth(self):
        e = self._etcd()
        e.v3_put("/other/key", "secret")
        e.enable_auth("rootpw", "registrar", "regpw", "/services/")
        self.assertEqual(e.credentials, ("root", "rootpw"))
        self.assertEqual(e.v3_get("/other/key"), "secret")
        e.credentials = None
        with self.assertRaises(h.EtcdError):
            e.v3_get("/other/key")
        e.credentials = ("registrar", "regpw")
        e.v3_put("/services/a", "1")
        self.assertEqual(e.v3_prefix("/services/"), {"/services/a": "1"})
        with self.assertRaises(h.EtcdError) as cm:
            e.v3_get("/other/key")
        self.assertEqual(cm.exception.status, 403)
        e.credentials = ("registrar", "wrong")
        with self.assertRaises(h.EtcdError):
            e.v3_get("/services/a")
        # tokens do not survive a restart: the helpers log in again
        e.credentials = ("registrar", "regpw")
        e.stop()
        e.start()
        self.assertEqual(e.v3_get("/services/a"), "1")

    def test_tls(self):
        e = self._etcd(tls=True)
        self.assertTrue(e.endpoint.startswith("https://127.0.0.1:"))
        for f in (e.ca_file, e.client_cert, e.client_key):
            self.assertTrue(os.path.isfile(f))
        e.v2_put("/tls/a", "1")
        self.assertEqual(e.v2_tree("/tls"), {"/tls/a": "1"})
        e.v3_put("/tls/b", "2")
        self.assertEqual(e.v3_get("/tls/b"), "2")
        # no client certificate: refused
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=e.ssl_context(client_cert=False)))
        with self.assertRaises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            opener.open(e.endpoint + "/v2/keys/tls/a", timeout=5).read()
        # auth on top of TLS (the client certificate has no CN, see support/etcd.py)
        e.enable_auth("rootpw", "registrar", "regpw", "/tls/")
        e.credentials = ("registrar", "regpw")
        self.assertEqual(e.v3_prefix("/tls/"), {"/tls/b": "2"})
        self.assertIn("/tls/b", e.etcdctl("get", "/tls/b", user=("registrar", "regpw")))
        workdir, pid = e.workdir, e.pid
        e.cleanup()
        self.assertNoLeftovers(workdir, pid=pid)


# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Podman)
class PodmanTests(LeakChecks, unittest.TestCase):

    def test_service_and_published_ports(self):
        p = h.Podman()
        self.addCleanup(p.cleanup)
        p.start()
        self.assertEqual(p.api("GET", "/_ping"), (200, "OK"))
        image = p.import_busybox()
        self.assertEqual(p.import_busybox(), image)
        cid = p.run("-p", "127.0.0.1::80", image, "sleep", "100")
        # Docker-compatible list and inspect show the binding.
        listed = {c["Id"]: c for c in p.containers()}
        self.assertIn(cid, listed)
        (entry,) = listed[cid]["Ports"]
        self.assertEqual((entry["IP"], entry["PrivatePort"], entry["Type"]), ("127.0.0.1", 80, "tcp"))
        self.assertEqual(p.port(cid, "80/tcp"), [("127.0.0.1", entry["PublicPort"])])
        status, versioned = p.api("GET", "/v1.41/containers/%s/json" % cid)
        self.assertEqual(status, 200)
        self.assertEqual(versioned["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
                         str(entry["PublicPort"]))
        # The local engine on the same storage sees the same containers,
        # and the service sees what the local engine creates.
        self.assertIn(cid[:12], p.podman("ps", "-q", remote=False).split())
        p.podman("create", "--name", "made-locally", image, "true", remote=False)
        self.assertEqual(p.api("GET", "/containers/made-locally/json")[0], 200)
        # The published port works inside the instance's network namespace.
        web = p.run("-p", "127.0.0.1::80", image, "sh", "-c",
                    "echo hello-podman > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
        (_, port), = p.port(web, "80/tcp")
        fetch = ("import urllib.request as u; print(u.urlopen("
                 "'http://127.0.0.1:%d/index.html', timeout=2).read().decode(), end='')" % port)
        body = h.wait_until(lambda: p.netns_run(sys.executable, "-c", fetch, check=False),
                            timeout=10, message="httpd inside the podman netns")
        self.assertEqual(body, "hello-podman")
        workdir, netns, pid = p.workdir, p.netns, p._proc.pid
        sandboxes = set(p._sandboxes)
        self.assertTrue(sandboxes)
        p.cleanup()
        self.assertNoLeftovers(workdir, pid=pid, netns=netns)
        for path in sandboxes:
            self.assertFalse(os.path.exists(path), "%s left" % path)
        p.cleanup()


# ---------------------------------------------------------------------------

@h.skip_unless_available(h.ZooKeeper)
class ZooKeeperTests(LeakChecks, unittest.TestCase):

    def test_standalone_server(self):
        z = h.ZooKeeper()
        self.addCleanup(z.cleanup)
        z.start()
        self.assertEqual(z.four_letter("ruok"), "imok")
        self.assertIn("Mode: standalone", z.four_letter("stat"))
        with z.client() as zk:
            zk.create("/registrar/redis/n1", b"127.0.0.1:6379", makepath=True)
            zk.create("/registrar/redis/eph", b"e", ephemeral=True)
            self.assertEqual(zk.get("/registrar/redis/eph")[1]["ephemeralOwner"], zk.session_id)
            self.assertEqual(zk.children("/registrar/redis"), ["eph", "n1"])
            with self.assertRaises(h.ZkError):
                zk.create("/registrar/redis/n1", b"again")
        # the ephemeral node went with the session
        self.assertEqual(z.tree("/registrar"), {"/registrar": b"", "/registrar/redis": b"",
                                                "/registrar/redis/n1": b"127.0.0.1:6379"})
        self.assertIsNone(z.get("/nothing"))
        self.assertIsNone(z.children("/nothing"))
        z.stop()
        z.start()  # same port and data
        self.assertEqual(z.get("/registrar/redis/n1"), b"127.0.0.1:6379")
        workdir, pid = z.workdir, z.pid
        z.cleanup()
        self.assertNoLeftovers(workdir, pid=pid)


@h.skip_unless_available(h.Dockerd, h.Podman)
class SweepStaleTests(LeakChecks, unittest.TestCase):

    CHILD = """
import sys
sys.path.insert(0, %r)
import harness as h
d = h.Dockerd().start()
d.run(d.import_busybox(), "sleep", "3600")
p = h.Podman().start()
p.run("-p", "127.0.0.1::80", p.import_busybox(), "sleep", "3600")
print(d.workdir, d.bridge, p.workdir, p.netns, flush=True)
sys.stdin.read()
"""

    def test_sweep_after_runner_was_sigkilled(self):
        """A SIGKILLed test runner cannot clean up; sweep_stale() can."""
        child = subprocess.Popen([sys.executable, "-c", self.CHILD % os.path.dirname(h.__file__)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(h.sweep_stale)
        try:
            dwork, bridge, pwork, netns = child.stdout.readline().split()
        finally:
            child.kill()
            child.wait()
            child.stdin.close()
            child.stdout.close()
        self.assertTrue(os.path.isdir(dwork) and os.path.isdir(pwork))
        cgroups = _docker_cgroups(dwork) + _podman_cgroups(pwork)
        self.assertEqual(len(cgroups), 2)
        removed = h.sweep_stale()
        self.assertIn(dwork, removed)
        self.assertIn(pwork, removed)
        self.assertNoLeftovers(dwork, bridge=bridge)
        self.assertNoLeftovers(pwork, netns=netns)
        self.assertNoCgroups(cgroups)


if __name__ == "__main__":
    unittest.main()
