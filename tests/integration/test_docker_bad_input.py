"""registrar against a Docker that says wrong things: answers that are not
JSON, cut off or missing fields, errors, garbage on the event stream, an
event stream that ends, odd bytes and nonsense ports.  A fake Engine API
(fake_docker.py) says them; registrar writes to the file backend.

Whatever Docker says, registrar must keep running, skip what it cannot
read (saying so, with the container's id), never deregister a container
because of a bad answer, and converge once Docker makes sense again."""
import json
import os
import re
import secrets
import tempfile
import time
import unittest

import harness as h
from common import start_registrar
from fake_docker import FakeDocker, container_event, encode, inspect_doc, network_event, raw_text

HOST = "h1"
IPADDRESS = "10.0.0.1"
TIMEOUT = 15
LONG_INTERVAL = "3600000"   # no resync during the test: only events can act


def new_id():
    return secrets.token_hex(32)


def key(doc, port="80/tcp", binding=0):
    """The default key: /services/<ENVIRONMENT>/<NAME>/<port>/<host port>/<hostname>."""
    env = dict(e.partition("=")[::2] for e in doc["Config"]["Env"] if isinstance(e, str))
    number, _, proto = port.partition("/")
    segments = [env.get("ENVIRONMENT"), env.get("NAME"), number if proto == "tcp" else number + ":" + proto,
                doc["NetworkSettings"]["Ports"][port][binding]["HostPort"], doc["Config"]["Hostname"]]
    return "/services/" + "/".join(s for s in segments if s)


class DockerBadInput(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="registrar-badinput-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.path = os.path.join(self.dir, "services.json")
        self.docker = FakeDocker(os.path.join(self.dir, "docker.sock"))
        self.docker.start()
        self.addCleanup(self.docker.stop)
        self.host_ports = iter(range(32768, 40000))

    # -- helpers -------------------------------------------------------------

    def registrar(self, interval="500", *extra, env=None):
        self.reg = start_registrar(self, "run", "-B", "file://" + self.path, "-D", self.docker.socket_path,
                                   "-H", HOST, "-a", IPADDRESS, "-i", interval, "--log-level", "debug", *extra,
                                   env=env)
        return self.reg

    def container(self, name, env=None, ports=None, **kw):
        """A well-formed running container in the fake; returns its inspect
        document."""
        cid = new_id()
        if env is None:
            env = {"ENVIRONMENT": "test", "NAME": name}
        if ports is None:
            ports = {"80/tcp": [("0.0.0.0", str(next(self.host_ports)))]}
        doc = inspect_doc(cid, name, env=env, ports=ports, **kw)
        self.docker.add_container(doc)
        return doc

    def file(self):
        """The registry file, which must always be valid UTF-8 JSON."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {"host": HOST, "services": {}}
        return json.loads(data.decode("utf-8"))

    def services(self):
        return self.file()["services"]

    def wait_services(self, predicate, message):
        return h.wait_until(lambda: predicate(self.services()), timeout=TIMEOUT, message=message)

    def wait_keys(self, keys, message):
        keys = set(keys)
        self.wait_services(lambda s: set(s) == keys, message)

    def wait_log(self, regex, since=0):
        return self.reg.wait_log(regex, timeout=TIMEOUT, since=since)

    def log_count(self, regex, since=0):
        return len(re.findall(regex, self.reg.log()[since:], re.M))

    def wait_log_count(self, regex, count, since=0, message=None):
        h.wait_until(lambda: self.log_count(regex, since) >= count or not self.reg.alive(),
                     timeout=TIMEOUT, message=message or "%d log lines like /%s/" % (count, regex))
        self.assert_running()

    def wait_resyncs(self, count=2):
        """Waits for `count` more full listings to finish."""
        self.wait_log_count(r"debug resync: ", count, since=self.reg.mark(), message="%d more resyncs" % count)

    def assert_running(self):
        self.assertTrue(self.reg.alive(), "registrar exited (code %s); log tail:\n%s"
                        % (self.reg.returncode, self.reg.log_tail()))

    def warning_about(self, cid, text, since=0):
        """Waits for a warning line naming the container (first 12 of its
        id) and holding `text`; returns the line."""
        m = self.wait_log(r"^.* warn .*%s.*%s.*$" % (re.escape(cid[:12]), re.escape(text)), since=since)
        return m.group(0)

    def inspected(self, cid):
        return len(self.docker.requests_for(r"/containers/%s/json$" % cid))

    # -- inspect answers -------------------------------------------------------

    def test_an_inspect_answer_that_is_not_json_skips_that_container(self):
        good = self.container("good")
        bad = {}
        for what, body in [("html", b"<html><body>502 Bad Gateway</body></html>"),
                           ("empty", b""),
                           ("binary", b"\x00\xff\xfe\x1f\x8b\x08garbage"),
                           ("nested", b"[" * 100000),
                           ("word", b"running")]:
            doc = self.container("bad-" + what)
            self.docker.set_inspect_raw(doc["Id"], body)
            bad[what] = doc
        self.registrar()
        self.wait_keys([key(good)], "the good container registered, the bad ones not")
        for what, doc in bad.items():
            with self.subTest(answer=what):
                self.warning_about(doc["Id"], "inspect answer is not JSON")
        # every later listing tries the bad ones again; nothing else changes
        mark = self.reg.mark()
        self.wait_resyncs(2)
        for doc in bad.values():
            self.assertIn(doc["Id"][:12], self.reg.log()[mark:], "the bad container is tried again")
        self.assertEqual(set(self.services()), {key(good)})
        self.assert_running()

    def test_a_cut_off_inspect_answer_skips_that_container(self):
        good = self.container("good")
        half = self.container("half")
        whole = encode(half)
        self.docker.set_inspect_raw(half["Id"], whole[:len(whole) // 2])
        last = self.container("nolastbrace")
        self.docker.set_inspect_raw(last["Id"], encode(last)[:-1])
        # the daemon dies in mid-answer: fewer bytes than Content-Length
        dropped = self.container("dropped")
        whole = encode(dropped)
        self.docker.set_inspect_raw(dropped["Id"], whole[:100], content_length=len(whole))
        self.registrar()
        self.wait_keys([key(good)], "the good container registered, the cut-off ones not")
        self.warning_about(half["Id"], "inspect answer is not JSON")
        self.warning_about(last["Id"], "inspect answer is not JSON")
        self.wait_log(r"container %s: inspect failed: " % dropped["Id"][:12])
        self.wait_resyncs(2)
        self.assertEqual(set(self.services()), {key(good)})
        # whole again: each is registered at a later listing
        for doc in (half, last, dropped):
            self.docker.set_inspect_raw(doc["Id"], None)
        self.wait_keys([key(d) for d in (good, half, last, dropped)], "every container once answered whole")
        self.assert_running()

    def test_an_inspect_answer_that_lacks_fields_is_skipped_without_a_crash(self):
        good = self.container("good")
        id_only = self.container("idonly")
        self.docker.set_inspect_raw(id_only["Id"], encode({"Id": id_only["Id"]}))
        state_only = self.container("stateonly")
        self.docker.set_inspect_raw(state_only["Id"], encode(
            {"Id": state_only["Id"], "Name": "/stateonly", "State": {"Status": "running", "Running": True}}))
        nulls = self.container("nulls")
        self.docker.set_inspect_raw(nulls["Id"], encode(
            {"Id": nulls["Id"], "Name": None, "State": {"Running": True, "Health": None},
             "Config": None, "HostConfig": None, "NetworkSettings": None}))
        wrong_types = self.container("wrongtypes")
        self.docker.set_inspect_raw(wrong_types["Id"], encode(
            {"Id": wrong_types["Id"], "Name": 7, "State": {"Running": True, "Status": 1, "Health": "x"},
             "Config": {"Env": "NAME=x", "Labels": ["a"], "Hostname": [], "Image": {},
                        "ExposedPorts": "80/tcp"},
             "HostConfig": {"NetworkMode": 5},
             "NetworkSettings": {"Ports": ["80/tcp"], "Networks": "bridge"}}))
        no_id = self.container("noid")
        self.docker.set_inspect_raw(no_id["Id"], encode(
            {"Name": "/noid", "State": {"Running": True}, "Config": no_id["Config"],
             "NetworkSettings": no_id["NetworkSettings"]}))
        not_object = self.container("notobject")
        self.docker.set_inspect_raw(not_object["Id"], b'["Id", "State"]')
        state_not_object = self.container("statestring")
        self.docker.set_inspect_raw(state_not_object["Id"], encode(
            {"Id": state_not_object["Id"], "State": "running", "Config": state_not_object["Config"],
             "NetworkSettings": state_not_object["NetworkSettings"]}))

        self.registrar()
        self.wait_keys([key(good)], "only the good container registered")
        self.warning_about(id_only["Id"], "has no State")
        self.warning_about(not_object["Id"], "has no State")
        self.warning_about(state_not_object["Id"], "has no State")
        self.warning_about(no_id["Id"], "unusable inspect answer")
        self.wait_resyncs(2)
        # the answers that were usable, if empty, were taken once and not
        # asked again: they are containers without services
        for doc in (state_only, nulls, wrong_types):
            with self.subTest(container=doc["Name"]):
                self.assertEqual(self.inspected(doc["Id"]), 1, "inspected once and accepted")
                self.assertNotIn(doc["Id"][:12], self.reg.log())
        self.assertEqual(set(self.services()), {key(good)})
        self.assert_running()

    def test_an_inspect_that_answers_500_is_retried_at_a_later_listing(self):
        good = self.container("good")
        failing = self.container("failing")
        self.docker.set_inspect_status(failing["Id"], 500)
        self.registrar()
        self.wait_keys([key(good)], "the good container registered")
        line = self.warning_about(failing["Id"], "status 500")
        self.assertIn("Docker answered inspect", line)
        mark = self.reg.mark()
        # tried again at the next listing; reported again at debug level only
        self.wait_log(r"^.* debug .*%s.*status 500.*$" % re.escape(failing["Id"][:12]), since=mark)
        self.assertEqual(set(self.services()), {key(good)})
        self.docker.set_inspect_status(failing["Id"], None)
        self.wait_keys([key(good), key(failing)], "the container registered once it answers")
        self.assert_running()

    def test_a_registered_container_keeps_its_registration_when_its_inspect_turns_to_garbage(self):
        docs = {name: self.container(name) for name in ("garbage", "nostate", "error", "cut", "steady")}
        keys = [key(d) for d in docs.values()]
        self.registrar()
        self.wait_keys(keys, "every container registered")
        before = self.services()

        mark = self.reg.mark()
        self.docker.set_inspect_raw(docs["garbage"]["Id"], b"\xff\xfe not json at all")
        self.docker.set_inspect_raw(docs["nostate"]["Id"], encode({"Id": docs["nostate"]["Id"]}))
        self.docker.set_inspect_status(docs["error"]["Id"], 500)
        whole = encode(docs["cut"])
        self.docker.set_inspect_raw(docs["cut"]["Id"], whole[:len(whole) // 3])
        for name in ("garbage", "nostate", "error", "cut"):
            self.docker.emit(container_event("start", docs[name]["Id"], name))
        self.docker.emit(container_event("health_status: healthy", docs["garbage"]["Id"], "garbage"))
        self.docker.emit(network_event("connect", docs["error"]["Id"]))
        self.warning_about(docs["garbage"]["Id"], "inspect answer is not JSON", since=mark)
        self.warning_about(docs["nostate"]["Id"], "has no State", since=mark)
        self.warning_about(docs["error"]["Id"], "status 500", since=mark)
        self.warning_about(docs["cut"]["Id"], "inspect answer is not JSON", since=mark)
        self.wait_resyncs(2)
        self.assertEqual(self.services(), before, "nothing changed because of a bad answer")
        self.assertNotRegex(self.reg.log(), r"deregistered")

        # good answers again: still the same, and a death still counts
        for name in ("garbage", "nostate", "cut"):
            self.docker.set_inspect_raw(docs[name]["Id"], None)
        self.docker.set_inspect_status(docs["error"]["Id"], None)
        self.wait_resyncs(2)
        self.assertEqual(self.services(), before)
        self.docker.remove_container(docs["steady"]["Id"])
        self.docker.emit(container_event("die", docs["steady"]["Id"], "steady"))
        self.wait_keys([k for k in keys if k != key(docs["steady"])], "the dead container deregistered")
        self.assert_running()

    # -- the container list ----------------------------------------------------

    def test_a_garbage_container_list_keeps_every_registration(self):
        a, b = self.container("a"), self.container("b")
        self.registrar()
        self.wait_keys([key(a), key(b)], "both containers registered")
        before = self.services()

        # while the list is garbage, b stops and c starts, without events
        warning = r"warn  Docker listed containers as something that is not a list of containers"
        mark = self.reg.mark()
        self.docker.set_list_raw(b"<html>bad gateway</html>")
        self.wait_log(warning, since=mark)
        self.docker.remove_container(b["Id"])
        c = self.container("c")
        good_list = encode([])
        for body in (b"", b"null", b'{"message": "page not found"}', b"\x00\xff\xfe",
                     encode([{"Id": a["Id"], "Names": ["/a"]}])[:20], good_list[:1], b"[" * 100000):
            mark = self.reg.mark()
            self.docker.set_list_raw(body)
            self.wait_log_count(warning, 2, since=mark, message="the garbage list %r logged" % body[:40])
            self.assertEqual(self.services(), before, "registrations kept while the list is %r" % body[:40])

        # an error status: Docker counts as unreachable, registrations stay
        mark = self.reg.mark()
        self.docker.set_list_status(500)
        self.wait_log(r"warn  Docker at .* is unreachable \(GET /containers/json: unexpected status\)", since=mark)
        self.docker.wait_requests(r"^/version$", count=3)
        self.assertEqual(self.services(), before, "registrations kept while the list answers 500")
        self.docker.set_list_status(None)
        self.docker.set_list_raw(None)
        self.wait_keys([key(a), key(c)], "converged once the list is good again")
        self.assert_running()

    def test_a_container_list_whose_entries_are_unreadable_deregisters_nothing(self):
        """A JSON list whose entries have no usable Id tells nothing about
        what runs: it must not be taken for an empty host."""
        a, b = self.container("a"), self.container("b")
        self.registrar()
        self.wait_keys([key(a), key(b)], "both containers registered")
        before = self.services()
        mark = self.reg.mark()
        self.docker.set_list_raw(encode([{"Names": ["/a"], "State": "running"}, 42, None, {"Id": 7},
                                         {"Id": ""}]))
        self.wait_log_count(r"warn  Docker listed containers as something that is not a list of containers", 2,
                            since=mark, message="two unreadable listings")
        self.assertEqual(self.services(), before, "registrations kept; log since:\n" + self.reg.log()[mark:])
        self.docker.set_list_raw(None)
        self.wait_resyncs(2)
        self.assertEqual(self.services(), before)
        self.assert_running()

    # -- the event stream ------------------------------------------------------

    def test_garbage_on_the_event_stream_is_ignored(self):
        a = self.container("a")
        # no resync during this test: what is registered later came from events
        self.registrar(interval=LONG_INTERVAL)
        self.wait_keys([key(a)], "the first container registered")
        self.docker.wait_subscribed()
        self.wait_log(r"debug resync: ")
        mark = self.reg.mark()
        garbage = [
            b"this is not json\n",
            b"[1, 2, 3]\n", b'"a string"\n', b"42\n", b"null\n", b"true\n", b"{}\n",
            b"\n\n\r\n   \n",
            b"\x00\xff\xfe\x80 binary\n",
            b"[" * 100000 + b"\n",
            b'{"Type": "container", "Action": "start"}\n',                                  # no Actor
            encode({"Type": "container", "Action": "start", "Actor": "x"}) + b"\n",
            encode({"Type": "container", "Action": "start", "Actor": {"ID": 42}}) + b"\n",
            encode({"Type": "container", "Action": "start", "Actor": {"ID": ""}}) + b"\n",
            encode({"Type": "container", "Action": 42, "Actor": {"ID": a["Id"]}}) + b"\n",
            encode({"Type": "container", "Action": None, "Actor": {"ID": a["Id"]}}) + b"\n",
            encode({"Type": "network", "Action": "connect", "Actor": {"ID": "f" * 64}}) + b"\n",
            encode({"Type": "network", "Action": "connect",
                    "Actor": {"ID": "f" * 64, "Attributes": {"container": ["x"]}}}) + b"\n",
            encode({"Type": "network", "Action": "disconnect", "Actor": {"ID": "f" * 64, "Attributes": None}}) + b"\n",
            # ids that are not ids, and one no container has
            encode(container_event("start", "../../../version")) + b"\n",
            encode(container_event("start", "a b c")) + b"\n",
            encode(container_event("start", "abc?x=1")) + b"\n",
            encode(container_event("start", "abc#frag")) + b"\n",
            encode(container_event("start", "abc\r\nX-Injected: 1")) + b"\n",
            encode(container_event("start", "%2e%2e%2fversion")) + b"\n",
            encode(container_event("start", "9" * 300)) + b"\n",
            encode(container_event("start", new_id())) + b"\n",
            encode(container_event("die", new_id())) + b"\n",
            b"x" * (2 * 1024 * 1024) + b"\n",                                               # 2 MB line
        ]
        for data in garbage:
            self.assertEqual(self.docker.emit(data), 1)
        self.wait_log(r"warn  Docker sent an event (that is not JSON|longer than)", since=mark)

        # good events after the garbage: one whole, one cut across chunks
        n = self.container("n")
        self.docker.emit(container_event("start", n["Id"], "n"))
        m = self.container("m")
        line = encode(container_event("start", m["Id"], "m")) + b"\n"
        self.docker.emit(line[:17])
        self.docker.emit(line[17:60])
        self.docker.emit(line[60:])
        self.wait_keys([key(a), key(n), key(m)], "containers started after the garbage registered")
        self.docker.remove_container(a["Id"])
        self.docker.emit(container_event("die", a["Id"], "a"))
        self.wait_keys([key(n), key(m)], "a death after the garbage deregistered")

        log = self.reg.log()[mark:]
        self.assertNotIn("unreachable", log, "garbage made registrar drop the stream")
        self.assertEqual(self.docker.subscriptions, 1)
        for method, path in self.docker.requests:
            self.assertNotRegex(path, r"[\r\n ]|X-Injected|/containers/\.\./", "a request built from a bad id")
        self.assert_running()

    # -- what a listing inspects ----------------------------------------------

    def started_and_read(self, name):
        """registrar running, then a container started and read from its
        start event alone; returns the container's inspect document."""
        self.registrar()
        self.docker.wait_subscribed()
        self.wait_log(r"debug resync: ")
        doc = self.container(name)
        self.docker.emit(container_event("start", doc["Id"], name))
        self.wait_keys([key(doc)], "registered from its start event")
        return doc

    def test_a_container_read_after_its_start_event_is_not_inspected_again_by_listings(self):
        a = self.started_and_read("a")
        self.wait_resyncs(3)
        self.assertEqual(self.inspected(a["Id"]), 1, "a later listing inspected it again")

    def test_after_an_unreadable_event_listings_inspect_what_changed(self):
        a = self.started_and_read("a")
        # renamed, and the event that says so arrives as garbage: only the
        # listing can tell, so it must not take the start event's reading
        a["Name"] = "/renamed"
        self.docker.add_container(a)
        self.docker.emit(b'{"Type": "container", "Action": "rename", "Actor": {"ID": \n')
        self.wait_services(lambda s: s.get(key(a), {}).get("name") == "/renamed",
                           "the new name from the listing's inspection")
        self.assertEqual(self.inspected(a["Id"]), 2)

    def test_the_event_stream_closing_is_survived(self):
        a, b = self.container("a"), self.container("b")
        self.registrar()
        self.wait_keys([key(a), key(b)], "both containers registered")
        self.docker.wait_subscribed()
        unreachable = r"warn  Docker at .* is unreachable \((.*)\); keeping every registration"
        running = {"a": a, "b": b}

        # the daemon restarts: the stream ends and it is not back at once;
        # meanwhile one container stops and another starts (no events: the
        # stream is gone)
        for clean, stops, starts in ((True, "b", "c"), (False, "a", "d")):
            with self.subTest(stream_end="clean" if clean else "connection dropped"):
                mark = self.reg.mark()
                versions = len(self.docker.requests_for(r"^/version$"))
                subscribed = self.docker.subscriptions
                with self.docker.lock:
                    self.docker.set_events_status(500)
                    self.docker.close_events(clean=clean)
                self.wait_log(unreachable, since=mark)
                self.docker.wait_requests(r"^/version$", count=versions + 3)   # retried twice more
                self.wait_log(r"debug Docker still unreachable: event stream: status 500", since=mark)
                self.assertEqual(self.log_count(unreachable, mark), 1, "one warning per outage")
                self.assertEqual(set(self.services()), {key(d) for d in running.values()},
                                 "every registration kept while down")

                self.docker.remove_container(running.pop(stops)["Id"])
                running[starts] = self.container(starts)
                self.docker.set_events_status(None)
                self.docker.wait_subscribed(subscribed + 1)
                self.wait_keys([key(d) for d in running.values()], "converged with what Docker holds after the outage")
                self.wait_log(r"info  Docker is back after", since=mark)

        # events on the new stream work
        e = self.container("e")
        self.docker.emit(container_event("start", e["Id"], "e"))
        self.wait_keys([key(d) for d in running.values()] + [key(e)], "a container started after the reconnect")
        self.assert_running()

    # -- odd container data ----------------------------------------------------

    def test_odd_bytes_in_env_and_labels_are_carried_or_refused_without_a_crash(self):
        long_value = "v" * 100000
        odd_env = {
            "ENVIRONMENT": "test", "NAME": "a/b",
            "NEWLINE": "line1\nline2", "TAB": "a\tb", "CR": "a\rb",
            "NOT_UTF8": raw_text(b"ok\xff\xfe\x80end"), "LONG": long_value,
            "EQUALS": "a=b=c", "UNICODE": "h\u00e9llo \u2603", "EMPTY": "", "QUOTE": "\"'\\",
            "PERCENT": "100%",
        }
        odd_labels = {"newline": "a\nb", "not_utf8": raw_text(b"\xc3\x28"), "long": "l" * 100000,
                      "number": 5, "null": None, "object": {"a": 1}, "": "empty name",
                      "com.example/slash": "x/y"}
        odd = self.container("odd", env=dict(odd_env), labels=odd_labels)
        # Env entries that are not K=V: kept out, not fatal
        odd["Config"]["Env"] += ["NOVALUE", "=nokey", 42, None]
        dotdot = self.container("dotdot", env={"ENVIRONMENT": "test", "NAME": ".."})
        refused = {
            "env NAME": self.container("nlname", env={"ENVIRONMENT": "test", "NAME": "a\nb"}),
            "env ENVIRONMENT": self.container("binenv", env={"ENVIRONMENT": raw_text(b"\xff"), "NAME": "x"}),
        }
        toolong = self.container("toolong", env={"ENVIRONMENT": "test", "NAME": "n" * 300})
        good = self.container("good")

        self.registrar()
        odd_key = "/services/test/a%2Fb/80/{}/{}".format(
            odd["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], odd["Config"]["Hostname"])
        self.assertEqual(key(odd), "/services/test/a/b/80/{}/{}".format(
            odd["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], odd["Config"]["Hostname"]))
        self.wait_keys([odd_key, key(good)], "the odd container (NAME escaped) and the good one")
        line = self.warning_about(dotdot["Id"], "env NAME")
        self.assertIn("dotdot", line)
        for origin, doc in refused.items():
            with self.subTest(refused=origin):
                self.assertIn(doc["Name"], self.warning_about(doc["Id"], origin))
        self.warning_about(toolong["Id"], "env NAME")

        doc = self.services()[odd_key]
        env = doc["env"]
        self.assertEqual(doc["path"], odd_key)
        self.assertEqual(env["NAME"], "a/b")
        self.assertEqual(env["NEWLINE"], "line1\nline2")
        self.assertEqual(env["TAB"], "a\tb")
        self.assertEqual(env["CR"], "a\rb")
        self.assertNotIn("LONG", env)   # over 16 KiB: left out, and said
        self.warning_about(odd["Id"], "env LONG is 100000 bytes, over 16384: left out (and 1 more)")
        self.assertEqual(env["EQUALS"], "a=b=c")
        self.assertEqual(env["UNICODE"], "h\u00e9llo \u2603")
        self.assertEqual(env["QUOTE"], "\"'\\")
        self.assertEqual(env["PERCENT"], "100%")
        self.assertTrue(env["NOT_UTF8"].startswith("ok") and env["NOT_UTF8"].endswith("end"), env["NOT_UTF8"])
        self.assertIn("\ufffd", env["NOT_UTF8"])
        self.assertNotIn("NOVALUE", env)
        self.assertNotIn("", env)
        # the file as a whole is strict JSON in valid UTF-8 (file() decodes it strictly)
        with open(self.path, "rb") as f:
            json.loads(f.read().decode("utf-8"), parse_constant=self.fail)
        self.assert_running()

    def test_nonsense_ports_are_skipped_and_valid_ones_registered(self):
        ports = {
            "80/tcp": [("0.0.0.0", "32768")],
            "abc/tcp": [("0.0.0.0", "32769")],
            "0/tcp": [("0.0.0.0", "32770")],
            "70000/tcp": [("0.0.0.0", "32771")],
            "-1/tcp": [("0.0.0.0", "32772")],
            "81/": [("0.0.0.0", "32773")],
            "82/averyveryverylongprotocolname": [("0.0.0.0", "32774")],
            "83/tcp": [("0.0.0.0", "")],
            "84/tcp": [("0.0.0.0", "x")],
            "85/tcp": {"HostIp": "0.0.0.0", "HostPort": "32775"},         # not a list
            "86/tcp": "32776",
            "87/tcp": [("0.0.0.0", "70000")],
            "88/tcp": [("0.0.0.0", "0")],
            "89/tcp": [42, None, "x", ["0.0.0.0", "32777"], {"HostPort": 32778}, {}],
            "90/tcp": [("0.0.0.0", "32779"), ("0.0.0.0", "bad"), ("0.0.0.0", "-5"), ("0.0.0.0", "32780x")],
            "91/udp": [("0.0.0.0", "32781")],
            "92/tcp": None,                                                  # exposed, not published
        }
        c = self.container("ports", ports=ports)
        # whole sections of the wrong type, beside a good container
        broken = self.container("broken")
        broken["NetworkSettings"]["Ports"] = ["80/tcp"]
        broken["Config"]["ExposedPorts"] = "80/tcp"
        broken2 = self.container("broken2")
        broken2["NetworkSettings"]["Ports"] = "80/tcp->32768"
        broken2["Config"]["ExposedPorts"] = ["80/tcp"]
        # host network mode: the exposed ports are the host's own, nonsense skipped
        hostmode = self.container("hostmode", ports={}, network_mode="host", networks={})
        hostmode["Config"]["ExposedPorts"] = {"8080/tcp": {}, "abc": {}, "99999/tcp": {}, "8081/udp": {}}
        hostmode["NetworkSettings"]["Ports"] = {}
        good = self.container("good")

        self.registrar()
        base = "/services/test/ports/%s/%s/" + c["Config"]["Hostname"]
        hbase = "/services/test/hostmode/%s/%s/" + hostmode["Config"]["Hostname"]
        expected = {base % ("80", "32768"), base % ("90", "32779"), base % ("91:udp", "32781"),
                    hbase % ("8080", "8080"), hbase % ("8081:udp", "8081"), key(good)}
        self.wait_keys(expected, "only the valid ports registered")
        self.wait_resyncs(2)
        self.assertEqual(set(self.services()), expected)
        for k in expected:
            self.assertEqual(self.services()[k]["ipaddress"], IPADDRESS)
        for doc in (c, broken, broken2, hostmode):
            self.assertEqual(self.inspected(doc["Id"]), 1, "%s accepted at the first inspect" % doc["Name"])
        self.assert_running()

    # -- data built to cost time or memory ---------------------------------------

    def stop_promptly(self):
        """SIGTERM is acted on at once, not after some hook finishes."""
        started = time.monotonic()
        self.assertEqual(self.reg.terminate(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 5, "SIGTERM waited for something")

    def test_tags_built_to_make_patterns_backtrack_hold_nobody_up(self):
        """Trimming "x", 16 000 spaces, "x" with `^%s*(.-)%s*$` took seconds
        per service, and the loop waited for it: other containers, events
        and SIGTERM too."""
        spaces = " " * 16000
        slow = [self.container("slow%d" % i, env={"ENVIRONMENT": "test", "NAME": "slow%d" % i,
                                                  "TAGS": "x%sx,y" % spaces},
                               ports={"80/tcp": [("0.0.0.0", str(next(self.host_ports)))],
                                      "81/tcp": [("0.0.0.0", str(next(self.host_ports)))]})
                for i in range(5)]
        huge = self.container("huge", env={"ENVIRONMENT": "test", "NAME": "huge", "TAGS": "x%sx" % (" " * 60000)})
        self.registrar(LONG_INTERVAL)
        self.docker.wait_subscribed()
        late = self.container("late")
        self.docker.emit(container_event("start", late["Id"], "late"))
        keys = [key(late), key(huge)] + [key(d) for d in slow] + [key(d, "81/tcp") for d in slow]
        self.wait_keys(keys, "every container registered, the late one too")
        self.assertEqual(self.services()[key(slow[0])]["tags"], ["x%sx" % spaces, "y"])
        self.warning_about(huge["Id"], "env TAGS is 60002 bytes, over 16384: left out")
        self.assertEqual(self.services()[key(huge)]["tags"], [])
        self.stop_promptly()

    def test_a_hook_that_runs_too_long_costs_its_container_only(self):
        site = os.path.join(self.dir, "site.lua")
        with open(site, "w") as f:
            f.write("local registrar = require 'registrar'\n"
                    "function document(service)\n"
                    "  if service.env.SLOW then\n"
                    "    local x = ('x'):rep(100000)\n"
                    "    while true do local y = x:rep(10) end\n"
                    "  end\n"
                    "  return registrar.default.document(service)\n"
                    "end\n")
        slow = self.container("slow", env={"ENVIRONMENT": "test", "NAME": "slow", "SLOW": "1"})
        good = self.container("good")
        self.registrar(LONG_INTERVAL, "--script", site, env={"SCRIPT_TIMEOUT": "300"})
        self.wait_keys([key(good)], "the good container registered")
        line = self.wait_log(r"^.* error .*%s.*$" % re.escape(slow["Id"][:12])).group(0)
        self.assertIn("container /slow (%s): naming failed: %s:5: stopped after 300 ms (script_timeout)"
                      % (slow["Id"][:12], site), line)
        late = self.container("late")
        self.docker.emit(container_event("start", late["Id"], "late"))
        self.wait_keys([key(good), key(late)], "a container started later registered")
        self.stop_promptly()

    def test_an_oversized_inspect_answer_is_refused(self):
        big = self.container("big")
        big["Config"]["Labels"] = {"filler%d" % i: "f" * 10000 for i in range(1000)}   # about 10 MB
        good = self.container("good")
        self.registrar()
        self.wait_keys([key(good)], "the good container registered")
        self.wait_log(r"container %s: inspect failed: the answer is larger than 8388608 bytes" % big["Id"][:12])
        self.assertLess(os.path.getsize(self.path), 100000)
        self.assert_running()

    # -- one key, two containers ---------------------------------------------------

    def test_a_key_two_containers_name_passes_to_the_other_when_its_holder_dies(self):
        """/a and /b name the same key; /a holds it; when /a dies /b takes
        it over at once (it was once deleted, and /b waited for an event
        of its own)."""
        ports = {"80/tcp": [("0.0.0.0", "31000")]}
        a = self.container("a", env={"ENVIRONMENT": "test", "NAME": "shared"}, ports=ports, hostname="shared")
        self.registrar(LONG_INTERVAL)
        self.wait_keys([key(a)], "the holder registered")
        b = self.container("b", env={"ENVIRONMENT": "test", "NAME": "shared"}, ports=ports, hostname="shared")
        self.docker.emit(container_event("start", b["Id"], "b"))
        self.wait_log(r"key %s is named by containers /a \(%s\) and /b \(%s\); keeping it for the first" % (
            re.escape(key(a)), a["Id"][:12], b["Id"][:12]))
        self.assertEqual(self.services()[key(a)]["id"], a["Id"])
        self.docker.remove_container(a["Id"])
        self.docker.emit(container_event("die", a["Id"], "a"))
        self.wait_services(lambda s: s.get(key(a), {}).get("id") == b["Id"], "the other container took it over")
        self.docker.remove_container(b["Id"])
        self.docker.emit(container_event("die", b["Id"], "b"))
        self.wait_keys([], "the key gone with its last claimant")
        self.assert_running()

    # -- the registry file -----------------------------------------------------------

    def test_temporary_files_a_killed_registrar_left_are_removed_at_start(self):
        good = self.container("good")
        reg = self.registrar()
        self.wait_keys([key(good)], "registered")
        reg.kill9()
        # what a kill -9 in the middle of a write leaves: <path>.tmp.<its pid>
        stale = "%s.tmp.%d" % (self.path, reg.pid)
        with open(stale, "w") as f:
            f.write('{"host": "h1", "serv')
        self.registrar()
        self.wait_log(r"removed 1 temporary file\(s\) an earlier run left beside %s" % re.escape(self.path))
        self.assertFalse(os.path.exists(stale))
        self.assertEqual(set(self.services()), {key(good)})

    # -- liveness ------------------------------------------------------------------

    def test_a_container_that_can_never_be_inspected_does_not_block_deregistration(self):
        """A container whose inspect always fails, from start-up on, makes
        every listing incomplete; a container that dies must still be
        deregistered (the README: "They are removed as soon as they die")."""
        broken = self.container("broken")
        self.docker.set_inspect_raw(broken["Id"], b"not json")
        a, b = self.container("a"), self.container("b")
        self.registrar()
        self.wait_keys([key(a), key(b)], "the good containers registered")
        self.warning_about(broken["Id"], "inspect answer is not JSON")
        self.docker.remove_container(b["Id"])
        self.docker.emit(container_event("die", b["Id"], "b"))
        self.wait_keys([key(a)], "the dead container deregistered although another cannot be inspected")
        self.assert_running()


if __name__ == "__main__":
    unittest.main()
