"""examples/: every site script works the same under both namings.

`registrar check` runs each example on tests/fixtures/worked-example.json
under `--naming default` and `--naming registrator` and the keys and
documents are checked; no Docker and no registry is needed.  nginx.lua
defines a backend, which `check` loads but never opens (it writes to no
registry), so check prints the naming's own entries; a daemon against a
fake Docker (fake_docker.py) then shows the upstream file it writes."""
import json
import os
import re
import tempfile
import unittest

import harness as h
from common import start_registrar
from fake_docker import FakeDocker
from test_cli import FIXTURES, SOURCE, TempDir, registrar

NAMINGS = ("default", "registrator")
WORKED_EXAMPLE = os.path.join(FIXTURES, "worked-example.json")
EXAMPLES = os.path.join(SOURCE, "examples")
HOST, IPADDRESS = "mesos-master", "10.0.1.100"


def entries(stdout):
    """`registrar check` output as [(name, key, value)]; the value decoded
    when it is JSON."""
    out, name, key = [], None, None
    for line in stdout.splitlines():
        if line.startswith("  name  "):
            name = line[len("  name  "):]
        elif line.startswith("  key   "):
            key = line[len("  key   "):]
        elif line.startswith("  value "):
            value = line[len("  value "):]
            try:
                value = json.loads(value)
            except ValueError:
                pass
            out.append((name, key, value))
    return out


class ExamplesUnderBothNamings(unittest.TestCase):
    maxDiff = None

    def check(self, naming, example=None, containers=WORKED_EXAMPLE, *extra):
        args = ["check", "--containers", containers, "--naming", naming, "-H", HOST, "-a", IPADDRESS, *extra]
        if example:
            args += ["--script", os.path.join(EXAMPLES, example)]
        r = registrar(*args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.splitlines()[0], "container /jovial_albattani (50ccf6e665e0)")
        return entries(r.stdout), r

    def with_labels(self, labels):
        t = TempDir(self)
        with open(WORKED_EXAMPLE) as f:
            containers = json.load(f)
        containers[0]["Config"]["Labels"] = labels
        return t.file("c.json", json.dumps(containers))

    def test_skydns_gives_host_and_port_under_both(self):
        for naming in NAMINGS:
            with self.subTest(naming=naming):
                got, _ = self.check(naming, "skydns.lua")
                self.assertEqual(got, [
                    ("etcd-4001", "/skydns/local/registrar/etcd-4001/mesos-master-49155",
                     {"host": IPADDRESS, "port": 49155, "ttl": 30}),
                    ("etcd-7001", "/skydns/local/registrar/etcd-7001/mesos-master-49156",
                     {"host": IPADDRESS, "port": 49156, "ttl": 30}),
                ])

    def test_traefik_gives_the_same_server_urls_under_both(self):
        for naming in NAMINGS:
            with self.subTest(naming=naming):
                got, _ = self.check(naming, "traefik.lua")
                self.assertEqual(got, [
                    ("etcd-4001", "/traefik/http/services/etcd-4001/loadBalancer/servers/mesos-master-49155/url",
                     "http://10.0.1.100:49155"),
                    ("etcd-7001", "/traefik/http/services/etcd-7001/loadBalancer/servers/mesos-master-49156/url",
                     "http://10.0.1.100:49156"),
                ])

    def test_teams_files_team_containers_alike_and_leaves_the_rest_to_the_naming(self):
        team = self.with_labels({"team": "search"})
        for naming in NAMINGS:
            with self.subTest(naming=naming):
                got, _ = self.check(naming, "teams.lua", team)
                plain, _ = self.check(naming, None, team)
                self.assertEqual([k for _, k, _ in got], ["/teams/search/etcd-4001/mesos-master:49155",
                                                          "/teams/search/etcd-7001/mesos-master:49156"])
                # the documents are the naming's own (the default one names its key in path)
                self.assertEqual([(n, v) for n, _, v in got],
                                 [(n, dict(v, path=k) if "path" in v else v)
                                  for (n, _, v), (_, k, _) in zip(plain, got)])
                # without a team label: the naming's layout, untouched
                self.assertEqual(self.check(naming, "teams.lua")[0], self.check(naming)[0])

    def test_teams_skips_a_label_that_cannot_be_a_key_segment_and_says_why(self):
        bad = self.with_labels({"team": ".."})
        for naming in NAMINGS:
            with self.subTest(naming=naming):
                got, r = self.check(naming, "teams.lua", bad)
                self.assertEqual(got, [])
                self.assertIn("  (no services)", r.stdout)
                self.assertIn("container /jovial_albattani (50ccf6e665e0): label team is a relative path ('..'), "
                              "so it cannot be part of a key; service skipped", r.stdout + r.stderr)

    def test_nginx_check_loads_its_backend_and_prints_the_namings_entries(self):
        # check never opens a backend: nothing is written, and what it prints
        # is the naming's entries, the documents each naming writes
        t = TempDir(self)
        conf = os.path.join(t.dir.name, "up.conf")
        for naming in NAMINGS:
            with self.subTest(naming=naming):
                got, _ = self.check(naming, "nginx.lua", WORKED_EXAMPLE, "-B", "nginx://" + conf)
                self.assertEqual(got, self.check(naming)[0])
                self.assertEqual([n for n, _, _ in got], ["etcd-4001", "etcd-7001"])
                self.assertEqual(os.listdir(t.dir.name), [])
        got, _ = self.check("default", "nginx.lua", WORKED_EXAMPLE, "-B", "nginx://" + conf)
        self.assertEqual((got[0][2]["ipaddress"], got[0][2]["host_port"]), (IPADDRESS, "49155"))
        got, _ = self.check("registrator", "nginx.lua", WORKED_EXAMPLE, "-B", "nginx://" + conf)
        self.assertEqual((got[0][2]["address"], got[0][2]["port"]), (IPADDRESS, 49155))


class NginxRun(unittest.TestCase):
    """The nginx backend in a running daemon, under each naming: the same
    upstream file, and a restart that finds everything in place writes
    nothing."""

    EXPECTED = ("upstream etcd-4001 {\n    server 10.0.1.100:49155;\n}\n"
                "upstream etcd-7001 {\n    server 10.0.1.100:49156;\n}\n")

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-examples-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.docker = FakeDocker(os.path.join(self.dir, "docker.sock"))
        self.docker.start()
        self.addCleanup(self.docker.stop)
        with open(WORKED_EXAMPLE) as f:
            self.docker.add_container(json.load(f)[0])

    def run_nginx(self, naming, conf):
        return start_registrar(self, "run", "--naming", naming, "--script", os.path.join(EXAMPLES, "nginx.lua"),
                               "-B", "nginx://" + conf, "-D", self.docker.socket_path, "-H", HOST, "-a", IPADDRESS,
                               "-i", "300", "--log-level", "debug", name="registrar-" + naming)

    def read(self, path):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def test_the_same_upstream_file_under_both_namings(self):
        for naming in NAMINGS:
            with self.subTest(naming=naming):
                conf = os.path.join(self.dir, naming, "up.conf")
                reg = self.run_nginx(naming, conf)
                h.wait_until(lambda: self.read(conf) == self.EXPECTED, timeout=15,
                             message="%s: the upstream file (log:\n%s)" % (naming, reg.log_tail()))
                records = json.loads(self.read(conf + ".json"))["services"]
                self.assertEqual(sorted(records.values(), key=lambda r: r["port"]), [
                    {"address": IPADDRESS, "name": "etcd-4001", "port": 49155},
                    {"address": IPADDRESS, "name": "etcd-7001", "port": 49156},
                ])
                # the two services, and this host's document (kept beside them, not among them)
                self.assertEqual(len(re.findall(r"debug registered ", reg.log())), 3)
                self.assertEqual(set(json.loads(self.read(conf + ".json"))["hosts"]), {"/hosts/%s" % HOST})
                reg.stop()

                # a restart audits what is there: it is what compare() says, so nothing is written
                reg = self.run_nginx(naming, conf)
                reg.wait_log(r"this host has 3 entries there", timeout=15)
                mark = reg.mark()
                h.wait_until(lambda: len(re.findall(r"debug resync: ", reg.log()[mark:])) >= 3, timeout=15,
                             message="three resyncs")
                self.assertNotRegex(reg.log(), r"debug registered ")
                self.assertEqual(self.read(conf), self.EXPECTED)
                reg.stop()


if __name__ == "__main__":
    unittest.main()
