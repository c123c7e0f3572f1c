"""``ZooKeeper``: a private ZooKeeper server (Debian's zookeeper package,
started straight with java) on 127.0.0.1, with helpers that read its tree
through a ``ZkClient`` session; ``ZooKeeperEnsemble``: several of them
forming one ensemble on loopback.

Network rule: the servers listen on loopback only (``clientPortAddress``,
and 127.0.0.1 in every ``server.N`` line of an ensemble), their admin
server is off, and only the ruok and stat four-letter words are allowed.
"""

import os
import signal
import socket

from .processes import Process, ServerProcess, _register
from .util import (MissingDependency, _claim_workdir, _clean_env, _find, _missing,
                   _tail, free_port, wait_until)
from .zkclient import ZkClient, ZkError


class ZooKeeper(ServerProcess):
    """A standalone ZooKeeper (Debian's zookeeper package) on 127.0.0.1.

    Started straight with java, like the package's zkServer.sh but without
    systemd or /etc/zookeeper: ``java -cp zookeeper.jar:slf4j-simple.jar
    QuorumPeerMain zoo.cfg``.  zookeeper.jar's manifest Class-Path pulls in
    its dependencies; slf4j-simple is added because Debian's classpath has
    no logging binding (the server would log nothing).
    """

    JAR = "/usr/share/java/zookeeper.jar"
    SLF4J = "/usr/share/java/slf4j-simple.jar"
    REQUIRES = ("java", JAR, SLF4J)

    @classmethod
    def missing(cls):
        return _missing(cls.REQUIRES)

    def __init__(self, workdir=None, tick_time_ms=1000, myid=None, servers=None, client_port=None):
        """``myid`` and ``servers`` ({id: "127.0.0.1:QUORUM_PORT:ELECTION_PORT"})
        make this one member of an ensemble (see ``ZooKeeperEnsemble``),
        with its ``client_port`` chosen by the ensemble."""
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.tick_time_ms = tick_time_ms
        self.myid = myid
        self.servers = servers
        self.client_port = client_port
        self._proc = None
        self._cleaned = False

    def __repr__(self):
        return "<ZooKeeper %s>" % (self.host_port if self.client_port else self.workdir)

    @property
    def host_port(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def log_path(self):
        return os.path.join(self.workdir, "zookeeper.log")

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def alive(self):
        return self._proc is not None and self._proc.alive()

    def four_letter(self, word, timeout=2.0):
        """Send a four-letter command (ruok, stat) and return the answer."""
        with socket.create_connection(("127.0.0.1", self.client_port), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def serving(self):
        """The server answers and serves (standalone, leader or follower)."""
        if not self.alive():
            return False
        try:
            return self.four_letter("ruok") == "imok" and "Mode: " in self.four_letter("stat")
        except OSError:
            return False

    def start(self, timeout=30, wait=True):
        """Starts the server; with ``wait`` (the default) returns once it
        serves.  An ensemble member serves only once a quorum is up, so
        ``ZooKeeperEnsemble`` starts its members with wait=False."""
        if self.alive():
            return self
        msg = self.missing()
        if msg:
            raise MissingDependency(msg)
        self._cleaned = False
        _register(self)
        if self.workdir is None:
            self.workdir, _ = _claim_workdir("rz")
        else:
            os.makedirs(self.workdir, exist_ok=True)
        first = self.client_port is None
        for _ in range(3):
            if first:
                self.client_port = free_port()
            self._spawn()
            if not wait:
                return self

            def ready():
                if not self._proc.alive():
                    return "exited"
                try:
                    # ruok answers as soon as the port is open; stat tells
                    # when the server really serves ("Mode: standalone").
                    return (self.four_letter("ruok") == "imok"
                            and "Mode: " in self.four_letter("stat"))
                except OSError:
                    return False
            try:
                if wait_until(ready, timeout=timeout, interval=0.1, message="zookeeper ruok") is True:
                    return self
            except AssertionError:
                pass
            log = self._proc.log()
            self._proc.stop(timeout=5)
            if not (first and self.servers is None and "Address already in use" in log):
                break
        raise RuntimeError("ZooKeeper did not answer ruok on %s; log tail:\n%s"
                           % (self.host_port, self.log_tail()))

    def _spawn(self):
        data = os.path.join(self.workdir, "data")
        os.makedirs(data, exist_ok=True)
        cfg = os.path.join(self.workdir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("tickTime=%d\ninitLimit=10\nsyncLimit=5\n"
                    "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "maxClientCnxns=0\nadmin.enableServer=false\n"
                    "4lw.commands.whitelist=ruok,stat\n"
                    % (self.tick_time_ms, data, self.client_port))
            for sid, where in sorted((self.servers or {}).items()):
                f.write("server.%d=%s\n" % (sid, where))
        if self.servers:
            with open(os.path.join(data, "myid"), "w") as f:
                f.write("%d\n" % self.myid)
        argv = [_find("java"), "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC",
                # Quicker JVM start for a short-lived test server.
                "-XX:TieredStopAtLevel=1", "-Xshare:auto",
                "-Djava.net.preferIPv4Stack=true",
                "-Dzookeeper.admin.enableServer=false",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp", "%s:%s" % (self.JAR, self.SLF4J),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        env = _clean_env(drop_prefixes=("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"))
        self._proc = Process(argv, env=env, inherit_env=False, log_path=self.log_path,
                             name="zookeeper", death_signal=signal.SIGTERM, register=False)
        self._proc.start()

    def client(self, session_timeout_ms=10000):
        """A new ZkClient session (use as a context manager)."""
        return ZkClient(self.host_port, session_timeout_ms=session_timeout_ms)

    def get(self, path):
        """Data of ``path`` as bytes, or None if it does not exist."""
        with self.client() as zk:
            try:
                return zk.get(path)[0]
            except ZkError as e:
                if e.code == ZkClient.NONODE:
                    return None
                raise

    def children(self, path):
        """Sorted child names, or None if ``path`` does not exist."""
        with self.client() as zk:
            try:
                return zk.children(path)
            except ZkError as e:
                if e.code == ZkClient.NONODE:
                    return None
                raise

    def tree(self, path="/"):
        """{node path: data bytes} for ``path`` and everything below it
        (without /zookeeper); {} if absent."""
        out = {}
        with self.client() as zk:
            def walk(p):
                try:
                    out[p] = zk.get(p)[0]
                    kids = zk.children(p)
                except ZkError as e:
                    if e.code == ZkClient.NONODE:
                        return
                    raise
                for k in kids:
                    child = (p.rstrip("/") + "/" + k)
                    if child != "/zookeeper":
                        walk(child)
            walk(path)
        return out



class ZooKeeperEnsemble:
    """``size`` ZooKeeper servers forming one ensemble on 127.0.0.1, each
    with its own work dir and ports.  ``hosts`` is the client's connect
    string; ``members[i]`` can be stopped and started again by itself.
    Ports are picked free but not held, so a start that finds one taken
    fails (rare); the tests then fail rather than retry with new ports,
    which the other members' configuration would not know.
    """

    REQUIRES = ZooKeeper.REQUIRES

    @classmethod
    def missing(cls):
        return ZooKeeper.missing()

    def __init__(self, size=3, tick_time_ms=500):
        self.size = size
        self.tick_time_ms = tick_time_ms
        self.members = []

    @property
    def hosts(self):
        return ",".join(m.host_port for m in self.members)

    def start(self, timeout=60):
        msg = self.missing()
        if msg:
            raise MissingDependency(msg)
        servers = {i: "127.0.0.1:%d:%d" % (free_port(), free_port()) for i in range(1, self.size + 1)}
        self.members = [ZooKeeper(tick_time_ms=self.tick_time_ms, myid=i, servers=servers,
                                  client_port=free_port())
                        for i in range(1, self.size + 1)]
        for m in self.members:
            m.start(wait=False)
        self.wait_serving(timeout=timeout)
        return self

    def wait_serving(self, members=None, timeout=60):
        """Waits until every member given (default: all that run) serves."""
        members = members if members is not None else [m for m in self.members if m.alive()]
        wait_until(lambda: all(m.serving() for m in members), timeout=timeout, interval=0.2,
                   message="ZooKeeper ensemble serving: " + ", ".join(
                       "%s %s" % (m.host_port, "up" if m.alive() else "down") for m in members))

    def client(self, session_timeout_ms=10000):
        """A ZkClient session with a member that serves."""
        for m in self.members:
            if m.serving():
                return m.client(session_timeout_ms=session_timeout_ms)
        raise RuntimeError("no member of the ensemble serves")

    def cleanup(self):
        errors = []
        for m in self.members:
            try:
                m.cleanup()
            except RuntimeError as e:
                errors.append(str(e))
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
