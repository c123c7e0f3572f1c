"""registrar as a systemd service: the unit as installed passes
`systemd-analyze verify`, and `registrar run` speaks the NOTIFY_SOCKET
protocol to a datagram socket the test listens on, as systemd would:
READY=1 only once the first complete listing is in the registry,
RELOADING=1 then READY=1 on SIGHUP, WATCHDOG=1 pings when asked, STOPPING=1
at SIGTERM; and log lines written to the journal carry their priority."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness as h
from common import REGISTRAR, SOURCE, DockerTest, host_port, start_registrar
from support.util import _find

HOST = "notifyhost"
IPADDRESS = "10.0.7.7"
BUILD = h.build_dir_of(REGISTRAR)


def systemd_analyze_unusable():
    """Why systemd-analyze cannot verify units here, or None: it must be
    installed and pass a unit that is certainly good."""
    if _find("systemd-analyze") is None:
        return "systemd-analyze not found (Debian package: systemd)"
    with tempfile.TemporaryDirectory(prefix="registrar-sd-") as d:
        unit = os.path.join(d, "registrar-probe.service")
        with open(unit, "w") as f:
            f.write("[Service]\nExecStart=/bin/true\n")
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
        return "systemd-analyze verify does not work here: " + (r.stderr.strip() or r.stdout.strip())
    return None


@unittest.skipUnless(BUILD, "REGISTRAR_BIN is not in a CMake build directory")
class Unit(unittest.TestCase):
    def setUp(self):
        why = systemd_analyze_unusable()
        if why:
            self.skipTest(why)

    def test_the_installed_unit_verifies(self):
        tree = h.InstalledTree(BUILD)
        self.addCleanup(tree.cleanup)
        tree.install()
        unit = tree.path("lib/systemd/system/registrar.service")
        with open(unit) as f:
            text = f.read()
        self.assertIn("\nExecStart=%s -c %s run\n" % (tree.path("bin/registrar"),
                                                      tree.path("etc/registrar/registrar.yml")), text)
        for line in ("Type=notify", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                     "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                     "StateDirectory=registrar", "WatchdogSec=30s"):
            self.assertIn("\n" + line + "\n", text)
        # verify also runs `man registrar(8)` for Documentation=: the
        # installed manual answers it
        env = dict(os.environ, MANPATH=tree.path("share/man"))
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))


class NotifySocket:
    """systemd's end of NOTIFY_SOCKET: a datagram socket, bound to a path
    or (abstract) to a name, read by a thread.  Each message is kept with
    what ``snapshot()`` returned the moment it arrived (the registry)."""

    def __init__(self, test, abstract=False, snapshot=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "registrar-test-notify-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            d = tempfile.TemporaryDirectory(prefix="registrar-notify-")
            test.addCleanup(d.cleanup)
            self.address = os.path.join(d.name, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.snapshot = snapshot or (lambda: None)
        self._messages = []
        self._lock = threading.Lock()
        self._done = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        test.addCleanup(self.close)

    def _read(self):
        while not self._done:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            seen = self.snapshot()
            with self._lock:
                self._messages.append((fields, seen))

    def messages(self):
        with self._lock:
            return list(self._messages)

    def with_field(self, name, value=None, since=0):
        """(index, fields, snapshot) of the messages from ``since`` on that
        set ``name`` (to ``value``, when given)."""
        return [(i, f, s) for i, (f, s) in enumerate(self.messages()) if i >= since and name in f and
                (value is None or f[name] == value)]

    def wait_for(self, name, value="1", since=0, timeout=15):
        """The first message from ``since`` on setting name=value."""
        return h.wait_until(lambda: (self.with_field(name, value, since) or [None])[0], timeout=timeout,
                            message="%s=%s from registrar; got %r" % (name, value, self.messages()))

    def close(self):
        self._done = True
        self._thread.join(timeout=5)
        self.sock.close()


@h.skip_unless_available(h.Dockerd)
class Notify(DockerTest):
    """The protocol end to end, against the test dockerd and the file backend."""

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="registrar-sd-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.path = os.path.join(self.dir, "registry", "registry.json")

    def services(self):
        try:
            with open(self.path) as f:
                return json.load(f)["services"]
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def web(self):
        cid = self.docker.run("-e", "NAME=web", "-P", "--expose", "80", self.image, "sleep", "3600")
        i = self.docker.inspect(cid)
        return "/services/web/80/%s/%s" % (host_port(i, "80/tcp"), i["Config"]["Hostname"])

    def registrar(self, notify, *args, docker=None, env=None):
        full_env = {"NOTIFY_SOCKET": notify.address}
        full_env.update(env or {})
        return start_registrar(self, "run", "-B", "file://" + self.path, "-D", docker or self.docker.socket,
                               "-H", HOST, "-a", IPADDRESS, "-i", "300", *args, env=full_env)

    def test_ready_waits_until_the_registry_holds_the_containers(self):
        key = self.web()
        # The registry's directory is a link to nothing for now: every
        # write fails (and start-up, which reads the file, does not).
        target = os.path.join(self.dir, "later")
        os.symlink(target, os.path.dirname(self.path))
        notify = NotifySocket(self, snapshot=self.services)
        reg = self.registrar(notify)
        reg.wait_log(r"registry file://\S+: \S+ failed")
        notify.wait_for("STATUS", None)
        self.assertEqual(notify.with_field("READY"), [], "READY=1 before anything was written")

        os.mkdir(target)
        _, fields, registry = notify.wait_for("READY")
        self.assertIn(key, registry, "READY=1 came before the container was in the registry")
        self.assertRegex(fields.get("STATUS", ""), r"^in step")
        self.assertEqual(len(notify.with_field("READY")), 1)

        reg.signal(signal.SIGTERM)
        _, fields, _ = notify.wait_for("STOPPING")
        self.assertIn("SIGTERM", fields.get("STATUS", ""))
        self.assertEqual(reg.wait(), 0)

    def test_ready_waits_for_docker(self):
        key = self.web()
        socket_path = os.path.join(self.dir, "docker.sock")
        notify = NotifySocket(self, snapshot=self.services)
        reg = self.registrar(notify, docker=socket_path)
        reg.wait_log(r"Docker at \S+ is unreachable")
        self.assertEqual(notify.with_field("READY"), [], "READY=1 while Docker was unreachable")

        os.symlink(self.docker.socket, socket_path)
        _, _, registry = notify.wait_for("READY", timeout=30)
        self.assertIn(key, registry)

    def test_sighup_says_reloading_then_ready_with_the_outcome(self):
        self.web()
        config = os.path.join(self.dir, "registrar.yml")
        with open(config, "w") as f:
            f.write("interval: 300\n")
        notify = NotifySocket(self)
        reg = self.registrar(notify, "-c", config)
        first, _, _ = notify.wait_for("READY")

        reg.signal(signal.SIGHUP)
        reloading, fields, _ = notify.wait_for("RELOADING", since=first + 1)
        self.assertRegex(fields.get("MONOTONIC_USEC", ""), r"^\d+$")
        _, fields, _ = notify.wait_for("READY", since=reloading + 1)
        self.assertEqual(fields.get("STATUS"), "configuration and scripts reloaded")

        with open(config, "w") as f:
            f.write("intervall: 300\n")
        reg.signal(signal.SIGHUP)
        reloading, _, _ = notify.wait_for("RELOADING", since=reloading + 1)
        _, fields, _ = notify.wait_for("READY", since=reloading + 1)
        self.assertRegex(fields.get("STATUS", ""),
                         r'^reload failed, running the previous configuration: \S+registrar\.yml:1: unknown key "intervall"')
        self.assertTrue(reg.alive())

    def test_watchdog_pings_come_from_the_running_loop(self):
        notify = NotifySocket(self)
        self.registrar(notify, env={"WATCHDOG_USEC": "200000"})
        h.wait_until(lambda: len(notify.with_field("WATCHDOG")) >= 3, timeout=15,
                     message="three WATCHDOG=1 pings; got %r" % notify.messages())

    def test_no_watchdog_pings_for_another_process(self):
        # WATCHDOG_PID names whom the watchdog is for: pid 1 is not us.
        notify = NotifySocket(self)
        reg = self.registrar(notify, env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
        notify.wait_for("READY")
        time.sleep(1.0)         # twenty periods of a registrar that would ping
        self.assertTrue(reg.alive())
        self.assertEqual(notify.with_field("WATCHDOG"), [])

    def test_an_abstract_socket(self):
        key = self.web()
        notify = NotifySocket(self, abstract=True, snapshot=self.services)
        reg = self.registrar(notify)
        _, _, registry = notify.wait_for("READY")
        self.assertIn(key, registry)
        reg.signal(signal.SIGTERM)
        notify.wait_for("STOPPING")
        self.assertEqual(reg.wait(), 0)


@h.skip_unless_available(h.Dockerd)
class JournalLog(DockerTest):
    """systemd says which stream is the journal with JOURNAL_STREAM=dev:ino;
    a line written there starts with its syslog priority and carries no
    time (the journal stamps it)."""

    def run_with_stream(self, journal_stream_of=None, *args):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-journal-")
        self.addCleanup(tmp.cleanup)
        log = os.path.join(tmp.name, "stdout")
        open(log, "w").close()
        st = os.stat(journal_stream_of or log)
        # a registry whose directory is a link to nothing: a warning line
        blocked = os.path.join(tmp.name, "blocked")
        os.symlink(os.path.join(tmp.name, "nothing"), blocked)
        reg = start_registrar(self, "run", "-B", "file://%s/registry.json" % blocked, "-D", self.docker.socket,
                              "-H", HOST, "-a", IPADDRESS, "-i", "300", *args,
                              env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}, log_path=log)
        reg.wait_log(r"registry file://\S+: \S+ failed")
        reg.signal(signal.SIGTERM)
        self.assertEqual(reg.wait(), 0)
        with open(log) as f:
            return f.read().splitlines()

    def test_lines_carry_their_priority_and_no_time(self):
        lines = self.run_with_stream()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[3467]>(debug|info |warn |error) \S")
            self.assertNotRegex(line, r"\d{4}-\d\d-\d\dT\d\d:\d\d")
        self.assertTrue(any(re.match(r"^<6>info  registrar \d+\.\d+\.\d+: host %s" % HOST, l) for l in lines))
        self.assertTrue(any(re.match(r"^<4>warn  registry file://\S+: \S+ failed", l) for l in lines))
        self.assertTrue(any(re.match(r"^<6>info  SIGTERM: stopping", l) for l in lines))

    def test_json_lines_stay_json_after_the_priority(self):
        lines = self.run_with_stream(None, "--log-level", "debug", "-c", self.json_config())
        levels = set()
        for line in lines:
            m = re.match(r"^<([3467])>(\{.*\})$", line)
            self.assertTrue(m, line)
            doc = json.loads(m.group(2))
            self.assertEqual(set(doc), {"time", "level", "msg"})
            self.assertEqual(m.group(1), {"debug": "7", "info": "6", "warn": "4", "error": "3"}[doc["level"]])
            levels.add(doc["level"])
        self.assertLessEqual({"debug", "info", "warn"}, levels)

    def json_config(self):
        tmp = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
        self.addCleanup(os.unlink, tmp.name)
        tmp.write("log_format: json\n")
        tmp.close()
        return tmp.name

    def test_another_stream_keeps_the_plain_format(self):
        # JOURNAL_STREAM names some other file: inherited, not ours
        lines = self.run_with_stream(SOURCE)
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error) ")


if __name__ == "__main__":
    unittest.main()
