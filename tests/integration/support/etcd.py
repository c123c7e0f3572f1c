"""``Etcd``: a private etcd 3.4 server on 127.0.0.1 (optionally TLS with
client certificates, optionally v3 auth), with v2 and v3 key helpers that
tests use to see what registrar wrote; ``EtcdError`` for failed requests.

Network rule: the server listens on loopback only, on ports that were free
a moment ago (``free_port``; a lost race is retried), and our HTTP client
ignores *_PROXY variables.
"""

import base64
import http.client
import json
import os
import signal
import ssl
import urllib.error
import urllib.parse
import urllib.request

from .processes import Process, ServerProcess, _register
from .util import (MissingDependency, _claim_workdir, _clean_env, _find, _missing, _require,
                   _run, _tail, free_port, wait_until)


# urllib opener that ignores *_PROXY variables: our own HTTP clients only
# ever talk to loopback.
def _opener(ctx=None):
    handlers = [urllib.request.ProxyHandler({})]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)


class EtcdError(RuntimeError):
    """An etcd request failed: ``.status`` (HTTP) and ``.body`` (parsed)."""

    def __init__(self, what, status, body):
        super().__init__("%s: HTTP %s %s" % (what, status, body))
        self.status = status
        self.body = body


def _b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def _unb64(s):
    return base64.b64decode(s or "").decode("utf-8", "surrogateescape")


def _prefix_end(prefix):
    """etcd's range_end for "every key starting with prefix"."""
    b = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"  # empty prefix or all 0xff: to the end of the keyspace


class Etcd(ServerProcess):
    """A private etcd 3.4 server on 127.0.0.1 with a data dir of its own.

    ``tls=True`` makes a CA, a server certificate for 127.0.0.1 and a client
    certificate with openssl, serves https and requires client
    certificates (``ca_file``, ``client_cert``, ``client_key``).
    """

    REQUIRES = ("etcd", "etcdctl")

    @classmethod
    def missing(cls):
        return _missing(cls.REQUIRES)

    def __init__(self, enable_v2=True, tls=None, workdir=None, extra_args=(), name="t"):
        self.name = name
        self.initial_cluster = None  # "name=peer-url,..." for a member of a cluster
        self.enable_v2 = enable_v2
        self.tls = bool(tls)
        self.extra_args = list(extra_args)
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.client_port = None
        self.peer_port = None
        self.ca_file = self.client_cert = self.client_key = None
        self.credentials = None  # (user, password) for the v3 helpers
        self.root_password = None
        self._token = None
        self._proc = None
        self._ctx = None
        self._cleaned = False

    def __repr__(self):
        return "<Etcd %s>" % (self.endpoint if self.client_port else self.workdir)

    @property
    def host_port(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def endpoint(self):
        return "%s://%s" % ("https" if self.tls else "http", self.host_port)

    @property
    def data_dir(self):
        return os.path.join(self.workdir, "data")

    @property
    def log_path(self):
        return os.path.join(self.workdir, "etcd.log")

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def alive(self):
        return self._proc is not None and self._proc.alive()

    # lifecycle ---------------------------------------------------------
    def start(self, timeout=20):
        """Start (or start again, same ports and data) and wait for /health."""
        if self.alive():
            return self
        msg = self.missing() or (self.tls and _missing(["openssl"]))
        if msg:
            raise MissingDependency(msg)
        self._cleaned = False
        _register(self)
        if self.workdir is None:
            self.workdir, _ = _claim_workdir("re")
        else:
            os.makedirs(self.workdir, exist_ok=True)
        if self.tls and self.ca_file is None:
            self._make_certs()
        first = self.client_port is None
        for _ in range(3):
            if first:
                self.client_port = self.peer_port = free_port()
                while self.peer_port == self.client_port:
                    self.peer_port = free_port()
            mark = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            self._spawn()
            ok = self._wait_healthy(timeout)
            if ok:
                return self
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                new_log = f.read().decode("utf-8", "replace")
            self._proc.stop(timeout=5)
            # free_port() can race with another process: pick again.
            if not (first and "address already in use" in new_log):
                break
        raise RuntimeError("etcd did not become healthy on %s; log tail:\n%s"
                           % (self.endpoint, self.log_tail()))

    def _spawn(self):
        scheme = "https" if self.tls else "http"
        c = "%s://127.0.0.1:%d" % (scheme, self.client_port)
        p = "http://127.0.0.1:%d" % self.peer_port
        argv = [_find("etcd"), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                "--initial-cluster", self.initial_cluster or "%s=%s" % (self.name, p),
                "--enable-v2=%s" % ("true" if self.enable_v2 else "false"),
                "--logger=zap", "--log-outputs=stderr"]
        if self.tls:
            argv += ["--cert-file", self.server_cert, "--key-file", self.server_key,
                     "--trusted-ca-file", self.ca_file, "--client-cert-auth"]
        argv += self.extra_args
        # etcd reads ETCD_* variables as flags: keep the caller's out.
        env = _clean_env(drop_prefixes=("ETCD",))
        self._proc = Process(argv, env=env, inherit_env=False, log_path=self.log_path,
                             name="etcd", death_signal=signal.SIGTERM, register=False)
        self._proc.start()

    def _wait_healthy(self, timeout):
        def healthy():
            if not self._proc.alive():
                return "exited"
            try:
                status, body = self._http("GET", "/health", timeout=2)
            except (OSError, http.client.HTTPException):  # not listening yet
                return False
            return status == 200 and isinstance(body, dict) and body.get("health") == "true"
        try:
            return wait_until(healthy, timeout=timeout, interval=0.05,
                              message="etcd /health") is True
        except AssertionError:
            return False

    def stop(self, timeout=10):
        self._token = None                      # a new process wants a new login
        return super().stop(timeout)

    def kill(self):
        self._token = None
        return super().kill()

    # TLS ---------------------------------------------------------------
    def _make_certs(self):
        _require(["openssl"])
        d = os.path.join(self.workdir, "tls")
        os.makedirs(d, exist_ok=True)

        def ossl(*args):
            _run(["openssl"] + list(args), timeout=60)
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=registrar-test-ca", "-keyout", d + "/ca.key", "-out", d + "/ca.crt")
        # The server certificate is also used as a *client* certificate by
        # etcd's own gRPC gateway when it dials itself, hence clientAuth.
        exts = {
            "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                      "extendedKeyUsage=serverAuth,clientAuth\n",
            "client": "extendedKeyUsage=clientAuth\n",
        }
        for name, ext in exts.items():
            with open("%s/%s.ext" % (d, name), "w") as f:
                f.write("basicConstraints=CA:FALSE\n" + ext)
            # The client certificate has no CN on purpose: once auth is
            # enabled, etcd 3.4's JSON gateway rejects (HTTP 400 "CommonName
            # of client sending a request against gateway will be ignored")
            # any client certificate that has one.
            ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
                 "/CN=127.0.0.1" if name == "server" else "/O=registrar-test-client",
                 "-keyout", "%s/%s.key" % (d, name), "-out", "%s/%s.csr" % (d, name))
            ossl("x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", d + "/ca.crt",
                 "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", "%s/%s.ext" % (d, name), "-out", "%s/%s.crt" % (d, name))
        self.ca_file = d + "/ca.crt"
        self.server_cert, self.server_key = d + "/server.crt", d + "/server.key"
        self.client_cert, self.client_key = d + "/client.crt", d + "/client.key"

    def ssl_context(self, client_cert=True):
        """SSLContext trusting our CA (and presenting the client cert)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx

    # HTTP --------------------------------------------------------------
    def _http(self, method, path, body=None, form=None, headers=None, timeout=5):
        """-> (status, parsed JSON or text).  ``body`` is JSON, ``form``
        is urlencoded."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if self.tls and self._ctx is None:
            self._ctx = self.ssl_context()
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers=hdrs)
        try:
            with _opener(self._ctx if self.tls else None).open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    # v2 ----------------------------------------------------------------
    @staticmethod
    def _v2_path(key):
        key = key if key.startswith("/") else "/" + key
        return "/v2/keys" + urllib.parse.quote(key)

    def v2_get(self, key):
        """Value of ``key`` or None if it does not exist."""
        status, body = self._http("GET", self._v2_path(key))
        if status == 404 and isinstance(body, dict):
            return None
        if status != 200:
            raise EtcdError("v2 get %s" % key, status, body)
        return body["node"].get("value")

    def v2_put(self, key, value, ttl=None):
        form = {"value": value}
        if ttl is not None:
            form["ttl"] = int(ttl)
        status, body = self._http("PUT", self._v2_path(key), form=form)
        if status not in (200, 201):
            raise EtcdError("v2 put %s" % key, status, body)
        return body

    def v2_tree(self, prefix="/"):
        """{key: value} for every leaf below ``prefix``; {} if absent."""
        status, body = self._http("GET", self._v2_path(prefix) + "?recursive=true")
        if status == 404 and isinstance(body, dict):
            return {}
        if status != 200:
            raise EtcdError("v2 tree %s" % prefix, status, body)
        out = {}

        def walk(node):
            if node.get("dir"):
                for child in node.get("nodes", ()):
                    walk(child)
            else:
                out[node["key"]] = node.get("value")
        walk(body["node"])
        return out

    def v2_delete(self, key, recursive=False):
        """Delete; True if something was deleted, False if absent."""
        path = self._v2_path(key) + ("?recursive=true" if recursive else "")
        status, body = self._http("DELETE", path)
        if status == 404 and isinstance(body, dict):
            return False
        if status != 200:
            raise EtcdError("v2 delete %s" % key, status, body)
        return True

    # v3 (JSON gateway) -------------------------------------------------
    def _auth_token(self, refresh=False):
        if self.credentials is None:
            return None
        if self._token is None or refresh:
            user, password = self.credentials
            status, body = self._http("POST", "/v3/auth/authenticate",
                                      body={"name": user, "password": password})
            if status != 200:
                raise EtcdError("authenticate %s" % user, status, body)
            self._token = (self.credentials, body["token"])
        elif self._token[0] != self.credentials:  # credentials changed
            return self._auth_token(refresh=True)
        return self._token[1]

    def v3(self, path, body):
        """POST ``/v3/<path>`` with the current credentials -> parsed body."""
        for attempt in (0, 1):
            token = self._auth_token(refresh=attempt == 1)
            headers = {"Authorization": token} if token else None
            status, resp = self._http("POST", "/v3/" + path.lstrip("/"), body=body,
                                      headers=headers)
            # Tokens die with the server (restart) or expire: log in again once.
            stale = (status == 401 and token and isinstance(resp, dict)
                     and "invalid auth token" in str(resp.get("error", "")))
            if not stale:
                break
        if status != 200:
            raise EtcdError("v3 %s" % path, status, resp)
        return resp

    def v3_get(self, key):
        kvs = self.v3("kv/range", {"key": _b64(key)}).get("kvs") or []
        return _unb64(kvs[0].get("value")) if kvs else None

    def v3_put(self, key, value, lease=None):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease is not None:
            body["lease"] = str(lease)
        return self.v3("kv/put", body)

    def v3_prefix(self, prefix):
        """{key: value} for every key starting with ``prefix``."""
        key = _b64(prefix) if prefix else _b64(b"\0")
        kvs = self.v3("kv/range", {"key": key, "range_end": _b64(_prefix_end(prefix))}).get("kvs")
        return {_unb64(kv["key"]): _unb64(kv.get("value")) for kv in kvs or ()}

    def v3_delete(self, key, prefix=False):
        """Delete ``key`` (or every key under it); returns the count."""
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(_prefix_end(key))
        return int(self.v3("kv/deleterange", body).get("deleted", 0))

    def v3_leases(self):
        """Ids (strings, as the gateway sends int64) of all live leases."""
        return [str(item["ID"]) for item in self.v3("lease/leases", {}).get("leases") or ()]

    def v3_grant(self, ttl):
        """Create a lease; returns its id as a string."""
        return str(self.v3("lease/grant", {"TTL": str(int(ttl))})["ID"])

    def v3_lease_ttl(self, lease_id, keys=False):
        """Remaining TTL of a lease (-1 if gone); with ``keys`` also the keys
        attached to it: (ttl, [keys])."""
        resp = self.v3("lease/timetolive", {"ID": str(lease_id), "keys": bool(keys)})
        ttl = int(resp.get("TTL", -1))
        if keys:
            return ttl, [_unb64(k) for k in resp.get("keys") or ()]
        return ttl

    # auth --------------------------------------------------------------
    def etcdctl(self, *args, user=None, check=True, timeout=30):
        """Run ``etcdctl`` (API v3) against this server; return stdout."""
        argv = [_find("etcdctl"), "--endpoints", self.endpoint,
                "--dial-timeout=5s", "--command-timeout=10s"]
        if self.tls:
            argv += ["--cacert", self.ca_file, "--cert", self.client_cert, "--key", self.client_key]
        if user:
            argv += ["--user", "%s:%s" % user]
        env = _clean_env({"ETCDCTL_API": "3"}, drop_prefixes=("ETCDCTL",))
        return _run(argv + [str(a) for a in args], check=check, timeout=timeout,
                    env=env).stdout.strip()

    def enable_auth(self, root_password, user, password, prefix):
        """Create root and ``user`` (role ``<user>-rw`` with readwrite on
        keys starting with ``prefix``) and enable authentication.

        Afterwards the v3 helpers act as root (``self.credentials``), so
        assertions can read everything; set ``credentials = (user,
        password)`` to act as the user.  The v2 API is not affected by v3
        auth.
        """
        role = "%s-rw" % user
        self.etcdctl("user", "add", "root", "--new-user-password=" + root_password,
                     "--interactive=false")
        self.etcdctl("user", "grant-role", "root", "root")
        self.etcdctl("role", "add", role)
        self.etcdctl("role", "grant-permission", role, "readwrite", prefix, "--prefix=true")
        self.etcdctl("user", "add", user, "--new-user-password=" + password,
                     "--interactive=false")
        self.etcdctl("user", "grant-role", user, role)
        self.etcdctl("auth", "enable")
        self.root_password = root_password
        self.credentials = ("root", root_password)
        self._token = None


class EtcdCluster:
    """Three (or ``size``) etcd members on loopback, one cluster.  Members
    are ``Etcd`` objects (``members[i]``) that can be stopped and started
    again on their own; the cluster is healthy with a quorum.  Key helpers
    go through the first member that answers."""

    REQUIRES = Etcd.REQUIRES

    @classmethod
    def missing(cls):
        return Etcd.missing()

    def __init__(self, size=3, enable_v2=True):
        self.members = [Etcd(enable_v2=enable_v2, name="m%d" % i) for i in range(size)]

    @property
    def endpoints(self):
        """"127.0.0.1:P1,127.0.0.1:P2,...": what registrar's URI lists."""
        return ",".join(m.host_port for m in self.members)

    def start(self, timeout=30):
        """Ports for all first (each member names every peer), then all
        spawned at once: a member alone has no quorum and is not healthy."""
        for m in self.members:
            m._cleaned = False
            _register(m)
            m.workdir, _ = _claim_workdir("re")
            m.client_port = free_port()
            m.peer_port = free_port()
        cluster = ",".join("%s=http://127.0.0.1:%d" % (m.name, m.peer_port) for m in self.members)
        for m in self.members:
            m.initial_cluster = cluster
            m._spawn()
        for m in self.members:
            if not m._wait_healthy(timeout):
                raise RuntimeError("etcd member %s did not become healthy; log tail:\n%s"
                                   % (m.name, m.log_tail()))
        return self

    def alive_member(self):
        for m in self.members:
            if m.alive():
                return m
        raise RuntimeError("no etcd member runs")

    def __getattr__(self, name):
        """v3_get, v3_prefix, v3_put...: through a member that runs."""
        if name.startswith(("v2_", "v3")):
            return getattr(self.alive_member(), name)
        raise AttributeError(name)

    def cleanup(self):
        for m in self.members:
            m.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

