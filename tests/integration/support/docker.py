"""``Dockerd``: a private Docker daemon on its own socket, data root, exec
root and Linux bridge, with the docker CLI pointed at it; and the bridges
and subnets it gets.

Network rule: the daemon's containers sit on a bridge this module creates
(``rdh<pid>-<n>``, a 10.200-249.x.0/24 that nothing on this machine uses,
chosen under a lock shared with other test processes).  No iptables rules
are made and IP forwarding is left alone; pulls go to the dead proxy.
"""

import fcntl
import ipaddress
import os
import random
import re
import signal
import time

from .busybox import BUSYBOX_IMAGE, busybox_tarball
from .engine import _EngineApi, _dir_entries, _proxy_env, _remove_cgroups, _umount_under
from .processes import (Process, _descendants, _proc_table, _reap_or_kill, _register,
                        _snapshot, _unregister)
from .util import (MissingDependency, _claim_workdir, _clean_env, _find, _missing, _next_n,
                   _rmtree, _run, wait_until)

RECORDING_PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recording-proxy")

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


def _docker_cgroups(workdir):
    """Cgroups (cgroupfs driver) of the containers in a Dockerd work dir."""
    return ["docker/" + cid for cid in _dir_entries(os.path.join(workdir, "data", "containers"))]


class Dockerd(_EngineApi):
    """A private Docker daemon with its own socket, data, exec root and bridge.

    Run as root.  No iptables rules are made (``--iptables=false``) and IP
    forwarding is left alone; published ports work through docker-proxy
    (the userland proxy) when ``userland_proxy`` is true, and are only
    recorded (not reachable, not bound) when it is false, the default:
    registrar only reads them, and daemons side by side (ctest -j) would
    otherwise fight over the host ports their allocators both hand out
    (see support/recording-proxy).
    """

    REQUIRES = ("dockerd", "containerd", "runc", "ip", "tar", "umount")

    @classmethod
    def missing(cls):
        return _missing(list(cls.REQUIRES) + [_docker_cli() or "docker"])

    def __init__(self, workdir=None, userland_proxy=False, bridge_subnet=None,
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
            # not --userland-proxy=false: dockerd then binds each port itself
            argv.append("--userland-proxy-path=" + RECORDING_PROXY)
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

