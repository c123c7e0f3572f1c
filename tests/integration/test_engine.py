"""The first end-to-end path: a real dockerd, a real etcd (v2 keys API),
registrar configured the old tool's way (environment variables), and
containers started as the old tool's README started them."""
import os
import signal
import unittest

import harness as h
from common import EtcdTest, decoded, etcd_v2_index, host_port, old_tool_document, start_registrar

HOST = "testhost"
IPADDRESS = "10.0.1.100"


@h.skip_unless_available(h.Dockerd, h.Etcd)
class OldToolWayOnEtcdV2(EtcdTest):
    maxDiff = None

    def setUp(self):
        super().setUp()
        self.etcd.v2_delete("/services", recursive=True)

    def registrar(self, **extra):
        env = {
            # the old tool spoke the v2 keys API; etcd:// would pick v3 on etcd 3.4
            "BACKEND": "etcd2://" + self.etcd.host_port,
            "HOST": HOST,
            "IPADDRESS": IPADDRESS,
            "PREFIX_SERVICES": "/services",
            "DOCKER_SOCKET": self.docker.socket,
            "INTERVAL": "1000",
            "LOGLEVEL": "debug",
        }
        env.update(extra)
        return start_registrar(self, "run", env=env)

    def services(self):
        return self.etcd.v2_tree("/services")

    def wait_services(self, predicate, message):
        return h.wait_until(lambda: predicate(self.services()), timeout=10, message=message)

    def test_registers_as_the_old_tool_documented(self):
        # a key of another host under the same prefix, and one this host
        # left behind in an earlier run for a container that is gone
        foreign = '{"host":"otherhost","port":"80"}'
        self.etcd.v2_put("/services/prod/other/80/8080/aaaaaaaaaaaa", foreign)
        self.etcd.v2_put("/services/prod/ghost/80/1/bbbbbbbbbbbb", '{"host":"%s","port":"80"}' % HOST)

        # running before registrar starts: registered at start-up
        master = self.docker.run("--name", "redis-master", "-e", "APP=redis", "-e", "NAME=master",
                                 "-e", "ENVIRONMENT=prod", "-P", "--expose", "6379",
                                 self.image, "sleep", "3600")
        reg = self.registrar()
        m = self.docker.inspect(master)
        master_key = "/services/prod/master/6379/%s/%s" % (host_port(m, "6379/tcp"), m["Config"]["Hostname"])
        self.wait_services(lambda s: master_key in s, "the running container's key")
        self.wait_services(lambda s: "/services/prod/ghost/80/1/bbbbbbbbbbbb" not in s, "the stale key pruned")

        # started while registrar runs: registered from the event
        etcd_c = self.docker.run("--name", "etcd-node", "-e", "APP=etcd", "-e", "NAME=etc",
                                 "-e", "ENVIRONMENT=prod", "-e", "SERVICE_4001_NAME=etcd_clients",
                                 "-e", "SERVICE_7001_NAME=etcd_peers", "--expose", "4001",
                                 "--expose", "7001", "-P", self.image, "sleep", "3600")
        e = self.docker.inspect(etcd_c)
        hostname = e["Config"]["Hostname"]
        clients = "/services/prod/etc/etcd_clients/%s/%s" % (host_port(e, "4001/tcp"), hostname)
        peers = "/services/prod/etc/etcd_peers/%s/%s" % (host_port(e, "7001/tcp"), hostname)
        self.wait_services(lambda s: clients in s and peers in s, "the etcd container's two keys")

        services = decoded(self.services())
        self.assertEqual(services, {
            master_key: old_tool_document(m, "6379/tcp", master_key, HOST, IPADDRESS),
            clients: old_tool_document(e, "4001/tcp", clients, HOST, IPADDRESS),
            peers: old_tool_document(e, "7001/tcp", peers, HOST, IPADDRESS),
            "/services/prod/other/80/8080/aaaaaaaaaaaa": {"host": "otherhost", "port": "80"},
        })

        # a stopped container's keys go; everything else stays
        self.docker.docker("stop", etcd_c)
        self.wait_services(lambda s: clients not in s and peers not in s, "the stopped container's keys removed")
        remaining = self.services()
        self.assertEqual(set(remaining), {master_key, "/services/prod/other/80/8080/aaaaaaaaaaaa"})
        self.assertEqual(remaining["/services/prod/other/80/8080/aaaaaaaaaaaa"], foreign)

        # SIGTERM: a clean, prompt exit that leaves the registry as it is
        self.assertEqual(reg.terminate(timeout=5), 0)
        self.assertIn(master_key, self.services())

    def test_rewrites_a_key_whose_document_changed(self):
        c = self.docker.run("-e", "NAME=web", "-P", "--expose", "80", self.image, "sleep", "3600")
        i = self.docker.inspect(c)
        key = "/services/web/80/%s/%s" % (host_port(i, "80/tcp"), i["Config"]["Hostname"])
        self.registrar()
        self.wait_services(lambda s: key in s, "the key")
        # someone (or an older registrar) wrote a different document there
        self.etcd.v2_put(key, '{"host":"%s","port":"stale"}' % HOST)
        self.wait_services(lambda s: '"stale"' not in s.get(key, ""), "the document rewritten")
        self.assertEqual(decoded(self.services())[key], old_tool_document(i, "80/tcp", key, HOST, IPADDRESS))

    def test_writes_nothing_when_nothing_changes(self):
        c = self.docker.run("-e", "NAME=idle", "-P", "--expose", "80", self.image, "sleep", "3600")
        i = self.docker.inspect(c)
        key = "/services/idle/80/%s/%s" % (host_port(i, "80/tcp"), i["Config"]["Hostname"])
        reg = self.registrar()
        self.wait_services(lambda s: key in s, "the key")
        index = etcd_v2_index(self.etcd)
        reg.wait_log(r"resync: 1 containers running, 1 Docker requests", timeout=10)
        reg.wait_log(r"(?s)resync: 1 containers running, 1 Docker requests.*resync: 1 containers running", timeout=10)
        self.assertEqual(etcd_v2_index(self.etcd), index, "an idle host wrote to etcd")

    def test_keeps_registrations_when_the_registry_was_written_by_a_previous_run(self):
        c = self.docker.run("-e", "NAME=again", "-P", "--expose", "80", self.image, "sleep", "3600")
        i = self.docker.inspect(c)
        key = "/services/again/80/%s/%s" % (host_port(i, "80/tcp"), i["Config"]["Hostname"])
        first = self.registrar()
        self.wait_services(lambda s: key in s, "the key")
        first.signal(signal.SIGKILL)
        index = etcd_v2_index(self.etcd)
        second = self.registrar()
        second.wait_log(r"resync: 1 containers running", timeout=10)
        second.wait_log(r"this host has 2 entries there", timeout=10)     # the key, and this host's document
        self.assertIn(key, self.services())
        self.assertEqual(etcd_v2_index(self.etcd), index, "a restart rewrote unchanged keys")


if __name__ == "__main__":
    unittest.main()
