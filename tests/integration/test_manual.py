"""What ships beside the binary says what the binary does: the manual,
registrar(8), renders without a warning and names every command and
option `registrar help` lists and every configuration key and variable of
engine/core/config_keys.def; the example configuration lists every key
with its default, and loads as shipped and with every default spelled
out, to the same result."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from common import REGISTRAR, SOURCE

MANUAL = os.path.join(SOURCE, "docs", "registrar.8")
EXAMPLE = os.path.join(SOURCE, "packaging", "registrar.yml")
KEYS_DEF = os.path.join(SOURCE, "engine", "core", "config_keys.def")
FIXTURE = os.path.join(SOURCE, "tests", "fixtures", "worked-example.json")
BASE_ENV = {"PATH": "/usr/bin:/bin", "HOST": "mesos-master", "IPADDRESS": "10.0.1.100"}


def registrar(*args):
    return subprocess.run([REGISTRAR, *args], capture_output=True, text=True, env=BASE_ENV, timeout=60)


def config_keys():
    """{name: {"env": [...], "def": text or None, "unset": text or None}}
    from the KEY(...) rows of config_keys.def."""
    with open(KEYS_DEF) as f:
        text = f.read()
    keys = {}
    for row in re.finditer(r'^KEY\(CK_\w+, "(\w+)", \w+, \w+,(.*?)\)$', text, re.M | re.S):
        name, options = row.group(1), row.group(2)
        field = lambda option: (re.search(r'\.%s = "([^"]*)"' % option, options) or [None, None])[1]
        keys[name] = {"env": [e for e in (field("env"), field("env_alt")) if e],
                      "def": field("def"), "unset": field("unset")}
    return keys


def help_commands_and_options():
    """The commands and option spellings `registrar help` prints."""
    out = registrar("help").stdout
    commands = re.findall(r"^  (\w+) ", out.split("commands:")[1].split("options")[0], re.M)
    options = re.findall(r"(-\w|--[\w-]+)", out.split("options (before or after the command):")[1]
                         .split("precedence")[0])
    return commands, options


def rendered_manual():
    """The manual as plain text (no bold, no underline), as groff renders it."""
    r = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-rLL=200n", MANUAL],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def have(program):
    return shutil.which(program) is not None


class Manual(unittest.TestCase):
    def test_groff_renders_it_without_a_warning(self):
        if not have("groff"):
            self.skipTest("groff not found (Debian package: groff-base)")
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MANUAL], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_mandoc_lint_finds_nothing(self):
        if not have("mandoc"):
            self.skipTest("mandoc not found (Debian package: mandoc)")
        r = subprocess.run(["mandoc", "-Tlint", "-Wstyle", MANUAL], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_man_shows_it(self):
        if not have("man"):
            self.skipTest("man not found (Debian package: man-db)")
        r = subprocess.run(["man", "-l", MANUAL], capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "MANPAGER": "cat", "MANWIDTH": "80", "LANG": "C.UTF-8"})
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("registrar - keep a service registry in step", r.stdout)

    def test_it_names_every_command_and_option(self):
        if not have("groff"):
            self.skipTest("groff not found (Debian package: groff-base)")
        text = rendered_manual()
        commands, options = help_commands_and_options()
        self.assertIn("status", commands)
        self.assertIn("--containers", options)
        for command in commands:
            self.assertTrue(re.search(r"(?m)^ {7}%s( |$)" % command, text), "command %s has no entry" % command)
        for option in options:
            self.assertTrue(re.search(r"(?m)^ {7}(-\w, )?%s( |,|$)" % re.escape(option), text),
                            "option %s has no entry" % option)

    def test_it_names_every_key_with_its_variables_and_default(self):
        if not have("groff"):
            self.skipTest("groff not found (Debian package: groff-base)")
        text = rendered_manual()
        for name, key in config_keys().items():
            m = re.search(r"(?m)^ {7}%s \((.*)\)$" % name, text)
            self.assertTrue(m, "key %s has no entry" % name)
            for env in key["env"]:
                self.assertIn(env, m.group(1), "key %s: no %s" % (name, env))
            if key["def"] is not None:
                self.assertIn("default " + key["def"], m.group(1), name)

    def test_it_names_every_signal_the_daemon_handles(self):
        if not have("groff"):
            self.skipTest("groff not found (Debian package: groff-base)")
        text = rendered_manual()
        with open(os.path.join(SOURCE, "engine", "daemon.c")) as f:
            handled = set(re.findall(r"loop_signal\(d\.lp, (SIG\w+)", f.read()))
        self.assertEqual(handled, {"SIGTERM", "SIGINT", "SIGHUP"})
        section = text.split("\nSIGNALS\n")[1].split("\nEXIT STATUS\n")[0]
        for sig in handled:
            self.assertTrue(re.search(r"(?m)^ {7}.*\b%s\b" % sig, section), "signal %s has no entry" % sig)

    def test_it_names_every_variable_the_engine_reads(self):
        if not have("groff"):
            self.skipTest("groff not found (Debian package: groff-base)")
        text = rendered_manual()
        section = text.split("\nENVIRONMENT\n")[1].split("\nSIGNALS\n")[0]
        read = set()
        for d, _, names in os.walk(os.path.join(SOURCE, "engine")):
            for n in names:
                if n.endswith(".c"):
                    with open(os.path.join(d, n)) as f:
                        read |= set(re.findall(r'getenv\("(\w+)"\)', f.read()))
        self.assertLessEqual({"REGISTRAR_SCRIPTS", "NOTIFY_SOCKET", "JOURNAL_STREAM"}, read)
        for name in read:
            self.assertTrue(re.search(r"(?m)^ {7}(.*, )?%s(,| |$)" % name, section), "%s has no entry" % name)


class ExampleConfig(unittest.TestCase):
    """packaging/registrar.yml, installed as /etc/registrar/registrar.yml."""

    def setUp(self):
        with open(EXAMPLE) as f:
            self.text = f.read()

    def check(self, config):
        r = registrar("-c", config, "check", "--containers", FIXTURE)
        self.assertEqual((r.returncode, r.stderr), (0, ""), config)
        return r.stdout

    def test_every_key_is_there_with_its_default(self):
        for name, key in config_keys().items():
            m = re.search(r"(?m)^#%s:(.*)$" % name, self.text)
            self.assertTrue(m, "key %s is not in the example" % name)
            block = self.text[:m.start()].rsplit("\n\n", 1)[-1]   # the comment above it
            if key["env"]:
                self.assertIn("Env " + ", else ".join(key["env"]) + ".", block.replace("\n# ", " "), name)
            if name == "prefix_path":
                items = re.findall(r"^#  - (\S+)$", self.text[m.end():].split("\n\n")[0], re.M)
                self.assertEqual(" ".join(items), key["def"])
            elif key["def"] is not None:
                self.assertEqual(m.group(1).strip(), key["def"], name)
            else:
                self.assertIn("Unset by default: " + key["unset"], block.replace("\n# ", " "), name)

    def test_it_loads_as_shipped(self):
        out = self.check(EXAMPLE)
        self.assertIn("  key   /services/prod/etc/4001/49155/50ccf6e665e0", out.splitlines())

    def test_the_defaults_spelled_out_change_nothing(self):
        keys = config_keys()
        lines = []
        in_default_list = False
        for line in self.text.splitlines():
            m = re.match(r"^#(\w+):", line)
            if m:
                in_default_list = keys[m.group(1)]["def"] is not None
                lines.append(line[1:] if in_default_list else line)
            elif line.startswith("#  - ") and in_default_list:
                lines.append(line[1:])
            else:
                lines.append(line)
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        self.addCleanup(os.unlink, f.name)
        spelled = sum(1 for line in lines if re.match(r"^\w+:", line))
        self.assertEqual(spelled, sum(1 for k in keys.values() if k["def"] is not None))
        self.assertEqual(self.check(f.name), self.check(EXAMPLE))


if __name__ == "__main__":
    unittest.main()
