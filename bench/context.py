"""context.py: what the parts of a bench run share: the options, the
daemons (one private dockerd, one etcd with v2 and v3, started when first
needed and stopped at the end), the real containers running on that
dockerd, and a fresh registry for each registrar run."""
import ipaddress
import os
import shutil
import tempfile

import parts
from parts import h


class Context:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.registrar = os.path.abspath(args.registrar)
        self.workdir = tempfile.mkdtemp(prefix="rbench-", dir="/tmp")
        self._docker = None
        self._etcd = None
        self._image = None
        self.containers = []    # real containers kept running between parts (ids)

    # -- daemons ------------------------------------------------------------

    def docker(self):
        if self._docker is None:
            self._docker = h.Dockerd(bridge_subnet=free_subnet())
            self._docker.start()
            self._image = self._docker.import_busybox()
        return self._docker

    def image(self):
        self.docker()
        return self._image

    def etcd(self):
        if self._etcd is None:
            self._etcd = h.Etcd(enable_v2=True)
            self._etcd.start()
        return self._etcd

    def fresh_etcd(self):
        """The etcd, with every key of an earlier run deleted (v2 and v3)."""
        e = self.etcd()
        e.v3_delete("/", prefix=True)
        for d in ("/services", "/hosts"):
            e.v2_delete(d, recursive=True)
        return e

    def registrar_for(self, api, mode, docker_socket, interval=3000, ttl=None, consul=None):
        """A Registrar (not started) writing to etcd v2/v3 or the Consul agent."""
        if api == "consul":
            backend = "consul://" + consul.host_port
        else:
            backend = ("etcd3://" if api == "v3" else "etcd2://") + self.etcd().host_port
        if mode == "ttl" and ttl is None:
            ttl = max(12000, 4 * interval)
        return parts.Registrar(self.registrar, backend, docker_socket, mode=mode, interval=interval, ttl=ttl)

    # -- real containers --------------------------------------------------------

    def running(self, n):
        """Exactly n real containers (two published ports each) running,
        created (or removed) 4 at a time; -> their ids."""
        if n > len(self.containers):
            names = ["real%d" % i for i in range(len(self.containers), n)]
            self.containers += parts.run_containers(self.docker(), self.image(), names, threads=4)
        elif n < len(self.containers):
            parts.remove_containers(self.docker(), self.containers[n:], threads=4)
            del self.containers[n:]
        return list(self.containers)

    def cleanup(self):
        if self._docker is not None:
            self._docker.cleanup()
        if self._etcd is not None:
            self._etcd.cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_subnet():
    """A /22 for the bench's bridge: the harness's own /24 has addresses
    for 253 containers, bulk runs 300.  Taken from 10.199.0.0/16, beside
    the 10.200-249 range the tests take their /24s from."""
    from support.docker import _used_ipv4_networks
    used = _used_ipv4_networks()
    for third in range(0, 256, 4):
        cand = ipaddress.ip_network("10.199.%d.0/22" % third)
        if not any(cand.overlaps(u) for u in used):
            return str(cand)
    raise RuntimeError("no free /22 in 10.199.0.0/16 for the bench's bridge")
