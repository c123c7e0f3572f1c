"""parts.py: what the benchmarks run: registrar itself, real containers on
the harness's private dockerd, a Docker proxy that withholds events (the
old tool's polling), the replay server and the Consul stand-in as
processes of their own.  Everything started here is stopped by its
cleanup(); the harness cleans up the daemons it started."""
import http.client
import os
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
RESYNC = re.compile(r"resync: (\d+) containers running, (\d+) Docker requests")


class Registrar:
    """One registrar run: `registrar run` with the bench's options, its
    log at debug level (the resync lines are what the bench reads)."""

    def __init__(self, binary, backend, docker, hostname="bench", mode="prune", interval=3000, ttl=None,
                 extra=()):
        argv = [binary, "run", "-B", backend, "-D", docker, "-H", hostname, "-a", "10.0.0.1",
                "-m", mode, "-i", str(interval), "--log-level", "debug"]
        if ttl is not None:
            argv += ["-t", str(ttl)]
        self.proc = h.Process(argv + list(extra), inherit_env=False, env={"PATH": h.SYSTEM_PATH},
                              name="registrar")
        self.started = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.started = time.monotonic()
        self.proc.start()
        return self

    def log(self):
        return self.proc.log()

    def mark(self):
        return self.proc.mark()

    def resyncs(self, since=0):
        """[(containers, Docker requests)] of the resyncs logged after `since`."""
        return [(int(a), int(b)) for a, b in RESYNC.findall(self.log()[since:])]

    def wait_resyncs(self, count, since=0, timeout=120):
        """Waits for `count` resync lines after `since`; returns the log
        position just after the last of them."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            found = list(RESYNC.finditer(text, since))
            if len(found) >= count:
                return found[count - 1].end()
            if not self.proc.alive():
                raise AssertionError("registrar exited (%s); log tail:\n%s" % (self.proc.returncode,
                                                                              self.proc.log_tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%d resyncs not logged within %ss; log tail:\n%s"
                                     % (count, timeout, self.proc.log_tail()))
            time.sleep(0.01)

    def stop(self):
        code = self.proc.stop(timeout=10)
        self.proc.cleanup()
        return code


# ---- real containers -----------------------------------------------------------------

def run_containers(docker, image, names, ports=("80/tcp", "443/tcp"), threads=4):
    """Creates and starts one busybox `sleep` per name (-e NAME=<name>, the
    ports published with -P) through the Engine API, `threads` at a time;
    returns their ids in the order of names."""
    ids = [None] * len(names)
    todo = list(enumerate(names))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not todo or errors:
                    return
                i, name = todo.pop(0)
            try:
                ids[i] = run_container(docker, image, name, ports)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
    pool = [threading.Thread(target=worker) for _ in range(max(1, threads))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return ids


def run_container(docker, image, name, ports=("80/tcp", "443/tcp")):
    body = {"Image": image, "Cmd": ["sleep", "3600"], "Env": ["NAME=" + name],
            "ExposedPorts": {p: {} for p in ports}, "StopTimeout": 1,
            "HostConfig": {"PublishAllPorts": True}}
    status, created = docker.api("POST", "/containers/create?name=" + name, body)
    if status != 201:
        raise RuntimeError("create %s: %s %s" % (name, status, created))
    status, answer = docker.api("POST", "/containers/%s/start" % created["Id"])
    if status != 204:
        raise RuntimeError("start %s: %s %s" % (name, status, answer))
    return created["Id"]


def remove_container(docker, cid):
    status, answer = docker.api("DELETE", "/containers/%s?force=1" % cid, timeout=60)
    if status != 204:
        raise RuntimeError("remove %s: %s %s" % (cid[:12], status, answer))


def remove_containers(docker, ids, threads=4):
    todo = list(ids)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                cid = todo.pop()
            remove_container(docker, cid)
    pool = [threading.Thread(target=worker) for _ in range(max(1, threads))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def hostname_of(cid):
    """The key's last element in the default layout: Docker's hostname."""
    return cid[:12]


# ---- polling: Docker without its events ------------------------------------------------

class EventlessDocker:
    """A Unix-socket proxy in front of a real dockerd that answers /events
    with a stream that stays open and silent, and passes every other
    request on.  registrar then learns of changes only from its listings:
    the old tool's polling, which registrar has no switch for."""

    def __init__(self, upstream, path):
        self.upstream, self.path = upstream, path
        self.requests = 0
        self._stopping = False
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        up = h.UnixHTTPConnection(self.upstream, timeout=60)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                method, target = line.decode("latin-1").split(" ")[:2]
                headers, length = {}, 0
                while True:
                    hl = f.readline()
                    if hl in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = hl.decode("latin-1").partition(":")
                    headers[k.strip()] = v.strip()
                    if k.strip().lower() == "content-length":
                        length = int(v.strip())
                body = f.read(length) if length else None
                self.requests += 1
                if target.split("?")[0].endswith("/events"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    while not self._stopping and conn.recv(1):
                        pass
                    return
                up.request(method, target, body=body,
                           headers={k: v for k, v in headers.items() if k.lower() != "connection"})
                resp = up.getresponse()
                data = resp.read()
                out = "HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        out += "%s: %s\r\n" % (k, v)
                out += "Content-Length: %d\r\n\r\n" % len(data)
                conn.sendall(out.encode("latin-1") + data)
        except (OSError, http.client.HTTPException, ValueError):
            return
        finally:
            up.close()
            f.close()
            conn.close()

    def cleanup(self):
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# ---- servers of their own ---------------------------------------------------------------

class ReplayServer:
    """bench/replay_docker.py serve, as its own process (it does not share
    a GIL with the bench's watches): .socket for registrar, .control for
    starting and removing containers."""

    def __init__(self, workdir, containers=0):
        from replay_docker import ReplayControl
        self.socket = os.path.join(workdir, "replay.sock")
        control = os.path.join(workdir, "replay-control.sock")
        self.proc = h.Process([PYTHON, os.path.join(HERE, "replay_docker.py"), "serve", "--socket", self.socket,
                               "--control", control, "--containers", str(containers)], name="replay-docker")
        self.proc.start()
        self.proc.wait_log(r"serving \d+ synthetic containers", timeout=120)
        self.control = ReplayControl(control)

    def call(self, **cmd):
        return self.control.call(**cmd)

    @property
    def pid(self):
        return self.proc.pid

    def cleanup(self):
        try:
            self.control.close()
        except OSError:
            pass
        self.proc.stop(timeout=5)
        self.proc.cleanup()


class ConsulStandin:
    """tests/consul_standin as its own process, one log line per request
    (what the bench counts)."""

    def __init__(self, workdir):
        self.request_log = os.path.join(workdir, "consul-requests.log")
        open(self.request_log, "w").close()
        self.proc = h.Process([PYTHON, os.path.join(ROOT, "tests", "consul_standin", "consul_standin.py"),
                               "--port", "0", "--node-name", "consul-node", "--log", self.request_log],
                              name="consul-standin")
        self.proc.start()
        m = self.proc.wait_log(r"listening on 127\.0\.0\.1:(\d+)", timeout=30)
        self.port = int(m.group(1))
        self.host_port = "127.0.0.1:%d" % self.port

    def request_lines(self):
        with open(self.request_log) as f:
            return f.read().splitlines()

    def requests(self):
        """[(method, path)] of every request so far."""
        out = []
        for line in self.request_lines():
            parts = line.split(" ")
            if len(parts) >= 4:
                out.append((parts[2], parts[3].split("?")[0]))
        return out

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def put(self, path, body=b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("PUT", path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def cleanup(self):
        self.proc.stop(timeout=5)
        self.proc.cleanup()
