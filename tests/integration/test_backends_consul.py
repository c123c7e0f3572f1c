"""Consul backends against the stand-in (tests/consul_standin), which
follows Consul's documented HTTP API: agent, catalog and KV modes, with
ACL tokens, ttl checks and sessions.  What passes here was checked against
the stand-in only, not a real Consul agent."""
import json
import os
import re
import shutil
import signal
import ssl
import tempfile
import time
import unittest

import harness as h
from common import DockerTest, make_certs, start_registrar
from fake_docker import FakeDocker, inspect_doc

HOST = "consulhost"          # not the stand-in's own node name (anti-entropy would revert it)
IPADDRESS = "10.0.5.5"
TOKEN = "c0ffee00-aaaa-bbbb-cccc-0123456789ab"


@h.skip_unless_available(h.Dockerd)
class ConsulBase(DockerTest):
    tls = False                 # serve https, asking for a client certificate

    def setUp(self):
        super().setUp()
        self.consul = h.start_consul_standin(acl_token=TOKEN, extra_datacenters=["dc2"], session_ttl_min=1,
                                             check_deregister_interval_min=1, check_reap_interval=0.2,
                                             tls=self.server_tls() if self.tls else None)
        self.addCleanup(self.consul.stop)

    def server_tls(self):
        """A CA made here; the stand-in's certificate, and registrar's
        client certificate in self.client_dir."""
        d = tempfile.mkdtemp(prefix="registrar-consul-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        server, self.client_dir = make_certs(d)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server + "/cert.pem", server + "/key.pem")
        context.load_verify_locations(server + "/ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def registrar(self, scheme, *args, path="", env=None):
        full_env = {"CONSUL_HTTP_TOKEN": TOKEN}
        if self.tls:
            scheme += "+https"
            full_env.update(BACKEND_CA_FILE=self.client_dir + "/ca.pem",
                            BACKEND_CERT_FILE=self.client_dir + "/cert.pem",
                            BACKEND_KEY_FILE=self.client_dir + "/key.pem")
        full_env.update(env or {})
        return start_registrar(self, "run", "-B", "%s://127.0.0.1:%d%s" % (scheme, self.consul.port, path),
                               "-D", self.docker.socket, "-H", HOST, "-a", IPADDRESS, "-i", "500",
                               "--log-level", "debug", *args, env=full_env)

    def run_container(self, name, *extra):
        cid = self.docker.run("--name", name, "-P", "--expose", "80", *extra, self.image, "sleep", "3600")
        port = int(self.docker.inspect(cid)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        return cid, port

    def assert_token_used(self, reg):
        requests = self.consul.requests
        self.assertTrue(requests)
        for method, path, query, headers, body in requests:
            self.assertEqual(headers.get("X-Consul-Token"), TOKEN, "%s %s without the token" % (method, path))
            self.assertNotIn("token", query)
        self.assertNotIn(TOKEN, reg.log())


class AgentMode(ConsulBase):
    def mine(self):
        return {sid: s for sid, s in self.consul.agent_services().items()
                if (s.get("Meta") or {}).get("registrar_host") == HOST}

    def test_registers_updates_deregisters_with_registrator_conventions(self):
        cid, port = self.run_container("api", "-e", "SERVICE_NAME=api", "-e", "SERVICE_TAGS=v1,eu",
                                       "-e", "SERVICE_REGION=west", "-e", "SERVICE_CHECK_HTTP=/health",
                                       "-e", "SERVICE_CHECK_INTERVAL=5s")
        reg = self.registrar("consul", "--naming", "registrator")
        sid = "%s:api:80" % HOST
        h.wait_until(lambda: sid in self.mine(), message="the agent service")
        s = self.consul.agent_services()[sid]
        self.assertEqual((s["Service"], s["Address"], s["Port"], sorted(s["Tags"])),
                         ("api", IPADDRESS, port, ["eu", "v1"]))
        self.assertEqual(s["Meta"]["region"], "west")
        checks = self.consul.agent_checks()
        self.assertEqual((checks["service:" + sid]["Type"], checks["service:" + sid]["Interval"]), ("http", "5s"))
        sent = [json.loads(body) for method, path, query, headers, body in self.consul.requests
                if path == "/v1/agent/service/register"]
        self.assertEqual(sent[-1]["Checks"], [{"HTTP": "http://%s:%d/health" % (IPADDRESS, port), "Interval": "5s"}])

        # an update: the id names the container, so a rename moves the service
        self.docker.docker("rename", "api", "api2")
        h.wait_until(lambda: set(self.mine()) == {"%s:api2:80" % HOST}, message="the renamed service only")

        self.docker.docker("stop", cid)
        h.wait_until(lambda: self.mine() == {}, message="deregistered")
        self.assert_token_used(reg)

    def test_prunes_only_its_own_services(self):
        # someone else's service on the same agent, and one of ours from a dead run
        body = json.dumps({"ID": "theirs", "Name": "theirs", "Port": 1}).encode()
        self.consul_put("/v1/agent/service/register", body)
        cid, _ = self.run_container("old")
        first = self.registrar("consul")
        h.wait_until(lambda: len(self.mine()) == 1, message="registered")
        first.kill9()
        self.docker.docker("rm", "-f", cid)
        keep, _ = self.run_container("keep")
        hostname = self.docker.inspect(keep)["Config"]["Hostname"]
        second = self.registrar("consul")
        h.wait_until(lambda: [sid.endswith(":" + hostname) for sid in self.mine()] == [True], message="pruned to keep")
        self.assertEqual(second.log().count("failed"), 0, second.log())
        self.assertIn("theirs", self.consul.agent_services())

    def test_ttl_check_passed_before_it_runs_out_and_expiring_after_kill_9(self):
        self.run_container("ttl", "-e", "SERVICE_NAME=ttl")
        reg = self.registrar("consul", "--naming", "registrator", "-m", "ttl", "-t", "2000")
        sid = "%s:ttl:80" % HOST
        check = "registrar:" + sid
        h.wait_until(lambda: check in self.consul.agent_checks(), message="the ttl check")
        time.sleep(3)           # longer than the ttl: only passes keep it up
        self.assertEqual(self.consul.agent_checks()[check]["Status"], "passing")
        # passed once less than two intervals (1 s) of its ttl are left, not each interval
        passes = [r for r in self.consul.requests if r[1].replace("%3A", ":") == "/v1/agent/check/pass/" + check]
        self.assertGreaterEqual(len(passes), 2)
        self.assertLessEqual(len(passes), 4)
        reg.kill9()
        h.wait_until(lambda: self.consul.agent_checks().get(check, {}).get("Status") != "passing",
                     timeout=10, message="critical after kill -9")

    def test_an_agent_that_comes_back_empty_is_filled_again(self):
        cid, _ = self.run_container("back", "-e", "SERVICE_NAME=back")
        reg = self.registrar("consul", "--naming", "registrator")
        sid = "%s:back:80" % HOST
        h.wait_until(lambda: sid in self.mine(), message="registered")
        port = self.consul.port
        self.consul.stop()
        reg.wait_log(r"registry \S+: \w+ failed: ")
        _, _ = self.run_container("later", "-e", "SERVICE_NAME=later")
        # a new agent on the same address, with none of the old one's services
        self.consul = h.start_consul_standin(port=port, acl_token=TOKEN)
        self.addCleanup(self.consul.stop)
        h.wait_until(lambda: set(self.mine()) == {sid, "%s:later:80" % HOST}, timeout=15,
                     message="both written to the new agent")
        self.assertTrue(reg.alive())

    def consul_put(self, path, body):
        import urllib.request
        req = urllib.request.Request(self.consul.url + path, data=body, method="PUT",
                                     headers={"X-Consul-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read()


class CatalogMode(ConsulBase):
    def services_of_host(self, dc="dc1"):
        out = {}
        for name in self.consul.catalog_services(dc):
            for s in self.catalog_service(name, dc):
                if s["Node"] == HOST:
                    out[s["ServiceID"]] = s
        return out

    def catalog_service(self, name, dc):
        import urllib.request
        req = urllib.request.Request("%s/v1/catalog/service/%s?dc=%s" % (self.consul.url, name, dc),
                                     headers={"X-Consul-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def test_registers_in_the_containers_datacenter_and_deregisters(self):
        web, port = self.run_container("web", "-e", "NAME=web")
        dc2, _ = self.run_container("far", "-e", "NAME=far", "-e", "CONSUL_DC=dc2")
        reg = self.registrar("consul-catalog")
        h.wait_until(lambda: len(self.services_of_host("dc1")) == 1 and len(self.services_of_host("dc2")) == 1,
                     message="one service in each datacenter")
        (sid, s), = self.services_of_host("dc1").items()
        self.assertTrue(sid.startswith("/services/web/80/"), sid)    # the key is the id, as in the old tool
        self.assertEqual((s["Address"], s["ServiceName"], s["ServicePort"], s["ServiceMeta"]["registrar_host"]),
                         (IPADDRESS, "busybox-80", port, HOST))
        self.docker.docker("stop", dc2)
        h.wait_until(lambda: self.services_of_host("dc2") == {}, message="removed from dc2")
        self.assertEqual(len(self.services_of_host("dc1")), 1)
        self.assert_token_used(reg)

    def test_updates_and_prunes_only_its_own_services(self):
        web, _ = self.run_container("web", "-e", "NAME=web", "-e", "SERVICE_80_NAME=web")
        gone, _ = self.run_container("gone", "-e", "NAME=gone")
        first = self.registrar("consul-catalog")
        h.wait_until(lambda: len(self.services_of_host()) == 2, message="both registered")
        first.kill9()
        self.docker.docker("rm", "-f", gone)
        # a service on this node that registrar did not write
        self.consul_put("/v1/catalog/register", {"Node": HOST, "Address": IPADDRESS,
                                                 "Service": {"ID": "theirs", "Service": "theirs", "Port": 1}})
        self.registrar("consul-catalog", "--naming", "registrator")     # a new layout: every entry changes
        h.wait_until(lambda: set(self.services_of_host()) == {"%s:web:80" % HOST, "theirs"},
                     message="web under its registrator id, gone pruned, theirs kept")

    def consul_put(self, path, body):
        import urllib.request
        req = urllib.request.Request(self.consul.url + path, data=json.dumps(body).encode(), method="PUT",
                                     headers={"X-Consul-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read()


class KVMode(ConsulBase):
    def kv(self):
        return {k: e["Value"].decode() for k, e in self.consul.kv().items() if e["Value"] is not None}

    def test_a_key_per_service_with_ownership_records(self):
        cid, port = self.run_container("kv", "-e", "NAME=kv")
        reg = self.registrar("consulkv", path="/registry")
        h.wait_until(lambda: any(k.startswith("registry/services/kv/80/") for k in self.kv()), message="the key")
        key = next(k for k in self.kv() if k.startswith("registry/services/kv/80/"))
        doc = json.loads(self.kv()[key])
        self.assertEqual((doc["host"], doc["ipaddress"], doc["host_port"]), (HOST, IPADDRESS, str(port)))
        record = json.loads(self.kv()["registry/hosts/%s/keys/%s" % (HOST, key[len("registry/"):])])
        self.assertEqual(record["key"], "/" + key[len("registry/"):])
        self.docker.docker("stop", cid)
        # left: this host's document (and its record), listing no key
        host_doc = "registry/hosts/%s" % HOST
        h.wait_until(lambda: {k for k in self.kv() if k.startswith(("registry/services/", "registry/hosts/"))}
                     == {host_doc, "registry/hosts/%s/keys/hosts/%s" % (HOST, HOST)},
                     message="key and record removed")
        h.wait_until(lambda: json.loads(self.kv()[host_doc])["keys"] == [], message="the host document empty")
        self.assert_token_used(reg)

    def test_updates_prunes_and_leaves_other_keys_alone(self):
        web, _ = self.run_container("web", "-e", "NAME=web")
        gone, _ = self.run_container("gone", "-e", "NAME=gone")
        first = self.registrar("consulkv", path="/registry")
        h.wait_until(lambda: sum(k.startswith("registry/services/") for k in self.kv()) == 2, message="both keys")
        first.kill9()
        self.docker.docker("rm", "-f", gone)
        other = "registry/services/other/80/1/abc"
        self.put_kv(other, b'{"host":"otherhost"}')
        self.docker.docker("rename", "web", "web2")        # changes the document's name
        self.registrar("consulkv", path="/registry")

        def settled():
            keys = {k for k in self.kv() if k.startswith("registry/services/")}
            web_keys = [k for k in keys if k.startswith("registry/services/web/")]
            return (len(keys) == 2 and other in keys and len(web_keys) == 1
                    and json.loads(self.kv()[web_keys[0]])["name"] == "/web2")
        h.wait_until(settled, message="gone pruned, web rewritten, the other key kept")

    def put_kv(self, key, value):
        import urllib.request
        req = urllib.request.Request("%s/v1/kv/%s" % (self.consul.url, key), data=value, method="PUT",
                                     headers={"X-Consul-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read()

    def test_ttl_mode_holds_keys_with_a_session_that_expires_after_kill_9(self):
        self.run_container("brief", "-e", "NAME=brief")
        reg = self.registrar("consulkv", "-m", "ttl", "-t", "10000", path="/registry")
        h.wait_until(lambda: any(k.startswith("registry/services/brief/") for k in self.kv()), message="the key")
        sessions = self.consul.sessions()
        self.assertEqual(len(sessions), 1)
        reg.kill9()
        h.wait_until(lambda: not any(k.startswith("registry/services/brief/") for k in self.kv()),
                     timeout=20, message="deleted with the expired session")



class OverTLS(ConsulBase):
    """consul+https://, consul-catalog+https:// and consulkv+https:// with a
    CA made by the test; the stand-in refuses clients without a certificate
    that CA signed."""
    tls = True

    def test_each_mode_registers_over_https(self):
        cid, port = self.run_container("secure", "-e", "SERVICE_NAME=secure", "-e", "NAME=secure")
        sid = "%s:secure:80" % HOST
        self.registrar("consul", "--naming", "registrator")
        h.wait_until(lambda: sid in self.consul.agent_services(), message="the agent service over https")
        self.registrar("consul-catalog", "--naming", "registrator")
        h.wait_until(lambda: sid in self.consul.catalog()["Services"].get(HOST, {}),
                     message="the catalog service over https")
        self.registrar("consulkv", path="/registry")
        key = "registry/services/secure/80/%d/%s" % (port, self.docker.inspect(cid)["Config"]["Hostname"])
        h.wait_until(lambda: key in self.consul.kv(), message="the KV key over https")

    def test_a_server_certificate_from_another_ca_is_refused(self):
        self.run_container("secure", "-e", "SERVICE_NAME=secure")
        other = tempfile.mkdtemp(prefix="registrar-consul-tls-other-")
        self.addCleanup(shutil.rmtree, other, True)
        _, other_client = make_certs(other)
        reg = self.registrar("consul", "--naming", "registrator",
                             env={"BACKEND_CA_FILE": other_client + "/ca.pem"})
        reg.wait_log(r"(?i)certificate")
        time.sleep(1)
        self.assertEqual(self.consul.agent_services().get("%s:secure:80" % HOST), None)
        self.assertTrue(reg.alive())


class KVSessions(unittest.TestCase):
    """consulkv:// in ttl mode holds every key with one session for this
    host: created once however many hooks start at once, renewed once per
    interval, kept across a reload, created again when it is lost.  A fake
    Docker lists the containers, so many start together (no dockerd)."""

    CONTAINERS = 20

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-consulkv-")
        self.addCleanup(tmp.cleanup)
        self.docker = FakeDocker(os.path.join(tmp.name, "docker.sock"))
        self.docker.start()
        self.addCleanup(self.docker.stop)
        for i in range(self.CONTAINERS):
            self.docker.add_container(inspect_doc("%064x" % (0x5e5510 + i), "web%d" % i, env={"NAME": "web%d" % i},
                                                  ports={"80/tcp": [("0.0.0.0", str(33000 + i))]}))
        self.consul = h.start_consul_standin(acl_token=TOKEN, session_ttl_min=1)
        self.addCleanup(self.consul.stop)

    def registrar(self):
        return start_registrar(self, "run", "-B", "consulkv://127.0.0.1:%d/registry" % self.consul.port,
                               "-D", self.docker.socket_path, "-H", HOST, "-a", IPADDRESS, "-i", "300",
                               "-m", "ttl", "-t", "10000", "--log-level", "debug",
                               env={"CONSUL_HTTP_TOKEN": TOKEN})

    def creates(self):
        return [r for r in self.consul.requests if r.path == "/v1/session/create"]

    def held(self):
        """{key: session} of registrar's keys and records."""
        return {k: e["Session"] for k, e in self.consul.kv().items()
                if k.startswith("registry/services/") or k.startswith("registry/hosts/")}

    def settled(self):
        """Every container's key and record, and this host's document and its record."""
        held = self.held()
        return len(held) == 2 * self.CONTAINERS + 2 and "registry/hosts/%s" % HOST in held and held

    def assert_one_live_session_holds_everything(self):
        held = h.wait_until(self.settled, timeout=15, message="every key and record written")
        sessions = self.consul.sessions()
        self.assertEqual(len(sessions), 1, sessions)
        (sid, session), = sessions.items()
        self.assertEqual((session["Name"], session["Behavior"], session["TTL"]),
                         ("registrar %s /registry" % HOST, "delete", "10s"))
        # no key is left locked by a session nobody keeps alive
        self.assertEqual(set(held.values()), {sid}, held)
        return sid

    def test_twenty_containers_at_start_up_share_one_session(self):
        reg = self.registrar()
        h.wait_until(self.settled, timeout=15, message="every key and record written")
        self.assertEqual(len(self.creates()), 1, "session/create calls for %d containers" % self.CONTAINERS)
        sid = self.assert_one_live_session_holds_everything()
        mark = reg.mark()
        h.wait_until(lambda: len(re.findall(r"debug resync: ", reg.log()[mark:])) >= 4, timeout=10,
                     message="four resyncs")
        renews = [r for r in self.consul.requests if r.path.startswith("/v1/session/renew/")]
        self.assertGreaterEqual(len(renews), 2)
        self.assertEqual({r.path for r in renews}, {"/v1/session/renew/" + sid})
        self.assertNotIn("failed", reg.log())
        self.assertEqual(self.assert_one_live_session_holds_everything(), sid)

    def test_a_reload_keeps_the_session_and_every_key(self):
        reg = self.registrar()
        sid = self.assert_one_live_session_holds_everything()
        mark = reg.mark()
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"SIGHUP: configuration and scripts reloaded", since=mark)
        h.wait_until(lambda: len(re.findall(r"debug resync: ", reg.log()[mark:])) >= 3, timeout=10,
                     message="three resyncs after the reload")
        self.assertEqual(self.assert_one_live_session_holds_everything(), sid)
        self.assertEqual(len(self.creates()), 1)
        self.assertNotIn("failed", reg.log()[mark:])

    def test_a_lost_session_is_created_again_once_and_everything_written_under_it(self):
        reg = self.registrar()
        old = self.assert_one_live_session_holds_everything()
        self.consul_put("/v1/session/destroy/" + old)      # Behavior delete: its keys go with it
        reg.wait_log(r"consul: session %s is gone" % old)
        h.wait_until(lambda: self.settled() and old not in self.held().values(), timeout=15,
                     message="everything written again under a new session")
        self.assertNotEqual(self.assert_one_live_session_holds_everything(), old)
        self.assertEqual(len(self.creates()), 2)

    def test_sessions_an_earlier_run_left_are_destroyed_and_their_keys_written_again(self):
        # what the race of earlier versions left: keys locked by sessions of
        # this host's name that nobody renews (made as registrar made them,
        # LockDelay 0s, with a ttl this registrar does not use)
        key = "registry/services/web0/80/33000/%s" % ("%064x" % 0x5e5510)[:12]
        stale = []
        for _ in range(3):
            sid = json.loads(self.consul_put("/v1/session/create", json.dumps({
                "Name": "registrar %s /registry" % HOST, "TTL": "60s", "Behavior": "delete", "LockDelay": "0s"}).encode()))["ID"]
            stale.append(sid)
        self.assertTrue(json.loads(self.consul_put("/v1/kv/%s?acquire=%s" % (key, stale[0]), b"old")))
        reg = self.registrar()
        sid = self.assert_one_live_session_holds_everything()
        self.assertNotIn(sid, stale)
        self.assertEqual(len(self.creates()), 4)            # the three above, and registrar's one
        self.assertNotIn("failed", reg.log())
        for old in stale:
            self.assertIn("destroying session %s" % old, reg.log())

    def consul_put(self, path, body=b""):
        import urllib.request
        req = urllib.request.Request(self.consul.url + path, data=body, method="PUT",
                                     headers={"X-Consul-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read()


if __name__ == "__main__":
    unittest.main()
