"""The key table, seen from outside: `registrar help config`, README.md's
configuration table and `registrar.config` must name the same keys.

The keys are read from `registrar help config` (the table in
engine/core/config_keys.def prints it), so a key added there without a
README row, or one that does not reach site scripts, fails here.  Needs no
Docker: `registrar check --containers` reads a fixture."""
import json
import os
import re
import subprocess
import tempfile
import unittest

REGISTRAR = os.environ.get("REGISTRAR_BIN", "build/registrar")
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(SOURCE, "tests", "fixtures")
README = os.path.join(SOURCE, "README.md")

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOST": "mesos-master", "IPADDRESS": "10.0.1.100"}

# A site script that replaces each document with registrar.config as it
# sees it: every pair, with the Lua type of the value.
DUMP_SCRIPT = """\
local registrar = require "registrar"
function document(service)
  local out = {}
  for k, v in pairs(registrar.config) do
    out[k] = { value = v, type = math.type(v) or type(v) }
  end
  return out
end
"""

# YAML values for the keys that have no default, so that they show up in
# registrar.config.  A new key without a default needs a line here.
SAMPLES_YAML = """\
docker_cert_path: /etc/registrar/docker-certs
log: /tmp/registrar-config-keys-test.log
statsd: 127.0.0.1:8125
network: backend-net
username: alice
ca_file: /etc/registrar/ca.pem
cert_file: /etc/registrar/cert.pem
key_file: /etc/registrar/key.pem
listen: 127.0.0.1:9102
site:
  zone: eu-1
  weights: [1, 2]
"""

SECRETS = {"BACKEND_PASSWORD": "pw-secret-4417", "CONSUL_HTTP_TOKEN": "token-secret-4417"}

BOOLEAN_WORDS = {"1": True, "true": True, "yes": True, "on": True,
                 "0": False, "false": False, "no": False, "off": False}


def registrar(*args, env=None, timeout=20):
    full_env = dict(BASE_ENV)
    full_env.update(env or {})
    return subprocess.run([REGISTRAR, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def help_keys():
    """{key: {env, env_alt, default, meaning, secret}} from `registrar help config`.

    Columns are fixed, and a default too wide for its column is printed
    whole, the meaning on an indented line of its own."""
    r = registrar("help", "config")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = lines[0]
    env_at, default_at, meaning_at = (header.index(w) for w in ("environment", "default", "meaning"))
    keys = {}
    for i, line in enumerate(lines[1:], start=1):
        if line.startswith(" "):
            continue
        wrapped = i + 1 < len(lines) and lines[i + 1].startswith(" ")
        if wrapped:
            default, meaning = line[default_at:].strip(), lines[i + 1].strip()
        else:
            default, meaning = line[default_at:meaning_at].strip(), line[meaning_at:].strip()
        env = line[env_at:default_at].strip()
        alt = re.search(r"\(else env ([A-Z0-9_]+)\)", meaning)
        keys[line[:env_at].strip()] = {
            "env": None if env == "-" else env,
            "env_alt": alt.group(1) if alt else None,
            "default": default,
            "meaning": meaning,
            "secret": "(secret" in meaning,
        }
    return keys


def readme_rows():
    """{key: [environment, default, meaning]} from README.md's configuration table."""
    with open(README) as f:
        text = f.read()
    section = text[text.index("\n## Configuration\n"):]
    section = section[:section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        key = re.fullmatch(r"`([a-z_]+)`", cells[0])
        assert key, f"README row names more than one key, or not as `key`: {line}"
        assert key.group(1) not in rows, f"README names {key.group(1)} twice"
        rows[key.group(1)] = cells[1:]
    return rows


def dump_config(test, *args, env=None):
    """registrar.config as the site script sees it, and the whole output."""
    tmp = tempfile.TemporaryDirectory(prefix="registrar-keys-")
    test.addCleanup(tmp.cleanup)
    script = os.path.join(tmp.name, "dump.lua")
    with open(script, "w") as f:
        f.write(DUMP_SCRIPT)
    r = registrar("check", "--containers", os.path.join(FIXTURES, "worked-example.json"),
                  "--script", script, *args, env=env)
    test.assertEqual(r.returncode, 0, r.stderr + r.stdout)
    values = [line[len("  value "):] for line in r.stdout.splitlines() if line.startswith("  value ")]
    test.assertTrue(values, r.stdout)
    return json.loads(values[0]), r.stdout + r.stderr, script


class HelpTable(unittest.TestCase):
    def test_help_lists_keys_once_each_with_a_default(self):
        keys = help_keys()
        self.assertGreaterEqual(len(keys), 30)
        for name, k in keys.items():
            self.assertRegex(name, r"^[a-z][a-z_]*$")
            self.assertTrue(k["default"], name)
            self.assertTrue(k["meaning"], name)
        envs = [k["env"] for k in keys.values() if k["env"]] + [k["env_alt"] for k in keys.values() if k["env_alt"]]
        self.assertEqual(len(envs), len(set(envs)), "a variable names two keys")
        self.assertEqual({n for n, k in keys.items() if k["secret"]}, {"password", "token"})


class ReadmeTable(unittest.TestCase):
    def test_every_key_has_a_readme_row_with_its_variables_and_default(self):
        keys, rows = help_keys(), readme_rows()
        missing = sorted(set(keys) - set(rows))
        self.assertEqual(missing, [], "keys of `registrar help config` with no row in README.md's table")
        stale = sorted(set(rows) - set(keys))
        self.assertEqual(stale, [], "README.md's table names keys registrar does not have")
        for name, k in keys.items():
            env, default, meaning = rows[name]
            with self.subTest(key=name):
                want = [v for v in (k["env"], k["env_alt"]) if v]
                self.assertEqual(re.findall(r"`([A-Z0-9_]+)`", env), want)
                self.assertEqual(default.replace("`", ""), k["default"])
                self.assertTrue(meaning)
                rng = re.search(r"\((\d+ to \d+)\)", k["meaning"])
                if rng:
                    self.assertIn(rng.group(1), meaning, "README gives the range help gives")


class RegistrarConfig(unittest.TestCase):
    def test_every_key_but_the_secrets_reaches_site_scripts(self):
        keys = help_keys()
        tmp = tempfile.TemporaryDirectory(prefix="registrar-keys-")
        self.addCleanup(tmp.cleanup)
        yaml = os.path.join(tmp.name, "samples.yml")
        with open(yaml, "w") as f:
            f.write(SAMPLES_YAML)
        config, output, _ = dump_config(self, "-c", yaml, env=SECRETS)
        public = {n for n, k in keys.items() if not k["secret"]}
        missing = sorted(public - set(config))
        self.assertEqual(missing, [], "keys not in registrar.config (one with no default needs a value in "
                                      "SAMPLES_YAML)")
        self.assertEqual(sorted(set(config) - public), [], "registrar.config holds keys help does not list")
        for secret in ("password", "token"):
            self.assertNotIn(secret, config)
        for value in SECRETS.values():
            self.assertNotIn(value, output)
        self.assertEqual(config["statsd"], {"type": "table", "value": {"host": "127.0.0.1", "port": 8125}})
        self.assertEqual(config["site"]["value"], {"zone": "eu-1", "weights": [1, 2]})
        self.assertEqual(config["docker_cert_path"]["value"], "/etc/registrar/docker-certs")

    def test_the_defaults_are_what_help_shows_in_natural_types(self):
        keys = help_keys()
        config, _, script = dump_config(self)
        set_here = {"script": script, "hostname": "mesos-master", "ipaddress": "10.0.1.100"}
        self.assertEqual(sorted(k for k in config if keys[k]["secret"]), [])
        for name, got in config.items():
            default, value, kind = keys[name]["default"], got["value"], got["type"]
            with self.subTest(key=name):
                if name in set_here:
                    self.assertEqual(value, set_here[name])
                elif re.fullmatch(r"\d+", default):
                    self.assertEqual((kind, value), ("integer", int(default)))
                elif default in BOOLEAN_WORDS:
                    self.assertEqual((kind, value), ("boolean", BOOLEAN_WORDS[default]))
                elif name == "prefix_path":
                    self.assertEqual(value, re.split(r"[ ,\t]+", default))
                elif name == "site":
                    self.assertEqual((kind, value), ("table", json.loads(default)))
                else:
                    self.assertEqual((kind, value), ("string", default))
        self.assertEqual(config["service_ttl"]["value"], "prune")
        self.assertEqual(config["log_level"]["value"], "info")
        self.assertIs(config["explicit"]["value"], False)

    def test_values_set_through_the_environment(self):
        config, output, _ = dump_config(self, "-B", "etcd://alice:uri-secret-4417@127.0.0.1:2379", env={
            **SECRETS, "BACKEND_TOKEN": "token-alt-secret-4417", "SERVICE_METHOD": "ttl", "TTL": "20000",
            "DOCKER_TLS_VERIFY": "1", "EXPLICIT": "yes", "PREFIX_PATH": "string:a,label:team service:PORT",
            "SCRIPT_MEMORY": "64", "LOGLEVEL": "warn"})
        self.assertEqual(config["backend"]["value"], "etcd://alice:***@127.0.0.1:2379")
        self.assertEqual(config["service_ttl"]["value"], "ttl")
        self.assertEqual(config["ttl"], {"type": "integer", "value": 20000})
        self.assertEqual(config["docker_tls_verify"], {"type": "boolean", "value": True})
        self.assertEqual(config["explicit"], {"type": "boolean", "value": True})
        self.assertEqual(config["prefix_path"]["value"], ["string:a", "label:team", "service:PORT"])
        self.assertEqual(config["script_memory"], {"type": "integer", "value": 64})
        self.assertEqual(config["log_level"]["value"], "warn")
        self.assertNotIn("password", config)
        self.assertNotIn("token", config)
        for secret in ("uri-secret-4417", "token-alt-secret-4417", *SECRETS.values()):
            self.assertNotIn(secret, output)


class SecretsInErrors(unittest.TestCase):
    def test_a_bad_secret_is_named_but_not_shown(self):
        r = registrar("check", "--containers", "/dev/null", env={"BACKEND_PASSWORD": "pw\x01secret-4417"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr.strip(),
                         "registrar: password: (secret) contains control characters (env BACKEND_PASSWORD)")


if __name__ == "__main__":
    unittest.main()
