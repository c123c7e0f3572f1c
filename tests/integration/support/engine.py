"""What Dockerd and Podman share: the Docker Engine API over a Unix socket
(``unix_http``, ``_EngineApi``), the dead proxy their daemons get, and the
removal of what containers leave on the host (mounts, cgroups).

Network rule: daemons that could pull images get a dead loopback proxy
(``DEAD_PROXY``), so a test that names an image that was not imported fails
at once instead of leaving the machine; ``run`` passes ``--pull=never``
too.  Our own HTTP clients talk only to the daemons' Unix sockets.
"""

import http.client
import json
import os
import re
import socket
import subprocess

from .util import _tail

# Every registry pull or other proxied HTTP(S) request from a daemon we start
# goes to this address, where nothing listens: a test that names an image
# that was not imported fails at once and no traffic leaves the machine.
DEAD_PROXY = "http://127.0.0.1:9"


def _proxy_env():
    # Upper and lower case: Go reads both, and clear NO_PROXY so nothing
    # bypasses the dead proxy.
    env = {}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[k] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


# ---------------------------------------------------------------------------
# What containers leave on the host: mounts and cgroups
# ---------------------------------------------------------------------------

def _mounts_under(prefix):
    prefix = prefix.rstrip("/")
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1]
            # /proc/mounts escapes space, tab, newline and backslash as octal
            mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mnt)
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return found


def _umount_under(prefix):
    """Lazily unmount everything at or below ``prefix``, deepest first."""
    for _ in range(5):  # mounts can be stacked: repeat until none left
        mounts = _mounts_under(prefix)
        if not mounts:
            return []
        for mnt in sorted(set(mounts), key=lambda m: m.count("/"), reverse=True):
            subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return _mounts_under(prefix)


def _remove_cgroups(relative_paths):
    """rmdir the given container cgroups (e.g. "docker/<id>") in every
    hierarchy.  Normally runc removes them; after a SIGKILLed daemon or shim
    nobody does.  rmdir only succeeds on an empty cgroup, so this cannot
    disturb a running container."""
    root = "/sys/fs/cgroup"
    hierarchies = [root] + [os.path.join(root, h) for h in
                            (os.listdir(root) if os.path.isdir(root) else ())]
    for h in hierarchies:
        for rel in relative_paths:
            try:
                os.rmdir(os.path.join(h, rel))
            except OSError:
                pass


def _dir_entries(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


# ---------------------------------------------------------------------------
# Docker Engine API over a Unix socket (shared by Dockerd and Podman)
# ---------------------------------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client connection to an HTTP server on a Unix socket."""

    def __init__(self, socket_path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def unix_http(socket_path, method, path, body=None, headers=None, timeout=30):
    """One HTTP request over a Unix socket -> (status, parsed JSON or text).

    ``body`` may be bytes/str (sent as is) or anything JSON-serialisable.
    """
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
    finally:
        conn.close()
    text = raw.decode("utf-8", "replace")
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            return resp.status, json.loads(text)
        except ValueError:
            pass
    return resp.status, text


class _EngineApi:
    """What Dockerd and Podman share: Engine API helpers over
    ``self.socket``, and the life-cycle glue around their own ``start``,
    ``stop``, ``cleanup`` and ``log_path``."""

    socket = None

    @property
    def host_uri(self):
        return "unix://" + self.socket

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def restart(self):
        """Stop and start again (same socket, storage and network)."""
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    @staticmethod
    def _run_args(args, stop_timeout, extra=()):
        """``run -d`` arguments: ``--pull=never`` (never reach for a
        registry), ``extra``, and unless the caller passes its own a short
        ``--stop-timeout`` (busybox ``sleep`` as PID 1 ignores SIGTERM, so
        every stop would otherwise wait the engine's 10 s default; ``None``
        keeps that default), then ``args``."""
        args = [str(a) for a in args]
        flags = ["--pull=never", *extra]
        if stop_timeout is not None and not any(a.startswith("--stop-timeout") for a in args):
            flags.append("--stop-timeout=%d" % stop_timeout)
        return ["run", "-d", *flags, *args]

    def api(self, method, path, body=None, timeout=30):
        """Raw request on the daemon's socket -> (status, JSON or text)."""
        return unix_http(self.socket, method, path, body, timeout=timeout)

    def inspect(self, cid):
        """``GET /containers/{id}/json`` as a dict."""
        status, data = self.api("GET", "/containers/%s/json" % cid)
        if status != 200:
            raise RuntimeError("inspect %s: HTTP %s %s" % (cid, status, data))
        return data

    def containers(self, all=False):
        """``GET /containers/json`` (running only unless ``all``)."""
        status, data = self.api("GET", "/containers/json" + ("?all=1" if all else ""))
        if status != 200:
            raise RuntimeError("list containers: HTTP %s %s" % (status, data))
        return data

    def port(self, cid, port):
        """Published bindings of ``port`` ("6379/tcp"; "/tcp" is the default)
        as a list of (host_ip, host_port int), from inspect.  Docker 20.10
        lists ``-P`` ports twice, for "0.0.0.0" and "::", not always with
        the same host port."""
        if "/" not in str(port):
            port = "%s/tcp" % port
        ports = (self.inspect(cid).get("NetworkSettings") or {}).get("Ports") or {}
        return [(b.get("HostIp", ""), int(b["HostPort"])) for b in (ports.get(port) or [])]

    def _ping(self):
        try:
            status, body = self.api("GET", "/_ping", timeout=2)
        except OSError:
            return False
        return status == 200 and str(body).strip() == "OK"

