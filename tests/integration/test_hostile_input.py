"""Hostile and careless input that needs no Docker: what `registrar check`
and the start-up checks do with deep or cyclic documents, container data
built to make patterns backtrack, a file backend pointed at something that
is not its registry, credentials in URIs, YAML aliases and duplicate keys,
and malformed values.  Each answer must be a clear message naming what is
wrong and where, and nothing that is not registrar's may be changed."""
import json
import os
import signal
import stat
import subprocess
import tempfile
import time
import unittest

from test_cli import FIXTURES, REGISTRAR, TempDir, registrar

WORKED_EXAMPLE = os.path.join(FIXTURES, "worked-example.json")


def worked_example(**changes):
    """The worked example's inspect list, with Config fields changed."""
    with open(WORKED_EXAMPLE) as f:
        containers = json.load(f)
    containers[0]["Config"].update(changes)
    return containers


def check(test, containers, *args, env=None):
    t = TempDir(test)
    path = t.file("c.json", json.dumps(containers) if not isinstance(containers, str) else containers)
    return registrar("check", "--containers", path, *args, env=env)


def documents(out):
    return [json.loads(line[len("  value "):]) for line in out.splitlines() if line.startswith("  value ")]


class Documents(unittest.TestCase):
    """registrar.json once wrote past the Lua stack at 30 levels and the
    daemon aborted; the file backend re-encodes what it reads, so a deep
    document in the registry file crashed `run` at start-up."""

    def test_a_deeply_nested_document_is_written(self):
        t = TempDir(self)
        site = t.file("site.lua", "function document(s)\n  local t = {}\n  local c = t\n"
                                  "  for i = 1, 30 do c.a = {} c = c.a end\n  return t\nend\n")
        r = registrar("check", "--containers", WORKED_EXAMPLE, "--script", site)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = documents(r.stdout)[0]
        for _ in range(29):
            doc = doc["a"]
        self.assertEqual(doc, {"a": {}})

    def test_a_document_that_contains_itself_is_an_error_naming_the_hook(self):
        t = TempDir(self)
        site = t.file("site.lua", "function document(s)\n  local t = {}\n  t.self = t\n  return t\nend\n")
        r = registrar("check", "--containers", WORKED_EXAMPLE, "--script", site)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"  error: {site}:1: document() returned a table that is not JSON: "
                      "json.encode: a table contains itself (a cycle)", r.stdout)

    def test_errors_without_a_message_still_say_where(self):
        t = TempDir(self)
        for body, said in (("error({})", "(error object is a table value)"),
                           ("error()", "(error object is a nil value)"),
                           ("coroutine.yield()", "attempt to yield from outside a coroutine")):
            site = t.file("site.lua", "function key(service)\n  %s\nend\n" % body)
            r = registrar("check", "--containers", WORKED_EXAMPLE, "--script", site)
            self.assertEqual(r.returncode, 1, body)
            self.assertIn(f"  error: {site}:2: {said}", r.stdout, body)

    def test_a_key_that_does_not_start_with_a_slash_is_refused(self):
        t = TempDir(self)
        site = t.file("site.lua", "function key(service)\n  return 'services/' .. service.port\nend\n")
        r = registrar("check", "--containers", WORKED_EXAMPLE, "--script", site)
        self.assertIn('key "services/4001" does not start with \'/\'; service skipped', r.stdout)
        self.assertNotIn("  key   services/", r.stdout)


class Patterns(unittest.TestCase):
    """Trimming TAGS with `^%s*(.-)%s*$` is quadratic: "x", 60 000 spaces,
    "x" held the daemon for 13 s.  With a hook allowed 200 ms, the tags
    of a 16 000-space value (a second of quadratic work) must come out."""

    SPACES = " " * 16000

    def test_tags_with_long_runs_of_spaces_are_trimmed_in_time(self):
        r = check(self, worked_example(Env=["NAME=etc", "TAGS=x%sx, y " % self.SPACES]),
                  env={"SCRIPT_TIMEOUT": "200"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(documents(r.stdout)[0]["tags"], ["x%sx" % self.SPACES, "y"])

    def test_registrator_tags_and_image_names_too(self):
        image = "a" * 16000 + "/" + "b" * 100 + ":" + "c" * 100
        half = self.SPACES[:8000]
        r = check(self, worked_example(Image=image, Env=["SERVICE_TAGS=%sx%s,y" % (half, half)]),
                  "--naming", "registrator", env={"SCRIPT_TIMEOUT": "200"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = documents(r.stdout)[0]
        self.assertEqual(doc["tags"], ["x", "y"])
        self.assertEqual(doc["name"], "b" * 100 + "-4001")

    def test_a_hook_busy_in_library_calls_is_stopped_by_script_timeout(self):
        t = TempDir(self)
        site = t.file("site.lua", "function document(s)\n  local x = ('x'):rep(100000)\n"
                                  "  while true do local y = x:rep(10) end\nend\n")
        r = check(self, worked_example(), "--script", site, env={"SCRIPT_TIMEOUT": "300"})
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{site}:3: stopped after 300 ms (script_timeout)", r.stdout)


class ContainerData(unittest.TestCase):
    def test_values_over_16_kib_are_left_out_and_said(self):
        r = check(self, worked_example(Env=["NAME=etc", "BIG=" + "v" * 20000]))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("  note: env BIG is 20000 bytes, over 16384: left out", r.stdout)
        self.assertNotIn("BIG", documents(r.stdout)[0]["env"])

    def test_a_nul_in_an_env_value_does_not_cut_it_short(self):
        text = json.dumps(worked_example(Env=["NAME=etc", "ODD=a\u0000b"]))
        self.assertIn("\\u0000", text)
        r = check(self, text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(documents(r.stdout)[0]["env"]["ODD"], "a\ufffdb")

    def test_a_host_ip_that_is_not_an_address_is_not_advertised(self):
        containers = worked_example()
        ports = containers[0]["NetworkSettings"]["Ports"]
        ports["4001/tcp"] = [{"HostIp": "../../etc", "HostPort": "49155"}]
        ports["7001/tcp"] = [{"HostIp": "999.1.1.1", "HostPort": "49156"}]
        ports["53/../.."] = [{"HostIp": "0.0.0.0", "HostPort": "5353"}]
        r = check(self, containers)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('  note: HostIp "../../etc" is not an IP address: left out (and 2 more)', r.stdout)
        self.assertIn("(no services)", r.stdout)
        self.assertNotIn("../..", r.stdout.split("note:")[1].split("\n", 1)[1])

    def test_two_containers_naming_one_key_are_warned_about(self):
        first = worked_example()[0]
        second = json.loads(json.dumps(first))
        second["Id"] = "f" * 64
        second["Name"] = "/twin"
        r = check(self, [first, second])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("  warning: key /services/prod/etc/4001/49155/50ccf6e665e0 is named by containers "
                      "/jovial_albattani (50ccf6e665e0) and /twin (ffffffffffff); keeping it for the first",
                      r.stdout)

    def test_a_containers_file_with_trailing_garbage_or_cut_short(self):
        with open(WORKED_EXAMPLE) as f:
            text = f.read()
        r = check(self, text + "]garbage")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not JSON: byte %d of %d is wrong" % (len(text) + 1, len(text) + 8), r.stderr)
        r = check(self, text[:100])
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"not JSON: byte \d+ of 100 is wrong")


class Credentials(unittest.TestCase):
    """A password in the backend URI was in the start-up line and in every
    warning."""

    def test_the_uri_password_is_in_no_log_line(self):
        t = TempDir(self)
        log = os.path.join(t.dir.name, "log")
        proc = subprocess.Popen([REGISTRAR, "run", "-B", "etcd://alice:s3cretPW@127.0.0.1:1",
                                 "-D", os.path.join(t.dir.name, "no-docker.sock"), "-H", "h", "-a", "10.0.0.1",
                                 "-i", "100", "-l", log], env={"PATH": os.environ["PATH"]})
        try:
            deadline = time.time() + 10
            while time.time() < deadline:
                with open(log) if os.path.exists(log) else open(os.devnull) as f:
                    text = f.read()
                if text.count("registry") >= 1 and "etcd://alice:***@127.0.0.1:1" in text:
                    break
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        with open(log) as f:
            text = f.read()
        self.assertIn("backend etcd://alice:***@127.0.0.1:1", text)
        self.assertIn("registry etcd://alice:***@127.0.0.1:1: open failed", text)
        self.assertNotIn("s3cretPW", text)

    def test_errors_about_the_uri_hide_the_password(self):
        r = registrar("run", "-B", "etcd://alice:s3cretPW@")
        self.assertEqual(r.returncode, 2)
        self.assertIn('"etcd://alice:***@" names no HOST:PORT', r.stderr)
        r = registrar("run", "-B", "e tcd://alice:s3cretPW@x:1")
        self.assertIn('"e tcd://alice:***@x:1" is not a URI', r.stderr)
        for out in (r.stderr,):
            self.assertNotIn("s3cretPW", out)

    def test_a_consul_token_in_the_uri_is_refused_not_ignored(self):
        r = registrar("run", "-B", "consul://T0KEN-123@127.0.0.1:8500")
        self.assertEqual(r.returncode, 2)
        self.assertIn('"consul://***@127.0.0.1:8500" holds credentials, which Consul does not take in a URI; '
                      "set token (CONSUL_HTTP_TOKEN) instead", r.stderr)
        self.assertNotIn("T0KEN-123", r.stderr)


class FileBackendPaths(unittest.TestCase):
    """The file backend replaced whatever was at its path: /dev/null became
    a regular file, another host's registry was pruned."""

    def assertRefused(self, path, *fragments):
        for command in (["run", "-D", "/nonexistent.sock"], ["check", "--containers", WORKED_EXAMPLE]):
            r = registrar(*command, "-B", "file://" + path)
            self.assertEqual(r.returncode, 2, command)
            for fragment in fragments:
                self.assertIn(fragment, r.stderr)

    def test_a_file_that_is_not_a_registry_is_left_alone(self):
        t = TempDir(self)
        path = t.file("notes.txt", "my notes\n")
        self.assertRefused(path, f"{path} is not a registrar registry", "nothing was written")
        with open(path) as f:
            self.assertEqual(f.read(), "my notes\n")

    def test_another_hosts_registry_is_left_alone(self):
        t = TempDir(self)
        theirs = json.dumps({"host": "otherhost", "services": {"/services/a": {"port": "1"}, "/x/b": {}}})
        path = t.file("registry.json", theirs)
        self.assertRefused(path, f'{path} is the registry of host "otherhost", not of this host ("mesos-master")')
        with open(path) as f:
            self.assertEqual(f.read(), theirs)

    def test_a_directory_is_refused(self):
        t = TempDir(self)
        self.assertRefused(t.dir.name, f"{t.dir.name} is a directory, not a registry file")

    @unittest.skipUnless(os.geteuid() == 0, "mknod needs root")
    def test_a_device_node_is_refused_and_stays_a_device(self):
        t = TempDir(self)
        dev = os.path.join(t.dir.name, "null")
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        self.assertRefused(dev, f"{dev} is a device, not a registry file")
        self.assertTrue(stat.S_ISCHR(os.stat(dev).st_mode))

    def test_dev_null_is_refused(self):
        self.assertRefused("/dev/null", "/dev/null is a device")
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))


class Configuration(unittest.TestCase):
    def assertFails(self, result, *fragments):
        self.assertEqual(result.returncode, 2, result.stderr + result.stdout)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)

    def test_a_yaml_alias_bomb_is_refused_with_file_and_line(self):
        t = TempDir(self)
        lines = ["site:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for prev, name in zip("abcdefg", "bcdefgh"):
            lines.append("  %s: &%s [%s]" % (name, name, ",".join(["*" + prev] * 9)))
        path = t.file("r.yml", "\n".join(lines) + "\n")
        # 1 GiB of address space would do for the expanded tree too: the
        # refusal must come before it is built.  (ASan reserves terabytes of
        # address space up front, so its build runs unbounded.)
        bound = [] if os.environ.get("REGISTRAR_SANITIZED") == "1" else ["prlimit", "--as=%d" % (1 << 30)]
        r = subprocess.run(bound + [REGISTRAR, "-c", path, "run"],
                           capture_output=True, text=True, timeout=20,
                           env={"PATH": os.environ["PATH"], "HOST": "h", "IPADDRESS": "10.0.0.1"})
        self.assertFails(r, f"{path}:2: site: the value expands to more than 10000 items (through YAML aliases?)")

    def test_a_yaml_key_given_twice(self):
        t = TempDir(self)
        path = t.file("r.yml", "interval: 1000\nhostname: a\ninterval: 2000\n")
        self.assertFails(registrar("-c", path, "run"), f'{path}:3: key "interval" is given twice (first at line 1)')
        path = t.file("s.yml", "site:\n  zone: a\n  zone: b\n")
        self.assertFails(registrar("-c", path, "run"), f'{path}:3: site: key "zone" is given twice (first at line 2)')

    def test_prefixes_must_be_absolute_plain_paths(self):
        for value, why in (("services", "must start with '/'"), ("/a/../b", "has a relative segment"),
                           ("/a//b", "has an empty segment"), ("/caf\udce9", "is not UTF-8")):
            env = {"PREFIX_SERVICES": value}
            r = subprocess.run([REGISTRAR, "check", "--containers", WORKED_EXAMPLE], capture_output=True,
                               env={k.encode(): v.encode("utf-8", "surrogateescape") for k, v in
                                    dict(os.environ, HOST="h", IPADDRESS="10.0.0.1", **env).items()})
            self.assertEqual(r.returncode, 2, value)
            self.assertIn(("prefix_services: ").encode() , r.stderr)
            self.assertIn(why.encode(), r.stderr)
        self.assertFails(registrar("run", env={"PREFIX_HOSTS": "hosts"}), 'prefix_hosts: "hosts" must start with')

    def test_a_nul_in_an_env_file_line(self):
        t = TempDir(self)
        path = os.path.join(t.dir.name, "env")
        with open(path, "wb") as f:
            f.write(b"INTERVAL=1000\nHOST=web\x003\n")
        self.assertFails(registrar("-e", path, "run"), f"{path}:2: holds a NUL byte")

    def test_docker_endpoints_that_cannot_work(self):
        self.assertFails(registrar("run", "-D", "tcp://127.0.0.1:99999"),
                         'docker: "tcp://127.0.0.1:99999" has a port that is not 1 to 65535 (flag -D)')
        self.assertFails(registrar("run", "-D", "http://x"),
                         'docker: "http://x" is not a socket path, unix:///PATH or tcp://HOST:PORT (flag -D)')
        self.assertFails(registrar("run", env={"DOCKER_HOST": "ssh://me@host"}), "(env DOCKER_HOST)")

    def test_run_does_not_take_a_containers_file(self):
        self.assertFails(registrar("run", "--containers", WORKED_EXAMPLE),
                         "--containers is an option of `registrar check`")


if __name__ == "__main__":
    unittest.main()
