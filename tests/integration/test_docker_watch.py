"""Watching Docker: what a user sees in the registry while containers come
and go, change state, sit on different kinds of networks, carry odd
environments, and while the Docker daemon itself goes away and comes back.
Real dockerd (and Podman), registrar on the file backend so no registry
server is needed.

Most classes share one dockerd (started once for the module); the classes
that restart a daemon, or need one configured differently (live restore,
TLS on TCP), start their own."""
import fcntl
import ipaddress
import json
import os
import random
import re
import tempfile
import time
import unittest

import harness as h
from common import make_certs, start_registrar
from support.docker import _NET_LOCK_FILE, _used_ipv4_networks
from support.util import _find

HOST = "watchhost"
IPADDRESS = "10.0.7.7"

# A naming script that registers the whole container table, so the tests
# can look at the shape registrar hands to scripts (networks, ports, ...).
SHAPE_LUA = """\
function services(container) return { { container = container } } end
function key(service) return "/c/" .. service.container.name:gsub("^/", "") end
function document(service) return service.container end
"""

HEALTH_ARGS = ("--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
               "--health-retries", "1", "--health-start-period", "0s")


# ---------------------------------------------------------------------------
# module-wide daemon and helpers
# ---------------------------------------------------------------------------

_shared = {}


def shared_dockerd():
    """One dockerd for every class that does not restart or reconfigure it."""
    d = _shared.get("docker")
    if d is None:
        d = h.Dockerd()
        unittest.addModuleCleanup(d.cleanup)
        d.start()
        d.import_busybox()
        _shared["docker"] = d
    return d


def remove_all_containers(engine):
    if isinstance(engine, h.Podman):
        engine.podman("rm", "--all", "--force", "--time", "0", check=False)
        return
    ids = engine.docker("ps", "-aq", check=False).split()
    if ids:
        engine.docker("rm", "-f", *ids, check=False)


_network_counter = iter(range(1, 10 ** 6))


def create_network(test, docker, label="net"):
    """``docker network create --subnet <free /24> NAME``; removed (after
    every container, so nothing is attached) when the test ends.  The
    subnet is chosen the way the harness picks bridge subnets: under its
    lock, from 10.200-249.x.0/24, avoiding every address and route in use
    here (other sessions' daemons included)."""
    name = "rw%d-%d-%s" % (os.getpid(), next(_network_counter), label)
    with open(_NET_LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            used = _used_ipv4_networks()
            rng = random.Random()
            for _ in range(20000):
                cand = ipaddress.ip_network("10.%d.%d.0/24" % (rng.randrange(200, 250),
                                                               rng.randrange(1, 255)))
                if not any(cand.overlaps(u) for u in used):
                    break
            else:
                raise RuntimeError("no free 10.200-249.x.0/24 subnet")
            docker.docker("network", "create", "--subnet", str(cand), name)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def remove():
        remove_all_containers(docker)
        docker.docker("network", "rm", name, check=False)
    test.addCleanup(remove)
    return name


def networks_of(inspect):
    """The container table's `networks`, as `docker inspect` tells it."""
    out = {}
    for name, n in (inspect["NetworkSettings"]["Networks"] or {}).items():
        entry = {}
        for field, source in (("ip", "IPAddress"), ("ip6", "GlobalIPv6Address"),
                              ("gateway", "Gateway"), ("mac", "MacAddress")):
            if n.get(source):
                entry[field] = n[source]
        out[name] = entry
    return out


def default_key(name, port, host_port, hostname, environment=None):
    """/services/[ENVIRONMENT/]NAME/PORT/HOST_PORT/HOSTNAME"""
    parts = ["/services"] + ([environment] if environment else []) + [
        name, str(port), str(host_port), hostname]
    return "/".join(parts)


class FileRegistry:
    """Mixin: registrar on the file backend, and waits on that file.
    Subclasses set ``engine`` (a Dockerd or Podman) in setUpClass."""

    engine = None
    maxDiff = None

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-watch-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.path = os.path.join(self.dir, "services.json")
        self.shape_path = os.path.join(self.dir, "shapes.json")
        self.addCleanup(remove_all_containers, self.engine)

    # registrar ---------------------------------------------------------
    def registrar(self, *args, env=None, socket=True, path=None):
        argv = ["run", "-B", "file://" + (path or self.path), "-H", HOST, "-a", IPADDRESS,
                "-i", "1000", "--log-level", "debug"]
        if socket:
            argv += ["-D", self.engine.socket]
        return start_registrar(self, *argv, *args, env=env)

    def shape_registrar(self, *args, env=None):
        """registrar with the SHAPE_LUA naming, on a file of its own:
        /c/<container name> -> the container table."""
        script = os.path.join(self.dir, "shape.lua")
        with open(script, "w") as f:
            f.write(SHAPE_LUA)
        return self.registrar("--naming", script, *args, env=env, path=self.shape_path)

    def started(self, reg):
        """Wait for registrar's first complete listing."""
        reg.wait_log(r"resync: \d+ containers running", timeout=15)
        return reg

    # the file ----------------------------------------------------------
    def services(self, path=None):
        try:
            with open(path or self.path) as f:
                return json.load(f)["services"]
        except FileNotFoundError:
            return {}

    def wait(self, predicate, message, timeout=10):
        return h.wait_until(lambda: predicate(self.services()), timeout=timeout, message=message)

    def wait_keys(self, keys, message, timeout=10):
        """Wait until the file holds exactly ``keys``; return the services."""
        keys = set(keys)
        try:
            return self.wait(lambda s: (s,) if set(s) == keys else None, message, timeout=timeout)[0]
        except AssertionError:
            self.assertEqual(set(self.services()), keys, "timed out waiting for " + message)
            raise

    def shape(self, name):
        """The container table of container ``name`` (shape registrar)."""
        return self.services(self.shape_path).get("/c/" + name)

    def wait_shape(self, name, predicate, message, timeout=10):
        """Wait until the table of ``name`` satisfies ``predicate``; return it."""
        def ready():
            shape = self.shape(name)
            return shape if shape is not None and predicate(shape) else None
        try:
            return h.wait_until(ready, timeout=timeout, message=message)
        except AssertionError as e:
            raise AssertionError("%s\nlast table: %s" % (e, json.dumps(self.shape(name)))) from None

    # containers --------------------------------------------------------
    def inspect(self, cid):
        return self.engine.inspect(cid)

    def hostname(self, cid):
        return self.inspect(cid)["Config"]["Hostname"]

    def host_port(self, cid, port):
        """The host port of ``port``'s IPv4 binding (its IPv6 twin on "::"
        may have another number), or of its only binding."""
        bindings = self.engine.port(cid, port)
        return next((p for ip, p in bindings if ip != "::"), bindings[0][1])

    def assert_resync_cost(self, publish, count):
        """``count`` containers publishing port 80 with ``publish`` args,
        then registrar: its first resync lists and inspects each, the next
        three are the listing alone."""
        cs = [self.engine.run(*publish, "-e", "NAME=r%d" % n, h.BUSYBOX_IMAGE, "sleep", "3600")
              for n in range(count)]
        reg = self.registrar()
        self.wait_keys({self.key_of(c, "r%d" % n, 80) for n, c in enumerate(cs)}, "registered")
        reg.wait_log(r"(?s)(resync: .*){4}", timeout=15)
        resyncs = re.findall(r"resync: (\d+) containers running, (\d+) Docker requests(.*)", reg.log())
        self.assertEqual(resyncs[0], (str(count), str(count + 1), ""),
                         "the first resync: 1 listing + %d inspections" % count)
        for later in resyncs[1:4]:
            self.assertEqual(later, (str(count), "1", ""), "a quiet resync: the listing alone")

    def key_of(self, cid, name, port, environment=None):
        """The default key of a container's (single-binding) port."""
        return default_key(name, port, self.host_port(cid, port), self.hostname(cid), environment)


# ---------------------------------------------------------------------------
# 1. events
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
class ContainerEvents(FileRegistry, unittest.TestCase):
    """Each change Docker reports is in the file within moments."""

    @classmethod
    def setUpClass(cls):
        cls.engine = shared_dockerd()
        cls.image = h.BUSYBOX_IMAGE

    def web(self, name="web", *args):
        return self.engine.run("-e", "NAME=" + name, "-P", "--expose", "80", *args,
                               self.image, "sleep", "3600")

    def test_a_container_started_while_registrar_runs_is_registered_and_stop_removes_it(self):
        self.started(self.registrar())
        c = self.web()
        key = self.key_of(c, "web", 80)
        doc = self.wait_keys({key}, "the new container registered")[key]
        i = self.inspect(c)
        self.assertEqual(doc["id"], i["Id"])
        self.assertEqual(doc["ipaddress"], IPADDRESS)
        self.assertEqual(doc["host"], HOST)
        self.assertEqual(doc["host_port"], str(self.host_port(c, 80)))
        self.engine.docker("stop", c)
        self.wait_keys(set(), "the stopped container's key removed")

    def test_kill_removes_the_keys(self):
        reg = self.started(self.registrar())
        a, b = self.web("a"), self.web("b")
        ka, kb = self.key_of(a, "a", 80), self.key_of(b, "b", 80)
        self.wait_keys({ka, kb}, "both containers registered")
        self.engine.docker("kill", a)
        self.wait_keys({kb}, "the killed container's key removed, the other kept")
        self.assertTrue(reg.alive())

    def test_rm_f_removes_the_keys(self):
        self.started(self.registrar())
        a = self.engine.run("-e", "NAME=multi", "-P", "--expose", "80", "--expose", "81",
                            self.image, "sleep", "3600")
        b = self.web("b")
        keys_a = {self.key_of(a, "multi", 80), self.key_of(a, "multi", 81)}
        kb = self.key_of(b, "b", 80)
        self.wait_keys(keys_a | {kb}, "all keys registered")
        self.engine.docker("rm", "-f", a)
        self.wait_keys({kb}, "both keys of the removed container gone")

    def test_pause_removes_the_keys_and_unpause_restores_them(self):
        self.started(self.registrar())
        c = self.web()
        key = self.key_of(c, "web", 80)
        before = self.wait_keys({key}, "registered")[key]
        self.engine.docker("pause", c)
        self.wait_keys(set(), "the paused container has no services")
        self.engine.docker("unpause", c)
        after = self.wait_keys({key}, "the unpaused container registered again")[key]
        self.assertEqual(after, before)

    def test_rename_changes_the_documents_name(self):
        self.started(self.registrar())
        c = self.web("web", "--name", "rw-before-%d" % os.getpid())
        key = self.key_of(c, "web", 80)
        self.wait(lambda s: s.get(key, {}).get("name") == "/rw-before-%d" % os.getpid(), "registered")
        self.engine.docker("rename", c, "rw-after-%d" % os.getpid())
        self.wait(lambda s: s.get(key, {}).get("name") == "/rw-after-%d" % os.getpid(),
                  "the document renamed")
        self.assertEqual(set(self.services()), {key})

    def test_network_connect_and_disconnect_change_the_containers_networks(self):
        net = create_network(self, self.engine, "conn")
        self.started(self.shape_registrar())
        self.engine.run("--name", "rw-conn-%d" % os.getpid(), self.image, "sleep", "3600")
        name = "rw-conn-%d" % os.getpid()
        self.wait_shape(name, lambda c: set(c["networks"]) == {"bridge"},
                        "the container on the default bridge")

        self.engine.docker("network", "connect", net, name)
        want = networks_of(self.inspect(name))
        self.assertEqual(set(want), {"bridge", net})
        self.wait_shape(name, lambda c: c["networks"] == want, "the connected network in the table")
        subnet = self.engine.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", net)
        self.assertIn(ipaddress.ip_address(want[net]["ip"]), ipaddress.ip_network(subnet))

        self.engine.docker("network", "disconnect", net, name)
        want = networks_of(self.inspect(name))
        self.assertEqual(set(want), {"bridge"})
        self.wait_shape(name, lambda c: c["networks"] == want,
                        "the disconnected network gone from the table")

    def test_restart_ends_with_the_key_present(self):
        self.started(self.registrar())
        c = self.web()
        self.wait_keys({self.key_of(c, "web", 80)}, "registered")
        self.engine.docker("restart", c)
        # -P may hand out another host port after a restart: the key now
        # is the one the running container has.
        h.wait_until(lambda: self.inspect(c)["State"]["Running"], message="running again")
        self.wait_keys({self.key_of(c, "web", 80)}, "the restarted container registered")


# ---------------------------------------------------------------------------
# 2. resync cost
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
class ResyncCost(FileRegistry, unittest.TestCase):
    """An idle host costs one Docker request per resync."""

    @classmethod
    def setUpClass(cls):
        cls.engine = shared_dockerd()

    def test_the_first_resync_inspects_each_container_and_quiet_ones_make_one_request(self):
        self.assert_resync_cost(("-P", "--expose", "80"), 3)

    def test_after_a_change_resyncs_are_quiet_again(self):
        a = self.engine.run("-e", "NAME=a", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        reg = self.registrar()
        self.wait_keys({self.key_of(a, "a", 80)}, "registered")
        b = self.engine.run("-e", "NAME=b", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        self.wait_keys({self.key_of(a, "a", 80), self.key_of(b, "b", 80)}, "the new one registered")
        mark = reg.mark()
        reg.wait_log(r"(?s)(resync: .*){3}", since=mark, timeout=15)
        resyncs = re.findall(r"resync: (\d+) containers running, (\d+) Docker requests",
                             reg.log()[mark:])
        # the start event's reading stands for the next listing (the fake
        # Docker tests check that exactly); only a listing asked while that
        # reading was under way inspects b once more
        self.assertIn(resyncs[0], [("2", "1"), ("2", "2")])
        self.assertEqual(resyncs[1:3], [("2", "1")] * 2, "quiet again after the change")


# ---------------------------------------------------------------------------
# 3. the Docker daemon restarts
# ---------------------------------------------------------------------------

UNREACHABLE = r"Docker at \S+ is unreachable"


@h.skip_unless_available(h.Dockerd)
class DockerdRestartsWithLiveRestore(FileRegistry, unittest.TestCase):
    """dockerd --live-restore: containers outlive the daemon, and so do
    their registrations."""

    @classmethod
    def setUpClass(cls):
        cls.engine = h.Dockerd(extra_args=("--live-restore",))
        cls.addClassCleanup(cls.engine.cleanup)
        cls.engine.start()
        cls.engine.import_busybox()

    def stop_dockerd_only(self):
        # Dockerd.stop() also kills containerd's shims and so the
        # containers, which is what live restore is meant to survive:
        # stop just the daemon process (containerd follows it, the shims
        # stay).
        self.engine._proc.stop(timeout=20)
        self.assertFalse(self.engine._ping())

    def test_registrations_survive_an_outage_and_catch_up_after_it(self):
        d = self.engine
        keep = d.run("-e", "NAME=keep", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        gone = d.run("-e", "NAME=gone", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        keep_key, gone_key = self.key_of(keep, "keep", 80), self.key_of(gone, "gone", 80)
        reg = self.registrar()
        before = self.wait_keys({keep_key, gone_key}, "both registered")

        self.stop_dockerd_only()
        reg.wait_log(UNREACHABLE, timeout=10)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the outage goes on: nothing may change
            self.assertEqual(self.services(), before, "a registration changed while Docker was away")
            time.sleep(0.1)
        self.assertEqual(len(re.findall(UNREACHABLE, reg.log())), 1,
                         "the outage is logged once, however long it lasts")
        self.assertTrue(reg.alive())

        d.start()
        new = d.run("-e", "NAME=new", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        d.docker("rm", "-f", gone)
        self.assertTrue(d.inspect(keep)["State"]["Running"], "live restore kept the container")
        new_key = self.key_of(new, "new", 80)
        after = self.wait_keys({keep_key, new_key}, "the new container in, the removed one out",
                               timeout=20)
        self.assertEqual(after[keep_key], before[keep_key], "the surviving registration changed")
        reg.wait_log(r"Docker is back after [0-9.]+ s", timeout=10)
        self.assertEqual(len(re.findall(UNREACHABLE, reg.log())), 1)


@h.skip_unless_available(h.Dockerd)
class DockerdRestartsWithoutLiveRestore(FileRegistry, unittest.TestCase):
    """A plain daemon restart kills the containers: their keys go, and the
    ones Docker brings back (--restart=always) are registered again."""

    @classmethod
    def setUpClass(cls):
        cls.engine = h.Dockerd()
        cls.addClassCleanup(cls.engine.cleanup)
        cls.engine.start()
        cls.engine.import_busybox()

    def test_containers_that_died_with_the_daemon_go_and_restarted_ones_come_back(self):
        d = self.engine
        plain = d.run("-e", "NAME=plain", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        always = d.run("--restart=always", "-e", "NAME=always", "-P", "--expose", "80",
                       h.BUSYBOX_IMAGE, "sleep", "3600")
        reg = self.registrar()
        self.wait_keys({self.key_of(plain, "plain", 80), self.key_of(always, "always", 80)},
                       "both registered")
        d.restart()
        h.wait_until(lambda: d.inspect(always)["State"]["Running"], timeout=20,
                     message="Docker restarting the --restart=always container")
        self.assertFalse(d.inspect(plain)["State"]["Running"])
        self.wait_keys({self.key_of(always, "always", 80)},
                       "only the container Docker restarted registered", timeout=20)
        self.assertTrue(reg.alive(), "registrar exited with the daemon")
        reg.wait_log(r"Docker is back after", timeout=10)


# ---------------------------------------------------------------------------
# 4. network shapes
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
class NetworkShapes(FileRegistry, unittest.TestCase):
    """Where a service is reached, for each way a container can be
    networked."""

    @classmethod
    def setUpClass(cls):
        cls.engine = shared_dockerd()
        cls.image = h.BUSYBOX_IMAGE

    def unique(self, name):
        return "rw-%s-%d" % (name, os.getpid())

    def test_published_ports_on_the_default_bridge_and_on_a_user_network(self):
        net = create_network(self, self.engine, "pub")
        a = self.engine.run("-e", "NAME=onbridge", "-P", "--expose", "80", self.image, "sleep", "3600")
        b = self.engine.run("--network", net, "-e", "NAME=onnet", "-P", "--expose", "80",
                            self.image, "sleep", "3600")
        self.assertEqual(set(self.inspect(b)["NetworkSettings"]["Networks"]), {net})
        ka, kb = self.key_of(a, "onbridge", 80), self.key_of(b, "onnet", 80)
        self.registrar()
        s = self.wait_keys({ka, kb}, "both containers' ports")
        self.assertEqual(s[kb]["host_port"], str(self.host_port(b, 80)))
        self.assertEqual({s[ka]["ipaddress"], s[kb]["ipaddress"]}, {IPADDRESS})

    def test_the_ipv6_twin_of_a_binding_is_not_a_second_service(self):
        # A port taken on "::" only moves Docker's IPv6 allocator ahead, so
        # the next -P gets different host ports for "0.0.0.0" and "::".
        # A port bound on one wildcard only is still a service.
        only6 = self.engine.run("-e", "NAME=only6", "-p", "[::]::81", self.image, "sleep", "3600")
        c = self.engine.run("-e", "NAME=twins", "-P", "--expose", "80", self.image, "sleep", "3600")
        bindings = dict(self.engine.port(c, 80))
        if bindings.get("0.0.0.0") == bindings.get("::"):
            self.skipTest("this dockerd gave both wildcards the same port: %r" % bindings)
        key = default_key("twins", 80, bindings["0.0.0.0"], self.hostname(c))
        key6 = default_key("only6", 81, self.host_port(only6, 81), self.hostname(only6))
        self.registrar()
        s = self.wait_keys({key, key6}, "the IPv4 twin and the IPv6-only port")
        self.assertEqual((s[key]["ipaddress"], s[key6]["ipaddress"]), (IPADDRESS, IPADDRESS))

    def test_a_port_bound_to_one_address_advertises_that_address(self):
        local, wild = h.free_port(), h.free_port()
        c = self.engine.run("-e", "NAME=bound", "-p", "127.0.0.1:%d:80" % local,
                            "-p", "%d:81" % wild, self.image, "sleep", "3600")
        hostname = self.hostname(c)
        k80 = default_key("bound", 80, local, hostname)
        k81 = default_key("bound", 81, wild, hostname)
        self.registrar()
        s = self.wait_keys({k80, k81}, "both ports")
        self.assertEqual(s[k80]["ipaddress"], "127.0.0.1")
        self.assertEqual(s[k81]["ipaddress"], IPADDRESS)

    def test_an_ipv6_binding_advertises_the_ipv6_address(self):
        port = h.free_port()
        c = self.engine.run("-e", "NAME=six", "-p", "[::1]:%d:80" % port, self.image, "sleep", "3600")
        self.assertEqual(self.engine.port(c, 80), [("::1", port)])
        key = default_key("six", 80, port, self.hostname(c))
        self.registrar()
        s = self.wait_keys({key}, "the IPv6-bound port")
        self.assertEqual(s[key]["ipaddress"], "::1")

    def test_tcp_and_udp_on_one_port_are_two_services(self):
        port = h.free_port()
        c = self.engine.run("-e", "NAME=dns", "-p", "%d:53/tcp" % port, "-p", "%d:53/udp" % port,
                            self.image, "sleep", "3600")
        hostname = self.hostname(c)
        tcp = default_key("dns", 53, port, hostname)
        udp = default_key("dns", "53:udp", port, hostname)
        self.registrar()
        s = self.wait_keys({tcp, udp}, "a TCP and a UDP key")
        self.assertEqual((s[tcp]["proto"], s[udp]["proto"]), ("tcp", "udp"))
        self.assertEqual((s[tcp]["port"], s[udp]["port"]), ("53", "53"))

    def test_host_network_mode_publishes_exposed_ports_as_themselves(self):
        c = self.engine.run("--name", self.unique("hostnet"), "--network", "host", "-e", "NAME=hostnet",
                            "--expose", "9999", self.image, "sleep", "3600")
        key = default_key("hostnet", 9999, 9999, self.hostname(c))
        self.registrar()
        s = self.wait_keys({key}, "the host-mode port")
        self.assertEqual(s[key]["host_port"], "9999")
        self.assertEqual(s[key]["ipaddress"], IPADDRESS)

        self.shape_registrar()   # a second registrar, its own file
        shape = self.wait_shape(self.unique("hostnet"), lambda c: True, "the host-mode table")
        self.assertEqual(shape["network_mode"], "host")
        self.assertEqual(shape["ports"], [{"port": 9999, "proto": "tcp", "host_port": 9999}])

    def container_mode_pair(self):
        net = create_network(self, self.engine, "peer")
        peer = self.engine.run("--name", self.unique("peer"), "--network", net,
                               self.image, "sleep", "3600")
        self.engine.docker("network", "connect", "bridge", peer)
        return peer

    def test_container_network_mode_shares_the_other_containers_networks(self):
        peer = self.container_mode_pair()
        self.started(self.shape_registrar())
        want = networks_of(self.inspect(peer))
        self.wait_shape(self.unique("peer"), lambda c: c["networks"] == want, "the peer's networks")
        side = self.engine.run("--name", self.unique("side"), "--network", "container:" + peer,
                               self.image, "sleep", "3600")
        shape = self.wait_shape(self.unique("side"), lambda c: True, "the side container")
        self.assertEqual(shape["network_mode"], "container:" + self.inspect(peer)["Id"])
        self.assertEqual(shape["networks"], want)
        self.assertEqual(self.inspect(side)["HostConfig"]["NetworkMode"], "container:" + peer)

    def test_container_network_mode_shares_the_networks_when_both_run_before_registrar(self):
        # Several containers share the peer's network namespace, as in a pod,
        # and all run before registrar starts: its first listing finds them all.
        peer = self.container_mode_pair()
        sides = [self.unique("side%d" % n) for n in range(3)]
        for side in sides:
            self.engine.run("--name", side, "--network", "container:" + peer,
                            self.image, "sleep", "3600")
        want = networks_of(self.inspect(peer))
        self.assertEqual(len(want), 2)
        self.started(self.shape_registrar())
        for side in sides:
            # several resyncs' time: a table that is wrong at first may be mended
            self.wait_shape(side, lambda c: c["networks"] == want,
                            "container:<id> mode: %s has the other container's networks" % side,
                            timeout=5)

    def test_container_network_mode_follows_the_other_containers_network_changes(self):
        peer = self.container_mode_pair()
        reg = self.started(self.shape_registrar())
        side = self.engine.run("--name", self.unique("side"), "--network", "container:" + peer,
                               self.image, "sleep", "3600")
        want = networks_of(self.inspect(peer))
        self.wait_shape(self.unique("side"), lambda c: c["networks"] == want, "the peer's networks")
        # settled: a quiet resync (nothing left to re-inspect) before the change
        reg.wait_log(r"resync: 2 containers running, 1 Docker requests", since=reg.mark(), timeout=10)
        extra = create_network(self, self.engine, "extra")
        self.engine.docker("network", "connect", extra, peer)
        want = networks_of(self.inspect(peer))
        self.assertEqual(len(want), 3)
        self.wait_shape(self.unique("peer"), lambda c: c["networks"] == want,
                        "the peer's new network in its table")
        self.assertEqual(self.inspect(side)["State"]["Running"], True)
        self.wait_shape(self.unique("side"), lambda c: c["networks"] == want,
                        "the peer's new network in the table of the container sharing it", timeout=5)

    def test_a_container_on_two_networks_shows_both_addresses(self):
        one = create_network(self, self.engine, "one")
        two = create_network(self, self.engine, "two")
        c = self.engine.run("--name", self.unique("two"), "--network", one, self.image, "sleep", "3600")
        self.engine.docker("network", "connect", two, c)
        i = self.inspect(c)
        want = networks_of(i)
        self.assertEqual(set(want), {one, two})
        for net in (one, two):
            self.assertEqual(want[net]["ip"], i["NetworkSettings"]["Networks"][net]["IPAddress"])
            self.assertTrue(want[net]["ip"])
        self.shape_registrar()
        self.wait_shape(self.unique("two"), lambda c: c["networks"] == want,
                        "both networks with their addresses")


# ---------------------------------------------------------------------------
# 5. health
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
class Health(FileRegistry, unittest.TestCase):
    """With a HEALTHCHECK, a container serves only while it is healthy."""

    @classmethod
    def setUpClass(cls):
        cls.engine = shared_dockerd()

    def make_healthy(self, c):
        self.engine.docker("exec", c, "busybox", "touch", "/tmp/ok")

    def make_unhealthy(self, c):
        self.engine.docker("exec", c, "busybox", "rm", "-f", "/tmp/ok")

    def health(self, c):
        return self.inspect(c)["State"]["Health"]["Status"]

    def two_quiet_resyncs(self, reg):
        mark = reg.mark()
        reg.wait_log(r"(?s)resync: .*resync: ", since=mark, timeout=10)

    def test_registered_only_while_healthy(self):
        reg = self.started(self.registrar())
        # a probe every minute: this one stays "starting" for the whole test
        slow = self.engine.run("-e", "NAME=slow", "-P", "--expose", "80", "--health-cmd",
                               "test -f /tmp/ok", "--health-interval", "60s",
                               h.BUSYBOX_IMAGE, "sleep", "3600")
        c = self.engine.run("-e", "NAME=checked", "-P", "--expose", "80", *HEALTH_ARGS,
                            h.BUSYBOX_IMAGE, "sleep", "3600")
        key = self.key_of(c, "checked", 80)
        self.two_quiet_resyncs(reg)
        self.assertEqual(self.health(slow), "starting")
        self.assertNotIn(self.key_of(slow, "slow", 80), self.services(), "registered while starting")

        self.make_healthy(c)
        self.wait_keys({key}, "registered once healthy")
        self.assertEqual(self.health(c), "healthy")
        self.make_unhealthy(c)
        self.wait_keys(set(), "deregistered when unhealthy")
        self.assertEqual(self.health(c), "unhealthy")
        self.make_healthy(c)
        self.wait_keys({key}, "registered again when healthy")
        self.assertEqual(self.health(slow), "starting")

    def test_health_ignore_registers_regardless(self):
        slow = self.engine.run("-e", "NAME=slow", "-P", "--expose", "80", "--health-cmd",
                               "test -f /tmp/ok", "--health-interval", "60s",
                               h.BUSYBOX_IMAGE, "sleep", "3600")
        sick = self.engine.run("-e", "NAME=sick", "-P", "--expose", "80", *HEALTH_ARGS,
                               h.BUSYBOX_IMAGE, "sleep", "3600")
        h.wait_until(lambda: self.health(sick) == "unhealthy", message="the container unhealthy")
        self.registrar(env={"HEALTH": "ignore"})
        self.wait_keys({self.key_of(slow, "slow", 80), self.key_of(sick, "sick", 80)},
                       "starting and unhealthy containers registered with health: ignore")
        self.assertEqual(self.health(slow), "starting")


# ---------------------------------------------------------------------------
# 6. Docker over TCP with TLS, and DOCKER_HOST
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
@unittest.skipIf(_find("openssl") is None, "openssl not found")
class DockerHostAsTheCliReadsIt(FileRegistry, unittest.TestCase):
    """DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, no -D."""

    @classmethod
    def setUpClass(cls):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-tls-")
        cls.addClassCleanup(tmp.cleanup)
        server, cls.client_certs = make_certs(tmp.name)
        cls.port = h.free_port()
        cls.engine = h.Dockerd(extra_args=(
            "--host", "tcp://127.0.0.1:%d" % cls.port, "--tlsverify",
            "--tlscacert", server + "/ca.pem", "--tlscert", server + "/cert.pem",
            "--tlskey", server + "/key.pem"))
        cls.addClassCleanup(cls.engine.cleanup)
        cls.engine.start()
        cls.engine.import_busybox()

    def test_docker_over_tcp_with_tls_from_the_environment(self):
        c = self.engine.run("-e", "NAME=tls", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        reg = self.registrar(socket=False, env={
            "DOCKER_HOST": "tcp://127.0.0.1:%d" % self.port, "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": self.client_certs})
        self.wait_keys({self.key_of(c, "tls", 80)}, "registered over TLS")
        self.assertNotRegex(reg.log(), UNREACHABLE)
        d = self.engine.run("-e", "NAME=later", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        self.wait_keys({self.key_of(c, "tls", 80), self.key_of(d, "later", 80)},
                       "events over TLS too")

    def test_a_daemon_certificate_from_another_ca_is_refused(self):
        c = self.engine.run("-e", "NAME=tls", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        other = os.path.join(self.dir, "other")
        _, other_client = make_certs(other)
        wrong = os.path.join(self.dir, "wrong")
        os.makedirs(wrong)
        for name, src in (("ca.pem", other_client), ("cert.pem", self.client_certs),
                          ("key.pem", self.client_certs)):
            with open(os.path.join(src, name)) as f, open(os.path.join(wrong, name), "w") as g:
                g.write(f.read())
        reg = self.registrar(socket=False, env={
            "DOCKER_HOST": "tcp://127.0.0.1:%d" % self.port, "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": wrong})
        reg.wait_log(UNREACHABLE, timeout=10)
        reg.wait_log(r"Docker still unreachable", timeout=10)
        self.assertEqual(self.services(), {}, "registered from a daemon it could not verify")
        self.assertTrue(reg.alive())
        self.assertTrue(self.inspect(c)["State"]["Running"])

    def test_docker_host_unix_uri(self):
        c = self.engine.run("-e", "NAME=unix", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        self.registrar(socket=False, env={"DOCKER_HOST": self.engine.host_uri})
        self.wait_keys({self.key_of(c, "unix", 80)}, "registered through DOCKER_HOST=unix://")


# ---------------------------------------------------------------------------
# 7. Podman
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Podman)
class PodmanService(FileRegistry, unittest.TestCase):
    """The same watching against Podman's Docker-compatible API."""

    @classmethod
    def setUpClass(cls):
        cls.engine = h.Podman()
        cls.addClassCleanup(cls.engine.cleanup)
        cls.engine.start()
        cls.engine.import_busybox()

    def test_a_podman_container_is_registered_and_removed(self):
        first = self.engine.run("-p", "127.0.0.1::80", "-e", "NAME=pod", h.BUSYBOX_IMAGE, "sleep", "3600")
        first_key = self.key_of(first, "pod", 80)
        self.registrar()
        s = self.wait_keys({first_key}, "the podman container registered")
        self.assertEqual(s[first_key]["ipaddress"], "127.0.0.1")
        self.assertEqual(s[first_key]["id"], self.inspect(first)["Id"])

        second = self.engine.run("-p", "127.0.0.1::80", "-e", "NAME=pod2", h.BUSYBOX_IMAGE,
                                 "sleep", "3600")
        second_key = self.key_of(second, "pod2", 80)
        self.wait_keys({first_key, second_key}, "a container started later registered")
        self.engine.podman("rm", "-f", "-t", "0", first)
        self.wait_keys({second_key}, "the removed container's key gone")
        self.engine.podman("stop", "-t", "0", second)
        self.wait_keys(set(), "the stopped container's key gone")

    def test_resync_cost_on_podman(self):
        self.assert_resync_cost(("-p", "127.0.0.1::80"), 2)


# ---------------------------------------------------------------------------
# 8. odd environments
# ---------------------------------------------------------------------------

@h.skip_unless_available(h.Dockerd)
class OddEnvironment(FileRegistry, unittest.TestCase):
    """Env values are data: a key escapes them, a document keeps them."""

    @classmethod
    def setUpClass(cls):
        cls.engine = shared_dockerd()

    def test_newlines_long_values_and_slashes(self):
        long_value = "".join(chr(ord("a") + i % 26) for i in range(16384))   # the most a value may hold
        env = {
            "NAME": "a/b",
            "NOTE": "a\nb",
            "LONG": long_value,
            "QUOTED": 'say "hi" \\ then\ttab',
            "UNICODE": "h\u00e9llo \u2603",
        }
        args = ["-e", "HUGE=" + "h" * 60000]
        for k, v in env.items():
            args += ["-e", "%s=%s" % (k, v)]
        reg = self.started(self.registrar())
        c = self.engine.run(*args, "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        given = set(self.inspect(c)["Config"]["Env"])
        self.assertTrue(all("%s=%s" % kv in given for kv in env.items()), "docker run kept the values")
        key = default_key("a%2Fb", 80, self.host_port(c, 80), self.hostname(c))
        s = self.wait_keys({key}, "the '/' in NAME escaped in the key")
        for k, v in env.items():
            got = s[key]["env"].get(k)
            self.assertTrue(got == v, "env %s not kept intact: %d bytes, want %d: %r..."
                            % (k, len(got or ""), len(v), (got or "")[:80]))
        self.assertNotIn("HUGE", s[key]["env"], "a value over 16 KiB is left out")
        reg.wait_log(r"warn  container /\S+ \(%s\): env HUGE is 60000 bytes, over 16384: left out" % c[:12])
        with open(self.path, "rb") as f:
            raw = f.read()
        self.assertIn(b'"a\\nb"', raw, "the newline JSON-escaped in the file")
        self.assertTrue(reg.alive())
        # and it keeps working afterwards
        other = self.engine.run("-e", "NAME=after", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        self.wait_keys({key, self.key_of(other, "after", 80)}, "a later container registered")

    def test_a_name_that_cannot_be_a_key_element_skips_only_that_container(self):
        reg = self.started(self.registrar())
        newline = self.engine.run("--name", "rw-nl-%d" % os.getpid(), "-e", "NAME=x\ny", "-P",
                                  "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        toolong = self.engine.run("--name", "rw-long-%d" % os.getpid(), "-e", "NAME=" + "n" * 300,
                                  "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        fine = self.engine.run("-e", "NAME=fine", "-P", "--expose", "80", h.BUSYBOX_IMAGE, "sleep", "3600")
        self.wait_keys({self.key_of(fine, "fine", 80)}, "only the container with a usable NAME")
        for c in (newline, toolong):
            reg.wait_log(r"warn .*container /%s \(%s\): env NAME .*service skipped"
                         % (re.escape(self.inspect(c)["Name"][1:]), c[:12]), timeout=5)
        self.assertTrue(reg.alive())


if __name__ == "__main__":
    unittest.main()
