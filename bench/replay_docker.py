#!/usr/bin/env python3
"""replay_docker.py: the Docker Engine API on a Unix socket, answering for as
many containers as a benchmark wants with responses recorded from a real
dockerd.  Everything it serves is SYNTHETIC: one recorded container,
copied N times with new ids, names, host ports and addresses.

    replay_docker.py record [--out bench/recorded/dockerd.json]
        starts a private dockerd (tests/integration/harness.py), runs one
        container (-e NAME, two published ports), and records its answers
        to /_ping, /version, /containers/json, /containers/{id}/json and
        the events of its start and of its removal.  Run as root.

    replay_docker.py serve --socket S [--control C] [--containers N]
        serves the recording at S with N containers already running; C
        takes one JSON command a line (see Control) and answers one line.

What it answers (<v> is any "/v1.NN" prefix, or none), as dockerd does:

    GET|HEAD /_ping                     "OK"
    GET /version                        the recorded answer
    GET /containers/json                the running containers (all=1: the same;
                                        nothing is ever stopped, only removed)
    GET /containers/{id|name}/json      the container; unknown: 404
    GET /events                         a chunked stream kept open: filters
                                        (type, event, container), since, until
    POST /containers/{id}/kill          204 and a kill event (KILL also dies)
    anything else                       404 {"message": "page not found"}

Status ("Up 5 seconds") follows each container's start time as Docker's
does, so a listing changes from second to second as a real one would.
Every request is counted by kind (list, inspect, events, version, ping,
kill, other) for the benchmarks: `counts()`.
"""
import argparse
import collections
import copy
import datetime
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDING = os.path.join(HERE, "recorded", "dockerd.json")
FIRST_HOST_PORT = 20000
RECORDED_NAME = "recorded"

# ---------------------------------------------------------------------------
# recording from a real dockerd
# ---------------------------------------------------------------------------


def _raw_get(socket_path, path):
    """GET over the socket -> (status, {header: value}, body bytes)."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
    import harness as h
    conn = h.UnixHTTPConnection(socket_path, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class _EventTap:
    """Reads dockerd's event stream (container and network events) into a
    list of parsed events, as they arrive."""

    def __init__(self, socket_path):
        self.events = []
        self.headers = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(socket_path)
        self.sock.sendall(b"GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D%7D "
                          b"HTTP/1.1\r\nHost: docker\r\n\r\n")
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(10):
            raise RuntimeError("dockerd did not answer the event subscription")

    def _read(self):
        f = self.sock.makefile("rb")
        f.readline()
        while True:
            line = f.readline().strip()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            self.headers[k.strip()] = v.strip()
        self.ready.set()
        while True:
            size = f.readline()
            if not size:
                return
            n = int(size.strip() or b"0", 16)
            if n == 0:
                return
            data = f.read(n)
            f.readline()
            for line in data.splitlines():
                if line.strip():
                    with self.lock:
                        self.events.append(json.loads(line))

    def about(self, cid):
        with self.lock:
            return [e for e in self.events
                    if e.get("Actor", {}).get("ID") == cid
                    or e.get("Actor", {}).get("Attributes", {}).get("container") == cid]

    def close(self):
        self.sock.close()


def record(out):
    """Records one container's answers from a private dockerd into `out`."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
    import harness as h
    docker = h.Dockerd()
    try:
        docker.start()
        image = docker.import_busybox()
        tap = _EventTap(docker.socket)
        body = {"Image": image, "Cmd": ["sleep", "3600"], "Env": ["NAME=" + RECORDED_NAME],
                "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "StopTimeout": 1,
                "HostConfig": {"PublishAllPorts": True}}
        status, created = docker.api("POST", "/containers/create?name=" + RECORDED_NAME, body)
        if status != 201:
            raise RuntimeError("create: %s %s" % (status, created))
        cid = created["Id"]
        docker.api("POST", "/containers/%s/start" % cid)
        h.wait_until(lambda: any(e.get("Action") == "start" for e in tap.about(cid)), message="start event")
        started = list(tap.about(cid))
        answers = {}
        for what, path in (("ping", "/_ping"), ("version", "/version"), ("list", "/v1.41/containers/json"),
                           ("inspect", "/v1.41/containers/%s/json" % cid)):
            status, headers, raw = _raw_get(docker.socket, path)
            answers[what] = {"status": status, "headers": headers, "body": raw.decode()}
        docker.api("DELETE", "/containers/%s?force=1" % cid)
        h.wait_until(lambda: any(e.get("Action") == "destroy" for e in tap.about(cid)), message="destroy event")
        removed = tap.about(cid)[len(started):]
        tap.close()
        listed = [c for c in json.loads(answers["list"]["body"]) if c["Id"] == cid]
        rec = {
            "comment": "Answers of a real dockerd for one container (bench/replay_docker.py record); "
                       "the replay server copies it into synthetic containers.",
            "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "server": answers["version"]["headers"].get("Server", ""),
            "id": cid,
            "name": RECORDED_NAME,
            "headers": {k: v for k, v in answers["inspect"]["headers"].items()
                        if k in ("Api-Version", "Content-Type", "Docker-Experimental", "Ostype", "Server")},
            "ping": answers["ping"],
            "version": json.loads(answers["version"]["body"]),
            "events_headers": {k: v for k, v in tap.headers.items() if k != "Date"},
            "list_entry": listed[0],
            "inspect": json.loads(answers["inspect"]["body"]),
            "start_events": started,
            "remove_events": removed,
        }
    finally:
        docker.cleanup()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    return rec


def load_recording(path=RECORDING):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# synthetic containers: the recorded one, with its identity replaced
# ---------------------------------------------------------------------------

def _human_duration(seconds):
    """Docker's "Up ..." text (go-units HumanDuration)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return "%d seconds" % s
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    return "%d days" % (hours // 24)


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Synthesiser:
    """Container number i of a recording: a new id, name (synth<i>), host
    ports (FIRST_HOST_PORT + 2i, + 1, ...) and address on the recorded
    network; every other field as recorded."""

    def __init__(self, rec, seed=0):
        self.rec = rec
        self.seed = seed
        inspect = rec["inspect"]
        self.ports = sorted(inspect["NetworkSettings"]["Ports"])
        self.net = next(iter(inspect["NetworkSettings"]["Networks"]))
        self.replace = [(rec["id"], "@ID@"), (rec["id"][:12], "@ID12@"),
                        (inspect["NetworkSettings"]["SandboxID"], "@SANDBOX@"),
                        (inspect["NetworkSettings"]["SandboxID"][:12], "@SANDBOX12@")]
        ip = inspect["NetworkSettings"]["Networks"][self.net]["IPAddress"]
        self.prefix = ".".join(ip.split(".")[:2])

    def _strings(self, obj):
        """Every occurrence of the recorded identity in any string -> a
        placeholder (paths, hostnames, names)."""
        if isinstance(obj, dict):
            return {k: self._strings(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._strings(v) for v in obj]
        if isinstance(obj, str):
            for old, new in self.replace:
                obj = obj.replace(old, new)
            if obj == "/" + self.rec["name"]:
                return "/@NAME@"
            if obj == "NAME=" + self.rec["name"]:
                return "NAME=@NAME@"
            if obj == self.rec["name"]:
                return "@NAME@"
        return obj

    def recorded_identity(self):
        """The recorded container's own identity: served as recorded."""
        inspect = self.rec["inspect"]
        net = inspect["NetworkSettings"]["Networks"][self.net]
        ports = inspect["NetworkSettings"]["Ports"]
        return {"@ID@": self.rec["id"], "@ID12@": self.rec["id"][:12],
                "@SANDBOX@": inspect["NetworkSettings"]["SandboxID"],
                "@SANDBOX12@": inspect["NetworkSettings"]["SandboxID"][:12],
                "@NAME@": self.rec["name"], "@IP@": net["IPAddress"], "@MAC@": net["MacAddress"],
                "@EP@": net["EndpointID"], "host_ports": [int(ports[p][0]["HostPort"]) for p in self.ports],
                "pid": inspect["State"]["Pid"], "created": inspect["Created"],
                "started": inspect["State"]["StartedAt"], "list_created": self.rec["list_entry"]["Created"],
                "index": -1}

    def identity(self, i, now):
        """Container number i, started at `now` (a time.time())."""
        def digest(what):
            return hashlib.sha256(("%s-%d-%d" % (what, self.seed, i)).encode()).hexdigest()
        a, b = divmod(i, 250)
        first, second = (int(x) for x in self.prefix.split("."))
        return {"@ID@": digest("replay"), "@ID12@": digest("replay")[:12],
                "@SANDBOX@": digest("sandbox"), "@SANDBOX12@": digest("sandbox")[:12],
                "@NAME@": "synth%d" % i, "@IP@": "%d.%d.%d.%d" % (first, second, a + 100, b + 2),
                "@MAC@": "02:42:%02x:%02x:%02x:%02x" % (first, second, a + 100, b + 2),
                "@EP@": digest("endpoint"),
                "host_ports": [FIRST_HOST_PORT + len(self.ports) * i + k for k in range(len(self.ports))],
                "pid": 100000 + i, "created": _iso(now - 0.2), "started": _iso(now), "list_created": int(now),
                "index": i}

    def _fill(self, template, ident, numbers):
        text = template
        for k, v in ident.items():
            if k.startswith("@"):
                text = text.replace(k, v)
        for k, v in numbers.items():
            text = text.replace('"%s"' % k, str(v))
        return text

    def _network(self, net):
        net = dict(net)
        net.update({"IPAddress": "@IP@", "MacAddress": "@MAC@", "EndpointID": "@EP@"})
        return net

    def inspect_template(self):
        doc = self._strings(copy.deepcopy(self.rec["inspect"]))
        ns = doc["NetworkSettings"]
        for k, port in enumerate(self.ports):
            for b in ns["Ports"][port] or []:
                b["HostPort"] = "@HP%d@" % k
        ns["Networks"] = {n: self._network(v) for n, v in ns["Networks"].items()}
        ns.update({"IPAddress": "@IP@", "MacAddress": "@MAC@", "EndpointID": "@EP@"})
        doc["Created"] = "@CREATED@"
        doc["State"]["StartedAt"] = "@STARTED@"
        doc["State"]["Pid"] = "@PID@"
        return json.dumps(doc, separators=(",", ":"))

    def list_template(self):
        entry = self._strings(copy.deepcopy(self.rec["list_entry"]))
        for p in entry["Ports"]:
            p["PublicPort"] = "@LP%d@" % self.ports.index("%d/%s" % (p["PrivatePort"], p["Type"]))
        entry["NetworkSettings"]["Networks"] = {n: self._network(v)
                                                for n, v in entry["NetworkSettings"]["Networks"].items()}
        entry["Created"] = "@LCREATED@"
        entry["Status"] = "@STATUS@"
        return json.dumps(entry, separators=(",", ":"))

    def events_templates(self, which):
        out = []
        for ev in self.rec[which]:
            ev = self._strings(copy.deepcopy(ev))
            ev["time"], ev["timeNano"] = "@TIME@", "@TIMENANO@"
            out.append(json.dumps(ev, separators=(",", ":")))
        return out


class Container:
    __slots__ = ("id", "name", "started", "inspect", "list_head", "list_tail", "ident")


# ---------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class _Stream:
    """One open /events subscription."""

    def __init__(self, types, actions, containers):
        self.types, self.actions, self.containers = types, actions, containers
        self.cond = threading.Condition()
        self.pending = []
        self.closed = False

    def wants(self, kind, action, cid):
        return ((not self.types or kind in self.types) and (not self.actions or action in self.actions)
                and (not self.containers or cid in self.containers))

    def push(self, data):
        with self.cond:
            self.pending.append(data)
            self.cond.notify()


def _header_lines(headers):
    """Recorded headers as lines, without those each answer makes anew."""
    return "".join("%s: %s\r\n" % (k, v) for k, v in sorted(headers.items())
                   if k not in ("Date", "Content-Length", "Transfer-Encoding"))


class ReplayDocker:
    """The server.  Safe to drive from any thread: add(), start(), die()."""

    def __init__(self, socket_path, recording=None, seed=0):
        self.socket_path = socket_path
        self.rec = recording or load_recording()
        self.synth = Synthesiser(self.rec, seed)
        self.inspect_t = self.synth.inspect_template()
        self.list_t = self.synth.list_template()
        self.start_t = self.synth.events_templates("start_events")
        self.remove_t = self.synth.events_templates("remove_events")
        self.headers = _header_lines(self.rec["headers"])
        self.ping_headers = _header_lines(self.rec["ping"]["headers"])
        self.lock = threading.Lock()
        self.running = collections.OrderedDict()    # id -> Container, oldest first
        self.by_name = {}
        self.next_index = 0
        self.requests = collections.Counter()
        self.streams = []
        self.history = collections.deque(maxlen=100000)  # (time, kind, action, cid, bytes)
        self._sock = None
        self._stopping = False

    # -- containers ----------------------------------------------------------

    def _make(self, ident, started):
        c = Container()
        c.ident, c.id, c.name, c.started = ident, ident["@ID@"], ident["@NAME@"], started
        numbers = {"@PID@": ident["pid"], "@LCREATED@": ident["list_created"]}
        numbers.update({"@LP%d@" % k: v for k, v in enumerate(ident["host_ports"])})
        strings = {"@CREATED@": ident["created"], "@STARTED@": ident["started"]}
        strings.update({"@HP%d@" % k: str(v) for k, v in enumerate(ident["host_ports"])})
        text = self.synth._fill(self.inspect_t, ident, numbers)
        for k, v in strings.items():
            text = text.replace(k, v)
        c.inspect = text.encode()
        entry = self.synth._fill(self.list_t, ident, numbers)
        c.list_head, _, c.list_tail = entry.partition("@STATUS@")
        return c

    def _new(self):
        now = time.time()
        c = self._make(self.synth.identity(self.next_index, now), now)
        self.next_index += 1
        self.running[c.id] = c
        self.by_name[c.name] = c
        return c

    def add_recorded(self):
        """The recorded container itself, as it was recorded: its id."""
        ident = self.synth.recorded_identity()
        started = datetime.datetime.strptime(ident["started"][:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
        c = self._make(ident, started.replace(tzinfo=datetime.timezone.utc).timestamp())
        with self.lock:
            self.running[c.id] = c
            self.by_name[c.name] = c
        return c.id

    def add(self, n):
        """n more containers, running already (no events): ids, oldest first."""
        with self.lock:
            return [self._new().id for _ in range(n)]

    def start(self, n):
        """n new containers that start now: their events go out, one after
        another.  -> [(id, time.monotonic() their start event was sent)]."""
        out = []
        for _ in range(n):
            with self.lock:
                c = self._new()
            self._emit(self.start_t, c)
            out.append((c.id, time.monotonic()))
        return out

    def die(self, ids):
        """These containers are removed (`docker rm -f`): gone from the
        listing, then their events.  -> [(id, monotonic time of its die)]."""
        out = []
        for cid in ids:
            with self.lock:
                c = self.running.pop(cid, None)
                if c is not None:
                    self.by_name.pop(c.name, None)
            if c is not None:
                self._emit(self.remove_t, c)
                out.append((cid, time.monotonic()))
        return out

    def ids(self):
        with self.lock:
            return list(self.running)

    def counts(self):
        with self.lock:
            return dict(self.requests, running=len(self.running), streams=len(self.streams))

    def key_parts(self, cid):
        """(name, [(container port, host port)], hostname) of a container."""
        with self.lock:
            c = self.running[cid]
        return c.name, list(zip(self.synth.ports, c.ident["host_ports"])), c.ident["@ID12@"]

    # -- events --------------------------------------------------------------

    def _emit(self, templates, c):
        for t in templates:
            ns = time.time_ns()
            text = self.synth._fill(t, c.ident, {"@TIME@": ns // 10**9, "@TIMENANO@": ns})
            ev = json.loads(text)
            kind = ev.get("Type", "")
            data = text.encode() + b"\n"
            with self.lock:
                self.history.append((ns, kind, ev.get("Action", ""), c.id, data))
                streams = list(self.streams)
            for s in streams:
                if s.wants(kind, ev.get("Action", "").split(":")[0], c.id):
                    s.push(data)

    # -- serving -------------------------------------------------------------

    def serve(self):
        """Listens and answers in background threads; returns self."""
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.socket_path)
        self._sock.listen(128)
        threading.Thread(target=self._accept, name="replay-accept", daemon=True).start()
        return self

    def stop(self):
        self._stopping = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self.lock:
            streams = list(self.streams)
        for s in streams:
            with s.cond:
                s.closed = True
                s.cond.notify()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def _accept(self):
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline(65537)
                if not line:
                    return
                if not line.strip():
                    continue
                method, target, _ = (line.decode("latin-1").split(" ", 2) + ["", ""])[:3]
                length = 0
                while True:
                    h = f.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                if length:
                    f.read(length)
                if not self._answer(conn, method, target):
                    return
        except (OSError, ValueError):
            return
        finally:
            f.close()
            conn.close()

    def _send(self, conn, status, body, headers=None, head=False):
        """One answer with the recorded headers (or `headers`), a fresh Date
        and the body's length."""
        hdr = self.headers if headers is None else headers
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        msg = "HTTP/1.1 %d %s\r\n%sDate: %s\r\n" % (status, _REASONS.get(status, "Status"), hdr, date)
        if status != 204:
            msg += "Content-Length: %d\r\n" % len(body)
        conn.sendall(msg.encode() + b"\r\n" + (b"" if head or status == 204 else body))
        return True

    def _count(self, kind):
        with self.lock:
            self.requests[kind] += 1

    def _answer(self, conn, method, target):
        url = urllib.parse.urlsplit(target)
        path = url.path
        parts = path.split("/")
        if len(parts) > 1 and parts[1].startswith("v1."):
            path = "/" + "/".join(parts[2:])
        query = urllib.parse.parse_qs(url.query)
        if path == "/_ping" and method in ("GET", "HEAD"):
            self._count("ping")
            return self._send(conn, 200, self.rec["ping"]["body"].encode(), self.ping_headers,
                              head=method == "HEAD")
        if method == "GET" and path == "/version":
            self._count("version")
            return self._send(conn, 200, json.dumps(self.rec["version"]).encode() + b"\n")
        if method == "GET" and path == "/containers/json":
            self._count("list")
            return self._send(conn, 200, self._listing())
        if method == "GET" and path == "/events":
            self._count("events")
            return self._events(conn, query)
        if method == "GET" and path.startswith("/containers/") and path.endswith("/json"):
            self._count("inspect")
            c = self._find(path[len("/containers/"):-len("/json")])
            if c is None:
                return self._send(conn, 404, b'{"message":"No such container: %s"}\n'
                                  % path.split("/")[2].encode())
            return self._send(conn, 200, c.inspect + b"\n")
        if method == "POST" and path.startswith("/containers/") and path.endswith("/kill"):
            self._count("kill")
            return self._kill(conn, path.split("/")[2], (query.get("signal") or ["KILL"])[0])
        self._count("other")
        return self._send(conn, 404, b'{"message":"page not found"}\n')

    def _find(self, ref):
        ref = urllib.parse.unquote(ref)
        with self.lock:
            c = self.running.get(ref) or self.by_name.get(ref.lstrip("/"))
            if c is None and len(ref) >= 1:
                found = [x for x in self.running.values() if x.id.startswith(ref)]
                c = found[0] if len(found) == 1 else None
        return c

    def _listing(self):
        now = time.time()
        with self.lock:
            items = list(self.running.values())
        # newest first, as Docker lists them
        parts = [c.list_head + "Up " + _human_duration(now - c.started) + c.list_tail for c in reversed(items)]
        return ("[" + ",".join(parts) + "]\n").encode()

    def _kill(self, conn, ref, sig):
        c = self._find(ref)
        if c is None:
            return self._send(conn, 404, b'{"message":"No such container: %s"}\n' % ref.encode())
        kill = [t for t in self.remove_t if '"Action":"kill"' in t]
        ns = time.time_ns()
        for t in kill:
            text = self.synth._fill(t, c.ident, {"@TIME@": ns // 10**9, "@TIMENANO@": ns})
            text = text.replace('"signal":"9"', '"signal":"%s"' % sig)
            self._push_all(text, c.id)
        self._send(conn, 204, b"")
        if sig in ("KILL", "9", "SIGKILL"):
            self.die([c.id])
        return True

    def _push_all(self, text, cid):
        ev = json.loads(text)
        data = text.encode() + b"\n"
        with self.lock:
            streams = list(self.streams)
        for s in streams:
            if s.wants(ev.get("Type", ""), ev.get("Action", ""), cid):
                s.push(data)

    def _events(self, conn, query):
        try:
            filters = json.loads((query.get("filters") or ["{}"])[0])
        except ValueError:
            return self._send(conn, 400, b'{"message":"invalid filter"}\n')
        stream = _Stream(set(filters.get("type", [])), set(filters.get("event", [])),
                         set(filters.get("container", [])))
        since = float((query.get("since") or ["0"])[0] or 0)
        until = float((query.get("until") or ["0"])[0] or 0)
        hdr = _header_lines(self.rec["events_headers"])
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        conn.sendall(("HTTP/1.1 200 OK\r\n%sDate: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                      % (hdr, date)).encode())
        with self.lock:
            past = [h for h in self.history if since and h[0] >= since * 1e9 and (not until or h[0] <= until * 1e9)]
            self.streams.append(stream)
        try:
            for _, kind, action, cid, data in past:
                if stream.wants(kind, action.split(":")[0], cid):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            while not self._stopping:
                with stream.cond:
                    if not stream.pending and not stream.closed:
                        stream.cond.wait(0.5)
                    batch, stream.pending = stream.pending, []
                    closed = stream.closed
                for data in batch:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                if closed or (until and time.time() >= until):
                    conn.sendall(b"0\r\n\r\n")
                    return True
                if not batch and _peer_closed(conn):
                    return False
        except OSError:
            return False
        finally:
            with self.lock:
                self.streams.remove(stream)
        return False


def _peer_closed(conn):
    try:
        data = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return data == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# ---------------------------------------------------------------------------
# Control: one JSON command a line on a second socket, one JSON answer a line
#   {"add": N}          -> {"ids": [...]}
#   {"start": N}        -> {"started": [[id, monotonic time], ...]}
#   {"die": [ids]}      -> {"died": [[id, monotonic time], ...]}
#   {"die_oldest": N}   -> the same, for the N oldest containers
#   {"counts": true}    -> {"list": n, "inspect": n, ..., "running": n}
#   {"keys": [ids]}     -> {"keys": [[name, [[port, host port], ...], hostname], ...]}
# ---------------------------------------------------------------------------

def _control_answer(server, cmd):
    if "add" in cmd:
        return {"ids": server.add(int(cmd["add"]))}
    if "start" in cmd:
        return {"started": server.start(int(cmd["start"]))}
    if "die" in cmd:
        return {"died": server.die(cmd["die"])}
    if "die_oldest" in cmd:
        return {"died": server.die(server.ids()[:int(cmd["die_oldest"])])}
    if "counts" in cmd:
        return server.counts()
    if "keys" in cmd:
        return {"keys": [server.key_parts(cid) for cid in cmd["keys"]]}
    return {"error": "unknown command %s" % sorted(cmd)}


def serve_control(server, path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(8)

    def client(conn):
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    answer = _control_answer(server, json.loads(line))
                except (ValueError, KeyError, TypeError) as e:
                    answer = {"error": "%s: %s" % (type(e).__name__, e)}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=client, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return sock


class ReplayControl:
    """The client side of the control socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")

    def call(self, **cmd):
        self.f.write(json.dumps(cmd).encode() + b"\n")
        self.f.flush()
        answer = json.loads(self.f.readline())
        if "error" in answer:
            raise RuntimeError("replay server: " + answer["error"])
        return answer

    def close(self):
        self.f.close()
        self.sock.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record a real dockerd's answers (root)")
    r.add_argument("--out", default=RECORDING)
    s = sub.add_parser("serve", help="serve a recording for N synthetic containers")
    s.add_argument("--socket", required=True)
    s.add_argument("--control", help="control socket (one JSON command a line)")
    s.add_argument("--containers", type=int, default=0)
    s.add_argument("--recording", default=RECORDING)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        rec = record(args.out)
        print("recorded %s (%s) into %s" % (rec["id"][:12], rec["server"], args.out))
        return 0
    server = ReplayDocker(args.socket, load_recording(args.recording))
    server.add(args.containers)
    server.serve()
    if args.control:
        serve_control(server, args.control)
    print("serving %d synthetic containers on %s" % (args.containers, args.socket), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
