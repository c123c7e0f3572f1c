"""The ZooKeeper backend (zk://) against a real ZooKeeper server (Debian's
zookeeper package) on loopback, everything read back with kazoo (Debian's
python3-kazoo), a client nobody here wrote: register, update, deregister,
prune with another host's znodes left alone, a hostile env value kept
inside the prefix, digest auth and ACLs, a chroot, ttl mode's ephemeral
znodes (gone after kill -9, written again after a session expiry, kept
across a reload), the server restarted mid-run, and a three-server
ensemble losing the server registrar is connected to.  Every test ends by
comparing the whole tree with the running containers."""
import json
import logging
import os
import signal
import subprocess
import time
import unittest

import harness as h
from common import DockerTest, old_tool_document, start_registrar

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError, NoNodeError
    from kazoo.security import make_digest_acl_credential
except ImportError:         # reported by the skip below
    KazooClient = None

# kazoo says every lost connection on stderr; the outages here are on purpose
logging.getLogger("kazoo").setLevel(logging.CRITICAL)

HOST = "zkhost"
IPADDRESS = "10.0.9.9"
HOST_DOC = "/hosts/" + HOST                     # this host's document, recorded like any key
RECORDS = "/hosts.records/" + HOST              # this host's ownership records
FOREIGN_KEY = "/services/theirs/80/31000/0123456789ab"
FOREIGN_DOC = {"host": "otherhost", "name": "/theirs", "port": "80"}


def escaped(key):
    return key.replace("%", "%25").replace("/", "%2F")


def kazoo_missing():
    return None if KazooClient else "python3-kazoo is not installed (apt-get install python3-kazoo)"


def need_kazoo(cls):
    msg = kazoo_missing()
    return unittest.skip(msg)(cls) if msg else cls


class Reader:
    """What a reader of the registry sees, through kazoo."""

    def __init__(self, test, hosts, auth=(("digest", "alice:s3cret"),)):
        # authenticated as the user the auth test gives registrar, so that
        # wiping the tree between tests may delete what that test wrote
        retry = {"max_tries": 50, "delay": 0.1, "max_delay": 1}
        self.kz = KazooClient(hosts=hosts, timeout=10, auth_data=list(auth),
                              connection_retry=dict(retry, max_tries=-1), command_retry=retry)
        self.kz.start(timeout=30)
        test.addCleanup(self.close)

    def close(self):
        self.kz.stop()
        self.kz.close()

    def znodes(self, top):
        """{path: (data text, stat)} of top and everything below it."""
        out = {}

        def walk(p):
            try:
                data, stat = self.kz.retry(self.kz.get, p)
                kids = self.kz.retry(self.kz.get_children, p)
            except NoNodeError:
                return
            out[p] = ((data or b"").decode(), stat)
            for k in kids:
                walk(p.rstrip("/") + "/" + k)
        walk(top)
        return out

    def leaves(self, top):
        """{path: data} of the znodes under top that hold data."""
        return {p: d for p, (d, _) in self.znodes(top).items() if d}

    def empty_leaves(self, top):
        """Znodes below top with neither data nor children."""
        return sorted(p for p, (d, st) in self.znodes(top).items()
                      if p != top and not d and st.numChildren == 0)

    def wipe(self, *tops):
        for top in tops:
            if self.kz.exists(top):
                self.kz.delete(top, recursive=True)


class ZooKeeperScenarios:
    """What every ZooKeeper test needs: containers, registrar, a reader and
    the exact comparison.  ``self.hosts`` is the connect string."""

    root = ""                   # a chroot, for the tests that use one

    def web(self, name, *extra, env_name=None):
        # a free port rather than -P: every dockerd hands out -P ports from
        # 32768 up, and other dockerds on this host hold some of those
        # (a port free a moment ago may be taken by then, by a test running
        # beside this one: docker says so, and another is tried)
        for attempt in range(5):
            try:
                cid = self.docker.run("--name", name, "-e", "NAME=" + (env_name or name),
                                      "-p", "%d:80" % h.free_port(), *extra, self.image, "sleep", "3600")
                return cid, self.key_of(cid)
            except RuntimeError as e:
                if "port is already allocated" not in str(e) or attempt == 4:
                    raise
                self.docker.docker("rm", "-f", name, check=False)   # created, never started

    def key_of(self, cid):
        i = self.docker.inspect(cid)
        name = dict(e.split("=", 1) for e in i["Config"]["Env"] if "=" in e)["NAME"]
        segment = name.replace("%", "%25").replace("/", "%2F")
        port = i["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        return "/services/%s/80/%s/%s" % (segment, port, i["Config"]["Hostname"])

    def expected(self):
        """{key: document} the running containers should have."""
        out = {}
        for cid in self.docker.docker("ps", "-q", "--no-trunc").split():
            key = self.key_of(cid)
            out[key] = old_tool_document(self.docker.inspect(cid), "80/tcp", key, HOST, IPADDRESS)
        return out

    def registrar(self, *args, uri=None, env=None, mode="prune"):
        return start_registrar(self, "run", "-B", uri or "zk://%s%s" % (self.hosts, self.root),
                               "-D", self.docker.socket, "-H", HOST, "-a", IPADDRESS, "-i", "500",
                               "-m", mode, "--log-level", "debug", *args, env=env)

    def services(self):
        """{key: document} under the prefix, as a reader sees it."""
        top = self.root + "/services"
        return {p[len(self.root):]: json.loads(d) for p, d in self.reader.leaves(top).items()}

    def records(self):
        top = self.root + RECORDS
        return {p[len(top) + 1:]: json.loads(d) for p, d in self.reader.leaves(top).items()}

    def wait(self, predicate, message, timeout=20):
        return h.wait_until(lambda: predicate(self.services()), timeout=timeout, message=message)

    def wait_exact(self, foreign=None, timeout=20):
        want = dict(self.expected())
        want.update(foreign or {})
        h.wait_until(lambda: self.services() == want, timeout=timeout,
                     message="the registry equal to the running containers")

    def assert_exact(self, foreign=None, ttl=False, owner=None):
        """The whole prefix equals the running containers (plus foreign
        entries), every key has its record and nothing else is recorded,
        no empty parents are left, and each znode is of the mode's kind."""
        want = self.expected()
        mine = {k: v for k, v in self.services().items() if k not in (foreign or {})}
        self.assertEqual(mine, want)
        for k, v in (foreign or {}).items():
            self.assertEqual(self.services().get(k), v, "another host's entry changed")
        records = self.records()
        self.assertEqual(set(records), {escaped(k) for k in want} | {escaped(HOST_DOC)})
        # the host document follows at the next listing (every 500 ms here)
        h.wait_until(lambda: json.loads(self.reader.kz.get(self.root + HOST_DOC)[0] or b"{}").get("keys")
                     == sorted(want), message="the host document listing this host's keys")
        for k, doc in want.items():
            self.assertEqual(records[escaped(k)]["key"], k)
            self.assertEqual(json.loads(records[escaped(k)]["value"]), doc)
        if not ttl:
            self.assertEqual(self.reader.empty_leaves(self.root + "/services"), [])
        nodes = self.reader.znodes(self.root or "/")
        for k in list(want) + [HOST_DOC]:
            for path in (self.root + k, self.root + "%s/%s" % (RECORDS, escaped(k))):
                owner_of = nodes[path][1].ephemeralOwner
                if ttl:
                    self.assertNotEqual(owner_of, 0, path + " is not ephemeral")
                    if owner is not None:
                        self.assertEqual(owner_of, owner, path + " belongs to another session")
                else:
                    self.assertEqual(owner_of, 0, path + " is ephemeral in prune mode")

    def owners(self):
        """The ephemeral owners of this host's znodes."""
        return {st.ephemeralOwner for p, (d, st) in self.reader.znodes(self.root + "/services").items() if d}


class ZooKeeperTest(ZooKeeperScenarios, DockerTest):
    """One dockerd and one standalone ZooKeeper per class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.zk = h.ZooKeeper()
        cls.addClassCleanup(cls.zk.cleanup)
        cls.zk.start()
        cls.hosts = cls.zk.host_port

    def setUp(self):
        super().setUp()
        self.reader = Reader(self, self.hosts)
        self.reader.wipe("/services", "/hosts", "/hosts.records", "/chroot", "/elsewhere")


@h.skip_unless_available(h.Dockerd, h.ZooKeeper)
@need_kazoo
class PruneMode(ZooKeeperTest):

    def foreign_entry(self):
        """Another host's key and record, as its registrar would write them."""
        doc = json.dumps(FOREIGN_DOC).encode()
        self.reader.kz.create(FOREIGN_KEY, doc, makepath=True)
        self.reader.kz.create("/hosts.records/otherhost/" + escaped(FOREIGN_KEY),
                              json.dumps({"key": FOREIGN_KEY, "value": doc.decode()}).encode(), makepath=True)
        return {FOREIGN_KEY: FOREIGN_DOC}

    def test_register_update_deregister_and_prune(self):
        foreign = self.foreign_entry()
        a, key_a = self.web("alpha")
        gone, key_gone = self.web("gone")
        first = self.registrar()
        self.wait(lambda s: key_a in s and key_gone in s, "both registered")
        self.assertEqual(self.services()[key_a], self.expected()[key_a])
        first.wait_log(r"ZooKeeper 127\.0\.0\.1:\d+: connected, session 0x[0-9a-f]+")

        # registrar killed while a container goes away: its key stays; the
        # next registrar prunes it, and leaves the other host's entry alone
        first.kill9()
        self.docker.docker("rm", "-f", gone)
        self.assertIn(key_gone, self.services())
        reg = self.registrar()
        self.wait(lambda s: key_gone not in s, "the stale key pruned")
        self.assertEqual(self.services()[FOREIGN_KEY], FOREIGN_DOC)
        self.assertIn("otherhost", self.reader.kz.get_children("/hosts.records"))

        # an update: a renamed container's document is written again
        mzxid = self.reader.kz.get(key_a)[1].mzxid
        self.docker.docker("rename", "alpha", "alpha2")
        self.wait(lambda s: s.get(key_a, {}).get("name") == "/alpha2", "the rewritten document")
        self.assertEqual(self.reader.kz.get(key_a)[1].version, 1, "set in place, not deleted and created")
        self.assertNotEqual(self.reader.kz.get(key_a)[1].mzxid, mzxid)

        # an idle registrar writes nothing
        zxid = self.reader.kz.get(key_a)[1].mzxid
        mark = reg.mark()
        reg.wait_log(r"resync:", since=mark)
        time.sleep(1.5)
        self.assertEqual(self.reader.kz.get(key_a)[1].mzxid, zxid)
        self.assertEqual(self.reader.kz.get("%s/%s" % (RECORDS, escaped(key_a)))[1].version, 1)

        self.assert_exact(foreign)
        self.docker.docker("stop", a)
        self.wait(lambda s: key_a not in s, "the stopped container's key removed")
        self.assertEqual(self.reader.kz.get_children("/services"), ["theirs"], "empty parents removed")
        self.assert_exact(foreign)

    def test_a_hostile_env_value_stays_inside_the_prefix(self):
        _, key = self.web("hostile", env_name="../../zookeeper/quota/x")
        self.assertEqual(key, "/services/..%2F..%2Fzookeeper%2Fquota%2Fx/80/" + key.split("/80/")[1])
        self.registrar()
        self.wait(lambda s: key in s, "registered inside the prefix")
        self.assertEqual(sorted(c for c in self.reader.kz.get_children("/") if c != "zookeeper"),
                         ["hosts", "hosts.records", "services"])
        self.assertEqual(self.reader.kz.get_children("/zookeeper/quota"), [])
        self.assertEqual(self.reader.kz.get_children("/services"), ["..%2F..%2Fzookeeper%2Fquota%2Fx"])
        self.assert_exact()

    def test_digest_auth_and_acls(self):
        _, key = self.web("secure")
        reg = self.registrar(uri="zk://alice:s3cret@%s" % self.hosts)
        self.wait(lambda s: key in s, "registered with digest auth")
        digest = make_digest_acl_credential("alice", "s3cret")
        for path in ("/services", key, "%s/%s" % (RECORDS, escaped(key))):
            acls, _ = self.reader.kz.get_acls(path)
            self.assertEqual(sorted((a.perms, a.id.scheme, a.id.id) for a in acls),
                             [(1, "world", "anyone"), (31, "digest", digest)], path)
        # everyone reads; nobody else writes or deletes
        anyone = Reader(self, self.hosts, auth=())
        self.assertEqual(json.loads(anyone.kz.get(key)[0]), self.expected()[key])
        with self.assertRaises(NoAuthError):
            anyone.kz.set(key, b"{}")
        with self.assertRaises(NoAuthError):
            anyone.kz.delete(key)
        with self.assertRaises(NoAuthError):
            anyone.kz.create(key + "/below", b"x")
        self.assertNotIn("s3cret", reg.log())
        self.assert_exact()

        # the same credentials from the config: the same digest, so this
        # registrar owns what the first wrote and prunes it
        reg.kill9()
        self.docker.docker("rm", "-f", "secure")
        _, other = self.web("second")
        reg2 = self.registrar(env={"BACKEND_USERNAME": "alice", "BACKEND_PASSWORD": "s3cret"})
        self.wait(lambda s: key not in s and other in s, "pruned and registered under the config's credentials")
        self.assertEqual(sorted((a.perms, a.id.scheme) for a in self.reader.kz.get_acls(other)[0]),
                         [(1, "world"), (31, "digest")])
        self.assertNotIn("s3cret", reg2.log())
        self.assert_exact()

    def test_open_acls_without_credentials_and_a_chroot(self):
        self.root = "/chroot/registry"
        _, key = self.web("rooted")
        self.registrar()
        self.wait(lambda s: key in s, "registered under the chroot")
        self.assertEqual(sorted(self.reader.kz.get_children("/chroot/registry")), ["hosts", "hosts.records", "services"])
        self.assertIsNone(self.reader.kz.exists("/services"))
        acls, _ = self.reader.kz.get_acls("/chroot/registry" + key)
        self.assertEqual([(a.perms, a.id.scheme, a.id.id) for a in acls], [(31, "world", "anyone")])
        self.assert_exact()

    def test_server_restart_mid_run(self):
        kept, key_kept = self.web("kept")
        dying, key_dying = self.web("dying")
        reg = self.registrar()
        self.wait(lambda s: key_kept in s and key_dying in s, "registered")

        self.zk.stop()
        reg.wait_log(r"ZooKeeper \S+: connection lost; reconnecting")
        # Docker is still read while ZooKeeper is away
        mark = reg.mark()
        born, key_born = self.web("born")
        self.docker.docker("rm", "-f", dying)
        reg.wait_log(r"event start " + born[:12], since=mark)
        reg.wait_log(r"event destroy " + dying[:12], since=mark)
        time.sleep(1)           # writes fail and are retried meanwhile
        # a reload while calls wait on the server: they are cancelled, and
        # their answers, when they come, are dropped
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"SIGHUP: configuration and scripts reloaded", since=mark)
        time.sleep(1)
        self.zk.start()
        self.wait_exact(timeout=30)
        self.assertEqual(reg.log().count("connection lost"), 1, "one line for the outage")
        reg.wait_log(r"ZooKeeper \S+: connected again, session 0x[0-9a-f]+ kept")
        self.assertTrue(reg.alive())
        self.assert_exact()

    def test_a_reload_cancels_calls_waiting_on_a_frozen_server(self):
        _, key_a = self.web("before")
        reg = self.registrar()
        self.wait(lambda s: key_a in s, "registered")
        # a frozen server answers nothing: registrar's calls wait on it
        os.kill(self.zk.pid, signal.SIGSTOP)
        try:
            mark = reg.mark()
            during, key_b = self.web("during")
            reg.wait_log(r"event start " + during[:12], since=mark)
            time.sleep(0.7)     # the write and an audit are under way
            reg.signal(signal.SIGHUP)
            reg.wait_log(r"SIGHUP: configuration and scripts reloaded", since=mark)
            time.sleep(1)
        finally:
            os.kill(self.zk.pid, signal.SIGCONT)
        # the cancelled calls' answers arrive now and are dropped
        self.wait_exact()
        self.assertTrue(reg.alive())
        self.assertNotIn("yielded without waiting", reg.log())
        self.assert_exact()

    def test_stops_at_once_while_zookeeper_is_unreachable(self):
        _, key = self.web("lonely")
        reg = self.registrar(uri="zk://127.0.0.1:%d" % h.free_port())
        reg.wait_log(r"registry zk://\S+: open failed: .*connection loss", timeout=20)
        reg.wait_log(r"resync: 1 containers running")
        started = time.monotonic()
        self.assertEqual(reg.terminate(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(self.services(), {})


@h.skip_unless_available(h.Dockerd, h.ZooKeeper)
@need_kazoo
class TtlMode(ZooKeeperTest):

    def test_ephemeral_entries_vanish_after_kill_9(self):
        _, key = self.web("brief")
        _, key2 = self.web("brief2")
        reg = self.registrar("-t", "4000", mode="ttl")
        self.wait(lambda s: key in s and key2 in s, "registered as ephemeral znodes")
        (owner,) = self.owners()
        self.assertNotEqual(owner, 0)
        self.assert_exact(ttl=True, owner=owner)
        # the session lives on by itself: still there after a few intervals
        time.sleep(3)
        self.assertEqual(set(self.services()), {key, key2})

        killed = time.monotonic()
        reg.kill9()
        self.wait(lambda s: s == {}, "the ephemeral znodes gone with the session", timeout=30)
        self.assertGreater(time.monotonic() - killed, 2, "gone before the session timed out")
        self.assertEqual(self.records(), {})
        self.assertIsNone(self.reader.kz.exists(HOST_DOC), "the host document outlived the session")

        # a new registrar writes everything again under its own session
        self.registrar("-t", "4000", mode="ttl")
        self.wait(lambda s: key in s and key2 in s, "registered again")
        (new_owner,) = self.owners()
        self.assertNotEqual(new_owner, owner)
        self.assert_exact(ttl=True, owner=new_owner)

    def test_an_expired_session_is_replaced_and_everything_written_again(self):
        _, key = self.web("paused")
        reg = self.registrar("-t", "3000", mode="ttl")
        self.wait(lambda s: key in s, "registered")
        (owner,) = self.owners()
        # a host that stops answering (SIGSTOP) loses its session
        os.kill(reg.pid, signal.SIGSTOP)
        try:
            self.wait(lambda s: s == {}, "expired while registrar was stopped", timeout=30)
        finally:
            os.kill(reg.pid, signal.SIGCONT)
        reg.wait_log(r"session 0x%x expired" % owner, timeout=30)
        self.wait(lambda s: key in s, "written again under the new session", timeout=30)
        (new_owner,) = self.owners()
        self.assertNotEqual(new_owner, owner)
        reg.wait_log(r"connected, new session 0x%x" % new_owner)
        self.assert_exact(ttl=True, owner=new_owner)

    def test_a_reload_keeps_the_session_and_its_entries(self):
        _, key = self.web("steady")
        reg = self.registrar("-t", "4000", mode="ttl")
        self.wait(lambda s: key in s, "registered")
        (owner,) = self.owners()
        czxid = self.reader.kz.get(key)[1].czxid
        mark = reg.mark()
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"SIGHUP: configuration and scripts reloaded", since=mark)
        reg.wait_log(r"registry zk://\S+: this host has 2 entries there", since=mark)   # the key and the host document
        self.assertEqual(self.reader.kz.get(key)[1].czxid, czxid, "the znode was created again")
        self.assertEqual(self.owners(), {owner})
        self.assert_exact(ttl=True, owner=owner)

    def test_sigterm_closes_the_session_and_its_entries_go_at_once(self):
        _, key = self.web("closing")
        reg = self.registrar("-t", "20000", mode="ttl")
        self.wait(lambda s: key in s, "registered")
        stopped = time.monotonic()
        self.assertEqual(reg.terminate(), 0)
        self.wait(lambda s: s == {}, "gone with the closed session", timeout=10)
        self.assertLess(time.monotonic() - stopped, 10, "waited for the 20 s session timeout")
        # the container runs on, and with no registrar its entry is gone
        self.assertEqual((self.services(), self.records()), ({}, {}))

    def test_prune_mode_replaces_ephemeral_znodes(self):
        _, key = self.web("switch")
        ttl = self.registrar("-t", "4000", mode="ttl")
        self.wait(lambda s: key in s, "registered in ttl mode")
        ttl.kill9()
        self.registrar()
        h.wait_until(lambda: self.owners() == {0}, timeout=20, message="persistent znodes")
        self.assert_exact()


@h.skip_unless_available(h.Dockerd, h.ZooKeeperEnsemble)
@need_kazoo
class Ensemble(ZooKeeperScenarios, DockerTest):
    """Three servers on loopback; the one registrar is connected to is
    stopped mid-run."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ensemble = h.ZooKeeperEnsemble(3)
        cls.addClassCleanup(cls.ensemble.cleanup)
        cls.ensemble.start()
        cls.hosts = cls.ensemble.hosts

    def setUp(self):
        super().setUp()
        self.reader = Reader(self, self.hosts)
        self.reader.wipe("/services", "/hosts", "/hosts.records")

    def server_of(self, reg):
        """The member registrar's process is connected to (ss -tnp)."""
        out = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True, text=True,
                             timeout=10).stdout
        ports = {m.client_port: m for m in self.ensemble.members}
        for line in out.splitlines():
            if "pid=%d," % reg.pid in line:
                peer = line.split()[-2]
                port = int(peer.rsplit(":", 1)[1])
                if port in ports:
                    return ports[port]
        return None

    def test_a_stopped_server_is_failed_over(self):
        first, key_first = self.web("first")
        reg = self.registrar()
        self.wait(lambda s: key_first in s, "registered")
        member = h.wait_until(lambda: self.server_of(reg), message="registrar's server")
        mark = reg.mark()
        member.stop()
        reg.wait_log(r"connection lost; reconnecting", since=mark, timeout=20)
        reg.wait_log(r"connected again, session 0x[0-9a-f]+ kept", since=mark, timeout=30)
        self.assertNotEqual(self.server_of(reg), member)

        # registrations go on through the other two
        _, key_second = self.web("second")
        self.wait(lambda s: key_second in s, "registered after the failover", timeout=30)
        self.docker.docker("rm", "-f", first)
        self.wait(lambda s: key_first not in s, "deregistered after the failover", timeout=30)

        member.start(wait=False)
        self.ensemble.wait_serving()
        self.assert_exact()
        # the restarted server has the same tree
        solo = Reader(self, member.host_port)
        self.assertEqual({p: d for p, d in solo.leaves("/services").items()},
                         {p: d for p, d in self.reader.leaves("/services").items()})


if __name__ == "__main__":
    unittest.main()
