"""What every support module (and many tests) share: dependency checks and
skip decorators, free ports, polling, running a command, and the naming of
work directories.

Naming rule: every name the harness makes on this machine (work dirs, log
files, bridges, network namespaces) is ``<prefix>-<pid>-<counter>`` (the
bridge: ``rdh<pid>-<counter>``), with the test runner's pid and one counter
per process (``_next_n``), so test files that run one after another, or next
to other sessions, do not collide, and ``sweep.sweep_stale`` can tell from
the pid alone whether the run that made a name is still alive.  Prefixes
in use: rb (busybox rootfs), rd (Dockerd), rp (Podman, also its netns), re
(Etcd), ri (installed trees), rz (ZooKeeper), rl (Process logs), rdh (Dockerd
bridges).
"""

import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

# A PATH that finds the sbin helpers (docker-proxy, runc, ip, ...) even
# when the caller's PATH lacks them.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def _next_n():
    with _counter_lock:
        return next(_counter)


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


def _rmtree(path):
    if path and os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def _clean_env(extra=None, drop_prefixes=()):
    """os.environ minus variables that would redirect our clients or daemons."""
    env = {k: v for k, v in os.environ.items()
           if not any(k.startswith(p) for p in drop_prefixes)}
    env["PATH"] = env.get("PATH", "") + ":" + SYSTEM_PATH if env.get("PATH") else SYSTEM_PATH
    if extra:
        env.update(extra)
    return env

