"""The registrar-scripts rock (rockspec/), as a team installs it: `luarocks
make` from a copy of the repository's scripts/ and rockspec/ into a tree of
its own (never the system's), then busted runs a site script's spec
(examples/spec/teams_spec.lua, next to a copy of examples/teams.lua, as in a
team's repository) with only the installed rock on its path.

luarocks is told that Debian's lua-cjson provides the rock's lua-cjson
dependency (rocks_provided), and is given no rocks server: nothing is
fetched."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from common import SOURCE

LUAROCKS = shutil.which("luarocks")
LUA = shutil.which("lua5.4")
BUSTED = shutil.which("busted")
ROCKSPEC_DIR = os.path.join(SOURCE, "rockspec")


def the_rockspec():
    specs = [f for f in os.listdir(ROCKSPEC_DIR) if f.endswith(".rockspec")]
    assert len(specs) == 1, specs
    return specs[0]


def lua_files(top):
    out = set()
    for root, _, files in os.walk(top):
        out.update(os.path.relpath(os.path.join(root, f), top) for f in files if f.endswith(".lua"))
    return out


@unittest.skipUnless(LUAROCKS and LUA and BUSTED, "luarocks, lua5.4 and busted are needed "
                                                  "(apt-get install luarocks lua5.4 liblua5.4-dev lua-busted lua-cjson)")
class InstalledRock(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="registrar-rock-")
        cls.src = os.path.join(cls.tmp.name, "src")
        cls.tree = os.path.join(cls.tmp.name, "tree")
        for part in ("scripts", "rockspec"):
            shutil.copytree(os.path.join(SOURCE, part), os.path.join(cls.src, part))
        cls.config = os.path.join(cls.tmp.name, "luarocks-config.lua")
        with open(cls.config, "w") as f:
            f.write('rocks_servers = {}\nrocks_provided = { ["lua-cjson"] = "2.1.0-1" }\n')
        cls.env = {"PATH": os.environ["PATH"], "HOME": cls.tmp.name, "LUAROCKS_CONFIG": cls.config}
        cls.make = subprocess.run(
            [LUAROCKS, "--lua-version", "5.4", "make", os.path.join("rockspec", the_rockspec()), "--tree", cls.tree],
            cwd=cls.src, capture_output=True, text=True, env=cls.env, timeout=300)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def installed(self):
        self.assertEqual(self.make.returncode, 0, self.make.stdout + self.make.stderr)
        return os.path.join(self.tree, "share", "lua", "5.4")

    def rock_env(self):
        """The environment a team's shell has after
        `eval "$(luarocks path --tree TREE)"`: the installed rock, nothing else."""
        self.installed()
        path = subprocess.run([LUAROCKS, "--lua-version", "5.4", "path", "--tree", self.tree],
                              capture_output=True, text=True, env=self.env, check=True).stdout
        env = dict(self.env)
        for name, value in re.findall(r"^export (LUA_PATH|LUA_CPATH)='([^']*)'", path, re.M):
            env[name] = value
        return env

    def test_luarocks_make_installs_every_script_and_the_kit(self):
        lua_dir = self.installed()
        self.assertIn("registrar-scripts 0.1.0-1 is now installed", self.make.stdout)
        self.assertIn("lua-cjson >= 2.1.0", self.make.stdout)       # the dependency it checked
        scripts = {os.path.join("registrar", "scripts", f) for f in lua_files(os.path.join(SOURCE, "scripts"))}
        kit = lua_files(os.path.join(ROCKSPEC_DIR, "lua"))
        self.assertEqual(lua_files(lua_dir), scripts | kit)
        # the copy it was made from is as it was: luarocks make wrote nothing there
        self.assertEqual(sorted(os.listdir(self.src)), ["rockspec", "scripts"])

    def test_the_rock_has_registrars_version(self):
        with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
            version = re.search(r"project\(registrar VERSION (\S+)", f.read()).group(1)
        self.assertEqual(the_rockspec(), "registrar-scripts-%s-1.rockspec" % version)
        with open(os.path.join(ROCKSPEC_DIR, "lua", "registrar", "testing.lua")) as f:
            self.assertIn('testing.VERSION = "%s"' % version, f.read())

    def test_a_team_runs_busted_on_its_site_script_through_the_installed_rock(self):
        env = self.rock_env()
        self.assertIn(self.tree, env["LUA_PATH"])
        self.assertNotIn(SOURCE, env["LUA_PATH"])
        # a team's repository: its site script and its spec, nothing of registrar's source
        team = os.path.join(self.tmp.name, "team")
        os.makedirs(os.path.join(team, "spec"), exist_ok=True)
        shutil.copy(os.path.join(SOURCE, "examples", "teams.lua"), team)
        shutil.copy(os.path.join(SOURCE, "examples", "spec", "teams_spec.lua"), os.path.join(team, "spec"))
        r = subprocess.run([LUA, BUSTED, "--output=plainTerminal", "spec"], cwd=team, capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"\b4 successes / 0 failures / 0 errors")

    def test_the_installed_kit_fails_a_spec_that_expects_the_wrong_key(self):
        # the spec above proves something: a wrong expectation fails through the same rock
        env = self.rock_env()
        team = os.path.join(self.tmp.name, "team-wrong")
        os.makedirs(team, exist_ok=True)
        shutil.copy(os.path.join(SOURCE, "examples", "teams.lua"), team)
        with open(os.path.join(team, "wrong_spec.lua"), "w") as f:
            f.write('local testing = require "registrar.testing"\n'
                    'it("files it elsewhere", function()\n'
                    '  local kit = testing.new { script = "teams.lua", hostname = "web-3" }\n'
                    '  local c = testing.container { labels = { team = "search" }, ports = { "49155:80" } }\n'
                    '  assert.same({ "/teams/ads/busybox-80/web-3:49155" }, kit:keys(c))\n'
                    'end)\n')
        r = subprocess.run([LUA, BUSTED, "--output=plainTerminal", "wrong_spec.lua"], cwd=team, capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/teams/search/busybox-80/web-3:49155", r.stdout)


if __name__ == "__main__":
    unittest.main()
