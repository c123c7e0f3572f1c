"""Integration-test harness for registrar.

Starts private, throw-away instances of the things registrar talks to:

* ``Dockerd``   - a Docker daemon on its own socket, data root and Linux bridge
* ``Podman``    - ``podman system service`` (Docker-compatible API) in its own
                  network namespace
* ``Etcd``      - an etcd 3.4 server on loopback (optionally TLS, auth)
* ``ZooKeeper`` - a standalone ZooKeeper on loopback
* ``Process``   - any other program (the registrar binary itself), with its
                  output captured to a log file

Everything started here is registered for cleanup at interpreter exit (and on
SIGTERM), but tests should still call ``cleanup()`` themselves, normally via
``self.addCleanup(obj.cleanup)`` or a ``with`` block.  A runner killed with
SIGKILL cannot clean up; ``sweep_stale()`` removes what such runs left.

Typical use::

    import harness as h

    @h.skip_unless_available(h.Dockerd, h.Etcd)
    class T(unittest.TestCase):
        def test_x(self):
            d = h.Dockerd(); self.addCleanup(d.cleanup); d.start()
            e = h.Etcd(); self.addCleanup(e.cleanup); e.start()
            cid = d.run("-P", "--expose", "6379", d.import_busybox(), "sleep", "3600")
            reg = h.Process(["./registrar", "-H", d.host_uri, "etcd://" + e.host_port])
            self.addCleanup(reg.cleanup)
            reg.start()
            h.wait_until(lambda: e.v2_tree("/"), message="registration")
            self.assertEqual(reg.terminate(), 0)

Rules this module follows:

* Python 3 standard library only.
* Network traffic only to loopback, to bridges this module creates, or inside
  network namespaces it creates.  Daemons that could pull images get a
  dead loopback proxy so a mistaken pull fails fast instead of leaving the
  machine.
* It never signals a process it did not start: daemons are tracked by
  their PID (and start time), and their helpers by descendancy or by
  a command line that names this instance's own unique work directory.
* Names (work dirs, bridges, network namespaces, subnets) are unique per
  instance: ``<prefix>-<pid>-<counter>``, so test files that run one after
  another, or next to other sessions, do not collide.
"""

import atexit
import base64
import ctypes
import fcntl
import io
import ipaddress
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import http.client

__all__ = [
    "free_port", "wait_until", "skip_unless_root", "skip_unless_available", "sweep_stale",
    "busybox_rootfs", "busybox_tarball", "MissingDependency",
    "Process", "Dockerd", "Podman", "Etcd", "EtcdError", "ZooKeeper",
    "ZkClient", "ZkError", "BUSYBOX_IMAGE",
]

BUSYBOX_IMAGE = "registrar-test/busybox:latest"

# Every registry pull or other proxied HTTP(S) request from a daemon we start
# goes to this address, where nothing listens: a test that names an image
# that was not imported fails at once and no traffic leaves the machine.
DEAD_PROXY = "http://127.0.0.1:9"

# A PATH that finds the sbin helpers (docker-proxy, runc, ip, ...) even
# when the caller's PATH lacks them.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def _next_n():
    with _counter_lock:
        return next(_counter)


# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------

class MissingDependency(RuntimeError):
    """A program or file the harness needs is not installed."""


# binary or file -> Debian package that provides it
_PACKAGES = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "containerd": "containerd",
    "runc": "runc",
    "docker-proxy": "docker.io",
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "openssl": "openssl",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "umount": "mount",
    "tar": "tar",
    "podman": "podman",
    "conmon": "conmon",
    "java": "default-jre-headless",
    "/usr/share/java/zookeeper.jar": "zookeeper",
    "/usr/share/java/slf4j-simple.jar": "libslf4j-java",
    "/bin/busybox": "busybox-static",
}


def _find(name):
    """Absolute path of a binary (searching SYSTEM_PATH too) or file, or None."""
    if name.startswith("/"):
        return name if os.path.exists(name) else None
    return shutil.which(name) or shutil.which(name, path=SYSTEM_PATH)


def _missing(names):
    """Human-readable message for the names that are absent, or None."""
    absent = [n for n in names if _find(n) is None]
    if not absent:
        return None
    return "; ".join("%s not found (Debian package: %s)" % (n, _PACKAGES.get(n, "?"))
                     for n in absent)


def _require(names):
    msg = _missing(names)
    if msg:
        raise MissingDependency(msg)


def skip_unless_root():
    """Decorator: skip a test (or class) unless running as root."""
    return unittest.skipUnless(os.geteuid() == 0, "needs root")


def skip_unless_available(*kinds):
    """Decorator: skip unless root and every harness class in ``kinds``
    (e.g. ``Dockerd, Etcd``) finds its binaries."""
    if os.geteuid() != 0:
        return unittest.skip("needs root")
    for kind in kinds:
        msg = kind.missing()
        if msg:
            return unittest.skip("%s unavailable: %s" % (kind.__name__, msg))
    return lambda obj: obj


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.02, message="", ignore=()):
    """Poll ``predicate()`` until it returns something truthy and return that.

    On timeout raise AssertionError naming ``message`` and the last value.
    Exceptions of the classes in ``ignore`` count as a falsy result (the last
    one is reported); any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except ignore as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; last value: %r"
                                 % (timeout, message or getattr(predicate, "__name__", "condition"),
                                    last))
        time.sleep(interval)


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    return "\n".join(data.splitlines()[-lines:])


def _run(argv, check=True, input=None, timeout=60, env=None):
    """Run a command; return CompletedProcess with text stdout/stderr."""
    if isinstance(input, str):
        input = input.encode()
    try:
        cp = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout, env=env,
                            stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError("command timed out after %ss: %s" % (timeout, " ".join(argv))) from e
    cp.stdout = cp.stdout.decode("utf-8", "replace")
    cp.stderr = cp.stderr.decode("utf-8", "replace")
    if check and cp.returncode != 0:
        raise RuntimeError("command failed (exit %d): %s\n%s"
                           % (cp.returncode, " ".join(argv), cp.stderr.strip() or cp.stdout.strip()))
    return cp


def _claim_workdir(prefix):
    """Create and return a fresh, short directory /tmp/<prefix>-<pid>-<n>.

    Short on purpose: Unix socket paths (docker.sock, containerd.sock below
    the exec root) must stay under 108 bytes.
    """
    while True:
        n = _next_n()
        path = "/tmp/%s-%d-%d" % (prefix, os.getpid(), n)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:  # left over by an earlier process with our pid
            continue
        return path, n


def _clean_env(extra=None, drop_prefixes=()):
    """os.environ minus variables that would redirect our clients or daemons."""
    env = {k: v for k, v in os.environ.items()
           if not any(k.startswith(p) for p in drop_prefixes)}
    env["PATH"] = env.get("PATH", "") + ":" + SYSTEM_PATH if env.get("PATH") else SYSTEM_PATH
    if extra:
        env.update(extra)
    return env


def _proxy_env():
    # Upper and lower case: Go reads both, and clear NO_PROXY so nothing
    # bypasses the dead proxy.
    env = {}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[k] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


# urllib opener that ignores *_PROXY variables: our own HTTP clients only
# ever talk to loopback.
def _opener(ctx=None):
    handlers = [urllib.request.ProxyHandler({})]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)


# ---------------------------------------------------------------------------
# /proc helpers: find, wait for and kill only the processes we started
# ---------------------------------------------------------------------------

def _proc_table():
    """{pid: (ppid, state, starttime, argv list)} for all live processes."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        # comm is in parentheses and may contain anything: split at the last ')'
        rest = stat[stat.rfind(")") + 2:].split()
        table[pid] = (int(rest[1]), rest[0], int(rest[19]), argv)
    return table


def _descendants(table, roots):
    children = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _snapshot(table, pids):
    """{pid: starttime} for the live (non-zombie) processes among ``pids``."""
    return {p: table[p][2] for p in pids if p in table and table[p][1] != "Z"}


def _still_alive(snap):
    """Subset of a snapshot whose processes still exist (same start time,
    not zombies: PID 1 of this sandbox reaps orphans only now and then)."""
    table = _proc_table()
    return {p: st for p, st in snap.items()
            if p in table and table[p][2] == st and table[p][1] != "Z"}


def _kill_snapshot(snap, sig=signal.SIGKILL):
    for pid, st in _still_alive(snap).items():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap_or_kill(snap, grace):
    """Wait ``grace`` seconds for the processes to exit, then SIGKILL them.
    Returns the processes that survived even that (should be empty)."""
    deadline = time.monotonic() + grace
    while _still_alive(snap) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _still_alive(snap):
        _kill_snapshot(snap)
        deadline = time.monotonic() + 5
        while _still_alive(snap) and time.monotonic() < deadline:
            time.sleep(0.05)
    return _still_alive(snap)


def _pdeathsig_preexec(sig):
    """preexec_fn: deliver ``sig`` to the child when the test runner dies.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so
    it is only armed for children started from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork
    signum = int(sig)

    def preexec():
        prctl(1, signum, 0, 0, 0)  # 1 == PR_SET_PDEATHSIG
    return preexec


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


def _rmtree(path):
    if path and os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


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


def _docker_cgroups(workdir):
    """Cgroups (cgroupfs driver) of the containers in a Dockerd work dir."""
    return ["docker/" + cid for cid in _dir_entries(os.path.join(workdir, "data", "containers"))]


def _podman_cgroups(workdir):
    """Cgroups (cgroupfs manager) of the containers in a Podman work dir."""
    return ["libpod_parent/libpod-" + cid
            for cid in _dir_entries(os.path.join(workdir, "root", "vfs-containers"))
            if re.match(r"^[0-9a-f]{64}$", cid)]


# ---------------------------------------------------------------------------
# Cleanup registry (atexit and SIGTERM safety net)
# ---------------------------------------------------------------------------

_live = []
_live_lock = threading.Lock()
_sigterm_installed = False


def _register(obj):
    global _sigterm_installed
    with _live_lock:
        if obj not in _live:
            _live.append(obj)
    # SIGTERM (CI timeout, kill) would skip atexit; turn it into
    # KeyboardInterrupt, which unittest lets through, so atexit cleans up.
    # Only if nobody installed a handler already.
    if (not _sigterm_installed and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        def _on_sigterm(signum, frame):
            raise KeyboardInterrupt("SIGTERM")
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


@atexit.register
def _cleanup_all():
    while True:
        with _live_lock:
            if not _live:
                return
            obj = _live.pop()
        try:
            obj.cleanup()
        except BaseException as e:  # noqa: BLE001 - best effort at exit
            sys.stderr.write("harness: cleanup of %r failed: %s\n" % (obj, e))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_STALE_DIR = re.compile(r"^r[bdepz]-(?P<pid>\d+)-\d+$")
_STALE_LOG = re.compile(r"^rl-(?P<pid>\d+)-.*\.log$")
_STALE_BRIDGE = re.compile(r"^rdh(?P<pid>\d+)-\d+$")
_STALE_NETNS = re.compile(r"^rp-(?P<pid>\d+)-\d+$")


def sweep_stale():
    """Remove what harness instances of *dead* test processes left behind.

    atexit and the SIGTERM handler clean up normally; only a test runner
    killed with SIGKILL leaves things: its daemons get SIGTERM (parent-death
    signal) but work dirs, bridges, the Podman netns and Podman's
    containers (under conmon, which is not a child of the service) stay.
    This looks only at names this module makes (/tmp/r?-<pid>-<n>,
    bridges rdh<pid>-<n>, netns rp-<pid>-<n>) whose <pid> no longer
    exists, kills the processes that still use those work dirs, and
    removes the rest.  Returns a list of what it removed.
    """
    removed = []
    table = _proc_table()
    ns_inode = {}  # container netns inode -> /run/netns path (podman's netns-*)
    for entry in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else ()):
        try:
            ns_inode[os.stat("/run/netns/" + entry).st_ino] = "/run/netns/" + entry
        except OSError:
            pass
    for entry in sorted(os.listdir("/tmp")):
        m = _STALE_DIR.match(entry) or _STALE_LOG.match(entry)
        if not m or _pid_alive(int(m.group("pid"))):
            continue
        path = "/tmp/" + entry
        if m.re is _STALE_LOG:
            os.unlink(path)
            removed.append(path)
            continue
        marker = path + "/"
        roots = {p for p, (_, state, _, argv) in table.items()
                 if state != "Z" and any(marker in a for a in argv)}
        victims = _snapshot(table, roots | _descendants(table, roots))
        for pid in victims:  # podman containers' netns files live in /run/netns
            try:
                ns_path = ns_inode.get(os.stat("/proc/%d/ns/net" % pid).st_ino)
            except OSError:
                ns_path = None
            if ns_path and os.path.basename(ns_path).startswith("netns-"):
                _umount_under(ns_path)
                try:
                    os.unlink(ns_path)
                    removed.append(ns_path)
                except OSError:
                    pass
        if victims:
            _kill_snapshot(victims)
            _reap_or_kill(victims, grace=5)
            removed.append("processes %s" % sorted(victims))
        _remove_cgroups(_docker_cgroups(path) + _podman_cgroups(path))
        _umount_under(path)
        if _rmtree(path):
            removed.append(path)
    for name in (os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else ()):
        m = _STALE_BRIDGE.match(name)
        if m and not _pid_alive(int(m.group("pid"))):
            _run(["ip", "link", "del", name], check=False)
            removed.append("bridge " + name)
    for entry in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else ()):
        m = _STALE_NETNS.match(entry)
        if m and not _pid_alive(int(m.group("pid"))):
            _run(["ip", "netns", "del", entry], check=False)
            removed.append("netns " + entry)
    return removed


# ---------------------------------------------------------------------------
# Process
# ---------------------------------------------------------------------------

class Process:
    """A child process whose stdout and stderr go (merged) to a log file.

    ``env`` entries are added to a copy of os.environ (a value of None removes
    the variable); with ``inherit_env=False`` ``env`` is the whole
    environment.  ``log_path`` defaults to a temporary file that
    ``cleanup()`` deletes.  The child runs in its own session (a Ctrl-C
    aimed at the test runner does not hit it) and gets ``death_signal``
    (SIGKILL) if the test runner dies.
    """

    def __init__(self, argv, env=None, cwd=None, log_path=None, name=None,
                 death_signal=signal.SIGKILL, inherit_env=True, register=True):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.cwd = cwd
        self.death_signal = death_signal
        self._env = env
        self._inherit_env = inherit_env
        # The daemon classes own their Process and clean it up in order
        # (containers first), so theirs are not registered on their own.
        self._register = register
        self._own_log = log_path is None
        self.log_path = log_path  # a temp file is made by start() if None
        self._popen = None
        self._cleaned = False

    def __repr__(self):
        return "<Process %s pid=%s>" % (self.name, self.pid)

    def _environ(self):
        env = dict(os.environ) if self._inherit_env else {}
        for k, v in (self._env or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def start(self):
        if self.alive():
            return self
        if not os.path.isabs(self.argv[0]) and _find(self.argv[0]) is None:
            raise MissingDependency("%s not found (Debian package: %s)"
                                    % (self.argv[0], _PACKAGES.get(self.argv[0], "?")))
        self._cleaned = False
        if self.log_path is None:
            fd, self.log_path = _mkstemp_log(self.name)
            os.close(fd)
        if self._register:
            _register(self)
        log = open(self.log_path, "ab")
        try:
            self._popen = subprocess.Popen(
                self.argv, env=self._environ(), cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_pdeathsig_preexec(self.death_signal) if self.death_signal else None)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self._popen.pid if self._popen else None

    @property
    def returncode(self):
        """Exit code (negative signal number if killed), None while running."""
        return self._popen.poll() if self._popen else None

    def alive(self):
        return self._popen is not None and self._popen.poll() is None

    def log(self):
        """The whole log so far, as text."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines) if self.log_path else ""

    def mark(self):
        """Current log length, for ``wait_log(..., since=mark)``."""
        return len(self.log())

    def wait_log(self, regex, timeout=10, since=0, flags=re.M):
        """Wait until the log (from character ``since``) matches ``regex``;
        return the match.  Fails early if the process exits without it."""
        pattern = re.compile(regex, flags)
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.alive()
            m = pattern.search(self.log(), since)
            if m:
                return m
            if exited:
                raise AssertionError("%s exited (code %s) without logging /%s/; log tail:\n%s"
                                     % (self.name, self.returncode, regex, self.log_tail()))
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %ss waiting for /%s/ in %s log; tail:\n%s"
                                     % (timeout, regex, self.name, self.log_tail()))
            time.sleep(0.02)

    def signal(self, sig):
        if self.alive():
            self._popen.send_signal(sig)

    def wait(self, timeout=10):
        """Wait for exit and return the exit code; AssertionError on timeout."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ss" % (self.name, timeout)) from None

    # (sig defaults to None: in the class body "signal" is the method below)
    def stop(self, timeout=10, sig=None):
        """Send ``sig`` (SIGTERM), wait up to ``timeout``, then SIGKILL.  Never
        fails; returns the exit code (for daemons whose shutdown is not under
        test)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(sig or signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        return self._popen.returncode

    def terminate(self, timeout=10):
        """SIGTERM and wait; return the exit code.  If the process is still
        running after ``timeout`` seconds, SIGKILL it and fail."""
        if self._popen is None:
            raise AssertionError("%s was never started" % self.name)
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
                raise AssertionError("%s ignored SIGTERM for %ss and was killed; log tail:\n%s"
                                     % (self.name, timeout, self.log_tail())) from None
        return self._popen.returncode

    def kill9(self):
        """SIGKILL and wait; returns the exit code (-9 if it was running)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.kill()
        return self._popen.wait()

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        self.kill9()
        if self._own_log and self.log_path:
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _mkstemp_log(name):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:20]
    return tempfile.mkstemp(prefix="rl-%d-%s-" % (os.getpid(), safe), suffix=".log", dir="/tmp")


# ---------------------------------------------------------------------------
# busybox image contents
# ---------------------------------------------------------------------------

BUSYBOX_APPLETS = ("sh", "sleep", "nc", "httpd", "true", "false", "cat", "echo", "env",
                   "wget", "ls", "ps", "kill", "mkdir", "hostname", "grep")

_rootfs_lock = threading.Lock()
_rootfs_cache = {}


def _elf_is_dynamic(path):
    """True if the ELF file has a PT_INTERP header, i.e. needs ld.so and
    shared libraries that a bare rootfs does not have."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            raise MissingDependency("%s is not an ELF binary" % path)
        is64, order = head[4] == 2, "<" if head[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(order + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
        else:
            phoff, = struct.unpack_from(order + "I", head, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 0x2A)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(order + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return True
    return False


def busybox_rootfs():
    """Path of a minimal root filesystem: a static /bin/busybox, applet
    symlinks, /etc/passwd, /etc/group and /tmp.  Built once per process."""
    with _rootfs_lock:
        if "path" in _rootfs_cache and os.path.isdir(_rootfs_cache["path"]):
            return _rootfs_cache["path"]
        _require(["/bin/busybox"])
        if _elf_is_dynamic("/bin/busybox"):
            raise MissingDependency("/bin/busybox is dynamically linked; install the "
                                    "busybox-static Debian package")
        top, _ = _claim_workdir("rb")
        root = os.path.join(top, "rootfs")
        for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var/www"):
            os.makedirs(os.path.join(root, d))
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
        for applet in BUSYBOX_APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        files = {
            "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            "etc/group": "root:x:0:\nnogroup:x:65534:\n",
            # Mount targets for the runtime's bind mounts.
            "etc/hosts": "127.0.0.1 localhost\n",
            "etc/hostname": "",
            "etc/resolv.conf": "",
        }
        for rel, text in files.items():
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        _rootfs_cache["path"] = root
        _rootfs_cache["top"] = top
        return root


def busybox_tarball():
    """The busybox rootfs as an uncompressed tar (bytes), owned by root."""
    with _rootfs_lock:
        if "tar" in _rootfs_cache:
            return _rootfs_cache["tar"]
    root = busybox_rootfs()

    def owned_by_root(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(os.path.join(root, entry), arcname=entry, filter=owned_by_root)
    with _rootfs_lock:
        _rootfs_cache["tar"] = buf.getvalue()
    return _rootfs_cache["tar"]


@atexit.register
def _remove_rootfs():
    if _rootfs_cache.get("top"):
        _rmtree(_rootfs_cache["top"])


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


# ---------------------------------------------------------------------------
# Bridges and subnets
# ---------------------------------------------------------------------------

# Serialises subnet choice between harness instances in different processes.
_NET_LOCK_FILE = "/tmp/.registrar-harness-net.lock"


def _used_ipv4_networks():
    nets = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        out = _run(argv, check=False).stdout
        for m in re.finditer(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", out):
            try:
                nets.append(ipaddress.ip_network(m.group(1), strict=False))
            except ValueError:
                pass
    return nets


def _bridge_exists(name):
    return os.path.exists("/sys/class/net/%s" % name)


def _create_bridge(name, subnet=None):
    """Create bridge ``name`` with the first host address of a /24 that no
    interface or route on this machine uses (or of ``subnet``).  Returns
    (gateway_ip, subnet)."""
    with open(_NET_LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if subnet is None:
                used = _used_ipv4_networks()
                rng = random.Random("%d-%d" % (os.getpid(), time.monotonic_ns()))
                second = list(range(200, 250))
                rng.shuffle(second)
                for b in second:
                    third = list(range(1, 255))
                    rng.shuffle(third)
                    for c in third:
                        cand = ipaddress.ip_network("10.%d.%d.0/24" % (b, c))
                        if not any(cand.overlaps(u) for u in used):
                            subnet = cand
                            break
                    if subnet:
                        break
                if subnet is None:
                    raise RuntimeError("no free 10.200-249.x.0/24 subnet")
            subnet = ipaddress.ip_network(str(subnet))
            gateway = next(subnet.hosts())
            _run(["ip", "link", "add", name, "type", "bridge"])
            try:
                _run(["ip", "addr", "add", "%s/%d" % (gateway, subnet.prefixlen), "dev", name])
                _run(["ip", "link", "set", name, "up"])
            except Exception:
                _run(["ip", "link", "del", name], check=False)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return str(gateway), str(subnet)


# ---------------------------------------------------------------------------
# Dockerd
# ---------------------------------------------------------------------------

def _docker_cli():
    # Prefer the CLI from the docker.io package (it matches the daemon's
    # API 1.41); a newer CLI earlier on PATH would have to negotiate down.
    override = os.environ.get("REGISTRAR_TEST_DOCKER_CLI")
    if override:
        return override
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else _find("docker")


class Dockerd(_EngineApi):
    """A private Docker daemon with its own socket, data, exec root and bridge.

    Run as root.  No iptables rules are made (``--iptables=false``) and IP
    forwarding is left alone; published ports work through docker-proxy
    (the userland proxy) when ``userland_proxy`` is true, and are only
    recorded (not reachable) when it is false.
    """

    REQUIRES = ("dockerd", "containerd", "runc", "ip", "tar", "umount")

    @classmethod
    def missing(cls):
        return _missing(list(cls.REQUIRES) + [_docker_cli() or "docker"])

    def __init__(self, workdir=None, userland_proxy=True, bridge_subnet=None,
                 extra_args=()):
        self.userland_proxy = userland_proxy
        self.bridge_subnet = bridge_subnet
        self.extra_args = list(extra_args)
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.bridge = None
        self.gateway_ip = None
        self.subnet = None
        self._bridge_created = False
        self._proc = None
        self._cleaned = False

    def __repr__(self):
        return "<Dockerd %s>" % self.workdir

    # paths -------------------------------------------------------------
    @property
    def socket(self):
        return os.path.join(self.workdir, "docker.sock") if self.workdir else None

    @property
    def data_root(self):
        return os.path.join(self.workdir, "data")

    @property
    def exec_root(self):
        return os.path.join(self.workdir, "exec")

    @property
    def log_path(self):
        return os.path.join(self.workdir, "dockerd.log")

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    # lifecycle ---------------------------------------------------------
    def start(self):
        if self._proc is not None and self._proc.alive():
            return self
        msg = self.missing()
        if msg:
            raise MissingDependency(msg)
        self._cleaned = False
        _register(self)
        if self.workdir is None:
            self.workdir, n = _claim_workdir("rd")
        else:
            os.makedirs(self.workdir, exist_ok=True)
            n = _next_n()
        if len(self.socket) > 100 or len(self.exec_root) > 60:
            raise ValueError("workdir %r too long for Unix socket paths" % self.workdir)
        if self.bridge is None:
            while True:
                name = "rdh%d-%d" % (os.getpid(), n)
                if not _bridge_exists(name):
                    break
                n = _next_n()
            self.gateway_ip, self.subnet = _create_bridge(name, self.bridge_subnet)
            self.bridge, self._bridge_created = name, True

        # Our own (empty) config file, so /etc/docker/daemon.json, if any,
        # cannot change this daemon; likewise the CLI gets its own config dir.
        conf = os.path.join(self.workdir, "daemon.json")
        if not os.path.exists(conf):
            with open(conf, "w") as f:
                f.write("{}\n")
        os.makedirs(os.path.join(self.workdir, "cli"), exist_ok=True)
        pidfile = os.path.join(self.workdir, "docker.pid")
        if os.path.exists(pidfile):  # stale after a SIGKILL; dockerd would refuse to start
            os.unlink(pidfile)

        argv = [_find("dockerd"),
                "--host", self.host_uri,
                "--config-file", conf,
                "--data-root", self.data_root,
                "--exec-root", self.exec_root,
                "--pidfile", pidfile,
                # vfs: works on any filesystem, no overlay mounts to leak.
                "--storage-driver", "vfs",
                # Leave the machine's firewall and forwarding settings alone.
                "--iptables=false", "--ip-forward=false",
                "--bridge=" + self.bridge]
        if not self.userland_proxy:
            argv.append("--userland-proxy=false")
        argv += self.extra_args
        env = _clean_env(_proxy_env(), drop_prefixes=("DOCKER_",))
        self._proc = Process(argv, env=env, inherit_env=False, log_path=self.log_path,
                             name="dockerd", death_signal=signal.SIGTERM, register=False)
        self._proc.start()
        try:
            wait_until(lambda: self._ping() or not self._proc.alive(), timeout=30,
                       interval=0.1, message="dockerd /_ping")
        except AssertionError:
            pass
        if not self._proc.alive() or not self._ping():
            tail = self.log_tail()
            self.stop()
            raise RuntimeError("dockerd did not come up on %s (exit %s); log tail:\n%s"
                               % (self.socket, self._proc.returncode, tail))
        return self

    def _related(self):
        """The daemon and the processes it spawned: containerd, shims,
        docker-proxy, and the containers below the shims."""
        table = _proc_table()
        marker = self.exec_root + "/"
        roots = {p for p, (_, _, _, argv) in table.items() if any(marker in a for a in argv)}
        if self._proc and self._proc.alive():
            roots.add(self._proc.pid)
        return _snapshot(table, roots | _descendants(table, roots))

    def stop(self):
        """Stop the daemon (SIGTERM, up to 20 s, then SIGKILL) and wait until
        containerd, the shims and docker-proxy are gone too."""
        if self._proc is None:
            return
        was_running = self._proc.alive()
        snap = self._related()
        self._proc.stop(timeout=20)
        # After a clean shutdown these are gone or about to go; after a
        # crash (dockerd already dead) nobody will stop them: kill at once.
        left = _reap_or_kill({**snap, **self._related()}, grace=10 if was_running else 0)
        if left:
            raise RuntimeError("dockerd helpers survived SIGKILL: %s" % sorted(left))

    def restart(self):
        """Stop and start again with the same data root, socket and bridge.
        Running containers without a restart policy end up stopped."""
        return super().restart()

    def cleanup(self):
        """Remove all containers, stop the daemon, delete the bridge, unmount
        leftovers and remove the work dir.  Safe to call more than once."""
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        problems = []
        if self._proc is not None and self._proc.alive():
            try:
                for c in self.containers(all=True):
                    self.api("DELETE", "/containers/%s?force=1&v=1" % c["Id"], timeout=60)
            except Exception as e:  # noqa: BLE001 - carry on cleaning
                problems.append("removing containers: %s" % e)
        try:
            self.stop()
        except Exception as e:  # noqa: BLE001
            problems.append(str(e))
        if self.workdir:
            _remove_cgroups(_docker_cgroups(self.workdir))
            # Unmounting the containers' netns files (under exec/netns) also
            # frees their veth pairs, so do it before deleting the bridge.
            left = _umount_under(self.workdir)
            if left:
                problems.append("still mounted: %s" % left)
        if self._bridge_created and self.bridge:
            _run(["ip", "link", "del", self.bridge], check=False)
            if _bridge_exists(self.bridge):
                problems.append("bridge %s still exists" % self.bridge)
        if self.workdir and self._own_workdir and not _rmtree(self.workdir):
            problems.append("could not remove %s" % self.workdir)
        if problems:
            raise RuntimeError("Dockerd cleanup incomplete: " + "; ".join(problems))

    # client side -------------------------------------------------------
    def docker(self, *args, check=True, input=None, timeout=60):
        """Run the docker CLI against this daemon; return stripped stdout."""
        env = _clean_env({"DOCKER_CONFIG": os.path.join(self.workdir, "cli")},
                         drop_prefixes=("DOCKER_",))
        cp = _run([_docker_cli(), "-H", self.host_uri] + [str(a) for a in args],
                  check=check, input=input, timeout=timeout, env=env)
        return cp.stdout.strip()

    def import_busybox(self, name=BUSYBOX_IMAGE):
        """Import the busybox rootfs as image ``name`` (once per daemon)."""
        status, _ = self.api("GET", "/images/%s/json" % name)
        if status != 200:
            self.docker("import", "-", name, input=busybox_tarball(), timeout=120)
        return name

    def run(self, *args, stop_timeout=1):
        """``docker run -d ARGS`` -> container id (flags: _run_args)."""
        out = self.docker(*self._run_args(args, stop_timeout))
        return out.splitlines()[-1].strip()


# ---------------------------------------------------------------------------
# Podman
# ---------------------------------------------------------------------------

class Podman(_EngineApi):
    """``podman system service`` on a private socket, storage and network.

    Networking: the service (and so every container, conmon, netavark and
    the iptables rules netavark writes) runs inside a network namespace of
    its own, ``self.netns``.  Podman's default netavark bridge network then
    works normally: ``-p 127.0.0.1::80`` publishes on the namespace's
    loopback, the binding shows in the Docker-compatible API, and nothing
    touches the host's bridges or firewall.  The published port is
    reachable only from inside the namespace: use ``netns_run(...)``
    (``nsenter --net``).  Registrar itself needs only the Unix socket,
    which works across network namespaces.

    Why not the host namespace: netavark then installs NETAVARK-* chains
    in the host's iptables nat and filter tables that it never removes,
    and the bridge podman0 with 10.88.0.0/16 would be shared between
    instances.

    Containers start only with explicit, low nofile/nproc ulimits here
    (runc: "error setting rlimits ... operation not permitted"): ``run``
    adds them, and containers.conf sets them as defaults for containers
    created through the API.
    """

    REQUIRES = ("podman", "conmon", "runc", "nsenter", "ip", "umount")
    ULIMITS = ("nofile=1024:1024", "nproc=1024:1024")

    @classmethod
    def missing(cls):
        return _missing(cls.REQUIRES)

    def __init__(self, workdir=None):
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.netns = None
        self._proc = None
        self._sandboxes = set()
        self._cleaned = False

    def __repr__(self):
        return "<Podman %s>" % self.workdir

    @property
    def socket(self):
        return os.path.join(self.workdir, "podman.sock") if self.workdir else None

    @property
    def log_path(self):
        return os.path.join(self.workdir, "podman.log")

    def _global_flags(self):
        w = self.workdir
        return ["--root", w + "/root", "--runroot", w + "/run", "--tmpdir", w + "/tmp",
                "--storage-driver", "vfs",
                # No systemd in this sandbox: plain cgroupfs and a file for events.
                "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--network-config-dir", w + "/net", "--volumepath", w + "/volumes"]

    def _env(self):
        w = self.workdir
        env = _clean_env(_proxy_env(), drop_prefixes=("CONTAINER", "DOCKER_"))
        # Our own config files only: nothing from /etc/containers leaks in,
        # and short image names never resolve to a remote registry.
        env.update(CONTAINERS_CONF=w + "/containers.conf",
                   CONTAINERS_STORAGE_CONF=w + "/storage.conf",
                   CONTAINERS_REGISTRIES_CONF=w + "/registries.conf",
                   TMPDIR=w + "/tmp")
        return env

    def _write_configs(self):
        w = self.workdir
        for d in ("root", "run", "tmp", "net", "volumes"):
            os.makedirs(os.path.join(w, d), exist_ok=True)
        with open(w + "/containers.conf", "w") as f:
            f.write('[containers]\ndefault_ulimits = [%s]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    '[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "%s/net"\n'
                    % (", ".join('"%s"' % u for u in self.ULIMITS), w))
        with open(w + "/storage.conf", "w") as f:
            f.write('[storage]\ndriver = "vfs"\nrunroot = "%s/run"\ngraphroot = "%s/root"\n'
                    % (w, w))
        with open(w + "/registries.conf", "w") as f:
            f.write("unqualified-search-registries = []\n")

    def netns_argv(self, *argv):
        """argv prefixed to run in this instance's network namespace."""
        return ["nsenter", "--net=/run/netns/" + self.netns] + [str(a) for a in argv]

    def netns_run(self, *argv, check=True, input=None, timeout=30):
        """Run a command inside the network namespace; return stripped stdout."""
        return _run(self.netns_argv(*argv), check=check, input=input, timeout=timeout).stdout.strip()

    def start(self):
        if self._proc is not None and self._proc.alive():
            return self
        msg = self.missing()
        if msg:
            raise MissingDependency(msg)
        self._cleaned = False
        _register(self)
        if self.workdir is None:
            self.workdir, _ = _claim_workdir("rp")
        else:
            os.makedirs(self.workdir, exist_ok=True)
        if self.netns is None:
            name = (os.path.basename(self.workdir) if self._own_workdir
                    else "rp-%d-%d" % (os.getpid(), _next_n()))
            while os.path.exists("/run/netns/" + name):  # left by a dead process with our pid
                name = "rp-%d-%d" % (os.getpid(), _next_n())
            _run(["ip", "netns", "add", name])
            self.netns = name
            _run(["ip", "-n", name, "link", "set", "lo", "up"])
        self._write_configs()
        argv = self.netns_argv(_find("podman"), *self._global_flags(),
                               "system", "service", "--time=0", self.host_uri)
        self._proc = Process(argv, env=self._env(), inherit_env=False, log_path=self.log_path,
                             name="podman-service", death_signal=signal.SIGTERM,
                             register=False)
        self._proc.start()
        try:
            wait_until(lambda: self._ping() or not self._proc.alive(), timeout=30,
                       interval=0.1, message="podman /_ping")
        except AssertionError:
            pass
        if not self._proc.alive() or not self._ping():
            tail = self.log_tail()
            self.stop()
            raise RuntimeError("podman service did not come up on %s; log tail:\n%s"
                               % (self.socket, tail))
        return self

    def podman(self, *args, remote=True, check=True, input=None, timeout=60):
        """Run the podman CLI; return stripped stdout.

        remote=True (default) goes through the service socket (``--remote
        --url``), so everything it does is what an API client sees.
        remote=False runs the local engine on the same storage, inside the
        network namespace; containers it creates show up in the service
        too (same database), e.g. for cleanup when the service is down.
        """
        if remote:
            argv = [_find("podman"), "--remote", "--url", self.host_uri]
        else:
            argv = self.netns_argv(_find("podman"), *self._global_flags())
        return _run(argv + [str(a) for a in args], check=check, input=input,
                    timeout=timeout, env=self._env()).stdout.strip()

    def import_busybox(self, name=BUSYBOX_IMAGE):
        """Import the busybox rootfs as ``name`` (stored as localhost/NAME)."""
        if _run([_find("podman"), "--remote", "--url", self.host_uri, "image", "exists", name],
                check=False, env=self._env()).returncode != 0:
            self.podman("import", "-", name, input=busybox_tarball(), timeout=120)
        return name

    def run(self, *args, stop_timeout=1):
        """``podman run -d`` with the ulimits this sandbox needs (other
        flags: _run_args)."""
        ulimits = [flag for u in self.ULIMITS for flag in ("--ulimit", u)]
        cid = self.podman(*self._run_args(args, stop_timeout, ulimits)).splitlines()[-1].strip()
        try:  # remember the container's netns mount, for cleanup's safety net
            key = (self.inspect(cid).get("NetworkSettings") or {}).get("SandboxKey")
            if key:
                self._sandboxes.add(key)
        except Exception:  # noqa: BLE001 - a container that exited already
            pass
        return cid

    def _related(self):
        table = _proc_table()
        marker = self.workdir + "/"
        helpers = ("conmon", "podman", "netavark", "aardvark-dns", "slirp4netns", "nsenter")
        roots = {p for p, (_, _, _, argv) in table.items()
                 if argv and os.path.basename(argv[0]) in helpers
                 and any(marker in a for a in argv)}
        if self._proc and self._proc.alive():
            roots.add(self._proc.pid)
        return _snapshot(table, roots | _descendants(table, roots))

    def stop(self):
        """Stop the service; containers (under conmon) keep running."""
        if self._proc is not None:
            self._proc.stop(timeout=10)

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        problems = []
        if self.workdir and os.path.isdir(self.workdir + "/root"):
            # The local engine works with or without the service.
            cp = _run(self.netns_argv(_find("podman"), *self._global_flags(),
                                      "rm", "--all", "--force", "--time", "0"),
                      check=False, timeout=120, env=self._env())
            if cp.returncode != 0:
                problems.append("podman rm: " + cp.stderr.strip())
        snap = self._related()
        self.stop()
        # "podman container cleanup" processes may still be unmounting.
        left = _reap_or_kill({**snap, **self._related()}, grace=10)
        if left:
            problems.append("processes survived SIGKILL: %s" % sorted(left))
        for key in self._sandboxes:
            if _mounts_under(key):
                _umount_under(key)
                try:
                    os.unlink(key)
                except OSError:
                    pass
        if self.netns:
            _run(["ip", "netns", "del", self.netns], check=False)
            if os.path.exists("/run/netns/" + self.netns):
                problems.append("netns %s still exists" % self.netns)
        if self.workdir:
            _remove_cgroups(_podman_cgroups(self.workdir))
            left = _umount_under(self.workdir)
            if left:
                problems.append("still mounted: %s" % left)
            if self._own_workdir and not _rmtree(self.workdir):
                problems.append("could not remove %s" % self.workdir)
        if problems:
            raise RuntimeError("Podman cleanup incomplete: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------

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


class Etcd:
    """A private etcd 3.4 server on 127.0.0.1 with a data dir of its own.

    ``tls=True`` makes a CA, a server certificate for 127.0.0.1 and a client
    certificate with openssl, serves https and requires client
    certificates (``ca_file``, ``client_cert``, ``client_key``).
    """

    REQUIRES = ("etcd", "etcdctl")

    @classmethod
    def missing(cls):
        return _missing(cls.REQUIRES)

    def __init__(self, enable_v2=True, tls=None, workdir=None, extra_args=()):
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
        argv = [_find("etcd"), "--name", "t", "--data-dir", self.data_dir,
                "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                "--initial-cluster", "t=" + p,
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
        """SIGTERM (SIGKILL after ``timeout``); data and ports are kept."""
        self._token = None
        if self._proc is not None:
            return self._proc.stop(timeout=timeout)

    def kill(self):
        """SIGKILL, as in a crash."""
        self._token = None
        if self._proc is not None:
            return self._proc.kill9()

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        self.kill()
        if self.workdir and self._own_workdir and not _rmtree(self.workdir):
            raise RuntimeError("could not remove %s" % self.workdir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

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


# ---------------------------------------------------------------------------
# ZooKeeper
# ---------------------------------------------------------------------------

class ZkError(RuntimeError):
    """A ZooKeeper request failed with error code ``.code``."""

    NAMES = {-101: "NoNode", -110: "NodeExists", -111: "NotEmpty", -102: "NoAuth",
             -103: "BadVersion", -4: "ConnectionLoss", -112: "SessionExpired"}

    def __init__(self, op, path, code):
        super().__init__("%s %s: %s (%d)" % (op, path, self.NAMES.get(code, "error"), code))
        self.code = code


class ZkClient:
    """Minimal synchronous ZooKeeper client (jute wire protocol), enough to
    inspect what registrar wrote: get, children, exists, create, delete.

    One session per instance; ``close()`` ends it (ephemeral nodes go).
    """

    NONODE = -101
    _STAT = struct.Struct(">qqqqiiiqiiq")
    STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                   "ephemeralOwner", "dataLength", "numChildren", "pzxid")

    def __init__(self, host_port, session_timeout_ms=10000, timeout=5.0):
        host, port = host_port.rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._xid = 0
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
        # passwd (16 zero bytes), readOnly
        self._send(struct.pack(">iqiq", 0, 0, session_timeout_ms, 0) + self._buf(b"\0" * 16)
                   + b"\0")
        resp = self._recv()
        _, self.session_timeout_ms, self.session_id = struct.unpack_from(">iiq", resp)
        if self.session_timeout_ms <= 0:
            raise ZkError("connect", host_port, -112)

    @staticmethod
    def _buf(b):
        if b is None:
            return struct.pack(">i", -1)
        if isinstance(b, str):
            b = b.encode()
        return struct.pack(">i", len(b)) + b

    def _send(self, payload):
        self._sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("ZooKeeper closed the connection")
            data += chunk
        return data

    def _recv(self):
        n, = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(n)

    def _call(self, op, body, path):
        self._xid += 1
        self._send(struct.pack(">ii", self._xid, op) + body)
        while True:
            resp = self._recv()
            xid, _zxid, err = struct.unpack_from(">iqi", resp)
            if xid == self._xid:
                break  # skip watch events (-1) and pings (-2)
        if err:
            raise ZkError({1: "create", 2: "delete", 3: "exists", 4: "get", 8: "children",
                           -11: "close"}.get(op, str(op)), path, err)
        return resp[16:]

    def _read_buf(self, data, off):
        n, = struct.unpack_from(">i", data, off)
        off += 4
        if n < 0:
            return None, off
        return data[off:off + n], off + n

    def get(self, path):
        """(data bytes, stat dict) of a node; ZkError(NoNode) if absent."""
        rest = self._call(4, self._buf(path) + b"\0", path)
        data, off = self._read_buf(rest, 0)
        return data, dict(zip(self.STAT_FIELDS, self._STAT.unpack_from(rest, off)))

    def exists(self, path):
        """stat dict, or None if the node does not exist."""
        try:
            rest = self._call(3, self._buf(path) + b"\0", path)
        except ZkError as e:
            if e.code == self.NONODE:
                return None
            raise
        return dict(zip(self.STAT_FIELDS, self._STAT.unpack_from(rest, 0)))

    def children(self, path):
        rest = self._call(8, self._buf(path) + b"\0", path)
        count, = struct.unpack_from(">i", rest)
        off, names = 4, []
        for _ in range(max(count, 0)):
            name, off = self._read_buf(rest, off)
            names.append(name.decode())
        return sorted(names)

    def create(self, path, data=b"", ephemeral=False, makepath=False):
        if makepath:
            parent = path.rsplit("/", 1)[0]
            if parent and self.exists(parent) is None:
                self.create(parent, makepath=True)
        # ACL: world:anyone with all permissions (31)
        acl = struct.pack(">ii", 1, 31) + self._buf("world") + self._buf("anyone")
        rest = self._call(1, self._buf(path) + self._buf(data) + acl
                          + struct.pack(">i", 1 if ephemeral else 0), path)
        return self._read_buf(rest, 0)[0].decode()

    def delete(self, path, recursive=False):
        if recursive:
            for child in self.children(path):
                self.delete(path.rstrip("/") + "/" + child, recursive=True)
        self._call(2, self._buf(path) + struct.pack(">i", -1), path)

    def close(self):
        if self._sock is None:
            return
        try:
            self._call(-11, b"", "")
        except (OSError, ZkError):
            pass
        finally:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ZooKeeper:
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

    def __init__(self, workdir=None, tick_time_ms=1000):
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.tick_time_ms = tick_time_ms
        self.client_port = None
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

    def start(self, timeout=30):
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
            if not (first and "Address already in use" in log):
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

    def stop(self, timeout=10):
        if self._proc is not None:
            return self._proc.stop(timeout=timeout)

    def kill(self):
        if self._proc is not None:
            return self._proc.kill9()

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        self.kill()
        if self.workdir and self._own_workdir and not _rmtree(self.workdir):
            raise RuntimeError("could not remove %s" % self.workdir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
