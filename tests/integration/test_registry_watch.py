"""The registry watched instead of polled, on a real etcd (v3 and v2) and
the Consul stand-in: a key of this host deleted or overwritten by hand is
written back well before the next interval; a watch cut by a restart, a
compaction or an index that went back falls back to one audit and watches
again; an idle host in prune mode asks the registry nothing (counted at
the server), and in ttl mode only keeps its lease alive."""
import base64
import json
import os
import re
import tempfile
import signal
import time
import urllib.request

import harness as h
from common import DockerTest, EtcdTest, run_web, start_registrar

HOST = "watchhost"
IPADDRESS = "10.0.9.1"
LONG_INTERVAL = "60000"         # repairs must not wait for it


def etcd_requests(etcd):
    """What etcd served, from its own /metrics: every gRPC call started
    (the v3 gateway goes through them) and every v2 store read, write and
    watch."""
    with urllib.request.urlopen(etcd.endpoint + "/metrics", timeout=5) as r:
        text = r.read().decode()
    counts = {}
    for name, labels, value in re.findall(r"^(grpc_server_started_total|etcd_debugging_store_\w+_total)"
                                          r"(\{[^}]*\})? (\S+)$", text, re.M):
        method = re.search(r'(?:grpc_method|action)="(\w+)"', labels or "")
        key = method.group(1) if method else name
        counts[key] = counts.get(key, 0) + float(value)
    return counts


def served(before, after, ignore=()):
    return {k: after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0) and k not in ignore}


# etcd v3 with a site script's wrapper that reads each written entry's
# service, as a backend of a site's own may.
SERVICE_LOGGING_ETCD3 = """
local registrar = require "registrar"
local etcd = require "backends.etcd"
registrar.backends.etcd3 = {
  check = etcd.check,
  open = function(uri, config)
    local backend, err = etcd.open(uri, config)
    if not backend then return nil, err end
    local apply = backend.apply
    function backend.apply(self, puts, deletes)
      for _, e in ipairs(puts) do
        if not e.host then
          registrar.log.info("writing %s: container %s, port %s, address %s",
                             e.key, e.service.container.name, e.service.port, e.service.address)
        end
      end
      return apply(self, puts, deletes)
    end
    return backend
  end,
}
"""


class Scenarios:
    SCHEME = None

    def registrar(self, *args, interval=LONG_INTERVAL, mode="prune"):
        return start_registrar(self, "run", "-B", "%s://%s" % (self.SCHEME, self.etcd.host_port),
                               "-D", self.docker.socket, "-H", HOST, "-a", IPADDRESS, "-i", interval,
                               "-m", mode, "-t", "5000", "--log-level", "debug", *args)

    def web(self, name):
        return run_web(self, name)

    def two_registered(self, *args, **kw):
        _, a = self.web("alpha")
        _, b = self.web("beta")
        reg = self.registrar(*args, **kw)
        h.wait_until(lambda: {a, b} <= set(self.services()), timeout=15, message="both registered")
        return reg, a, b

    def test_a_key_deleted_and_one_overwritten_by_hand_are_written_back_at_once(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        reg.wait_log(r"registry \S+: this host has")
        self.delete(a)
        self.put(b, '{"host":"someone else"}')
        h.wait_until(lambda: self.services().get(a) == docs[a] and self.services().get(b) == docs[b],
                     timeout=10, message="both keys written back, with the interval a minute away")
        reg.wait_log(r"key %s was deleted by someone else: writing it again" % re.escape(a))
        reg.wait_log(r"key %s was changed by someone else: writing it again" % re.escape(b))

    def test_a_watch_cut_by_a_restart_falls_back_and_watches_again(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        mark = reg.mark()
        self.etcd.stop()
        self.etcd.start()
        reg.wait_log(r"watch ended: .*; auditing, then watching again", since=mark, timeout=20)
        # watching again: a repair still comes at once, not at the interval
        h.wait_until(lambda: self.repaired(a, docs[a]), timeout=20, message="a repair after the restart")

    def repaired(self, key, doc):
        """Deletes key by hand (once) and says whether it is back."""
        if self.services().get(key) == doc and not getattr(self, "_deleted", False):
            self._deleted = True
            self.delete(key)
            return False
        return self._deleted and self.services().get(key) == doc

    def test_a_key_someone_keeps_changing_is_not_fought_over(self):
        reg, a, b = self.two_registered()
        for i in range(12):
            self.put(a, '{"host":"another writer %d"}' % i)
            time.sleep(0.05)
        reg.wait_log(r"key %s keeps being changed by someone else \(\d+ times this interval\): "
                     r"writing it back once per interval from now on" % re.escape(a))
        time.sleep(0.5)
        self.assertIn("another writer", self.services()[a], "it kept writing back")
        self.assertLess(len(re.findall(r"key %s was changed by someone else" % re.escape(a), reg.log())), 5)

    def test_an_idle_host_asks_the_registry_nothing(self):
        reg, a, b = self.two_registered(interval="300")
        time.sleep(1)                   # the start-up's writes are all answered
        before = etcd_requests(self.etcd)
        time.sleep(3)                   # ten intervals
        self.assertEqual(served(before, etcd_requests(self.etcd)), {})
        self.assertGreaterEqual(len(re.findall(r"resync: 2 containers running", reg.log())), 8)


@h.skip_unless_available(h.Dockerd, h.Etcd)
class EtcdV3(Scenarios, EtcdTest):
    SCHEME = "etcd3"

    def setUp(self):
        super().setUp()
        self.etcd.v3_delete("/", prefix=True)

    def services(self):
        return self.etcd.v3_prefix("/services/")

    def delete(self, key):
        self.etcd.v3_delete(key)

    def put(self, key, value):
        self.etcd.v3_put(key, value)

    def test_ttl_mode_idle_costs_one_keepalive_per_interval(self):
        reg, a, b = self.two_registered(interval="300", mode="ttl")
        time.sleep(1)
        before = etcd_requests(self.etcd)
        time.sleep(3)
        got = served(before, etcd_requests(self.etcd))
        self.assertEqual(set(got), {"LeaseKeepAlive"}, got)
        self.assertLessEqual(got["LeaseKeepAlive"], 12)

    def test_a_repair_long_after_start_up_still_hands_the_backend_the_whole_entry(self):
        # Once written, the engine lets go of naming's entry tables (they
        # hold the container's whole table); a backend writing the key again
        # must still find service and container in the entry it gets.
        tmp = tempfile.TemporaryDirectory(prefix="registrar-site-")
        self.addCleanup(tmp.cleanup)
        site = os.path.join(tmp.name, "site.lua")
        with open(site, "w") as f:
            f.write(SERVICE_LOGGING_ETCD3)
        reg, a, b = self.two_registered("--script", site)
        docs = self.services()
        reg.wait_log(r"memory given back", timeout=15)      # the entries were let go
        mark = reg.mark()
        self.delete(a)
        h.wait_until(lambda: self.services().get(a) == docs[a], timeout=10, message="the key written back")
        reg.wait_log(r"writing %s: container /alpha, port 80, address %s" % (re.escape(a), IPADDRESS),
                     since=mark)
        self.assertNotIn("attempt to index", reg.log())

    def test_a_record_deleted_by_hand_is_written_back_with_its_key(self):
        reg, a, b = self.two_registered()
        record = "/hosts/%s/keys%s" % (HOST, a)
        want = self.etcd.v3_get(record)
        self.etcd.v3_delete(record)
        h.wait_until(lambda: self.etcd.v3_get(record) == want, timeout=10, message="the record back")

    def test_a_compacted_watch_falls_back_and_watches_again(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        mark = reg.mark()
        # a watcher that cannot keep up falls behind etcd's history; a
        # compaction then cancels it
        reg.signal(signal.SIGSTOP)
        try:
            filler = base64.b64encode(b"x" * 4096).decode()
            for i in range(3000):
                self.etcd.v3("kv/put", {"key": base64.b64encode(b"/services/zz-filler").decode(),
                                        "value": filler})
            rev = int(self.etcd.v3("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
            self.etcd.v3("kv/compaction", {"revision": str(rev), "physical": True})
        finally:
            reg.signal(signal.SIGCONT)
        reg.wait_log(r"watch ended: etcd compacted its history", since=mark, timeout=20)
        h.wait_until(lambda: self.repaired(a, docs[a]), timeout=20, message="a repair after the compaction")


@h.skip_unless_available(h.Dockerd, h.Etcd)
class EtcdV2(Scenarios, EtcdTest):
    SCHEME = "etcd2"

    def setUp(self):
        super().setUp()
        self.etcd.v2_delete("/services", recursive=True)
        self.etcd.v2_delete("/hosts", recursive=True)

    def services(self):
        return {k: v for k, v in self.etcd.v2_tree("/services").items()}

    def delete(self, key):
        self.etcd.v2_delete(key)

    def put(self, key, value):
        self.etcd.v2_put(key, value)

    def test_a_watch_that_fell_behind_etcd_history_falls_back_and_watches_again(self):
        reg, a, b = self.two_registered()
        docs = self.services()
        mark = reg.mark()
        reg.signal(signal.SIGSTOP)      # etcd v2 keeps the last 1000 events only
        try:
            for i in range(1100):
                self.etcd.v2_put("/services/zz-filler", str(i))
        finally:
            reg.signal(signal.SIGCONT)
        reg.wait_log(r"watch ended: .*(cleared|outdated).*; auditing, then watching again", since=mark, timeout=20)
        h.wait_until(lambda: self.repaired(a, docs[a]), timeout=20, message="a repair after falling behind")

    def test_in_ttl_mode_a_watch_that_fell_behind_goes_on_and_refreshes_restore_what_went(self):
        reg, a, b = self.two_registered(interval="300", mode="ttl")
        docs = self.services()
        mark = reg.mark()
        reg.signal(signal.SIGSTOP)      # as the refreshes of thousands of keys do each interval
        try:
            for i in range(1100):
                self.etcd.v2_put("/services/zz-filler", str(i))
            self.delete(a)
        finally:
            reg.signal(signal.SIGCONT)
        h.wait_until(lambda: self.services().get(a) == docs[a], timeout=20, message="a rewritten by its refresh")
        time.sleep(1)
        self.assertNotIn("watch ended", reg.log()[mark:])

    def test_ttl_mode_refreshes_each_key_before_its_ttl_runs_out_and_reads_nothing(self):
        reg, a, b = self.two_registered(interval="300", mode="ttl")
        time.sleep(1)
        before = etcd_requests(self.etcd)
        time.sleep(6)
        got = served(before, etcd_requests(self.etcd))
        # three keys (two services, this host's document), 20 intervals,
        # longer than the 5 s ttl: each key refreshed once or twice, when
        # less than two intervals are left of its ttl, not 20 times (etcd
        # counts the refresh's own lookup as a get); none expired, no audit,
        # no value written again
        self.assertEqual(set(got) - {"get"}, {"update"}, got)
        self.assertGreaterEqual(got["update"], 3)
        self.assertLessEqual(got["update"], 3 * 2)
        self.assertIn('"host":"%s"' % HOST, self.etcd.v2_get(a))
        self.assertIn('"host":"%s"' % HOST, self.etcd.v2_get(b))


TOKEN = "c0ffee00-aaaa-bbbb-cccc-0123456789ab"


def consul_call(consul, method, path, body=None):
    req = urllib.request.Request(consul.url + path, method=method, data=body,
                                 headers={"X-Consul-Token": TOKEN})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


class ConsulScenarios:
    """Each mode: a service of ours removed by hand comes back at once;
    Consul restarted empty (its index back to the start) is filled again;
    an idle host starts no request but the blocking query it holds."""
    SCHEME = None
    PATH = ""

    def setUp(self):
        super().setUp()
        self.start_consul()

    def start_consul(self, port=0):
        self.consul = h.start_consul_standin(port=port, acl_token=TOKEN, extra_datacenters=["dc2"])
        self.addCleanup(self.consul.stop)

    def registrar(self, interval=LONG_INTERVAL):
        return start_registrar(self, "run", "-B", "%s://127.0.0.1:%d%s" % (self.SCHEME, self.consul.port, self.PATH),
                               "-D", self.docker.socket, "-H", HOST, "-a", IPADDRESS, "-i", interval,
                               "--log-level", "debug", env={"CONSUL_HTTP_TOKEN": TOKEN})

    def two_registered(self, interval=LONG_INTERVAL):
        for name in ("alpha", "beta"):
            self.docker.run("--name", name, "-e", "SERVICE_NAME=" + name, "-P", "--expose", "80",
                            self.image, "sleep", "3600")
        reg = self.registrar(interval)
        h.wait_until(lambda: len(self.mine()) == 2, timeout=15, message="both registered")
        return reg

    def settled(self, quiet=2.0):
        """Until the registrar has sent nothing for `quiet` seconds (the
        listings that follow its own writes are done)."""
        def no_new_request():
            count = len(self.consul.requests)
            time.sleep(quiet)
            return len(self.consul.requests) == count
        h.wait_until(no_new_request, timeout=30, message="the registrar quiet")

    def test_a_service_removed_by_hand_is_registered_again_at_once(self):
        reg = self.two_registered()
        before = self.mine()
        victim = sorted(before)[0]
        self.remove(victim)
        h.wait_until(lambda: self.mine() == before, timeout=10,
                     message="the service back, with the interval a minute away")
        reg.wait_log(r"was deleted by someone else: writing it again")

    def test_a_consul_restarted_empty_is_filled_again(self):
        reg = self.two_registered()
        before = self.mine()
        port = self.consul.port
        self.consul.stop()          # its blocking query cut, as a process exit does
        reg.wait_log(r"watch ended: .*; auditing, then watching again")
        self.start_consul(port=port)
        h.wait_until(lambda: self.mine() == before, timeout=20, message="everything registered again")

    def test_an_idle_host_starts_no_request(self):
        self.two_registered(interval="300")
        self.settled()
        self.consul.clear_requests()
        time.sleep(3)
        self.assertEqual([(m, p, q) for m, p, q, _, _ in self.consul.requests], [])


@h.skip_unless_available(h.Dockerd)
class ConsulAgent(ConsulScenarios, DockerTest):
    SCHEME = "consul"

    def mine(self):
        return {sid: s for sid, s in self.consul.agent_services().items()
                if (s.get("Meta") or {}).get("registrar_host") == HOST}

    def remove(self, sid):
        consul_call(self.consul, "PUT", "/v1/agent/service/deregister/" + sid)


@h.skip_unless_available(h.Dockerd)
class ConsulCatalog(ConsulScenarios, DockerTest):
    SCHEME = "consul-catalog"

    def mine(self):
        # without the Raft indexes, which a registration written again moves
        return {sid: {k: v for k, v in s.items() if not k.endswith("Index")}
                for sid, s in (self.consul.catalog()["Services"].get(HOST) or {}).items()}

    def remove(self, sid):
        consul_call(self.consul, "PUT", "/v1/catalog/deregister",
                    json.dumps({"Node": HOST, "ServiceID": sid}).encode())

    def test_services_in_two_datacenters_are_audited_and_said_so_once(self):
        self.docker.run("--name", "far", "-e", "SERVICE_NAME=far", "-e", "CONSUL_DC=dc2", "-P",
                        "--expose", "80", self.image, "sleep", "3600")
        reg = self.registrar(interval="200")
        h.wait_until(lambda: len(self.consul.catalog(dc="dc2")["Services"].get(HOST) or {}) == 1,
                     timeout=15, message="the dc2 service registered")
        reg.wait_log(r"watch ended: services in more than one datacenter", timeout=90)
        time.sleep(2)                   # 10 intervals, each with its audit
        # Each retry's watch ends at once; the audits between them are what
        # takes long on a loaded machine (CI saw the line twice then).
        with self.consul.store.lock:    # the stand-in answers nothing for a while
            time.sleep(1.5)
        reg.wait_log(r"watch ended again: services in more than one datacenter", since=len(reg.log()), timeout=10)
        ended = re.findall(r"info  registry .*: watch ended: (.*)", reg.log())
        self.assertEqual(ended, ["services in more than one datacenter: audited every interval instead; "
                                 "auditing, then watching again"])


@h.skip_unless_available(h.Dockerd)
class ConsulKV(ConsulScenarios, DockerTest):
    SCHEME = "consulkv"
    PATH = "/registry"

    def mine(self):
        return {k: v["Value"] for k, v in self.consul.kv().items() if k.startswith("registry/services/")}

    def remove(self, key):
        consul_call(self.consul, "DELETE", "/v1/kv/" + key)
