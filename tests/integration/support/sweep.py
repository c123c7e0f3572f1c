"""``sweep_stale()``: remove what harness instances of *dead* test processes
left behind.

atexit and the SIGTERM handler clean up normally (processes.py); only a
test runner killed with SIGKILL leaves things: its daemons get SIGTERM
(parent-death signal) but work dirs, bridges, the Podman netns and Podman's
containers (under conmon, which is not a child of the service) stay.

Rule: the sweep touches only names the harness makes (util.py's naming
rule) whose <pid> no longer exists, and signals only processes whose
command line names such a dead run's work dir, or their descendants.
"""

import os
import re

from .docker import _docker_cgroups
from .engine import _remove_cgroups, _umount_under
from .podman import _container_netns_by_inode, _podman_cgroups, _remove_container_netns
from .processes import _kill_snapshot, _pid_alive, _proc_table, _reap_or_kill, _users_of_dir
from .util import _rmtree, _run

# Work dirs /tmp/<prefix>-<pid>-<n> of busybox.py (rb), docker.py (rd),
# etcd.py (re), install.py (ri), podman.py (rp) and zookeeper.py (rz); Process logs
# (processes.py); Dockerd bridges; Podman network namespaces.
_STALE_DIR = re.compile(r"^r[bdeipz]-(?P<pid>\d+)-\d+$")
_STALE_LOG = re.compile(r"^rl-(?P<pid>\d+)-.*\.log$")
_STALE_BRIDGE = re.compile(r"^rdh(?P<pid>\d+)-\d+$")
_STALE_NETNS = re.compile(r"^rp-(?P<pid>\d+)-\d+$")


def sweep_stale():
    """Remove what harness instances of *dead* test processes left behind.

    This looks only at names the harness makes (/tmp/r?-<pid>-<n>,
    bridges rdh<pid>-<n>, netns rp-<pid>-<n>) whose <pid> no longer
    exists, kills the processes that still use those work dirs, and
    removes the rest.  Returns a list of what it removed.
    """
    removed = []
    table = _proc_table()
    ns_inode = _container_netns_by_inode()
    for entry in sorted(os.listdir("/tmp")):
        m = _STALE_DIR.match(entry) or _STALE_LOG.match(entry)
        if not m or _pid_alive(int(m.group("pid"))):
            continue
        path = "/tmp/" + entry
        if m.re is _STALE_LOG:
            os.unlink(path)
            removed.append(path)
            continue
        victims = _users_of_dir(table, path)
        # Podman containers' netns files live in /run/netns: find them
        # through the victims, before killing those.
        removed.extend(_remove_container_netns(victims, ns_inode))
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
