"""The command line: help, version, start-up errors, and `registrar check`.

These need no Docker and no registry: each bad input must stop start-up
with one line naming what is wrong and where, and exit status 2."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

REGISTRAR = os.environ.get("REGISTRAR_BIN", "build/registrar")
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(SOURCE, "tests", "fixtures")

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOST": "mesos-master", "IPADDRESS": "10.0.1.100"}


def registrar(*args, env=None, timeout=20):
    full_env = dict(BASE_ENV)
    full_env.update(env or {})
    return subprocess.run([REGISTRAR, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


class TempDir:
    """Files for one test, removed when it ends."""

    def __init__(self, test):
        self.dir = tempfile.TemporaryDirectory(prefix="registrar-cli-")
        test.addCleanup(self.dir.cleanup)

    def file(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class HelpAndVersion(unittest.TestCase):
    def test_version_names_the_libraries(self):
        r = registrar("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^registrar \d+\.\d+\.\d+ \(Lua 5\.4\.\d+, libcurl [\d.]+, cJSON [\d.]+, "
                                   r"libyaml [\d.]+, ZooKeeper C client [\d.]+\), commit \S+\n$")

    def test_version_names_the_commit_it_was_built_from(self):
        if shutil.which("git") is None:
            self.skipTest("git not found")
        top = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        if top.returncode != 0 or os.path.realpath(top.stdout.strip()) != os.path.realpath(SOURCE):
            self.skipTest("the source tree is not a git checkout")
        head = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        commit = registrar("version").stdout.rsplit("commit ", 1)[1].strip()
        self.assertRegex(commit, r"^[0-9a-f]{7,}(-dirty)?$")
        self.assertEqual(commit.removesuffix("-dirty"), head,
                         "built from another commit than HEAD: rebuild (cmake --build) before the tests")

    def test_help_everywhere(self):
        for args in (["help"], ["-h"], ["--help"], ["run", "-h"], ["check", "--help"]):
            r = registrar(*args)
            self.assertEqual(r.returncode, 0, args)
            self.assertIn("usage: registrar", r.stdout)
        self.assertIn("watches docker", registrar("run", "-h").stdout.lower())

    def test_help_config_lists_every_key_with_its_variable(self):
        out = registrar("help", "config").stdout
        for key, env in (("interval", "INTERVAL"), ("backend", "BACKEND"), ("hostname", "HOST"),
                         ("prefix_services", "PREFIX_SERVICES"), ("service_ttl", "SERVICE_METHOD")):
            self.assertRegex(out, rf"(?m)^{key}\s+{env}\s")

    def test_no_command_is_a_usage_error(self):
        r = registrar()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stdout)

    def test_unknown_command(self):
        r = registrar("start")
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown command "start"', r.stderr)


class StartupErrors(unittest.TestCase):
    """One line on stderr naming the key, the value and where it came from."""

    def assertFails(self, result, *fragments):
        self.assertEqual(result.returncode, 2, result.stderr + result.stdout)
        line = result.stderr.strip()
        self.assertEqual(len(line.splitlines()), 1, line)
        for fragment in fragments:
            self.assertIn(fragment, line)

    def test_interval_that_is_not_a_number(self):
        self.assertFails(registrar("run", "-i", "abc"), 'interval: "abc" is not a whole number', "flag -i")
        self.assertFails(registrar("run", env={"INTERVAL": "3s"}), 'interval: "3s"', "env INTERVAL")

    def test_unknown_backend_scheme(self):
        self.assertFails(registrar("run", "-B", "foo://x:1"), 'unknown scheme "foo"', "flag -B",
                         "backends/foo.lua")

    def test_a_backend_uri_its_script_cannot_serve(self):
        # known schemes whose URI can never work: start-up fails, not every retry
        self.assertFails(registrar("run", "-B", "consul://"), '"consul://" names no HOST:PORT', "flag -B")
        self.assertFails(registrar("run", "-B", "etcd://10.0.0.1:abc"), '"10.0.0.1:abc" is not HOST:PORT', "flag -B")
        self.assertFails(registrar("run", env={"BACKEND": "file://relative/path"}),
                         "is not file:///ABSOLUTE/PATH", "env BACKEND")
        self.assertFails(registrar("run", "-m", "ttl", "-B", "consul-catalog://127.0.0.1:8500"),
                         "cannot expire in ttl mode", "flag -B")
        # and check refuses the same way
        self.assertFails(registrar("check", "-B", "consul://", "--containers", "/dev/null"),
                         '"consul://" names no HOST:PORT')

    def test_missing_config_file(self):
        self.assertFails(registrar("-c", "/nonexistent/registrar.yml", "run"),
                         "config file /nonexistent/registrar.yml")

    def test_unknown_yaml_key_names_file_and_line(self):
        t = TempDir(self)
        path = t.file("r.yml", "interval: 1000\nbackend: etcd://127.0.0.1:2379\nintervall: 5\n")
        self.assertFails(registrar("-c", path, "run"), f'{path}:3: unknown key "intervall"')

    def test_bad_yaml_value_names_file_and_line(self):
        t = TempDir(self)
        path = t.file("r.yml", "# settings\ninterval: soon\n")
        self.assertFails(registrar("-c", path, "run"), 'interval: "soon"', f"{path}:2")

    def test_unknown_flag(self):
        self.assertFails(registrar("run", "--backnd", "etcd://x"), "unknown option --backnd")

    def test_missing_site_script(self):
        self.assertFails(registrar("run", "--script", "/nonexistent/site.lua"), "no such file /nonexistent/site.lua")

    def test_site_script_syntax_error_names_file_and_line(self):
        t = TempDir(self)
        path = t.file("site.lua", "function key(service)\n  return 'x' ..\nend\n")
        self.assertFails(registrar("run", "--script", path, "-B", "file:///tmp/x.json"), f"{path}:3:")

    def test_site_script_runtime_error_names_file_and_line(self):
        t = TempDir(self)
        path = t.file("site.lua", "local x = nil\n\nprint(x.field)\n")
        self.assertFails(registrar("run", "--script", path, "-B", "file:///tmp/x.json"),
                         f"{path}:3: attempt to index a nil value")


class Check(unittest.TestCase):
    def test_worked_example_byte_for_byte(self):
        r = registrar("check", "--containers", os.path.join(FIXTURES, "worked-example.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "container /jovial_albattani (50ccf6e665e0)")
        self.assertEqual(lines[1], "  name  etcd-4001")
        self.assertEqual(lines[2], "  key   /services/prod/etc/4001/49155/50ccf6e665e0")
        self.assertEqual(lines[5], "  key   /services/prod/etc/7001/49156/50ccf6e665e0")
        doc = json.loads(lines[3][len("  value "):])
        self.assertEqual(doc, {
            "id": "50ccf6e665e0f0e0a6b2f7e1c8d3a4b5c6d7e8f90a1b2c3d4e5f60718293a4f0",
            "host": "mesos-master", "ipaddress": "10.0.1.100",
            "env": {"APP": "etcd", "NAME": "etc", "ENVIRONMENT": "prod", "HOME": "/"},
            "tags": [], "name": "/jovial_albattani", "image": "coreos/etcd", "hostname": "50ccf6e665e0",
            "port": "4001", "proto": "tcp", "host_port": "49155",
            "path": "/services/prod/etc/4001/49155/50ccf6e665e0",
        })

    def test_service_names_from_the_environment(self):
        t = TempDir(self)
        with open(os.path.join(FIXTURES, "worked-example.json")) as f:
            containers = json.load(f)
        containers[0]["Config"]["Env"] += ["SERVICE_4001_NAME=etcd_clients", "SERVICE_7001_NAME=etcd_peers"]
        path = t.file("c.json", json.dumps(containers))
        out = registrar("check", "--containers", path).stdout
        self.assertIn("  key   /services/prod/etc/etcd_clients/49155/50ccf6e665e0\n", out)
        self.assertIn("  key   /services/prod/etc/etcd_peers/49156/50ccf6e665e0\n", out)

    def test_a_broken_hook_fails_the_check_with_file_and_line(self):
        t = TempDir(self)
        site = t.file("site.lua", "function key(service)\n  return service.nothing.here\nend\n")
        r = registrar("check", "--script", site, "--containers", os.path.join(FIXTURES, "worked-example.json"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"error: {site}:2: attempt to index a nil value", r.stdout)

    def test_secrets_never_appear_in_the_output(self):
        r = registrar("check", "-B", "etcd://user:uri-secret@127.0.0.1:1",
                      "--containers", os.path.join(FIXTURES, "worked-example.json"),
                      env={"BACKEND_PASSWORD": "pw-secret", "CONSUL_HTTP_TOKEN": "token-secret"})
        self.assertEqual(r.returncode, 0, r.stderr)
        for secret in ("uri-secret", "pw-secret", "token-secret"):
            self.assertNotIn(secret, r.stdout + r.stderr)

    def test_unreadable_containers_file(self):
        t = TempDir(self)
        path = t.file("c.json", "{not json")
        r = registrar("check", "--containers", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not JSON: byte 3 of 9 is wrong", r.stderr)

    def test_json_is_one_document_with_the_log_on_stderr(self):
        t = TempDir(self)
        site = t.file("site.lua", 'local registrar = require "registrar"\n'
                                  'registrar.log.warn("site script loaded")\n'
                                  'function key(service)\n'
                                  '  if service.port == "7001" then error("no peers here") end\n'
                                  '  return registrar.default.key(service)\n'
                                  'end\n')
        worked = os.path.join(FIXTURES, "worked-example.json")
        r = registrar("check", "--json", "--script", site, "--containers", worked)
        # a failed hook fails the check, as without --json
        self.assertEqual(r.returncode, 1, r.stderr)
        report = json.loads(r.stdout)
        self.assertEqual(len(report["containers"]), 1)
        c = report["containers"][0]
        self.assertEqual((c["index"], c["container"]), (1, "/jovial_albattani (50ccf6e665e0)"))
        self.assertIn(f"{site}:4: no peers here", c["error"])
        self.assertNotIn("entries", c)
        self.assertIn("site script loaded", r.stderr)
        self.assertNotIn("site script loaded", r.stdout)
        # without the fault: the entries the text form prints
        text = registrar("check", "--containers", worked).stdout
        r = registrar("check", "--json", "--containers", worked)
        self.assertEqual(r.returncode, 0, r.stderr)
        entries = json.loads(r.stdout)["containers"][0]["entries"]
        self.assertEqual([e["key"] for e in entries],
                         [line.split()[1] for line in text.splitlines() if line.startswith("  key ")])
        self.assertEqual(entries[0]["name"], "etcd-4001")
        self.assertEqual(json.loads(entries[0]["value"])["host_port"], "49155")

    def test_json_belongs_to_check_alone(self):
        r = registrar("run", "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--json is an option of `registrar check`, not of `run`", r.stderr)


if __name__ == "__main__":
    unittest.main()


class MallocTuning(unittest.TestCase):
    """`registrar run` executes itself again with glibc's thread cache off
    (docs/performance.md: a quarter of the memory 100 containers cost):
    the same process, its arguments kept, and an operator's own
    GLIBC_TUNABLES left as they are."""

    def start(self, env):
        tmp = TempDir(self)
        full_env = dict(BASE_ENV, **env)
        log = open(os.path.join(tmp.dir.name, "log"), "w+")
        self.addCleanup(log.close)
        # Docker is not there: the daemon runs on, retrying, which is all this needs
        proc = subprocess.Popen([REGISTRAR, "run", "-B", "file://" + os.path.join(tmp.dir.name, "r.json"),
                                 "-D", os.path.join(tmp.dir.name, "no-docker.sock"), "-i", "60000"],
                                env=full_env, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        deadline = time.monotonic() + 20
        while "registrar 0." not in open(log.name).read():
            self.assertIsNone(proc.poll(), "registrar exited: " + open(log.name).read())
            self.assertLess(time.monotonic(), deadline, "no start-up line: " + open(log.name).read())
            time.sleep(0.05)
        with open("/proc/%d/environ" % proc.pid, "rb") as f:
            environ = dict(v.decode().partition("=")[::2] for v in f.read().split(b"\0") if v)
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            cmdline = f.read().split(b"\0")
        return environ, cmdline

    def test_the_daemon_runs_with_the_thread_cache_off_and_its_arguments(self):
        environ, cmdline = self.start({})
        self.assertEqual(environ.get("GLIBC_TUNABLES"), "glibc.malloc.tcache_count=0")
        self.assertEqual(cmdline[1:3], [b"run", b"-B"])
        self.assertIn(b"60000", cmdline)

    def test_an_operators_tunables_are_kept(self):
        environ, _ = self.start({"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"})
        self.assertEqual(environ.get("GLIBC_TUNABLES"), "glibc.malloc.arena_max=1")
