"""``Podman``: ``podman system service`` (the Docker-compatible API) on a
private socket and storage, in a network namespace of its own; and what
``sweep.sweep_stale`` needs to remove its containers' leftovers.

Network rule: everything Podman starts (service, conmon, netavark, the
containers and netavark's iptables rules) lives in the namespace
``rp-<pid>-<n>`` this module creates; pulls go to the dead proxy.
"""

import os
import re
import signal

from .busybox import BUSYBOX_IMAGE, busybox_tarball
from .engine import (_EngineApi, _dir_entries, _mounts_under, _proxy_env, _remove_cgroups,
                     _umount_under)
from .processes import (Process, _descendants, _proc_table, _reap_or_kill, _register,
                        _snapshot, _unregister)
from .util import (MissingDependency, _claim_workdir, _clean_env, _find, _missing, _next_n,
                   _rmtree, _run, wait_until)


def _podman_cgroups(workdir):
    """Cgroups (cgroupfs manager) of the containers in a Podman work dir."""
    return ["libpod_parent/libpod-" + cid
            for cid in _dir_entries(os.path.join(workdir, "root", "vfs-containers"))
            if re.match(r"^[0-9a-f]{64}$", cid)]


def _container_netns_by_inode():
    """{inode: path} of the network namespace files in /run/netns (Podman's
    containers' are netns-<uuid>; this instance's own is rp-<pid>-<n>)."""
    ns_inode = {}
    for entry in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else ()):
        try:
            ns_inode[os.stat("/run/netns/" + entry).st_ino] = "/run/netns/" + entry
        except OSError:
            pass
    return ns_inode


def _remove_container_netns(victims, ns_inode):
    """Unmount and delete the netns-* files (a Podman container's network
    namespace, in /run/netns) that processes of the snapshot ``victims``
    are in; returns the paths removed.  Call before killing them."""
    removed = []
    for pid in victims:
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
    return removed


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
