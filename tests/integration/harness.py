"""Integration-test harness for registrar.

Starts private, throw-away instances of the things registrar talks to:

* ``Dockerd``   - a Docker daemon on its own socket, data root and Linux bridge
* ``Podman``    - ``podman system service`` (Docker-compatible API) in its own
                  network namespace
* ``Etcd``      - an etcd 3.4 server on loopback (optionally TLS, auth)
* ``ZooKeeper`` - a standalone ZooKeeper on loopback
* ``ZooKeeperEnsemble`` - several ZooKeeper servers forming one ensemble
* ``Process``   - any other program (the registrar binary itself), with its
                  output captured to a log file
* ``start_consul_standin`` - the Consul stand-in (tests/consul_standin/)
* ``InstalledTree`` - ``cmake --install`` of the build into a work dir;
  ``run_hidden`` runs a program with the source and build trees hidden

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

This module only re-exports the public names; the code, and the rules it
follows, are in the package support/, one module per job (its __init__
lists them).  A test that needs a private helper (``_proc_table``,
``_find``, ...) imports it from the module that owns it, and patches it
there too.
"""

# processes first: its atexit hook (clean up every live instance) must be
# registered before busybox's (remove the rootfs), so that it runs after it,
# as when this was one module.
from support.processes import Process
from support.util import (SYSTEM_PATH, MissingDependency, free_port, skip_unless_available,
                          skip_unless_root, wait_until)
from support.busybox import BUSYBOX_APPLETS, BUSYBOX_IMAGE, busybox_rootfs, busybox_tarball
from support.engine import DEAD_PROXY, UnixHTTPConnection, unix_http
from support.docker import Dockerd
from support.podman import Podman
from support.etcd import Etcd, EtcdCluster, EtcdError
from support.zkclient import ZkClient, ZkError
from support.zookeeper import ZooKeeper, ZooKeeperEnsemble
from support.consul import start_consul_standin
from support.install import InstalledTree, build_dir_of, cmake_cached, run_hidden
from support.sweep import sweep_stale

__all__ = [
    "free_port", "wait_until", "skip_unless_root", "skip_unless_available", "sweep_stale",
    "busybox_rootfs", "busybox_tarball", "MissingDependency",
    "Process", "Dockerd", "Podman", "Etcd", "EtcdCluster", "EtcdError", "ZooKeeper", "ZooKeeperEnsemble",
    "ZkClient", "ZkError", "BUSYBOX_IMAGE",
    "BUSYBOX_APPLETS", "DEAD_PROXY", "SYSTEM_PATH", "UnixHTTPConnection", "unix_http",
    "start_consul_standin", "InstalledTree", "build_dir_of", "cmake_cached", "run_hidden",
]
