"""Site scripts in a running daemon: SIGHUP reloads them (a broken one is
refused and the running one kept), and a hook that fails or runs away costs
one container, never the daemon or anybody's registrations."""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h
from common import REGISTRAR, DockerTest, host_port, start_registrar
from fake_docker import FakeDocker, inspect_doc

HOST = "scripthost"

V1 = """local registrar = require 'registrar'
function key(service) return '/v1' .. registrar.default.key(service) end
"""
V2 = """local registrar = require 'registrar'
function key(service) return '/v2' .. registrar.default.key(service) end
"""
BROKEN = """local registrar = require 'registrar'
function key(service)
  return '/v3' ..
end
"""
# key() fails for containers labelled fail=yes, loops for loop=yes
FAULTY = """local registrar = require 'registrar'
function key(service)
  if service.labels.fail == 'yes' then error('no key for ' .. service.container.name) end
  if service.labels.loop == 'yes' then while true do end end
  return registrar.default.key(service)
end
"""


class SlowServer:
    """An HTTP server that takes `delay` seconds over each answer and
    counts how many requests it holds at once."""

    def __init__(self, delay):
        self.lock = threading.Lock()
        self.active = self.most = self.served = 0
        self.paths = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.active += 1
                    server.most = max(server.most, server.active)
                    server.paths.append(self.path)
                time.sleep(delay)
                with server.lock:
                    server.active -= 1
                    server.served += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# A backend whose refresh() asks a server that takes longer than an interval.
SLOW_REFRESH = """local registrar = require 'registrar'
registrar.backends.slow = {
  open = function()
    local held = {}
    return {
      advertised = function() return held end,
      register = function(self, e) held[e.key] = e.value; return true end,
      deregister = function(self, e) held[e.key] = nil; return true end,
      refresh_in_shares = %s,
      refresh = function(self, entries)
        local res, err = registrar.http.request { url = 'http://127.0.0.1:%d/' .. #entries, timeout = 5000 }
        if not res then return nil, err end
        return true
      end,
    }
  end,
}
"""


@h.skip_unless_available(h.Dockerd)
class Scripting(DockerTest):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="registrar-script-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.registry = os.path.join(self.dir, "services.json")
        self.site = os.path.join(self.dir, "site.lua")

    def write_site(self, text):
        with open(self.site + ".new", "w") as f:
            f.write(text)
        os.rename(self.site + ".new", self.site)

    def registrar(self, *args):
        return start_registrar(self, "run", "-B", "file://" + self.registry, "-D", self.docker.socket,
                               "-H", HOST, "-a", "10.0.0.1", "-i", "500", "--script", self.site,
                               "--log-level", "debug", *args)

    def keys(self):
        try:
            with open(self.registry) as f:
                return set(json.load(f)["services"])
        except FileNotFoundError:
            return set()

    def web(self, name, *labels):
        args = ["-e", "NAME=" + name, "-P", "--expose", "80"]
        for label in labels:
            args += ["--label", label]
        cid = self.docker.run(*args, self.image, "sleep", "3600")
        i = self.docker.inspect(cid)
        return "/services/%s/80/%s/%s" % (name, host_port(i, "80/tcp"), i["Config"]["Hostname"])

    def test_sighup_reloads_and_a_broken_script_keeps_the_running_one(self):
        self.write_site(V1)
        a = self.web("a")
        reg = self.registrar()
        h.wait_until(lambda: self.keys() == {"/v1" + a}, message="v1 layout")

        self.write_site(BROKEN)
        mark = reg.mark()
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"SIGHUP: .*site\.lua:4: .*; keeping the running configuration and scripts", since=mark)
        b = self.web("b")                   # the running v1 script still names new containers
        h.wait_until(lambda: self.keys() == {"/v1" + a, "/v1" + b}, message="v1 still in force")

        self.write_site(V2)
        mark = reg.mark()
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"SIGHUP: configuration and scripts reloaded", since=mark)
        h.wait_until(lambda: self.keys() == {"/v2" + a, "/v2" + b}, message="v2 layout, v1 keys pruned")
        self.assertTrue(reg.alive())

    def test_check_shows_a_new_layout_for_the_live_containers_and_writes_nothing(self):
        self.write_site(V2)
        a = self.web("a")
        r = subprocess.run([REGISTRAR, "check", "-D", self.docker.socket, "--script", self.site,
                            "-B", "file://" + self.registry, "-H", HOST, "-a", "10.0.0.1"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("  key   /v2%s\n" % a, r.stdout)
        self.assertFalse(os.path.exists(self.registry), "check wrote to the registry")
        self.write_site(BROKEN)
        r = subprocess.run([REGISTRAR, "check", "-D", self.docker.socket, "--script", self.site],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("site.lua:4:", r.stderr)

    def test_a_failing_hook_costs_its_container_only(self):
        self.write_site(FAULTY)
        good = self.web("good")
        self.web("bad", "fail=yes")
        reg = self.registrar()
        h.wait_until(lambda: self.keys() == {good}, message="the good container alone")
        reg.wait_log(r"container /\S+ \(\w{12}\): naming failed: .*site\.lua:3: no key for /\S+; keeping its registrations")
        later = self.web("later")
        h.wait_until(lambda: self.keys() == {good, later}, message="later containers still registered")

    def test_a_runaway_hook_is_stopped_and_the_daemon_goes_on(self):
        self.write_site(FAULTY)
        good = self.web("good")
        self.web("spin", "loop=yes")
        config = os.path.join(self.dir, "budget.yml")
        with open(config, "w") as f:
            f.write("script_instructions: 5000000\n")
        reg = self.registrar("-c", config)
        reg.wait_log(r"naming failed: .*site\.lua:4: stopped after 5 million instructions "
                     r"\(script_instructions\)", timeout=30)
        h.wait_until(lambda: good in self.keys(), message="the good container")
        later = self.web("later")
        h.wait_until(lambda: later in self.keys(), message="the daemon still works")

    def test_a_failing_hook_after_reload_does_not_prune_that_containers_keys(self):
        self.write_site(V1)
        fragile = self.web("fragile", "fail=yes")
        steady = self.web("steady")
        reg = self.registrar()
        h.wait_until(lambda: self.keys() == {"/v1" + fragile, "/v1" + steady}, message="both under v1")
        # the new script fails for one container: its keys must survive, and
        # with them every orphan (we cannot tell which are that container's)
        self.write_site(FAULTY.replace("return registrar.default.key(service)",
                                       "return '/v1' .. registrar.default.key(service)"))
        mark = reg.mark()
        reg.signal(signal.SIGHUP)
        reg.wait_log(r"naming failed: .*no key for", since=mark)
        reg.wait_log(r"resync: 2 containers running", since=mark)
        reg.wait_log(r"resync: 2 containers running", since=reg.mark())
        self.assertEqual(self.keys(), {"/v1" + fragile, "/v1" + steady})

    def test_a_refresh_slower_than_the_interval_is_not_started_again_meanwhile(self):
        # Refreshes started each interval on a slow registry would pile up,
        # each holding a list of every entry, and slow it down further.
        slow = SlowServer(delay=1.0)
        self.addCleanup(slow.stop)
        self.write_site(SLOW_REFRESH % ("false", slow.port))
        self.web("slow")
        reg = start_registrar(self, "run", "-B", "slow://", "-D", self.docker.socket, "-H", HOST, "-a", "10.0.0.1",
                              "-i", "200", "-m", "ttl", "-t", "1000", "--script", self.site, "--log-level", "debug")
        h.wait_until(lambda: slow.served >= 3, timeout=15, message="three refreshes answered")
        self.assertEqual(slow.most, 1, "refreshes under way at once")
        self.assertIn("the last refresh is still under way", reg.log())
        self.assertNotIn("refresh failed", reg.log())

    def test_an_entry_written_again_reads_as_when_it_was_first_written(self):
        # ttl mode with no refresh(): every entry is written again at each
        # interval (after the first advertised()).  By then the engine holds only a digest of each value,
        # so value, service and document come from naming the container
        # again, and this host's document from its value.
        log = os.path.join(self.dir, "writes.json")
        self.write_site("""
local registrar = require 'registrar'
local json = registrar.json
registrar.backends.memo = {
  open = function()
    local seen, held = {}, {}
    return {
      advertised = function() return held end,
      register = function(self, e)
        held[e.key] = e.value
        local doc = e.document
        seen[e.key] = seen[e.key] or json.array {}
        table.insert(seen[e.key], {
          value = e.value,
          name = e.host and json.null or e.service.name,
          document = json.encode(doc) == json.encode(json.decode(e.value)),
          host_keys = e.host and #doc.keys or json.null,
        })
        return registrar.file.replace('%s', json.encode(seen))
      end,
      deregister = function(self, e) held[e.key] = nil; return true end,
    }
  end,
}
""" % log)
        key = self.web("memo")
        start_registrar(self, "run", "-B", "memo://", "-D", self.docker.socket, "-H", HOST, "-a", "10.0.0.1",
                        "-i", "500", "-m", "ttl", "--script", self.site)

        def writes():
            try:
                with open(log) as f:
                    return json.load(f)
            except (FileNotFoundError, ValueError):
                return {}
        host_key = "/hosts/" + HOST
        h.wait_until(lambda: len(writes().get(key, [])) >= 3 and len(writes().get(host_key, [])) >= 3,
                     message="each entry written three times")
        w = writes()
        first = w[key][0]
        self.assertEqual(json.loads(first["value"])["path"], key)
        for later in w[key][1:]:
            self.assertEqual(later, first)
        self.assertTrue(first["name"])        # the service's, read again each time
        self.assertTrue(first["document"])
        for write in w[host_key]:
            self.assertTrue(write["document"], write)
            self.assertEqual(write["host_keys"], 1)


if __name__ == "__main__":
    unittest.main()


class RefreshInShares(unittest.TestCase):
    """A backend that refreshes each entry with a request of its own says
    so (refresh_in_shares), and a round of many entries reaches it as
    several calls at once.  A fake Docker lists the containers."""

    CONTAINERS = 150

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-shares-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.docker = FakeDocker(os.path.join(tmp.name, "docker.sock"))
        self.docker.start()
        self.addCleanup(self.docker.stop)
        for i in range(self.CONTAINERS):
            self.docker.add_container(inspect_doc("%064x" % (0x5a0000 + i), "web%d" % i, env={"NAME": "web%d" % i},
                                                  ports={"80/tcp": [("0.0.0.0", str(34000 + i))]}))
        self.slow = SlowServer(delay=0.3)
        self.addCleanup(self.slow.stop)

    def first_round(self, in_shares):
        site = os.path.join(self.dir, "site.lua")
        with open(site, "w") as f:
            f.write(SLOW_REFRESH % (in_shares, self.slow.port))
        start_registrar(self, "run", "-B", "slow://", "-D", self.docker.socket_path, "-H", HOST, "-a", "10.0.0.1",
                        "-i", "500", "-m", "ttl", "-t", "2000", "--script", site)
        # the first round after start-up: every entry, the services and this host's document
        h.wait_until(lambda: sum(int(p.strip("/")) for p in self.slow.paths) >= self.CONTAINERS + 1,
                     timeout=20, message="a round of every entry")
        return sorted(int(p.strip("/")) for p in self.slow.paths if p.strip("/") != "0")

    def test_a_round_of_many_entries_goes_out_in_shares_at_once(self):
        shares = self.first_round("true")
        self.assertEqual(sum(shares), self.CONTAINERS + 1, shares)
        self.assertEqual(len(shares), 2, shares)       # 151 entries: two shares of at least 64
        self.assertEqual(self.slow.most, 2, "shares under way at once")

    def test_without_it_a_round_is_one_call(self):
        self.assertEqual(self.first_round("false"), [self.CONTAINERS + 1])
