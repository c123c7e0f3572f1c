"""Tests for the Consul stand-in, over real HTTP (urllib).

Run from the repository root:
    /usr/bin/python3 -m unittest -v tests/consul_standin/test_consul_standin.py
"""

import base64
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import consul_standin  # noqa: E402
from consul_standin import format_go_duration, parse_go_duration, start_standin  # noqa: E402

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ANON_SUFFIX = ". The anonymous token is used implicitly when a request does not specify a token."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Reply(object):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def index(self):
        return int(self.headers["X-Consul-Index"])


def call(base, method, path, body=None, headers=None, timeout=30):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


class StandinCase(unittest.TestCase):
    """One stand-in per test class; tests use distinct names."""

    standin_kwargs = {}

    @classmethod
    def setUpClass(cls):
        kwargs = dict(node_name="node1")
        kwargs.update(cls.standin_kwargs)
        cls.standin = start_standin(**kwargs)
        cls.base = cls.standin.url

    @classmethod
    def tearDownClass(cls):
        cls.standin.stop()

    def req(self, method, path, body=None, headers=None, timeout=30):
        return call(self.base, method, path, body, headers, timeout)

    def put(self, path, body=None, headers=None):
        return self.req("PUT", path, body, headers)

    def get(self, path, headers=None, timeout=30):
        return self.req("GET", path, None, headers, timeout)

    def assertStatus(self, reply, status):
        self.assertEqual(reply.status, status, "%d %r" % (reply.status, reply.body[:400]))

    def assertPlainError(self, reply, status, text):
        self.assertStatus(reply, status)
        self.assertEqual(reply.text, text)
        self.assertTrue(reply.headers["Content-Type"].startswith("text/plain"), reply.headers["Content-Type"])

    def register(self, body, query=""):
        r = self.put("/v1/agent/service/register" + query, body)
        self.assertStatus(r, 200)
        return r

    def wait_until(self, predicate, timeout=5.0, step=0.05):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(step)
        return predicate()


# ---------------------------------------------------------------------------


class GoDurationTest(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(parse_go_duration("15s"), 15 * 10**9)
        self.assertEqual(parse_go_duration("1m30s"), 90 * 10**9)
        self.assertEqual(parse_go_duration("1.5h"), 5400 * 10**9)
        self.assertEqual(parse_go_duration("500ms"), 5 * 10**8)
        self.assertEqual(parse_go_duration("0"), 0)
        for bad in ("", "10", "abc", "1x", "."):
            with self.assertRaises(consul_standin.DurationError):
                parse_go_duration(bad)

    def test_format(self):
        self.assertEqual(format_go_duration(10 * 10**9), "10s")
        self.assertEqual(format_go_duration(90 * 10**9), "1m30s")
        self.assertEqual(format_go_duration(3600 * 10**9), "1h0m0s")
        self.assertEqual(format_go_duration(1500 * 10**6), "1.5s")
        self.assertEqual(format_go_duration(5 * 10**6), "5ms")
        self.assertEqual(format_go_duration(0), "0s")


class ProgramTest(unittest.TestCase):
    def test_runs_as_a_program(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "requests.log")
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "consul_standin.py"), "--port", "0",
                 "--node-name", "prog", "--datacenter", "dcx", "--acl-token", "tok", "--log", log],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()
                m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line.strip())
                self.assertIsNotNone(m, line)
                base = "http://127.0.0.1:%s" % m.group(1)
                r = call(base, "GET", "/v1/status/leader")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.json(), "127.0.0.1:8300")
                r = call(base, "GET", "/v1/agent/self", headers={"X-Consul-Token": "tok"})
                self.assertEqual(r.json()["Config"]["NodeName"], "prog")
                self.assertEqual(r.json()["Config"]["Datacenter"], "dcx")
                r = call(base, "GET", "/v1/agent/self?token=tok")
                self.assertEqual(r.status, 200)
            finally:
                proc.terminate()
                proc.wait(10)
                proc.stdout.close()
                proc.stderr.close()
            with open(log) as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), 3)
            self.assertIn("GET /v1/status/leader 200", lines[0])
            self.assertIn("token=<hidden>", lines[2])
            self.assertNotIn("tok ", lines[2])


class GeneralHTTPTest(StandinCase):
    def test_unknown_paths_are_404(self):
        r = self.get("/v1/no/such/thing")
        self.assertPlainError(r, 404, "Invalid URL path: not a recognized HTTP API endpoint\n")
        r = self.get("/nothing")
        self.assertStatus(r, 404)
        r = self.get("/v1/agent/services/")
        self.assertStatus(r, 404)

    def test_known_but_unimplemented_endpoint_is_501(self):
        r = self.get("/v1/health/connect/web")
        self.assertStatus(r, 501)
        self.assertIn("does not implement", r.text)
        r = self.put("/v1/health/connect/web")
        self.assertStatus(r, 405)

    def test_every_501_endpoint_is_listed_in_the_readme(self):
        with open(os.path.join(HERE, "README.md")) as f:
            readme = f.read()
        section = readme.split("## Endpoints that answer 501", 1)[1].split("\n## ", 1)[0]
        listed = {}
        for m in re.finditer(r"^- `([^`]+)` \(([^)]*)\)$", section, re.M):
            listed[m.group(1)] = [] if m.group(2) == "any method" else m.group(2).split(", ")
        api = self.standin.api
        served = {p: list(m) for p, m, fn in api.patterns if fn == api.not_implemented}
        self.assertEqual(listed, served)
        for path, methods in served.items():
            r = self.req(methods[0] if methods else "GET", path + ("x" if path.endswith("/") else ""))
            self.assertStatus(r, 501)

    def test_wrong_method_is_405_with_allow(self):
        for path, allow in [("/v1/agent/service/register", "OPTIONS,PUT"),
                            ("/v1/agent/service/deregister/x", "OPTIONS,PUT"),
                            ("/v1/agent/check/pass/x", "OPTIONS,PUT"),
                            ("/v1/catalog/register", "OPTIONS,PUT"),
                            ("/v1/catalog/deregister", "OPTIONS,PUT"),
                            ("/v1/session/create", "OPTIONS,PUT"),
                            ("/v1/session/renew/x", "OPTIONS,PUT")]:
            r = self.get(path)
            self.assertPlainError(r, 405, "method GET not allowed")
            self.assertEqual(r.headers["Allow"], allow)
        r = self.req("POST", "/v1/agent/service/register", {"Name": "x"})
        self.assertPlainError(r, 405, "method POST not allowed")
        r = self.put("/v1/agent/services")
        self.assertPlainError(r, 405, "method PUT not allowed")
        r = self.req("POST", "/v1/kv/x", b"v")
        self.assertEqual(r.headers["Allow"], "OPTIONS,GET,PUT,DELETE")

    def test_options(self):
        r = self.req("OPTIONS", "/v1/kv/x")
        self.assertStatus(r, 200)
        self.assertEqual(r.headers["Allow"], "OPTIONS,GET,PUT,DELETE")

    def test_json_content_type_and_pretty(self):
        r = self.get("/v1/agent/services")
        self.assertEqual(r.headers["Content-Type"], "application/json")
        r = self.get("/v1/catalog/services?pretty")
        self.assertTrue(r.text.endswith("\n"))
        self.assertIn("\n    ", r.text)
        self.assertEqual(r.headers["X-Consul-Default-Acl-Policy"], "allow")

    def test_gzip_when_accepted(self):
        r = self.get("/v1/catalog/services", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.headers["Content-Encoding"], "gzip")
        self.assertIsInstance(json.loads(gzip.decompress(r.body)), dict)

    def test_status_and_self(self):
        r = self.get("/v1/status/leader")
        self.assertEqual(r.json(), "127.0.0.1:8300")
        self.assertEqual(self.get("/v1/status/peers").json(), ["127.0.0.1:8300"])
        me = self.get("/v1/agent/self").json()
        self.assertEqual(me["Config"]["NodeName"], "node1")
        self.assertEqual(me["Config"]["Datacenter"], "dc1")
        self.assertTrue(me["Config"]["Server"])
        self.assertEqual(me["Member"]["Name"], "node1")

    def test_non_canonical_path_redirects(self):
        r = self.get("/v1/kv")
        self.assertStatus(r, 301)
        self.assertEqual(r.headers["Location"], "/v1/kv/")
        r = self.get("/v1//agent/services")
        self.assertStatus(r, 301)
        self.assertEqual(r.headers["Location"], "/v1/agent/services")

    def test_requests_are_recorded_with_headers_and_body(self):
        self.standin.clear_requests()
        self.put("/v1/kv/rec/a?flags=3", b"payload", headers={"X-Consul-Token": "abc"})
        method, path, query, headers, body = self.standin.requests[-1]
        self.assertEqual((method, path, query, body), ("PUT", "/v1/kv/rec/a", {"flags": ["3"]}, b"payload"))
        self.assertEqual(headers["X-Consul-Token"], "abc")


class AgentServiceTest(StandinCase):
    def test_register_and_list_fields(self):
        self.register({"ID": "web-1", "Name": "web", "Tags": ["a", "b"], "Address": "10.1.2.3",
                       "Port": 8080, "Meta": {"version": "1"}, "EnableTagOverride": True})
        svcs = self.get("/v1/agent/services").json()
        self.assertEqual(svcs["web-1"], {
            "ID": "web-1", "Service": "web", "Tags": ["a", "b"], "Meta": {"version": "1"},
            "Port": 8080, "Address": "10.1.2.3",
            "TaggedAddresses": {"lan_ipv4": {"Address": "10.1.2.3", "Port": 8080},
                                "wan_ipv4": {"Address": "10.1.2.3", "Port": 8080}},
            "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": True,
            "Datacenter": "dc1"})
        self.assertEqual(self.standin.agent_services()["web-1"], svcs["web-1"])

    def test_register_response_is_empty_200(self):
        r = self.register({"Name": "empty-reply"})
        self.assertEqual(r.body, b"")

    def test_id_defaults_to_name_and_empty_defaults(self):
        self.register({"Name": "noid"})
        svc = self.get("/v1/agent/services").json()["noid"]
        self.assertEqual(svc["ID"], "noid")
        self.assertEqual(svc["Tags"], [])
        self.assertEqual(svc["Meta"], {})
        self.assertEqual(svc["Port"], 0)
        self.assertEqual(svc["Address"], "")
        self.assertNotIn("TaggedAddresses", svc)

    def test_missing_name(self):
        r = self.put("/v1/agent/service/register", {"ID": "x", "Port": 1})
        self.assertPlainError(r, 400, "Missing service name")

    def test_unknown_field_rejected(self):
        r = self.put("/v1/agent/service/register", {"Name": "x", "Bogus": 1})
        self.assertPlainError(r, 400, 'Request decode failed: json: unknown field "Bogus"')
        r = self.put("/v1/agent/service/register", {"Name": "x", "Check": {"TTL": "5s", "ID": "c"}})
        self.assertPlainError(r, 400, 'Request decode failed: json: unknown field "ID"')

    def test_bad_bodies(self):
        r = self.put("/v1/agent/service/register", b"")
        self.assertPlainError(r, 400, "Request decode failed: EOF")
        r = self.put("/v1/agent/service/register", b"{not json")
        self.assertStatus(r, 400)
        self.assertTrue(r.text.startswith("Request decode failed: "))
        r = self.put("/v1/agent/service/register", {"Name": "x", "Port": "80"})
        self.assertStatus(r, 400)
        self.assertIn("cannot unmarshal string", r.text)
        r = self.put("/v1/agent/service/register", {"Name": "x", "Meta": {"k": 1}})
        self.assertStatus(r, 400)

    def test_keys_match_case_insensitively_like_go(self):
        # encoding/json matches keys case-insensitively; Consul accepts these.
        self.register({"name": "lower", "port": 7, "tags": ["t"]})
        svc = self.get("/v1/agent/services").json()["lower"]
        self.assertEqual((svc["Port"], svc["Tags"]), (7, ["t"]))

    def test_snake_case_aliases(self):
        self.register({"Name": "snake", "enable_tag_override": True,
                       "Check": {"TTL": "30s", "deregister_critical_service_after": "90m"}})
        self.assertTrue(self.get("/v1/agent/services").json()["snake"]["EnableTagOverride"])

    def test_invalid_address_weights_meta(self):
        r = self.put("/v1/agent/service/register", {"Name": "x", "Address": "0.0.0.0"})
        self.assertPlainError(r, 400, "Invalid service address")
        r = self.put("/v1/agent/service/register", {"Name": "x", "Weights": {"Passing": 0, "Warning": 1}})
        self.assertPlainError(r, 400, "Invalid Weights: Passing must be greater than 0")
        r = self.put("/v1/agent/service/register", {"Name": "x", "Meta": {"bad key": "v"}})
        self.assertStatus(r, 400)
        self.assertTrue(r.text.startswith("Invalid Service Meta: "))

    def test_reregister_replaces(self):
        self.register({"ID": "rr", "Name": "rr", "Port": 1, "Tags": ["old"], "Meta": {"a": "1"}})
        self.register({"ID": "rr", "Name": "rr", "Port": 2, "Tags": ["new"]})
        svc = self.get("/v1/agent/services").json()["rr"]
        self.assertEqual((svc["Port"], svc["Tags"], svc["Meta"]), (2, ["new"], {}))

    def test_get_single_service(self):
        self.register({"ID": "one", "Name": "single", "Port": 5})
        r = self.get("/v1/agent/service/one")
        self.assertStatus(r, 200)
        body = r.json()
        self.assertEqual(body["ID"], "one")
        self.assertEqual(body["ContentHash"], r.headers["X-Consul-Contenthash"])
        r = self.get("/v1/agent/service/nope")
        self.assertPlainError(r, 404, "unknown service ID: nope")

    def test_deregister(self):
        self.register({"ID": "gone", "Name": "gone", "Check": {"TTL": "10s"}})
        self.assertIn("gone", self.standin.catalog()["Services"]["node1"])
        r = self.put("/v1/agent/service/deregister/gone")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"")
        self.assertNotIn("gone", self.get("/v1/agent/services").json())
        self.assertNotIn("service:gone", self.get("/v1/agent/checks").json())
        self.assertNotIn("gone", self.standin.catalog()["Services"]["node1"])
        r = self.put("/v1/agent/service/deregister/gone")
        self.assertPlainError(r, 404, 'Unknown service ID "gone". Ensure that the service ID is passed, '
                                      'not the service name.')

    def test_single_check_id_and_defaults(self):
        self.register({"ID": "c1", "Name": "svc-c1", "Tags": ["x"], "Check": {"TTL": "15s"}})
        chk = self.get("/v1/agent/checks").json()["service:c1"]
        self.assertEqual(chk, {
            "Node": "node1", "CheckID": "service:c1", "Name": "Service 'svc-c1' check",
            "Status": "critical", "Notes": "", "Output": "", "ServiceID": "c1",
            "ServiceName": "svc-c1", "ServiceTags": ["x"], "Type": "ttl", "Interval": "",
            "Timeout": "", "ExposedPort": 0, "Definition": {}, "CreateIndex": 0, "ModifyIndex": 0})

    def test_multiple_checks_ids(self):
        self.register({"ID": "c2", "Name": "svc-c2", "Checks": [
            {"TTL": "15s"},
            {"HTTP": "http://127.0.0.1:1/health", "Interval": "10s", "Timeout": "1s",
             "Method": "GET", "Header": {"X": ["y"]}, "TLSSkipVerify": True},
            {"CheckID": "mine", "Name": "custom", "TCP": "127.0.0.1:1", "Interval": "5s",
             "Status": "passing", "Notes": "n"}]})
        checks = self.get("/v1/agent/checks").json()
        self.assertIn("service:c2:1", checks)
        self.assertIn("service:c2:2", checks)
        self.assertIn("mine", checks)
        self.assertEqual(checks["service:c2:2"]["Type"], "http")
        self.assertEqual(checks["service:c2:2"]["Interval"], "10s")
        self.assertEqual(checks["service:c2:2"]["Timeout"], "1s")
        self.assertEqual(checks["mine"]["Status"], "passing")
        self.assertEqual(checks["mine"]["Name"], "custom")
        self.assertEqual(checks["mine"]["Type"], "tcp")

    def test_check_validation(self):
        r = self.put("/v1/agent/service/register", {"Name": "v", "Check": {"Name": "no type"}})
        self.assertPlainError(r, 400, "Invalid check: TTL must be > 0 for TTL checks")
        r = self.put("/v1/agent/service/register", {"Name": "v", "Check": {"HTTP": "http://x"}})
        self.assertPlainError(r, 400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, "
                                      "TCP, UDP or OSService checks")
        r = self.put("/v1/agent/service/register", {"Name": "v", "Check": {"TTL": "5s", "Status": "ok"}})
        self.assertPlainError(r, 400, "Status for checks must 'passing', 'warning', 'critical'")
        r = self.put("/v1/agent/service/register", {"Name": "v", "Check": {"TTL": "5"}})
        self.assertPlainError(r, 400, 'Request decode failed: time: missing unit in duration "5"')
        r = self.put("/v1/agent/service/register", {"Name": "v", "Check": {"Args": ["/bin/true"], "Interval": "5s"}})
        self.assertStatus(r, 500)
        self.assertIn("enable_script_checks", r.text)

    def test_replace_existing_checks(self):
        self.register({"ID": "rep", "Name": "rep", "Checks": [{"CheckID": "a", "TTL": "5s"},
                                                                {"CheckID": "b", "TTL": "5s"}]})
        self.register({"ID": "rep", "Name": "rep", "Checks": [{"CheckID": "a", "TTL": "5s"}]})
        self.assertIn("b", self.get("/v1/agent/checks").json())  # kept without the flag
        self.register({"ID": "rep", "Name": "rep", "Checks": [{"CheckID": "a", "TTL": "5s"}]},
                      "?replace-existing-checks=true")
        checks = self.get("/v1/agent/checks").json()
        self.assertIn("a", checks)
        self.assertNotIn("b", checks)

    def test_check_state_survives_reregistration(self):
        self.register({"ID": "keep", "Name": "keep", "Check": {"TTL": "30s"}})
        self.assertStatus(self.put("/v1/agent/check/pass/service:keep?note=fine"), 200)
        self.register({"ID": "keep", "Name": "keep", "Port": 9, "Check": {"TTL": "30s"}})
        chk = self.get("/v1/agent/checks").json()["service:keep"]
        self.assertEqual((chk["Status"], chk["Output"]), ("passing", "fine"))

    def test_agent_services_appear_in_catalog(self):
        self.register({"ID": "cat-1", "Name": "catsvc", "Address": "10.0.0.9", "Port": 99, "Tags": ["t1"]})
        nodes = self.get("/v1/catalog/service/catsvc").json()
        self.assertEqual(len(nodes), 1)
        n = nodes[0]
        self.assertEqual((n["Node"], n["ServiceID"], n["ServiceName"], n["ServiceAddress"], n["ServicePort"],
                          n["ServiceTags"], n["Datacenter"]),
                         ("node1", "cat-1", "catsvc", "10.0.0.9", 99, ["t1"], "dc1"))
        self.assertEqual(sorted(self.get("/v1/catalog/services").json()["catsvc"]), ["t1"])


class TTLCheckTest(StandinCase):
    standin_kwargs = {"check_deregister_interval_min": 0.0, "check_reap_interval": 0.05}

    def test_pass_warn_fail_update(self):
        self.register({"ID": "t1", "Name": "ttl1", "Check": {"TTL": "30s"}})
        for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
            r = self.put("/v1/agent/check/%s/service:t1?note=%s-note" % (verb, verb))
            self.assertStatus(r, 200)
            self.assertEqual(r.body, b"")
            chk = self.get("/v1/agent/checks").json()["service:t1"]
            self.assertEqual((chk["Status"], chk["Output"]), (status, verb + "-note"))
        r = self.put("/v1/agent/check/update/service:t1", {"Status": "passing", "Output": "from update"})
        self.assertStatus(r, 200)
        chk = self.get("/v1/agent/checks").json()["service:t1"]
        self.assertEqual((chk["Status"], chk["Output"]), ("passing", "from update"))
        catalog_check = self.standin.catalog()["Checks"]["node1"]["service:t1"]
        self.assertEqual(catalog_check["Status"], "passing")

    def test_update_errors(self):
        self.register({"ID": "t2", "Name": "ttl2", "Check": {"TTL": "30s"}})
        r = self.put("/v1/agent/check/update/service:t2", {"Status": "fine"})
        self.assertPlainError(r, 400, "Invalid check status: 'fine'")
        r = self.put("/v1/agent/check/update/service:t2", {"Status": "passing", "Extra": 1})
        self.assertPlainError(r, 400, 'Request decode failed: json: unknown field "Extra"')
        r = self.put("/v1/agent/check/pass/nope")
        self.assertPlainError(r, 404, 'Unknown check ID "nope". Ensure that the check ID is passed, '
                                      'not the check name.')
        self.register({"ID": "h", "Name": "http", "Check": {"HTTP": "http://127.0.0.1:1", "Interval": "10s"}})
        r = self.put("/v1/agent/check/pass/service:h")
        self.assertPlainError(r, 500, 'CheckID "service:h" does not have associated TTL')
        r = self.get("/v1/agent/check/pass/service:t2")
        self.assertStatus(r, 405)

    def test_ttl_expiry_turns_critical(self):
        self.register({"ID": "t3", "Name": "ttl3", "Check": {"TTL": "1s", "Status": "passing"}})
        self.assertEqual(self.get("/v1/agent/checks").json()["service:t3"]["Status"], "passing")
        self.assertStatus(self.put("/v1/agent/check/pass/service:t3?note=alive"), 200)
        time.sleep(0.6)
        self.assertStatus(self.put("/v1/agent/check/pass/service:t3?note=alive"), 200)  # resets the TTL
        time.sleep(0.6)
        self.assertEqual(self.get("/v1/agent/checks").json()["service:t3"]["Status"], "passing")
        time.sleep(0.7)
        chk = self.get("/v1/agent/checks").json()["service:t3"]
        self.assertEqual(chk["Status"], "critical")
        self.assertEqual(chk["Output"], "TTL expired (last output before timeout follows): alive")
        self.assertEqual(self.standin.catalog()["Checks"]["node1"]["service:t3"]["Status"], "critical")

    def test_deregister_critical_service_after(self):
        self.register({"ID": "t4", "Name": "ttl4",
                       "Check": {"TTL": "1s", "DeregisterCriticalServiceAfter": "500ms"}})
        self.assertStatus(self.put("/v1/agent/check/pass/service:t4"), 200)
        time.sleep(0.8)
        self.assertIn("t4", self.get("/v1/agent/services").json())
        self.assertTrue(self.wait_until(lambda: "t4" not in self.get("/v1/agent/services").json(), 3.0))
        self.assertNotIn("service:t4", self.get("/v1/agent/checks").json())
        self.assertEqual(self.get("/v1/catalog/service/ttl4").json(), [])

    def test_set_check_status_for_checks_the_standin_does_not_run(self):
        self.register({"ID": "t5", "Name": "http5", "Check": {"HTTP": "http://127.0.0.1:1", "Interval": "10s",
                                                               "DeregisterCriticalServiceAfter": "300ms"}})
        self.standin.set_check_status("service:t5", "passing", "HTTP GET: 200 OK")
        self.assertEqual(self.get("/v1/agent/checks").json()["service:t5"]["Output"], "HTTP GET: 200 OK")
        self.standin.set_check_status("service:t5", "critical", "connection refused")
        self.assertTrue(self.wait_until(lambda: "t5" not in self.standin.agent_services(), 3.0))


class DeregisterFloorTest(StandinCase):
    """Consul's default floor: DeregisterCriticalServiceAfter below 1m counts as 1m."""

    standin_kwargs = {"check_reap_interval": 0.05}

    def test_floor_applies(self):
        self.register({"ID": "f1", "Name": "floor",
                       "Check": {"TTL": "1s", "DeregisterCriticalServiceAfter": "100ms"}})
        time.sleep(1.6)
        self.assertEqual(self.get("/v1/agent/checks").json()["service:f1"]["Status"], "critical")
        self.assertIn("f1", self.get("/v1/agent/services").json())


class CatalogTest(StandinCase):
    standin_kwargs = {"extra_datacenters": ["dc2"]}

    def reg(self, body):
        r = self.put("/v1/catalog/register", body)
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), True)
        self.assertEqual(r.headers["Content-Type"], "application/json")

    def test_register_and_read(self):
        self.reg({"Node": "ext1", "Address": "192.168.1.1", "NodeMeta": {"rack": "r1"},
                  "TaggedAddresses": {"wan": "1.2.3.4"},
                  "Service": {"ID": "redis1", "Service": "redis", "Tags": ["primary"],
                              "Address": "192.168.1.2", "Port": 6379, "Meta": {"v": "7"}},
                  "Check": {"CheckID": "service:redis1", "Name": "redis alive", "Status": "passing",
                            "ServiceID": "redis1", "Definition": {"TCP": "192.168.1.2:6379",
                                                                  "Interval": "5s"}}})
        r = self.get("/v1/catalog/service/redis")
        self.assertGreaterEqual(r.index, 1)
        self.assertEqual(r.headers["X-Consul-Knownleader"], "true")
        [sn] = r.json()
        expected_keys = ["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta", "ServiceKind",
                         "ServiceID", "ServiceName", "ServiceTags", "ServiceAddress", "ServiceWeights",
                         "ServiceMeta", "ServicePort", "ServiceSocketPath", "ServiceEnableTagOverride",
                         "ServiceProxy", "ServiceConnect", "ServiceLocality", "CreateIndex", "ModifyIndex"]
        self.assertEqual(list(sn.keys()), expected_keys)
        self.assertEqual((sn["Node"], sn["Address"], sn["Datacenter"], sn["ServiceID"], sn["ServiceName"],
                          sn["ServiceTags"], sn["ServiceAddress"], sn["ServicePort"], sn["ServiceMeta"],
                          sn["NodeMeta"], sn["TaggedAddresses"]),
                         ("ext1", "192.168.1.1", "dc1", "redis1", "redis", ["primary"], "192.168.1.2", 6379,
                          {"v": "7"}, {"rack": "r1"}, {"wan": "1.2.3.4"}))
        services = self.get("/v1/catalog/services").json()
        self.assertEqual(services["redis"], ["primary"])
        self.assertEqual(services["consul"], [])
        node = self.get("/v1/catalog/node/ext1").json()
        self.assertEqual(node["Node"]["Node"], "ext1")
        self.assertEqual(node["Services"]["redis1"]["Port"], 6379)
        self.assertEqual(node["Services"]["redis1"]["Service"], "redis")
        names = [n["Node"] for n in self.get("/v1/catalog/nodes").json()]
        self.assertIn("ext1", names)
        self.assertIn("node1", names)
        chk = self.standin.catalog()["Checks"]["ext1"]["service:redis1"]
        self.assertEqual(chk["Definition"], {"Interval": "5s", "TCP": "192.168.1.2:6379"})
        self.assertEqual(chk["Type"], "tcp")

    def test_id_defaults_to_service_name(self):
        self.reg({"Node": "ext2", "Address": "10.9.9.9", "Service": {"Service": "memcached"}})
        self.assertEqual(self.get("/v1/catalog/service/memcached").json()[0]["ServiceID"], "memcached")

    def test_validation(self):
        r = self.put("/v1/catalog/register", {"Address": "1.1.1.1"})
        self.assertPlainError(r, 500, "Must provide node")
        r = self.put("/v1/catalog/register", {"Node": "x"})
        self.assertPlainError(r, 500, "Must provide address if SkipNodeUpdate is not set")
        r = self.put("/v1/catalog/register", {"Node": "x", "Address": "1.1.1.1", "Unknown": True})
        self.assertPlainError(r, 400, 'Request decode failed: json: unknown field "Unknown"')
        r = self.put("/v1/catalog/register", {"Node": "x", "Address": "1.1.1.1", "Service": {"ID": "a"}})
        self.assertPlainError(r, 500, "Must provide service name (Service.Service) when service ID is provided")
        r = self.put("/v1/catalog/register", {"Node": "x", "Address": "1.1.1.1",
                                              "Check": {"Name": "c", "ServiceID": "missing"}})
        self.assertPlainError(r, 500, "Missing service registration")
        r = self.put("/v1/catalog/register", {"Node": "x", "Address": "1.1.1.1", "ID": "not-a-uuid"})
        self.assertStatus(r, 500)
        self.assertTrue(r.text.startswith("Bad node ID"))
        self.assertNotIn("x", self.standin.catalog()["Nodes"])

    def test_deregister_service_check_node(self):
        self.reg({"Node": "ext3", "Address": "10.0.0.3",
                  "Service": {"ID": "s3", "Service": "svc3"},
                  "Checks": [{"CheckID": "n3", "Name": "node check", "Status": "passing"},
                             {"CheckID": "c3", "Name": "svc check", "ServiceID": "s3"}]})
        self.assertEqual(self.put("/v1/catalog/deregister", {"Node": "ext3", "CheckID": "n3"}).json(), True)
        self.assertNotIn("n3", self.standin.catalog()["Checks"]["ext3"])
        self.assertEqual(self.put("/v1/catalog/deregister", {"Node": "ext3", "ServiceID": "s3"}).json(), True)
        cat = self.standin.catalog()
        self.assertEqual(cat["Services"]["ext3"], {})
        self.assertEqual(cat["Checks"]["ext3"], {})
        self.assertEqual(self.put("/v1/catalog/deregister", {"Node": "ext3"}).json(), True)
        self.assertNotIn("ext3", self.standin.catalog()["Nodes"])
        r = self.put("/v1/catalog/deregister", {"Node": "ext3", "Bogus": 1})
        self.assertStatus(r, 400)
        r = self.put("/v1/catalog/deregister", {})
        self.assertPlainError(r, 500, "Must provide node")

    def test_unknown_node_is_null(self):
        r = self.get("/v1/catalog/node/does-not-exist")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"null")
        self.assertPlainError(self.get("/v1/catalog/node/"), 400, "Missing node name")
        self.assertPlainError(self.get("/v1/catalog/service/"), 400, "Missing service name")

    def test_unknown_service_is_empty_list(self):
        r = self.get("/v1/catalog/service/nothing-here")
        self.assertEqual(r.json(), [])
        self.assertGreaterEqual(r.index, 1)

    def test_datacenters_are_separate(self):
        self.reg({"Datacenter": "dc2", "Node": "far", "Address": "10.2.0.1",
                  "Service": {"Service": "remote", "Port": 1}})
        self.assertEqual(self.get("/v1/catalog/service/remote").json(), [])
        far = self.get("/v1/catalog/service/remote?dc=dc2").json()
        self.assertEqual([(x["Node"], x["Datacenter"]) for x in far], [("far", "dc2")])
        self.assertIn("far", self.standin.catalog("dc2")["Nodes"])
        self.assertEqual(self.get("/v1/catalog/datacenters").json(), ["dc1", "dc2"])
        r = self.get("/v1/catalog/services?dc=dc9")
        self.assertPlainError(r, 500, "No path to datacenter")
        r = self.put("/v1/catalog/register", {"Datacenter": "dc9", "Node": "x", "Address": "1.1.1.1"})
        self.assertPlainError(r, 500, "No path to datacenter")
        r = self.get("/v1/kv/x?dc=dc9")
        self.assertPlainError(r, 500, "No path to datacenter")

    def test_tag_and_node_meta_filters(self):
        self.reg({"Node": "f1", "Address": "10.5.0.1", "NodeMeta": {"env": "prod"},
                  "Service": {"ID": "fa", "Service": "filt", "Tags": ["Blue", "x"]}})
        self.reg({"Node": "f2", "Address": "10.5.0.2", "NodeMeta": {"env": "dev"},
                  "Service": {"ID": "fb", "Service": "filt", "Tags": ["red"]}})
        self.assertEqual([x["ServiceID"] for x in self.get("/v1/catalog/service/filt?tag=blue").json()], ["fa"])
        self.assertEqual([x["ServiceID"] for x in self.get("/v1/catalog/service/filt?node-meta=env:dev").json()],
                         ["fb"])
        self.assertEqual(sorted(self.get("/v1/catalog/services").json()["filt"]), ["Blue", "red", "x"])

    def test_anti_entropy_reverts_catalog_writes_to_the_agent_node(self):
        self.reg({"Node": "node1", "Address": "127.0.0.1", "Service": {"Service": "sneaky"}})
        self.assertEqual(self.get("/v1/catalog/service/sneaky").json(), [])
        self.assertIn("consul", self.standin.catalog()["Services"]["node1"])


class KVTest(StandinCase):
    standin_kwargs = {"session_ttl_min": 0.5}

    def test_put_get_shape(self):
        r = self.put("/v1/kv/app/config", b"hello")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"true")
        self.assertEqual(r.headers["Content-Type"], "application/json")
        r = self.get("/v1/kv/app/config")
        self.assertStatus(r, 200)
        [e] = r.json()
        self.assertEqual(list(e.keys()), ["LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"])
        self.assertEqual((e["Key"], e["Flags"], base64.b64decode(e["Value"]), e["LockIndex"]),
                         ("app/config", 0, b"hello", 0))
        self.assertEqual(r.index, e["ModifyIndex"])
        self.assertEqual(self.standin.kv()["app/config"]["Value"], b"hello")

    def test_missing_key_is_404_with_index(self):
        r = self.get("/v1/kv/missing/key")
        self.assertStatus(r, 404)
        self.assertEqual(r.body, b"")
        self.assertGreaterEqual(r.index, 1)

    def test_raw_and_flags(self):
        self.put("/v1/kv/raw/k?flags=42", b"\x00\xffbin")
        r = self.get("/v1/kv/raw/k?raw")
        self.assertEqual(r.body, b"\x00\xffbin")
        self.assertEqual(r.headers["Content-Type"], "text/plain")
        self.assertEqual(self.get("/v1/kv/raw/k").json()[0]["Flags"], 42)

    def test_empty_value_is_null(self):
        self.put("/v1/kv/empty/v", b"")
        self.assertIsNone(self.get("/v1/kv/empty/v").json()[0]["Value"])

    def test_cas(self):
        self.assertEqual(self.put("/v1/kv/cas/k?cas=0", b"1").json(), True)
        self.assertEqual(self.put("/v1/kv/cas/k?cas=0", b"2").json(), False)
        idx = self.get("/v1/kv/cas/k").json()[0]["ModifyIndex"]
        self.assertEqual(self.put("/v1/kv/cas/k?cas=%d" % (idx + 1000), b"3").json(), False)
        self.assertEqual(self.put("/v1/kv/cas/k?cas=%d" % idx, b"4").json(), True)
        self.assertEqual(base64.b64decode(self.get("/v1/kv/cas/k").json()[0]["Value"]), b"4")
        idx = self.get("/v1/kv/cas/k").json()[0]["ModifyIndex"]
        self.assertEqual(self.req("DELETE", "/v1/kv/cas/k?cas=1").json(), False)
        self.assertEqual(self.req("DELETE", "/v1/kv/cas/k?cas=%d" % idx).json(), True)
        self.assertStatus(self.get("/v1/kv/cas/k"), 404)

    def test_recurse_keys_separator_delete(self):
        for k in ("tree/a", "tree/b/c", "tree/b/d", "treeX"):
            self.put("/v1/kv/" + k, k.encode())
        got = [e["Key"] for e in self.get("/v1/kv/tree/?recurse").json()]
        self.assertEqual(got, ["tree/a", "tree/b/c", "tree/b/d"])
        self.assertEqual(self.get("/v1/kv/tree/?keys").json(), ["tree/a", "tree/b/c", "tree/b/d"])
        self.assertEqual(self.get("/v1/kv/tree/?keys&separator=/").json(), ["tree/a", "tree/b/"])
        self.assertEqual(self.get("/v1/kv/tree?keys&separator=/").json(), ["tree/", "treeX"])
        self.assertStatus(self.get("/v1/kv/nothing/?keys"), 404)
        self.assertEqual(self.req("DELETE", "/v1/kv/tree/b/c").json(), True)
        self.assertEqual(self.req("DELETE", "/v1/kv/tree/?recurse").json(), True)
        self.assertStatus(self.get("/v1/kv/tree/?recurse"), 404)
        self.assertStatus(self.get("/v1/kv/treeX"), 200)

    def test_errors(self):
        self.assertPlainError(self.get("/v1/kv/"), 400, "Missing key name")
        self.assertPlainError(self.put("/v1/kv/", b"x"), 400, "Missing key name")
        self.assertPlainError(self.req("DELETE", "/v1/kv/"), 400, "Missing key name")
        r = self.put("/v1/kv/x?cas=1&acquire=abc", b"x")
        self.assertPlainError(r, 400, "Conflicting flags: acquire=abc&cas=1")
        r = self.req("DELETE", "/v1/kv/x?recurse&cas=1")
        self.assertPlainError(r, 400, "Conflicting flags: cas=1&recurse=")
        r = self.put("/v1/kv/x?flags=abc", b"x")
        self.assertStatus(r, 500)
        r = self.put("/v1/kv/big", b"x" * (512 * 1024 + 1))
        self.assertStatus(r, 413)

    def test_leading_slash_is_not_stripped_by_the_server(self):
        # Consul's Go client strips it; the server's mux redirects "//".
        r = self.put("/v1/kv//lead", b"x")
        self.assertStatus(r, 301)
        self.assertEqual(r.headers["Location"], "/v1/kv/lead")

    def session(self, **body):
        r = self.put("/v1/session/create", body)
        self.assertStatus(r, 200)
        return r.json()["ID"]

    def test_acquire_release(self):
        s1 = self.session(Name="one", LockDelay="0s")
        s2 = self.session(Name="two")
        self.assertEqual(self.put("/v1/kv/lock/a?acquire=" + s1, b"leader-1").json(), True)
        e = self.get("/v1/kv/lock/a").json()[0]
        self.assertEqual((e["Session"], e["LockIndex"]), (s1, 1))
        self.assertEqual(self.put("/v1/kv/lock/a?acquire=" + s2, b"leader-2").json(), False)
        self.assertEqual(self.put("/v1/kv/lock/a?acquire=" + s1, b"again").json(), True)
        self.assertEqual(self.get("/v1/kv/lock/a").json()[0]["LockIndex"], 1)
        self.assertEqual(self.put("/v1/kv/lock/a?release=" + s2, b"").json(), False)
        self.assertEqual(self.put("/v1/kv/lock/a?release=" + s1, b"free").json(), True)
        e = self.get("/v1/kv/lock/a").json()[0]
        self.assertNotIn("Session", e)
        self.assertEqual((e["LockIndex"], base64.b64decode(e["Value"])), (1, b"free"))
        self.assertEqual(self.put("/v1/kv/lock/a?acquire=" + s2, b"leader-2").json(), True)
        self.assertEqual(self.get("/v1/kv/lock/a").json()[0]["LockIndex"], 2)
        r = self.put("/v1/kv/lock/b?acquire=00000000-0000-0000-0000-000000000000", b"")
        self.assertPlainError(r, 500, 'apply failed: invalid session "00000000-0000-0000-0000-000000000000"')

    def test_lock_delay_after_invalidation(self):
        s1 = self.session(Name="delayed", LockDelay="1s")
        s2 = self.session(Name="waiter")
        self.assertEqual(self.put("/v1/kv/ld/k?acquire=" + s1, b"").json(), True)
        self.assertEqual(self.put("/v1/session/destroy/" + s1).json(), True)
        self.assertNotIn("Session", self.get("/v1/kv/ld/k").json()[0])
        self.assertEqual(self.put("/v1/kv/ld/k?acquire=" + s2, b"").json(), False)
        time.sleep(1.1)
        self.assertEqual(self.put("/v1/kv/ld/k?acquire=" + s2, b"").json(), True)


class SessionTest(StandinCase):
    standin_kwargs = {"session_ttl_min": 0.5, "check_deregister_interval_min": 0.0,
                      "check_reap_interval": 0.05}

    def create(self, body=None, status=200):
        r = self.put("/v1/session/create", body)
        self.assertStatus(r, status)
        return r

    def test_create_info_list_renew_destroy(self):
        r = self.create({"Name": "s", "TTL": "15s"})
        self.assertEqual(r.headers["Content-Type"], "application/json")
        sid = r.json()["ID"]
        self.assertRegex(sid, UUID_RE)
        info = self.get("/v1/session/info/" + sid)
        self.assertGreaterEqual(info.index, 1)
        [s] = info.json()
        self.assertEqual(list(s.keys()), ["ID", "Name", "Node", "LockDelay", "Behavior", "TTL", "NodeChecks",
                                          "ServiceChecks", "CreateIndex", "ModifyIndex"])
        self.assertEqual((s["ID"], s["Name"], s["Node"], s["LockDelay"], s["Behavior"], s["TTL"],
                          s["NodeChecks"], s["ServiceChecks"]),
                         (sid, "s", "node1", 15 * 10**9, "release", "15s", ["serfHealth"], None))
        self.assertIn(sid, [x["ID"] for x in self.get("/v1/session/list").json()])
        self.assertIn(sid, [x["ID"] for x in self.get("/v1/session/node/node1").json()])
        self.assertIn(sid, self.standin.sessions())
        r = self.put("/v1/session/renew/" + sid)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()[0]["ID"], sid)
        self.assertEqual(self.put("/v1/session/destroy/" + sid).json(), True)
        self.assertEqual(self.get("/v1/session/info/" + sid).json(), [])
        r = self.put("/v1/session/renew/" + sid)
        self.assertPlainError(r, 404, "Session id '%s' not found" % sid)
        self.assertEqual(self.put("/v1/session/destroy/" + sid).json(), True)

    def test_create_without_body_uses_defaults(self):
        sid = self.create().json()["ID"]
        s = self.get("/v1/session/info/" + sid).json()[0]
        self.assertEqual((s["Behavior"], s["TTL"], s["LockDelay"]), ("release", "", 15 * 10**9))

    def test_lock_delay_numbers_below_1000_are_seconds(self):
        sid = self.create({"LockDelay": 5}).json()["ID"]
        self.assertEqual(self.get("/v1/session/info/" + sid).json()[0]["LockDelay"], 5 * 10**9)

    def test_validation(self):
        r = self.create({"TTL": "0.1s"}, 500)
        self.assertEqual(r.text, "Invalid Session TTL '100000000', must be between [500ms=24h0m0s]")
        r = self.create({"TTL": "bogus"}, 500)
        self.assertEqual(r.text, 'Session TTL \'bogus\' invalid: time: invalid duration "bogus"')
        r = self.create({"Behavior": "explode"}, 500)
        self.assertEqual(r.text, "Invalid Behavior setting 'explode'")
        r = self.create({"Node": "ghost"}, 500)
        self.assertEqual(r.text, "apply failed: Missing node registration")
        r = self.create({"NodeChecks": ["nope"]}, 500)
        self.assertEqual(r.text, "apply failed: Missing check 'nope' registration")
        r = self.create(b"{bad", 400)
        self.assertTrue(r.text.startswith("Request decode failed: "))
        self.assertStatus(self.get("/v1/session/create"), 405)
        self.assertPlainError(self.put("/v1/session/destroy/"), 400, "Missing session")

    def test_ttl_expiry_with_delete_behavior_deletes_keys(self):
        sid = self.create({"TTL": "1s", "Behavior": "delete", "LockDelay": "0s"}).json()["ID"]
        self.assertEqual(self.put("/v1/kv/sess/del?acquire=" + sid, b"mine").json(), True)
        time.sleep(0.5)
        self.assertStatus(self.get("/v1/kv/sess/del"), 200)
        self.assertTrue(self.wait_until(lambda: self.get("/v1/kv/sess/del").status == 404, 2.0))
        self.assertEqual(self.get("/v1/session/info/" + sid).json(), [])
        self.assertNotIn("sess/del", self.standin.kv())

    def test_ttl_expiry_with_release_behavior_releases_keys(self):
        sid = self.create({"TTL": "1s", "LockDelay": "0s"}).json()["ID"]
        self.assertEqual(self.put("/v1/kv/sess/rel?acquire=" + sid, b"mine").json(), True)
        self.assertTrue(self.wait_until(lambda: "Session" not in self.get("/v1/kv/sess/rel").json()[0], 2.5))
        e = self.get("/v1/kv/sess/rel").json()[0]
        self.assertEqual((e["LockIndex"], base64.b64decode(e["Value"])), (1, b"mine"))

    def test_renew_keeps_session_alive(self):
        sid = self.create({"TTL": "1s"}).json()["ID"]
        for _ in range(4):
            time.sleep(0.4)
            self.assertStatus(self.put("/v1/session/renew/" + sid), 200)
        self.assertEqual(len(self.get("/v1/session/info/" + sid).json()), 1)

    def test_session_bound_to_service_check_dies_with_it(self):
        self.register({"ID": "lockholder", "Name": "lockholder", "Check": {"TTL": "1s"}})
        r = self.create({"ServiceChecks": [{"ID": "service:lockholder"}]}, 500)
        self.assertEqual(r.text, "apply failed: Check 'service:lockholder' is in critical state")
        self.assertStatus(self.put("/v1/agent/check/pass/service:lockholder"), 200)
        sid = self.create({"ServiceChecks": [{"ID": "service:lockholder"}], "LockDelay": "0s"}).json()["ID"]
        self.assertEqual(self.get("/v1/session/info/" + sid).json()[0]["ServiceChecks"],
                         [{"ID": "service:lockholder", "Namespace": ""}])
        self.assertEqual(self.put("/v1/kv/svc/lock?acquire=" + sid, b"").json(), True)
        self.assertTrue(self.wait_until(lambda: self.get("/v1/session/info/" + sid).json() == [], 3.0))
        self.assertNotIn("Session", self.get("/v1/kv/svc/lock").json()[0])


class BlockingTest(StandinCase):
    def test_kv_blocking_query_wakes_on_write(self):
        self.put("/v1/kv/block/k", b"1")
        idx = self.get("/v1/kv/block/k").index
        result = {}

        def waiter():
            start = time.monotonic()
            result["reply"] = self.get("/v1/kv/block/k?index=%d&wait=5s" % idx)
            result["took"] = time.monotonic() - start

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)
        self.assertTrue(t.is_alive())
        self.put("/v1/kv/block/other", b"unrelated")  # does not touch the watched key
        time.sleep(0.2)
        self.assertTrue(t.is_alive())
        self.put("/v1/kv/block/k", b"2")
        t.join(5)
        self.assertFalse(t.is_alive())
        r = result["reply"]
        self.assertGreater(r.index, idx)
        self.assertEqual(base64.b64decode(r.json()[0]["Value"]), b"2")
        self.assertGreater(result["took"], 0.4)
        self.assertLess(result["took"], 3.0)

    def test_wait_elapses(self):
        self.put("/v1/kv/block/idle", b"1")
        idx = self.get("/v1/kv/block/idle").index
        start = time.monotonic()
        r = self.get("/v1/kv/block/idle?index=%d&wait=400ms" % idx)
        took = time.monotonic() - start
        self.assertEqual(r.index, idx)
        self.assertGreaterEqual(took, 0.39)
        self.assertLess(took, 0.4 * (1 + 1 / 16.0) + 0.5)

    def test_catalog_service_blocking_wakes_on_agent_register(self):
        r = self.get("/v1/catalog/service/blocky")
        self.assertEqual(r.json(), [])
        idx = r.index
        result = {}

        def waiter():
            result["reply"] = self.get("/v1/catalog/service/blocky?index=%d&wait=5s" % idx)

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)
        self.assertTrue(t.is_alive())
        self.register({"Name": "blocky", "Port": 1})
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertEqual([x["ServiceName"] for x in result["reply"].json()], ["blocky"])
        self.assertGreater(result["reply"].index, idx)

    def test_recurse_blocking_sees_deletes(self):
        self.put("/v1/kv/bdel/a", b"1")
        idx = self.get("/v1/kv/bdel/?recurse").index
        result = {}
        t = threading.Thread(target=lambda: result.update(r=self.get("/v1/kv/bdel/?recurse&index=%d&wait=5s" % idx)))
        t.start()
        time.sleep(0.2)
        self.req("DELETE", "/v1/kv/bdel/a")
        t.join(5)
        self.assertStatus(result["r"], 404)
        self.assertGreater(result["r"].index, idx)

    def test_agent_services_does_not_block_and_has_no_index(self):
        start = time.monotonic()
        r = self.get("/v1/agent/services?index=999999&wait=2s")
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertIsNone(r.headers.get("X-Consul-Index"))

    def test_agent_service_hash_blocking(self):
        self.register({"ID": "hb", "Name": "hb", "Port": 1})
        h = self.get("/v1/agent/service/hb").headers["X-Consul-Contenthash"]
        result = {}
        t = threading.Thread(target=lambda: result.update(r=self.get("/v1/agent/service/hb?hash=%s&wait=5s" % h)))
        t.start()
        time.sleep(0.3)
        self.assertTrue(t.is_alive())
        self.register({"ID": "hb", "Name": "hb", "Port": 2})
        t.join(5)
        self.assertEqual(result["r"].json()["Port"], 2)
        self.assertNotEqual(result["r"].headers["X-Consul-Contenthash"], h)

    def test_bad_index_or_wait(self):
        self.assertPlainError(self.get("/v1/kv/x?index=abc"), 400, "Invalid index")
        self.assertPlainError(self.get("/v1/catalog/services?wait=5"), 400, "Invalid wait time")

    def test_index_increases_with_writes(self):
        a = self.standin.index
        self.put("/v1/kv/idx/k", b"v")
        self.assertGreater(self.standin.index, a)


class ACLTest(StandinCase):
    standin_kwargs = {"acl_token": "s3cr3t"}
    AUTH = {"X-Consul-Token": "s3cr3t"}

    def test_missing_token_is_denied_for_writes(self):
        r = self.put("/v1/agent/service/register", {"Name": "web"})
        self.assertPlainError(r, 403, "Permission denied: anonymous token lacks permission 'service:write' "
                                      "on \"web\"" + ANON_SUFFIX)
        r = self.put("/v1/kv/k", b"v")
        self.assertPlainError(r, 403, "Permission denied: anonymous token lacks permission 'key:write' "
                                      "on \"k\"" + ANON_SUFFIX)
        r = self.put("/v1/session/create")
        self.assertStatus(r, 403)
        r = self.put("/v1/catalog/register", {"Node": "n", "Address": "1.1.1.1"})
        self.assertStatus(r, 403)
        r = self.get("/v1/kv/k")
        self.assertStatus(r, 403)
        r = self.get("/v1/agent/self")
        self.assertStatus(r, 403)
        self.assertTrue(r.text.startswith("Permission denied"))

    def test_unknown_token(self):
        for headers in ({"X-Consul-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
            r = self.put("/v1/agent/service/register", {"Name": "web"}, headers=headers)
            self.assertPlainError(r, 403, "ACL not found")
        r = self.get("/v1/catalog/services?token=wrong")
        self.assertPlainError(r, 403, "ACL not found")

    def test_token_locations(self):
        self.register_with({"X-Consul-Token": "s3cr3t"}, "via-header")
        self.register_with({"Authorization": "Bearer s3cr3t"}, "via-bearer")
        r = self.put("/v1/agent/service/register?token=s3cr3t", {"Name": "via-query"})
        self.assertStatus(r, 200)
        names = set(self.get("/v1/agent/services", headers=self.AUTH).json())
        self.assertTrue({"via-header", "via-bearer", "via-query"} <= names)
        self.assertEqual(self.get("/v1/agent/services").json(), {})  # anonymous: filtered
        self.assertEqual(self.get("/v1/catalog/services").json(), {})
        self.assertEqual(self.get("/v1/catalog/service/via-header").json(), [])
        rec = [r for r in self.standin.requests if r.headers.get("Authorization") == "Bearer s3cr3t"]
        self.assertTrue(rec)

    def register_with(self, headers, name):
        r = self.put("/v1/agent/service/register", {"Name": name}, headers=headers)
        self.assertStatus(r, 200)

    def test_status_needs_no_token_and_policy_header(self):
        r = self.get("/v1/status/leader")
        self.assertStatus(r, 200)
        self.assertEqual(r.headers["X-Consul-Default-Acl-Policy"], "deny")

    def test_check_pass_needs_token(self):
        self.register_with(self.AUTH, "acl-ttl")
        r = self.put("/v1/agent/service/register", {"Name": "acl-ttl", "Check": {"TTL": "10s"}}, headers=self.AUTH)
        self.assertStatus(r, 200)
        r = self.put("/v1/agent/check/pass/service:acl-ttl")
        self.assertStatus(r, 403)
        r = self.put("/v1/agent/check/pass/service:acl-ttl", headers=self.AUTH)
        self.assertStatus(r, 200)


# What Consul's Health HTTP API documentation shows in its sample responses
# (developer.hashicorp.com/consul/api-docs/health), less the Enterprise
# "Namespace" and the node sample's "ID" (not a field of a health check).
DOC_CHECK_FIELDS = ["Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
                    "ServiceTags"]
DOC_NODE_FIELDS = ["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta"]
DOC_SERVICE_FIELDS = ["ID", "Service", "Tags", "Address", "TaggedAddresses", "Meta", "Port", "Weights"]


class HealthTest(StandinCase):
    standin_kwargs = {"extra_datacenters": ["dc2"]}

    def setUp(self):
        super().setUp()
        # three instances of "web" on the agent's node: a TTL check that
        # starts critical, one passing, one warning; and "bare" without checks
        for sid, status in (("web-crit", None), ("web-ok", "passing"), ("web-warn", "warning")):
            check = {"TTL": "30s"}
            if status:
                check["Status"] = status
            self.register({"ID": sid, "Name": "web", "Address": "10.1.2.3", "Port": 8080,
                           "Tags": ["v1", "Primary"], "Meta": {"team": "a"}, "Check": check})
        self.register({"ID": "bare", "Name": "bare", "Port": 1})
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for sid in ("web-crit", "web-ok", "web-warn", "bare"):
            self.put("/v1/agent/service/deregister/" + sid)

    def health(self, query=""):
        r = self.get("/v1/health/service/web" + query)
        self.assertStatus(r, 200)
        return r

    def ids(self, reply):
        return [e["Service"]["ID"] for e in reply.json()]

    def test_service_instances_field_by_field(self):
        r = self.health()
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertGreaterEqual(r.index, 1)
        self.assertEqual(self.ids(r), ["web-crit", "web-ok", "web-warn"])
        entry = r.json()[0]
        self.assertEqual(list(entry), ["Node", "Service", "Checks"])
        node, svc, checks = entry["Node"], entry["Service"], entry["Checks"]
        for field in DOC_NODE_FIELDS:
            self.assertIn(field, node)
        self.assertEqual((node["Node"], node["Address"], node["Datacenter"]), ("node1", "127.0.0.1", "dc1"))
        self.assertEqual(node["TaggedAddresses"]["lan"], "127.0.0.1")
        for field in DOC_SERVICE_FIELDS:
            self.assertIn(field, svc)
        self.assertEqual((svc["ID"], svc["Service"], svc["Tags"], svc["Address"], svc["Meta"], svc["Port"],
                          svc["Weights"]),
                         ("web-crit", "web", ["v1", "Primary"], "10.1.2.3", {"team": "a"}, 8080,
                          {"Passing": 1, "Warning": 1}))
        self.assertEqual(svc["TaggedAddresses"]["lan_ipv4"], {"Address": "10.1.2.3", "Port": 8080})
        # the node's check first, then the service's
        self.assertEqual([c["CheckID"] for c in checks], ["serfHealth", "service:web-crit"])
        for c in checks:
            for field in DOC_CHECK_FIELDS:
                self.assertIn(field, c)
        serf, own = checks
        self.assertEqual((serf["Name"], serf["Status"], serf["ServiceID"], serf["ServiceName"], serf["ServiceTags"]),
                         ("Serf Health Status", "passing", "", "", []))
        self.assertEqual((own["Name"], own["Status"], own["ServiceID"], own["ServiceName"], own["ServiceTags"],
                          own["Type"]),
                         ("Service 'web' check", "critical", "web-crit", "web", ["v1", "Primary"], "ttl"))
        # no checks of its own: the node's only
        [bare] = self.get("/v1/health/service/bare").json()
        self.assertEqual([c["CheckID"] for c in bare["Checks"]], ["serfHealth"])
        self.assertEqual(bare["Service"]["Tags"], [])

    def test_passing_keeps_instances_whose_every_check_passes(self):
        for q in ("?passing", "?passing=1", "?passing=true", "?passing=T"):
            self.assertEqual(self.ids(self.health(q)), ["web-ok"], q)
        for q in ("?passing=false", "?passing=0"):
            self.assertEqual(self.ids(self.health(q)), ["web-crit", "web-ok", "web-warn"], q)
        self.assertPlainError(self.get("/v1/health/service/web?passing=yes"), 400, "Invalid value for ?passing")
        # a failing node check fails every instance on the node
        self.standin.set_check_status("service:web-crit", "passing")
        self.assertEqual(self.ids(self.health("?passing")), ["web-crit", "web-ok"])
        self.put("/v1/agent/check/fail/service:web-ok")
        self.assertEqual(self.ids(self.health("?passing")), ["web-crit"])

    def test_a_critical_node_check_fails_its_services(self):
        self.put("/v1/catalog/register", {"Node": "ext", "Address": "192.0.2.7",
                                          "Service": {"ID": "web-ext", "Service": "web", "Port": 80},
                                          "Check": {"CheckID": "node-up", "Name": "node up", "Status": "critical"}})
        self.addCleanup(self.put, "/v1/catalog/deregister", {"Node": "ext"})
        [ext] = [e for e in self.health().json() if e["Node"]["Node"] == "ext"]
        self.assertEqual([(c["CheckID"], c["ServiceID"], c["Status"]) for c in ext["Checks"]],
                         [("node-up", "", "critical")])
        self.assertNotIn("web-ext", self.ids(self.health("?passing")))

    def test_tag_dc_node_meta(self):
        self.assertEqual(self.ids(self.health("?tag=v1&tag=primary")), ["web-crit", "web-ok", "web-warn"])
        self.assertEqual(self.ids(self.health("?tag=v1&tag=nope")), [])
        self.assertEqual(self.ids(self.health("?dc=dc2")), [])
        self.assertEqual(self.ids(self.health("?node-meta=consul-network-segment:")), ["web-crit", "web-ok", "web-warn"])
        self.assertEqual(self.ids(self.health("?node-meta=rack:r9")), [])
        self.assertPlainError(self.get("/v1/health/service/web?dc=nowhere"), 500, "No path to datacenter")
        self.assertEqual(self.get("/v1/health/service/nothing-here").json(), [])
        self.assertPlainError(self.get("/v1/health/service/"), 400, "Missing service name")

    def test_checks_of_a_service_state_and_node(self):
        r = self.get("/v1/health/checks/web")
        self.assertStatus(r, 200)
        self.assertGreaterEqual(r.index, 1)
        checks = r.json()
        self.assertEqual([c["CheckID"] for c in checks], ["service:web-crit", "service:web-ok", "service:web-warn"])
        for c in checks:
            self.assertEqual(list(c)[:len(DOC_CHECK_FIELDS)], DOC_CHECK_FIELDS)
        self.assertEqual(self.get("/v1/health/checks/bare").json(), [])
        states = {}
        for state in ("passing", "warning", "critical", "any"):
            r = self.get("/v1/health/state/" + state)
            self.assertStatus(r, 200)
            states[state] = [c["CheckID"] for c in r.json()]
        self.assertEqual(states["passing"], ["serfHealth", "service:web-ok"])
        self.assertEqual(states["warning"], ["service:web-warn"])
        self.assertEqual(states["critical"], ["service:web-crit"])
        self.assertEqual(states["any"], ["serfHealth", "service:web-crit", "service:web-ok", "service:web-warn"])
        self.assertPlainError(self.get("/v1/health/state/unknown"), 400, "Bad check state")
        self.assertEqual([c["CheckID"] for c in self.get("/v1/health/node/node1").json()], states["any"])
        self.assertEqual(self.get("/v1/health/node/nobody").json(), [])
        self.assertPlainError(self.get("/v1/health/node/"), 400, "Missing node name")

    def test_blocking_query_wakes_when_a_check_changes(self):
        idx = self.health().index
        result = {}

        def waiter():
            result["reply"] = self.get("/v1/health/service/web?passing&index=%d&wait=5s" % idx)

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)
        self.assertTrue(t.is_alive())
        self.put("/v1/agent/check/pass/service:web-crit")
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertGreater(result["reply"].index, idx)
        self.assertEqual(self.ids(result["reply"]), ["web-crit", "web-ok"])

    def test_ttl_expiry_takes_an_instance_out_of_passing(self):
        self.register({"ID": "web-brief", "Name": "web", "Port": 9, "Check": {"TTL": "1s", "Status": "passing"}})
        self.addCleanup(self.put, "/v1/agent/service/deregister/web-brief")
        self.assertIn("web-brief", self.ids(self.health("?passing")))
        self.assertTrue(self.wait_until(lambda: "web-brief" not in self.ids(self.health("?passing")), 4))


class HealthACLTest(StandinCase):
    standin_kwargs = {"acl_token": "s3cr3t"}

    def test_anonymous_reads_are_empty(self):
        r = self.put("/v1/agent/service/register", {"Name": "web", "Check": {"TTL": "30s"}},
                     headers={"X-Consul-Token": "s3cr3t"})
        self.assertStatus(r, 200)
        for path in ("/v1/health/service/web", "/v1/health/checks/web", "/v1/health/state/any",
                     "/v1/health/node/node1"):
            self.assertEqual(self.get(path).json(), [], path)
            self.assertTrue(self.get(path + "?token=s3cr3t").json(), path)
        self.assertPlainError(self.get("/v1/health/service/web?token=wrong"), 403, "ACL not found")


class FilterTest(StandinCase):
    def setUp(self):
        super().setUp()
        self.register({"ID": "a1", "Name": "api", "Port": 80, "Tags": ["v1"], "Address": "10.0.0.1",
                       "Meta": {"registrar_host": "h1", "team-x": "blue"}, "Check": {"TTL": "30s", "Status": "passing"}})
        self.register({"ID": "a2", "Name": "api", "Port": 81, "Tags": ["v2"],
                       "Meta": {"registrar_host": "h2"}, "Check": {"TTL": "30s"}})
        self.register({"ID": "b1", "Name": "other", "Port": 82})
        self.addCleanup(lambda: [self.put("/v1/agent/service/deregister/" + i) for i in ("a1", "a2", "b1")])

    def q(self, path, expression):
        return self.get(path + ("&" if "?" in path else "?") + "filter=" + urllib.parse.quote(expression))

    def agent(self, expression):
        r = self.q("/v1/agent/services", expression)
        self.assertStatus(r, 200)
        return sorted(r.json())

    def test_agent_services(self):
        self.assertEqual(self.agent('Meta.registrar_host == "h1"'), ["a1"])
        self.assertEqual(self.agent('Meta["registrar_host"] != "h1"'), ["a2", "b1"])
        self.assertEqual(self.agent('Meta["team-x"] == blue'), ["a1"])
        self.assertEqual(self.agent('"v2" in Tags or Port == 82'), ["a2", "b1"])
        self.assertEqual(self.agent('Service == "api" and not (Tags contains "v1")'), ["a2"])
        self.assertEqual(self.agent('Meta is empty'), ["b1"])
        self.assertEqual(self.agent('Meta is not empty and Address matches "^10\\\\."'), ["a1"])
        self.assertEqual(self.agent('Service not matches "^a"'), ["b1"])
        self.assertEqual(self.agent('"registrar_host" in Meta'), ["a1", "a2"])
        self.assertEqual(self.agent('EnableTagOverride == false and Weights.Passing == 1'), ["a1", "a2", "b1"])
        self.assertEqual(self.agent(""), ["a1", "a2", "b1"])   # an empty filter filters nothing

    def test_catalog_and_health(self):
        r = self.q("/v1/catalog/service/api", 'ServiceMeta.registrar_host == "h2"')
        self.assertEqual([e["ServiceID"] for e in r.json()], ["a2"])
        r = self.q("/v1/catalog/nodes", 'Node == "node1"')
        self.assertEqual([n["Node"] for n in r.json()], ["node1"])
        r = self.q("/v1/health/service/api", 'Checks.Status != "passing"')        # some check fails
        self.assertEqual([e["Service"]["ID"] for e in r.json()], ["a2"])
        r = self.q("/v1/health/service/api", 'Service.Meta.registrar_host == "h1" and Node.Node == "node1"')
        self.assertEqual([e["Service"]["ID"] for e in r.json()], ["a1"])
        r = self.q("/v1/health/state/any", 'ServiceName == "api" and Status == "critical"')
        self.assertEqual([c["CheckID"] for c in r.json()], ["service:a2"])
        r = self.q("/v1/health/checks/api", '"v1" in ServiceTags')
        self.assertEqual([c["CheckID"] for c in r.json()], ["service:a1"])

    def test_what_cannot_be_evaluated_is_refused_not_ignored(self):
        for expression, why in (("api", "no match found"), ('Service ==', "expected a value"),
                                ('(Service == "api"', "no match found"), ('Nope == "x"', 'Selector "Nope" is not valid'),
                                ('Service.Meta == "x"', 'Selector "Service.Meta" is not valid'),
                                ('Service matches "("', "Invalid regular expression")):
            r = self.q("/v1/agent/services", expression)
            self.assertStatus(r, 400)
            self.assertTrue(r.text.startswith("Failed to create boolean expression evaluator: "), r.text)
            self.assertIn(why, r.text)
        # a health/service selector is not one of /agent/services'
        self.assertStatus(self.q("/v1/agent/services", 'Service.Service == "api"'), 400)
        for path in ("/v1/agent/checks", "/v1/catalog/services", "/v1/catalog/node/node1", "/v1/kv/x?recurse",
                     "/v1/session/list", "/v1/agent/service/a1"):
            r = self.q(path, 'Service == "api"')
            self.assertStatus(r, 400)
            self.assertIn("refused rather than ignored", r.text)


if __name__ == "__main__":
    unittest.main()
