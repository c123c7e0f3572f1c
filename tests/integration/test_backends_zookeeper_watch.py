"""The ZooKeeper backend watched instead of polled, against a real
ZooKeeper server (Debian's zookeeper package), read and changed by hand
with kazoo: a key of this host deleted or overwritten, and a record taken
away, are written back well before the next interval (a minute away); a
session expiry ends the watch, registrar audits and watches again; a
server restart keeps the session and its watches; a reload cancels the
watch waiting and the new backend watches again; and an idle host asks
ZooKeeper nothing but the session's pings, counted by a proxy between
registrar and the server that reads the protocol's framing."""
import os
import re
import signal
import socket
import struct
import threading
import time

import harness as h
import test_backends_zookeeper as zkt        # a module: its test classes are not run again here
from test_backends_zookeeper import RECORDS, ZooKeeperScenarios, escaped, need_kazoo

LONG_INTERVAL = "60000"         # repairs must not wait for it
PING_XID, PING_TYPE = -2, 11    # jute: a ping's request header


class CountingProxy:
    """A TCP proxy to ZooKeeper that reads each frame registrar sends (a
    4-byte big-endian length, then the request: xid and type, two int32)
    and keeps the (xid, type) of every request that is not a ping.  The
    first frame of a connection is the ConnectRequest, which has neither."""

    def __init__(self, test, upstream_port):
        self.upstream_port = upstream_port
        self.requests = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.open = []
        threading.Thread(target=self.accept, daemon=True).start()
        test.addCleanup(self.close)

    def close(self):
        self.listener.close()
        for s in self.open:
            s.close()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.open += [client, server]
            threading.Thread(target=self.pump, args=(client, server, self.frame_reader()), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client), daemon=True).start()

    @staticmethod
    def pump(src, dst, seen=None):
        """Copies src to dst until either ends, showing each piece to seen."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if seen is not None:
                    seen(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def frame_reader(self):
        """What one connection's bytes from registrar are shown to: it cuts
        them into frames and keeps each request that is not a ping."""
        state = {"buf": b"", "first": True}

        def seen(data):
            buf = state["buf"] + data
            while len(buf) >= 4:
                (n,) = struct.unpack(">i", buf[:4])
                if len(buf) < 4 + n:
                    break
                frame, buf = buf[4:4 + n], buf[4 + n:]
                if not state["first"] and n >= 8:
                    xid, kind = struct.unpack(">ii", frame[:8])
                    if (xid, kind) != (PING_XID, PING_TYPE):
                        with self.lock:
                            self.requests.append((xid, kind))
                state["first"] = False
            state["buf"] = buf
        return seen

    def taken(self):
        """The requests seen since the last call."""
        with self.lock:
            out, self.requests = self.requests, []
        return out


class WatchScenarios(ZooKeeperScenarios):

    def registrar(self, *args, interval=LONG_INTERVAL, mode="prune", port=None):
        return super().registrar("-i", interval, *args, mode=mode,
                                 uri="zk://127.0.0.1:%d" % (port or self.zk.client_port))

    def two_registered(self, *args, **kw):
        _, a = self.web("alpha")
        _, b = self.web("beta")
        reg = self.registrar(*args, **kw)
        reg.wait_log(r"registry \S+: this host has")
        self.wait(lambda s: {a, b} <= set(s), "both registered")
        reg.wait_log(r"registry \S+: watching for changes")
        return reg, a, b

    def repaired(self, a, b, docs):
        """a deleted and b overwritten by hand: both written back."""
        self.reader.kz.delete(a)
        self.reader.kz.set(b, b'{"host":"someone else"}')
        h.wait_until(lambda: self.services().get(a) == docs[a] and self.services().get(b) == docs[b],
                     timeout=10, message="both keys written back, with the interval a minute away")


@h.skip_unless_available(h.Dockerd, h.ZooKeeper)
@need_kazoo
class Watch(WatchScenarios, zkt.ZooKeeperTest):
    """One dockerd and one standalone ZooKeeper for the class."""

    def test_a_key_deleted_and_one_overwritten_by_hand_are_written_back_at_once(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        self.repaired(a, b, docs)
        reg.wait_log(r"key %s was deleted by someone else: writing it again" % re.escape(a))
        reg.wait_log(r"key %s was changed by someone else: writing it again" % re.escape(b))
        self.assert_exact()

    def test_a_record_taken_away_is_written_back_with_its_key(self):
        reg, a, b = self.two_registered()
        record = "%s/%s" % (RECORDS, escaped(a))
        had = self.reader.kz.get(record)[0]
        self.reader.kz.delete(record)
        h.wait_until(lambda: self.reader.kz.exists(record) is not None, timeout=10,
                     message="the record written back, with the interval a minute away")
        self.assertEqual(self.reader.kz.get(record)[0], had)
        self.assert_exact()

    def test_a_session_expiry_ends_the_watch_and_it_is_armed_again(self):
        reg, a, b = self.two_registered("-t", "3000")
        docs = self.services()
        # a host that stops answering (SIGSTOP) loses its session; its
        # persistent znodes stay, its watches go with the session
        mark = reg.mark()
        os.kill(reg.pid, signal.SIGSTOP)
        try:
            time.sleep(8)       # well past the 3 s session timeout
        finally:
            os.kill(reg.pid, signal.SIGCONT)
        reg.wait_log(r"ZooKeeper \S+: session 0x[0-9a-f]+ expired", timeout=30)
        reg.wait_log(r"watch ended: the session 0x[0-9a-f]+ expired, and its watches with it; "
                     r"auditing, then watching again", timeout=30)
        reg.wait_log(r"ZooKeeper \S+: connected, new session", since=mark)
        # the audit done, watching again on the new session: a repair
        # still comes at once
        reg.wait_log(r"registry \S+: watching for changes", since=mark, timeout=30)
        h.wait_until(lambda: self.delete_once_and_back(a, docs[a]), timeout=20,
                     message="a repair on the new session, with the interval a minute away")
        self.assert_exact()

    def delete_once_and_back(self, key, doc):
        """Deletes key by hand (once, when it is there as it should be)
        and says whether it is back."""
        if self.services().get(key) == doc and not getattr(self, "_deleted", False):
            self._deleted = True
            self.reader.kz.delete(key)
            return False
        return self._deleted and self.services().get(key) == doc

    def test_a_server_restart_keeps_the_session_and_its_watches(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        self.zk.stop()
        reg.wait_log(r"ZooKeeper \S+: connection lost; reconnecting")
        self.zk.start()
        reg.wait_log(r"ZooKeeper \S+: connected again, session 0x[0-9a-f]+ kept", timeout=30)
        self.reader.kz.retry(self.reader.kz.exists, "/")       # kazoo back too
        self.repaired(a, b, docs)
        self.assertNotIn("watch ended", reg.log(), "the client sent its watches again (SetWatches)")
        self.assert_exact()

    def test_a_reload_cancels_the_waiting_watch_and_watches_again(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        mark = reg.mark()
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"SIGHUP: configuration and scripts reloaded", since=mark)
        reg.wait_log(r"registry \S+: watching for changes", since=mark)
        self.repaired(a, b, docs)
        self.assertTrue(reg.alive())
        self.assert_exact()

    def idle(self, mode):
        """Through the counting proxy: once the start-up's writes are
        answered, three intervals of 1 s make no request but pings; a key
        deleted by hand afterwards is still written back (the watch is
        up)."""
        proxy = CountingProxy(self, self.zk.client_port)
        reg, a, b = self.two_registered("-t", "4000", interval="1000", mode=mode, port=proxy.port)
        docs = self.services()
        time.sleep(1.5)         # the start-up's writes, and their own watches' reads, are over
        proxy.taken()
        mark = reg.mark()
        time.sleep(3.5)
        self.assertEqual(proxy.taken(), [], "requests (xid, type) other than pings while idle")
        self.assertGreaterEqual(len(re.findall(r"resync: 2 containers running", reg.log()[mark:])), 3)
        self.reader.kz.delete(a)
        h.wait_until(lambda: self.services().get(a) == docs[a], timeout=10, message="written back")
        self.assertNotEqual(proxy.taken(), [], "the repair went through the proxy")
        self.assert_exact(ttl=mode == "ttl")

    def test_an_idle_host_asks_zookeeper_nothing_but_pings(self):
        self.idle("prune")

    def test_an_idle_host_in_ttl_mode_asks_nothing_either(self):
        self.idle("ttl")
