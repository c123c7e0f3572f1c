"""registrar.testing (the site-script test kit, rockspec/lua/) against the
daemon: for every example, under both namings, for each fixture file and
configuration, `registrar check --json` and the kit (tests/kit/check.lua
under lua5.4) must print the same containers, names, keys and values, the
same notes, errors and warnings, and log the same warnings.  The scripts'
view of the configuration (registrar.config, registrar.host) must agree
key by key, and so must start-up failures.

No Docker and no registry: both read saved `docker inspect` answers."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from common import REGISTRAR, SOURCE

LUA = shutil.which("lua5.4")
KIT_PATH = os.path.join(SOURCE, "rockspec", "lua", "?.lua") + ";;"
SCRIPTS = os.path.join(SOURCE, "scripts")
FIXTURES = os.path.join(SOURCE, "tests", "fixtures")
SITES = os.path.join(SOURCE, "tests", "kit", "sites")
EXAMPLES = os.path.join(SOURCE, "examples")

CONTAINER_FILES = ("worked-example.json", "kit-agreement.json")
NAMINGS = ("default", "registrator")

# What a test fixes that the daemon would otherwise ask the machine for.
HOST = {"hostname": "mesos-master", "ipaddress": "10.0.1.100"}

CONFIGURATIONS = {
    "defaults": {},
    "layout": {
        "prefix_services": "/svc",
        "prefix_path": ["environment:ENVIRONMENT", "label:team", "string:v1", "service:PORT", "service:NAME"],
        "network": "backend", "health": "ignore", "explicit": "true", "ipaddress": "2001:db8::5",
        "site": {"domain": "corp.example.org", "replicas": 3, "strict": True},
    },
}


def cjson_available():
    return LUA and subprocess.run([LUA, "-e", "require 'cjson'"], capture_output=True).returncode == 0


def yaml_of(config):
    """The configuration as the daemon's YAML file: every value written as
    JSON, which YAML reads as the same strings, lists and maps."""
    return "".join("%s: %s\n" % (k, json.dumps(v)) for k, v in config.items())


def log_lines(text, daemon):
    """(level, message) of the warn and error lines of a log."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\S+Z (\w+)\s+(.*)$", line) if daemon else re.match(r"^(\w+) (.*)$", line)
        if m and m.group(1) in ("warn", "error"):
            out.append((m.group(1), m.group(2)))
    return out


@unittest.skipUnless(cjson_available(), "lua5.4 with lua-cjson is needed (apt-get install lua5.4 lua-cjson)")
class KitAgreesWithCheck(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-kit-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        # a registry path that holds nothing: the file backend's check() reads it
        self.base = dict(HOST, backend="file://%s/registry.json" % self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def daemon(self, containers, config):
        path = self.write("registrar.yml", yaml_of(config))
        r = subprocess.run([REGISTRAR, "check", "--json", "-c", path, "--containers", containers],
                           capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def kit(self, containers, config):
        path = self.write("registrar.json", json.dumps(config))
        env = {"PATH": os.environ["PATH"], "LUA_PATH": KIT_PATH, "REGISTRAR_SCRIPTS": SCRIPTS}
        r = subprocess.run([LUA, os.path.join(SOURCE, "tests", "kit", "check.lua"), containers, path],
                           capture_output=True, text=True, env=env, timeout=120)
        return r.returncode, r.stdout, r.stderr

    def assertAgree(self, containers, config):
        drc, dout, derr = self.daemon(containers, config)
        krc, kout, kerr = self.kit(containers, config)
        self.assertIn(drc, (0, 1), derr)
        self.assertEqual((krc, json.loads(kout)), (drc, json.loads(dout)), kerr)
        self.assertEqual(log_lines(kerr, daemon=False), log_lines(derr, daemon=True))
        return json.loads(dout)

    def test_every_example_under_both_namings_on_every_fixture(self):
        sites = [None] + sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".lua"))
        entries = 0
        for layout, extra in CONFIGURATIONS.items():
            for naming in NAMINGS:
                for site in sites:
                    for containers in CONTAINER_FILES:
                        with self.subTest(configuration=layout, naming=naming, script=site, containers=containers):
                            config = dict(self.base, naming=naming, **extra)
                            if site:
                                config["script"] = os.path.join(EXAMPLES, site)
                            if site == "nginx.lua":
                                config["backend"] = "nginx://%s/up.conf" % self.dir
                            report = self.assertAgree(os.path.join(FIXTURES, containers), config)
                            entries += sum(len(c.get("entries", [])) for c in report["containers"])
        # the comparison is about something: the fixtures give entries
        self.assertGreater(entries, 200)

    def test_faults_are_reported_in_the_daemons_words(self):
        config = dict(self.base, script=os.path.join(SITES, "faulty.lua"), script_instructions="1000000")
        report = self.assertAgree(os.path.join(FIXTURES, "kit-agreement.json"), config)
        errors = {c.get("container"): c["error"] for c in report["containers"] if "error" in c}
        self.assertIn("key() returned a number, not a string", errors["/cache (020202020202)"])
        self.assertIn("(error object is a table value)", errors["/search-api (010101010101)"])
        self.assertIn("attempt to yield from outside a coroutine", errors["/weird (080808080808)"])
        self.assertIn("stopped after 1 million instructions (script_instructions)",
                      errors["/node-exporter (030303030303)"])
        self.assertIn("name() returned a table, not a string", errors["/v6-only (0a0a0a0a0a0a)"])
        self.assertIn("document() returned a function", errors["/on-network (090909090909)"])
        self.assertIn("a table contains itself (a cycle)", errors["/twin_of_jovial (000000000000)"])

    def test_the_configuration_scripts_see_agrees_key_by_key(self):
        dump = os.path.join(SITES, "dump_config.lua")
        worked = os.path.join(FIXTURES, "worked-example.json")
        variants = [
            {},
            CONFIGURATIONS["layout"],
            {"backend": "etcd://alice:s3cret@10.0.0.5:2379,10.0.0.6:2379", "password": "hidden",
             "token": "hidden-too", "statsd": "127.0.0.1:9125", "listen": "9090", "log_level": "warn",
             "service_ttl": "ttl", "ttl": "20000", "interval": "5000", "concurrency": "4",
             "deregister": "stop", "docker": "tcp://10.0.0.7:2376", "docker_tls_verify": "yes"},
        ]
        for extra in variants:
            with self.subTest(config=extra):
                config = dict(self.base, script=dump, **extra)
                report = self.assertAgree(worked, config)
                seen = json.loads(report["containers"][0]["entries"][0]["value"])
                self.assertNotIn("password", seen["config"])
                self.assertNotIn("token", seen["config"])
                for k, v in extra.items():
                    if k not in ("password", "token", "backend", "site", "prefix_path"):
                        self.assertIn(k, seen["config"])

    def test_start_up_failures_agree(self):
        boom = self.write("boom.lua", "local x = 1\nerror('the site script refuses to load')\n")
        broken = self.write("broken.lua", "function key(service\n")
        cases = [
            {"script": boom},
            {"script": broken},
            {"script": os.path.join(self.dir, "missing.lua")},
            {"naming": "no-such-naming"},
            {"backend": "gopher://10.0.0.5:70"},
            {"backend": "etcd://10.0.0.5:2379?keys=absolute"},
            {"interval": "3s"},
            {"prefix_path": ["environment:ENVIRONMENT", "planet:EARTH"]},
            {"service_ttl": "ttl", "ttl": "2000"},
        ]
        worked = os.path.join(FIXTURES, "worked-example.json")
        for extra in cases:
            with self.subTest(config=extra):
                config = dict(self.base, **extra)
                drc, _, derr = self.daemon(worked, config)
                krc, _, kerr = self.kit(worked, config)
                self.assertEqual((krc, drc), (2, 2), derr + kerr)
                # the same words, but for where the value came from (a YAML line, the kit's file)
                strip = lambda text: re.sub(r"\((\S+\.yml:\d+|\S+\.json)\)", "(origin)", text.strip())
                self.assertEqual(strip(kerr), strip(derr))


if __name__ == "__main__":
    unittest.main()
