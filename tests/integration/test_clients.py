"""What registrar writes, read back by clients nobody here wrote: Debian's
python3-consul (agent, catalog, KV, and health.service as consumers such as
consul-template read services), etcdctl (etcd-client) for etcd's v2 and v3
keys and the ownership records, python3-etcd (v2) and python3-etcd3 (v3),
and `nginx -t` on the upstream file examples/nginx.lua writes.

Docker is the fake one (fake_docker.py): these tests are about what the
readers make of the registry, not about Docker.  Consul is the stand-in
(tests/consul_standin), which never runs HTTP or TCP checks: a check
registered without a status starts critical and stays so, as Consul
reports a check against a port nothing answers."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness as h
from common import SOURCE, start_class_etcd, start_registrar
from fake_docker import FakeDocker, inspect_doc
from support.util import _clean_env, _find

HOST = "clienthost"
IPADDRESS = "10.0.9.9"
TOKEN = "c11e7700-aaaa-bbbb-cccc-0123456789ab"


def client_module(name, package):
    """The module, or a failure naming the Debian package that .ci/deps
    installs for it: these tests must not be skipped silently."""
    try:
        return __import__(name)
    except ImportError as e:
        raise AssertionError("%s is not importable (%s): install the Debian package %s (.ci/deps test)"
                             % (name, e, package))


def container(n, name, env, port):
    """A running container publishing 80/tcp on port."""
    return inspect_doc("%064x" % (0xc11e0000 + n), name, env=env, ports={"80/tcp": [("0.0.0.0", str(port))]})


class FakeDockerTest(unittest.TestCase):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="registrar-clients-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.docker = FakeDocker(os.path.join(self.dir, "docker.sock"))
        self.docker.start()
        self.addCleanup(self.docker.stop)

    def registrar(self, backend, *args, env=None):
        return start_registrar(self, "run", "-B", backend, "-D", self.docker.socket_path, "-H", HOST,
                               "-a", IPADDRESS, "-i", "300", "--log-level", "debug", *args, env=env)


# ---------------------------------------------------------------------------
# Consul: python3-consul
# ---------------------------------------------------------------------------


class ConsulClientTest(FakeDockerTest):
    """python3-consul (the python-consul library, 0.7.1 in Debian 12)
    against the stand-in."""
    ACL = False

    def setUp(self):
        super().setUp()
        consul = client_module("consul", "python3-consul")
        self.consul = h.start_consul_standin(acl_token=TOKEN if self.ACL else None, session_ttl_min=1,
                                             check_deregister_interval_min=1, check_reap_interval=0.2)
        self.addCleanup(self.consul.stop)
        # python-consul takes CONSUL_HTTP_* from the environment over its arguments
        for var in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY"):
            if var in os.environ:
                self.addCleanup(os.environ.__setitem__, var, os.environ.pop(var))
        self.client = consul.Consul(host="127.0.0.1", port=self.consul.port, token=TOKEN)

    def uri(self, scheme, path=""):
        return "%s://127.0.0.1:%d%s" % (scheme, self.consul.port, path)

    def run_registrar(self, scheme, *args, path=""):
        return self.registrar(self.uri(scheme, path), *args, env={"CONSUL_HTTP_TOKEN": TOKEN})

    def web_containers(self):
        """Four instances of "web" (registrator naming): two healthy, two
        whose SERVICE_CHECK_* fails; and one "db"."""
        specs = [
            ("web-ok", {}),
            ("web-ok-ttl", {"SERVICE_CHECK_TTL": "30s", "SERVICE_CHECK_INITIAL_STATUS": "passing"}),
            ("web-bad-http", {"SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "5s"}),
            ("web-bad-ttl", {"SERVICE_CHECK_TTL": "30s"}),     # nobody passes it: critical
        ]
        ports = {}
        for n, (name, env) in enumerate(specs):
            ports[name] = 34000 + n
            self.docker.add_container(container(n, name, dict(env, SERVICE_NAME="web"), ports[name]))
        self.docker.add_container(container(9, "db", {"SERVICE_NAME": "db"}, 34009))
        return {"%s:%s:80" % (HOST, name): port for name, port in ports.items()}

    def passing_ids(self, name):
        _index, nodes = self.client.health.service(name, passing=True)
        return sorted(n["Service"]["ID"] for n in nodes)


class ConsulClients(ConsulClientTest):
    """Without ACLs: python3-consul 0.7.1 sends no token with
    agent.services(), agent.checks() or the session calls, so under ACLs
    those see nothing (ConsulClientsWithACL covers the calls that do send
    it)."""

    def test_agent_mode_health_service_passing_returns_exactly_the_healthy_containers(self):
        ports = self.web_containers()
        self.run_registrar("consul", "--naming", "registrator")
        ids = sorted(ports)
        h.wait_until(lambda: sorted(i for i, s in self.client.agent.services().items()
                                    if s["Service"] == "web") == ids, message="the four web services")
        for sid, s in self.client.agent.services().items():
            if s["Service"] == "web":
                self.assertEqual((s["Address"], s["Port"], s["Meta"]["registrar_host"]), (IPADDRESS, ports[sid], HOST))
                self.assertEqual(s["Meta"]["registrar_key"], "/services/web/" + sid)

        healthy = sorted("%s:%s:80" % (HOST, n) for n in ("web-ok", "web-ok-ttl"))
        self.assertEqual(self.passing_ids("web"), healthy)
        _index, nodes = self.client.health.service("web", passing=True)
        for n in nodes:
            self.assertEqual((n["Service"]["Address"], n["Service"]["Port"]), (IPADDRESS, ports[n["Service"]["ID"]]))
            self.assertEqual({c["Status"] for c in n["Checks"]}, {"passing"})
        # without ?passing a consumer sees every instance, and why two fail
        _index, nodes = self.client.health.service("web")
        status = {n["Service"]["ID"]: {c["CheckID"]: (c["Status"], c["Type"]) for c in n["Checks"]} for n in nodes}
        self.assertEqual(sorted(status), ids)
        bad_http, bad_ttl = "%s:web-bad-http:80" % HOST, "%s:web-bad-ttl:80" % HOST
        self.assertEqual(status[bad_http]["service:" + bad_http], ("critical", "http"))
        self.assertEqual(status[bad_ttl]["service:" + bad_ttl], ("critical", "ttl"))
        self.assertEqual(status["%s:web-ok:80" % HOST], {"serfHealth": ("passing", "")})
        _index, checks = self.client.health.state("critical")
        self.assertEqual(sorted(c["ServiceID"] for c in checks), [bad_http, bad_ttl])
        _index, checks = self.client.health.checks("web")
        self.assertEqual(len(checks), 3)
        self.assertEqual(self.passing_ids("db"), ["%s:db:80" % HOST])
        # the agent's services reach the catalog under the agent's node
        _index, nodes = self.client.catalog.service("web")
        self.assertEqual(sorted(n["ServiceID"] for n in nodes), ids)
        self.assertEqual({n["Node"] for n in nodes}, {self.consul.node_name})

        # a container that goes away leaves the consumer's list
        self.docker.remove_container("%064x" % (0xc11e0000 + 0))
        h.wait_until(lambda: self.passing_ids("web") == ["%s:web-ok-ttl:80" % HOST], timeout=10,
                     message="web-ok gone from health.service")

    def test_ttl_mode_passing_while_registrar_runs_and_critical_after_kill_9(self):
        ports = self.web_containers()
        reg = self.run_registrar("consul", "--naming", "registrator", "-m", "ttl", "-t", "2000")
        healthy = sorted("%s:%s:80" % (HOST, n) for n in ("web-ok", "web-ok-ttl"))
        h.wait_until(lambda: self.passing_ids("web") == healthy, message="the healthy instances passing")
        time.sleep(3)           # longer than the ttl: registrar's passes keep them up
        self.assertEqual(self.passing_ids("web"), healthy)
        _index, nodes = self.client.health.service("web", passing=True)
        for n in nodes:
            self.assertIn("registrar:" + n["Service"]["ID"], [c["CheckID"] for c in n["Checks"]])
        reg.kill9()
        h.wait_until(lambda: self.passing_ids("web") == [] and self.passing_ids("db") == [], timeout=10,
                     message="nothing passing once the ttl checks expire")
        _index, nodes = self.client.health.service("web")
        self.assertEqual(sorted(n["Service"]["ID"] for n in nodes), sorted(ports))    # still listed, critical
        for n in nodes:
            sid = n["Service"]["ID"]
            self.assertEqual([c["Status"] for c in n["Checks"] if c["CheckID"] == "registrar:" + sid], ["critical"])

    def test_catalog_mode_read_by_python_consul(self):
        self.docker.add_container(container(0, "web", {"NAME": "web", "SERVICE_NAME": "web", "TAGS": "v1"}, 34100))
        self.run_registrar("consul-catalog")
        h.wait_until(lambda: self.client.catalog.service("web")[1], message="the catalog service")
        _index, (entry,) = self.client.catalog.service("web")
        key = "/services/web/80/34100/%s" % ("%064x" % 0xc11e0000)[:12]
        self.assertEqual((entry["Node"], entry["Address"], entry["ServiceID"], entry["ServiceAddress"],
                          entry["ServicePort"], entry["ServiceTags"]),
                         (HOST, IPADDRESS, key, IPADDRESS, 34100, ["v1"]))
        self.assertEqual((entry["ServiceMeta"]["registrar_host"], entry["ServiceMeta"]["registrar_key"]), (HOST, key))
        _index, node = self.client.catalog.node(HOST)
        self.assertEqual(list(node["Services"]), [key])
        # the catalog runs no checks: a consumer asking for passing ones gets it
        self.assertEqual(self.passing_ids("web"), [key])

    def kv(self, prefix):
        _index, items = self.client.kv.get(prefix, recurse=True)
        return {i["Key"]: i for i in items or []}

    def test_kv_mode_keys_and_ownership_records_read_by_python_consul(self):
        self.docker.add_container(container(0, "web", {"NAME": "web"}, 34200))
        self.docker.add_container(container(1, "api", {"NAME": "api"}, 34201))
        self.run_registrar("consulkv", path="/registry")
        h.wait_until(lambda: len(self.kv("registry/services/")) == 2, message="two keys")
        keys, records = self.kv("registry/services/"), self.kv("registry/hosts/%s/keys/" % HOST)
        # one record per key, and one for this host's document
        self.assertEqual(set(records), {"registry/hosts/%s/keys/%s" % (HOST, k[len("registry/"):]) for k in keys}
                         | {"registry/hosts/%s/keys/hosts/%s" % (HOST, HOST)})
        host_doc = json.loads(self.kv("registry/hosts/%s" % HOST)["registry/hosts/%s" % HOST]["Value"])
        self.assertEqual(host_doc["keys"], sorted("/" + k[len("registry/"):] for k in keys))
        for key, item in keys.items():
            doc = json.loads(item["Value"])
            self.assertEqual((doc["host"], doc["ipaddress"]), (HOST, IPADDRESS))
            self.assertEqual(doc["path"], "/" + key[len("registry/"):])
            record = json.loads(records["registry/hosts/%s/keys/%s" % (HOST, key[len("registry/"):])]["Value"])
            self.assertEqual(record, {"key": doc["path"], "value": item["Value"].decode()})
            self.assertIsNone(item.get("Session"))

    def test_kv_ttl_mode_every_key_held_by_the_one_live_session(self):
        for n in range(6):
            self.docker.add_container(container(n, "web%d" % n, {"NAME": "web%d" % n}, 34300 + n))
        self.run_registrar("consulkv", "-m", "ttl", "-t", "10000", path="/registry")
        # six keys, their six records, this host's document and its record
        h.wait_until(lambda: len(self.kv("registry/services/")) == 6 and len(self.kv("registry/hosts/")) == 8,
                     message="six keys and records")
        _index, sessions = self.client.session.list()
        self.assertEqual([(s["Name"], s["Behavior"], s["TTL"]) for s in sessions],
                         [("registrar %s /registry" % HOST, "delete", "10s")])
        held = {i["Key"]: i.get("Session") for i in list(self.kv("registry/services/").values())
                + list(self.kv("registry/hosts/").values())}
        self.assertEqual(set(held.values()), {sessions[0]["ID"]})
        _index, info = self.client.session.info(sessions[0]["ID"])
        self.assertEqual(info["ID"], sessions[0]["ID"])


class ConsulClientsWithACL(ConsulClientTest):
    """With an ACL token, as a real deployment has: the calls of
    python3-consul that send one (?token=) read what registrar wrote; a
    reader without a token sees nothing."""
    ACL = True

    def test_health_and_catalog_reads_with_the_token(self):
        consul = client_module("consul", "python3-consul")
        self.web_containers()
        self.run_registrar("consul", "--naming", "registrator")
        healthy = sorted("%s:%s:80" % (HOST, n) for n in ("web-ok", "web-ok-ttl"))
        h.wait_until(lambda: self.passing_ids("web") == healthy, message="health.service with the token")
        _index, nodes = self.client.catalog.service("web")
        self.assertEqual(len(nodes), 4)
        anonymous = consul.Consul(host="127.0.0.1", port=self.consul.port)
        self.assertEqual(anonymous.health.service("web", passing=True)[1], [])
        self.assertEqual(anonymous.catalog.service("web")[1], [])


# ---------------------------------------------------------------------------
# etcd: etcdctl (v2 and v3), python3-etcd (v2), python3-etcd3 (v3)
# ---------------------------------------------------------------------------


@h.skip_unless_available(h.Etcd)
class EtcdClients(FakeDockerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        start_class_etcd(cls)

    def setUp(self):
        super().setUp()
        self.etcd.v2_delete("/services", recursive=True)
        self.etcd.v3_delete("/", prefix=True)
        self.keys = {}
        for n, name in enumerate(("web", "api")):
            doc = container(n, name, {"NAME": name}, 34400 + n)
            self.docker.add_container(doc)
            self.keys[name] = "/services/%s/80/%d/%s" % (name, 34400 + n, doc["Config"]["Hostname"])

    def etcdctl(self, api, *args, check=True):
        """etcdctl with ETCDCTL_API=api; its output (None on failure when
        not check)."""
        env = _clean_env({"ETCDCTL_API": api}, drop_prefixes=("ETCDCTL",))
        r = subprocess.run([_find("etcdctl"), "--endpoints", self.etcd.endpoint, *args], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, text=True)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout if r.returncode == 0 else None

    def test_v2_keys_read_by_etcdctl_and_python_etcd(self):
        etcd = client_module("etcd", "python3-etcd")
        self.registrar("etcd2://" + self.etcd.host_port)
        want = sorted(self.keys.values())
        h.wait_until(lambda: sorted(l for l in (self.etcdctl("2", "ls", "--recursive", "/services", check=False)
                                                or "").split() if l.count("/") == 5) == want,
                     message="the v2 keys, as etcdctl lists them")
        for name, key in self.keys.items():
            doc = json.loads(self.etcdctl("2", "get", key))
            self.assertEqual((doc["host"], doc["ipaddress"], doc["path"], doc["env"]["NAME"]),
                             (HOST, IPADDRESS, key, name))     # v2 ownership: the document's host
        client = etcd.Client(host="127.0.0.1", port=self.etcd.client_port)
        leaves = {n.key: n for n in client.read("/services", recursive=True).leaves}
        self.assertEqual(sorted(leaves), want)
        for key, node in leaves.items():
            self.assertEqual(json.loads(node.value)["host"], HOST)
            self.assertIsNone(node.ttl)

    def test_v2_ttl_mode_keys_carry_a_ttl(self):
        etcd = client_module("etcd", "python3-etcd")
        self.registrar("etcd2://" + self.etcd.host_port, "-m", "ttl", "-t", "3000")
        client = etcd.Client(host="127.0.0.1", port=self.etcd.client_port)
        node = h.wait_until(lambda: client.read(self.keys["web"]), ignore=(etcd.EtcdKeyNotFound,),
                            message="the v2 key")
        self.assertTrue(0 < node.ttl <= 3, node.ttl)

    def test_v3_keys_and_ownership_records_read_by_etcdctl_and_python_etcd3(self):
        etcd3 = client_module("etcd3", "python3-etcd3")
        self.registrar("etcd://" + self.etcd.host_port)
        want = sorted(self.keys.values())
        h.wait_until(lambda: sorted(self.etcdctl("3", "get", "--prefix", "--keys-only", "/services/").split()) == want,
                     message="the v3 keys, as etcdctl lists them")
        records = sorted(self.etcdctl("3", "get", "--prefix", "--keys-only", "/hosts/%s/keys/" % HOST).split())
        host_doc = "/hosts/%s" % HOST
        self.assertEqual(records, sorted("/hosts/%s/keys%s" % (HOST, k) for k in want + [host_doc]))
        self.assertEqual(json.loads(self.etcdctl("3", "get", "--print-value-only", host_doc))["keys"], want)
        for key in want:
            value = self.etcdctl("3", "get", "--print-value-only", key).strip()
            record = json.loads(self.etcdctl("3", "get", "--print-value-only", "/hosts/%s/keys%s" % (HOST, key)))
            self.assertEqual(record, {"key": key, "value": value})
            self.assertEqual(json.loads(value)["host"], HOST)
        client = etcd3.client(host="127.0.0.1", port=self.etcd.client_port)
        self.addCleanup(client.close)
        got = {meta.key.decode(): value.decode() for value, meta in client.get_prefix("/services/")}
        self.assertEqual(sorted(got), want)
        got[host_doc] = client.get(host_doc)[0].decode()
        for value, meta in client.get_prefix("/hosts/%s/keys/" % HOST):
            record = json.loads(value)
            self.assertEqual(meta.key.decode(), "/hosts/%s/keys%s" % (HOST, record["key"]))
            self.assertEqual(record["value"], got[record["key"]])
            self.assertEqual(meta.lease_id, 0)       # prune mode: no lease

    def test_v3_ttl_mode_every_key_on_one_lease(self):
        etcd3 = client_module("etcd3", "python3-etcd3")
        self.registrar("etcd://" + self.etcd.host_port, "-m", "ttl", "-t", "3000")
        client = etcd3.client(host="127.0.0.1", port=self.etcd.client_port)
        self.addCleanup(client.close)
        h.wait_until(lambda: len(list(client.get_prefix("/services/"))) == 2, message="two keys")
        metas = [m for _, m in client.get_prefix("/services/")] + [m for _, m in client.get_prefix("/hosts/")]
        leases = {m.lease_id for m in metas}
        self.assertEqual(len(metas), 6)         # two keys, this host's document, a record for each
        self.assertEqual(len(leases), 1)
        (lease,) = leases
        info = client.get_lease_info(lease)
        self.assertTrue(0 < info.TTL <= 3, info.TTL)
        self.assertEqual(sorted(k.decode() for k in info.keys), sorted(m.key.decode() for m in metas))
        out = self.etcdctl("3", "lease", "timetolive", "%x" % lease, "--keys")
        for key in self.keys.values():
            self.assertIn(key, out)


# ---------------------------------------------------------------------------
# nginx: nginx -t on what examples/nginx.lua writes
# ---------------------------------------------------------------------------


class NginxAcceptsTheUpstreamFile(FakeDockerTest):
    EXAMPLE = os.path.join(SOURCE, "examples", "nginx.lua")
    WORKED_EXAMPLE = os.path.join(SOURCE, "tests", "fixtures", "worked-example.json")

    def nginx(self, *args):
        nginx = _find("nginx")
        self.assertIsNotNone(nginx, "nginx not found: install the Debian package nginx-light (.ci/deps test)")
        return subprocess.run([nginx, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, text=True)

    def conf(self, prefix, upstream):
        """A minimal nginx.conf: the generated file, and a server that
        sends to each of its upstreams; every path under prefix."""
        for d in ("tmp", "logs"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        path = os.path.join(prefix, "nginx.conf")
        temp = "".join("    %s_temp_path tmp/%s;\n" % (k, k) for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(path, "w") as f:
            f.write("worker_processes 1;\npid logs/nginx.pid;\nerror_log logs/error.log;\n"
                    "events { worker_connections 16; }\n"
                    "http {\n    access_log off;\n%s    include %s;\n"
                    "    server {\n        listen 127.0.0.1:%d;\n"
                    "        location /etcd/ { proxy_pass http://etcd-4001; }\n"
                    "        location /peers/ { proxy_pass http://etcd-7001; }\n    }\n}\n"
                    % (temp, upstream, h.free_port()))
        return path

    def test_nginx_t_accepts_what_the_example_writes_under_both_namings(self):
        with open(self.WORKED_EXAMPLE) as f:
            self.docker.add_container(json.load(f)[0])
        for naming in ("default", "registrator"):
            with self.subTest(naming=naming):
                out = os.path.join(self.dir, naming, "upstreams.conf")
                reg = self.registrar("nginx://" + out, "--naming", naming, "--script", self.EXAMPLE)
                h.wait_until(lambda: os.path.exists(out) and "etcd-7001" in open(out).read(), timeout=15,
                             message="the upstream file (log:\n%s)" % reg.log_tail())
                prefix = os.path.join(self.dir, naming, "nginx") + "/"
                conf = self.conf(prefix, out)
                r = self.nginx("-t", "-c", conf, "-p", prefix)
                self.assertEqual(r.returncode, 0, r.stdout)
                self.assertIn("syntax is ok", r.stdout)
                self.assertIn("test is successful", r.stdout)
                dump = self.nginx("-T", "-c", conf, "-p", prefix).stdout
                self.assertIn("# configuration file %s:" % out, dump)
                self.assertIn("upstream etcd-4001 {\n    server %s:49155;\n}" % IPADDRESS, dump)
                reg.stop()

    def test_nginx_t_refuses_a_broken_upstream_file(self):
        # the check above means something: nginx reads the file and says so
        prefix = os.path.join(self.dir, "broken") + "/"
        os.makedirs(prefix)
        upstream = os.path.join(prefix, "upstreams.conf")
        with open(upstream, "w") as f:
            f.write("upstream etcd-4001 {\n    server 10.0.1.100:49155\n}\nupstream etcd-7001 { server 127.0.0.1:1; }\n")
        r = self.nginx("-t", "-c", self.conf(prefix, upstream), "-p", prefix)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(upstream, r.stdout)


if __name__ == "__main__":
    unittest.main()
