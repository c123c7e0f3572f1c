"""A scriptable fake Docker Engine API on a Unix socket, for tests that
need Docker to say exactly what they choose: garbage, cut-off answers,
errors, odd bytes, an event stream that ends.

Python 3 standard library only.  HTTP/1.1 with keep-alive (registrar
reuses its connections), one thread per connection.

    with FakeDocker(os.path.join(tmp, "docker.sock")) as docker:
        docker.add_container(inspect_doc(cid, "web", env={"NAME": "web"}))
        ...  # run registrar with -D docker.socket_path
        docker.wait_subscribed()
        docker.emit(container_event("start", cid))

What it answers (<v> is any "v1.NN" prefix, or none):

    GET /_ping                        "OK"
    GET [/<v>]/version                {"Version", "ApiVersion", "MinAPIVersion", ...}
    GET [/<v>]/containers/json        the running containers, derived from
                                      their inspect documents (or set_list_raw /
                                      set_list_status)
    GET [/<v>]/containers/<id>/json   the inspect document (or set_inspect_raw /
                                      set_inspect_status); unknown id: 404
    GET [/<v>]/events                 a chunked stream kept open; emit() writes
                                      to it, close_events() ends it (or
                                      set_events_status: an error instead)
    anything else                     404 {"message": "page not found"}

Every request is recorded as (method, path with query) in .requests;
wait_requests() and wait_subscribed() wait for them.

Strings holding bytes that are not UTF-8: build them with raw_text(b"...")
(surrogate escapes); they are sent as the raw bytes, as a broken daemon
would send them.
"""
import datetime
import itertools
import json
import os
import queue
import re
import select
import socket
import socketserver
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

__all__ = ["FakeDocker", "inspect_doc", "container_event", "network_event", "raw_text", "encode"]

_CLOSE_CLEAN = object()     # end the stream with the last chunk
_CLOSE_ABRUPT = object()    # close the socket mid-stream

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
_INSPECT = re.compile(r"^/containers/([^/]+)/json$")


def raw_text(data):
    """Bytes (possibly not UTF-8) as a str that encode() sends as those
    very bytes."""
    return data.decode("utf-8", "surrogateescape")


def encode(obj):
    """JSON text of obj as bytes; strings made by raw_text() go out as
    their raw bytes, so the answer may hold invalid UTF-8 on purpose."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------------

_ip_counter = itertools.count(2)


def _bindings(value):
    """[("0.0.0.0", "32768"), ...] -> Docker's [{"HostIp", "HostPort"}...];
    anything that is not a list (None, a string, a dict) is kept as is, and
    so is any list item that is not a pair, so tests can send nonsense."""
    if not isinstance(value, list):
        return value
    out = []
    for b in value:
        if isinstance(b, tuple) and len(b) == 2:
            out.append({"HostIp": b[0], "HostPort": b[1]})
        else:
            out.append(b)
    return out


def inspect_doc(id, name, env=None, ports=None, labels=None, hostname=None, running=True,
                health=None, network_mode="default", networks=None, image="busybox:latest"):
    """A `docker inspect` document as Docker 20.10 gives it.

    env: a dict (-> ["K=V", ...]) or a list taken as is.  ports: container
    port -> list of (HostIp, HostPort) pairs, or None for exposed but not
    published, or any other value sent as is; default {"80/tcp":
    [("0.0.0.0", "32768")]}.  networks: name -> settings dict; default one
    "bridge" network with a fresh address."""
    if ports is None:
        ports = {"80/tcp": [("0.0.0.0", "32768")]}
    if isinstance(env, dict):
        env = ["%s=%s" % (k, v) for k, v in env.items()]
    elif env is None:
        env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    if networks is None:
        n = next(_ip_counter)
        networks = {"bridge": {
            "IPAMConfig": None, "Links": None, "Aliases": None,
            "NetworkID": "f" * 64, "EndpointID": "e" * 64,
            "Gateway": "172.17.0.1", "IPAddress": "172.17.%d.%d" % (n // 250, n % 250 + 2),
            "IPPrefixLen": 16, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": "02:42:ac:11:%02x:%02x" % (n // 250 % 256, n % 250 + 2),
            "DriverOpts": None,
        }}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    state = {
        "Status": "running" if running else "exited", "Running": bool(running),
        "Paused": False, "Restarting": False, "OOMKilled": False, "Dead": False,
        "Pid": 4242 if running else 0, "ExitCode": 0, "Error": "",
        "StartedAt": now, "FinishedAt": "0001-01-01T00:00:00Z",
    }
    if health is not None:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    return {
        "Id": id,
        "Created": now,
        "Path": "sleep",
        "Args": ["3600"],
        "State": state,
        "Image": "sha256:" + "a" * 64,
        "Name": "/" + name,
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {"NetworkMode": network_mode, "PortBindings": {}, "RestartPolicy": {"Name": "no"}},
        "Config": {
            "Hostname": hostname if hostname is not None else id[:12],
            "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
            "ExposedPorts": {p: {} for p in ports} if isinstance(ports, dict) else ports,
            "Env": env,
            "Cmd": ["sleep", "3600"],
            "Image": image,
            "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
            "Labels": labels if labels is not None else {},
        },
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "d" * 64, "HairpinMode": False,
            "SandboxKey": "/var/run/docker/netns/" + id[:12],
            "Ports": {p: _bindings(b) for p, b in ports.items()} if isinstance(ports, dict) else ports,
            "Networks": networks,
        },
    }


def container_event(action, id, name=None, image="busybox:latest", attributes=None):
    """A container event as /events streams it."""
    now = time.time_ns()
    attrs = {"image": image, "name": name or id[:12]}
    attrs.update(attributes or {})
    return {"status": action, "id": id, "from": image, "Type": "container", "Action": action,
            "Actor": {"ID": id, "Attributes": attrs}, "scope": "local",
            "time": now // 10**9, "timeNano": now}


def network_event(action, container_id, network="bridge", network_id="f" * 64):
    """A network connect/disconnect event: the container is an attribute."""
    now = time.time_ns()
    return {"Type": "network", "Action": action,
            "Actor": {"ID": network_id, "Attributes": {"container": container_id, "name": network,
                                                       "type": "bridge"}},
            "scope": "local", "time": now // 10**9, "timeNano": now}


def _d(value):
    return value if isinstance(value, dict) else {}


def _list_ports(inspect):
    """NetworkSettings.Ports as /containers/json lists them; entries that
    make no sense are left out, as they would be of a real listing."""
    out = []
    for key, bindings in _d(_d(inspect.get("NetworkSettings")).get("Ports")).items():
        m = re.match(r"^(\d+)/(\w+)$", key)
        if not m:
            continue
        private, proto = int(m.group(1)), m.group(2)
        published = False
        for b in bindings if isinstance(bindings, list) else []:
            hp = _d(b).get("HostPort")
            if isinstance(hp, str) and hp.isdigit():
                out.append({"IP": _d(b).get("HostIp") or "0.0.0.0", "PrivatePort": private,
                            "PublicPort": int(hp), "Type": proto})
                published = True
        if not published:
            out.append({"PrivatePort": private, "Type": proto})
    return out


def _status_text(state):
    health = _d(state.get("Health")).get("Status")
    text = "Up 5 seconds"
    if health == "healthy":
        text += " (healthy)"
    elif health == "unhealthy":
        text += " (unhealthy)"
    elif health:
        text += " (health: %s)" % health
    if state.get("Paused"):
        text += " (Paused)"
    return text


def list_entry(inspect):
    """One /containers/json item derived from an inspect document, coping
    with documents that lack fields (tests store broken ones)."""
    config, state = _d(inspect.get("Config")), _d(inspect.get("State"))
    name = inspect.get("Name")
    labels = config.get("Labels")
    return {
        "Id": inspect.get("Id"),
        "Names": [name] if isinstance(name, str) else [],
        "Image": config.get("Image") if isinstance(config.get("Image"), str) else "",
        "ImageID": inspect.get("Image") if isinstance(inspect.get("Image"), str) else "",
        "Command": "sleep 3600",
        "Created": 1700000000,
        "Ports": _list_ports(inspect),
        "Labels": labels if isinstance(labels, dict) else {},
        "State": state.get("Status") if isinstance(state.get("Status"), str) else "running",
        "Status": _status_text(state),
        "HostConfig": {"NetworkMode": _d(inspect.get("HostConfig")).get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": _d(_d(inspect.get("NetworkSettings")).get("Networks"))},
        "Mounts": [],
    }


# ---------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------

def _peer_closed(conn):
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class _Stream:
    def __init__(self):
        self.queue = queue.Queue()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeDocker/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        self.server.fake._connection_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    def address_string(self):   # client_address is '' on a Unix socket
        return "unix"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.fake._handle(self, "GET")

    def do_HEAD(self):
        self.server.fake._handle(self, "HEAD")

    def do_POST(self):
        self.server.fake._handle(self, "POST")

    def do_DELETE(self):
        self.server.fake._handle(self, "DELETE")


class FakeDocker:
    """The fake daemon.  Every method is safe to call from the test thread
    while the server threads answer."""

    def __init__(self, socket_path, api_version="1.41", version="20.10.24", min_api_version="1.12"):
        self.socket_path = socket_path
        self.api_version = api_version
        self.version = version
        self.min_api_version = min_api_version
        self.lock = threading.RLock()
        self.requests = []              # (method, path with query), in arrival order
        self.subscriptions = 0          # event streams ever opened
        self._containers = {}           # id -> inspect document (insertion ordered)
        self._inspect_raw = {}          # id -> bytes
        self._inspect_status = {}       # id -> HTTP status
        self._inspect_cut = {}          # id -> Content-Length announced for the raw bytes
        self._list_raw = None
        self._list_status = None
        self._events_status = None
        self._streams = []
        self._connections = set()
        self._changed = threading.Condition(self.lock)
        self._server = None
        self._thread = None

    # -- life cycle --------------------------------------------------------

    def start(self):
        if self._server is not None:
            return self
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._server = _Server(self.socket_path, _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-docker", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops accepting, ends every event stream and drops every
        connection; the socket file is removed."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        self.close_events(clean=False)
        with self.lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        self._thread.join(5)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- what it holds -----------------------------------------------------

    def add_container(self, inspect):
        """Adds (or replaces) a container by its inspect document's Id."""
        with self.lock:
            self._containers[inspect["Id"]] = inspect
        return inspect["Id"]

    def remove_container(self, id):
        with self.lock:
            self._containers.pop(id, None)
            self._inspect_raw.pop(id, None)
            self._inspect_cut.pop(id, None)
            self._inspect_status.pop(id, None)

    def containers(self):
        with self.lock:
            return dict(self._containers)

    def set_inspect_raw(self, id, data, content_length=None):
        """Inspecting id answers 200 with these bytes; None: the document
        again.  With a content_length larger than the data, the answer
        announces that length, sends the data and drops the connection (a
        daemon dying in mid-answer)."""
        with self.lock:
            self._inspect_cut.pop(id, None)
            if data is None:
                self._inspect_raw.pop(id, None)
            else:
                self._inspect_raw[id] = bytes(data)
                if content_length is not None:
                    self._inspect_cut[id] = int(content_length)

    def set_inspect_status(self, id, code):
        """Inspecting id answers this status with a Docker error body; None:
        answer normally again."""
        with self.lock:
            if code is None:
                self._inspect_status.pop(id, None)
            else:
                self._inspect_status[id] = int(code)

    def set_list_raw(self, data):
        """/containers/json answers 200 with these bytes; None: the list again."""
        with self.lock:
            self._list_raw = None if data is None else bytes(data)

    def set_list_status(self, code):
        """/containers/json answers this status; None: normally again."""
        with self.lock:
            self._list_status = None if code is None else int(code)

    def set_events_status(self, code):
        """New /events subscriptions are answered with this status and a
        Docker error body instead of a stream (a daemon that is not back
        yet); None: streams again.  Open streams are left alone."""
        with self.lock:
            self._events_status = None if code is None else int(code)

    # -- events ------------------------------------------------------------

    def emit(self, event):
        """Sends an event to every open stream: a dict or list as one JSON
        line, bytes as they are (garbage, partial lines).  Returns how many
        streams it went to."""
        data = event if isinstance(event, (bytes, bytearray)) else encode(event) + b"\n"
        with self.lock:
            streams = list(self._streams)
        for s in streams:
            s.queue.put(bytes(data))
        return len(streams)

    def close_events(self, clean=True):
        """Ends every open event stream, as a daemon restart does: with the
        final chunk (clean) or by dropping the connection."""
        with self.lock:
            streams = list(self._streams)
        for s in streams:
            s.queue.put(_CLOSE_CLEAN if clean else _CLOSE_ABRUPT)
        return len(streams)

    def open_streams(self):
        with self.lock:
            return len(self._streams)

    def wait_subscribed(self, count=1, timeout=10):
        """Waits until `count` event streams have been opened in all and one
        is open now."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.subscriptions >= count and self._streams):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %ss waiting for event subscription %d "
                                         "(%d so far, %d open)" % (timeout, count, self.subscriptions,
                                                                   len(self._streams)))
                self._changed.wait(left)

    # -- what was asked ----------------------------------------------------

    def requests_for(self, pattern):
        """Recorded (method, path) whose path matches the regex."""
        r = re.compile(pattern)
        with self.lock:
            return [req for req in self.requests if r.search(req[1])]

    def wait_requests(self, pattern, count=1, timeout=10):
        """Waits until `count` requests matching pattern have arrived."""
        deadline = time.monotonic() + timeout
        r = re.compile(pattern)
        with self._changed:
            while True:
                n = sum(1 for req in self.requests if r.search(req[1]))
                if n >= count:
                    return n
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %ss waiting for %d requests like /%s/ (%d so far)"
                                         % (timeout, count, pattern, n))
                self._changed.wait(left)

    # -- serving -----------------------------------------------------------

    def _connection_opened(self, conn):
        with self.lock:
            self._connections.add(conn)

    def _connection_closed(self, conn):
        with self.lock:
            self._connections.discard(conn)

    def _handle(self, handler, method):
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        with self._changed:
            self.requests.append((method, handler.path))
            self._changed.notify_all()
        url = urllib.parse.urlsplit(handler.path)
        path = url.path
        m = _VERSIONED.match(path)
        if m:
            path = m.group(2)
        if path == "/_ping" and method in ("GET", "HEAD"):
            return self._send(handler, 200, b"OK", "text/plain; charset=utf-8", head=method == "HEAD")
        if method != "GET":
            return self._send_json(handler, 404, {"message": "page not found"})
        if path == "/version":
            return self._send_json(handler, 200, {
                "Platform": {"Name": "Docker Engine - Community"},
                "Version": self.version, "ApiVersion": self.api_version,
                "MinAPIVersion": self.min_api_version, "GitCommit": "e91ed57",
                "GoVersion": "go1.18.10", "Os": "linux", "Arch": "amd64",
                "KernelVersion": os.uname().release, "BuildTime": "2023-04-14T10:32:03.000000000+00:00",
            })
        if path == "/containers/json":
            return self._answer_list(handler)
        if path == "/events":
            return self._stream_events(handler)
        m = _INSPECT.match(path)
        if m:
            return self._answer_inspect(handler, urllib.parse.unquote(m.group(1)))
        return self._send_json(handler, 404, {"message": "page not found"})

    def _answer_list(self, handler):
        with self.lock:
            status, raw = self._list_status, self._list_raw
            docs = list(self._containers.values())
        if status is not None:
            return self._send_json(handler, status, {"message": "fake: list answers %d" % status})
        if raw is not None:
            return self._send(handler, 200, raw)
        items = [list_entry(d) for d in docs
                 if isinstance(d, dict) and _d(d.get("State")).get("Running", True) is not False]
        return self._send(handler, 200, encode(items))

    def _answer_inspect(self, handler, id):
        with self.lock:
            doc = self._containers.get(id)
            raw = self._inspect_raw.get(id)
            cut = self._inspect_cut.get(id)
            status = self._inspect_status.get(id)
        if status is not None:
            return self._send_json(handler, status, {"message": "fake: inspect of %s answers %d" % (id, status)})
        if raw is not None:
            return self._send(handler, 200, raw, content_length=cut)
        if doc is None:
            return self._send_json(handler, 404, {"message": "No such container: %s" % id})
        return self._send(handler, 200, encode(doc))

    def _stream_events(self, handler):
        with self.lock:
            status = self._events_status
        if status is not None:
            return self._send_json(handler, status, {"message": "fake: events answer %d" % status})
        stream = _Stream()
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Api-Version", self.api_version)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True
            return
        with self._changed:
            self._streams.append(stream)
            self.subscriptions += 1
            self._changed.notify_all()
        try:
            while True:
                try:
                    item = stream.queue.get(timeout=0.2)
                except queue.Empty:
                    if _peer_closed(handler.connection):
                        break           # registrar hung up: this stream is gone
                    continue
                if item is _CLOSE_CLEAN:
                    handler.wfile.write(b"0\r\n\r\n")
                    break
                if item is _CLOSE_ABRUPT:
                    break
                if item:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(item), item))
                    handler.wfile.flush()
        except OSError:
            pass
        finally:
            with self._changed:
                self._streams.remove(stream)
                self._changed.notify_all()
            # a restarting daemon drops the connection after its last event
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send_json(self, handler, status, obj):
        return self._send(handler, status, encode(obj))

    def _send(self, handler, status, body, content_type="application/json", head=False,
              content_length=None):
        cut = content_length is not None and content_length > len(body)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Api-Version", self.api_version)
            handler.send_header("Docker-Experimental", "false")
            handler.send_header("Content-Length", str(content_length if cut else len(body)))
            handler.end_headers()
            if not head:
                handler.wfile.write(body)
            handler.wfile.flush()
            if cut:
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            handler.close_connection = True
