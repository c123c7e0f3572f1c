"""`cmake --install`, as an operator installs registrar from source: into a
prefix of their choice, or with DESTDIR into a staging tree for /usr.
The installed binary runs with the source and build trees hidden and an
empty environment, so it works only if the install holds all it needs:
its scripts found beside it, wherever the tree was moved, and the example
configuration loading as shipped."""
import gzip
import os
import shutil
import unittest

import harness as h
from common import REGISTRAR, SOURCE

FIXTURE = os.path.join(SOURCE, "tests", "fixtures", "worked-example.json")
WORKED_KEY = "  key   /services/prod/etc/4001/49155/50ccf6e665e0"
BUILD = h.build_dir_of(REGISTRAR)
VERSION_LINE = r"^registrar \d+\.\d+\.\d+ \(Lua 5\.4[^)]*ZooKeeper C client [\d.]+\), commit \S+$"


@unittest.skipUnless(BUILD, "REGISTRAR_BIN is not in a CMake build directory")
@h.skip_unless_available(h.InstalledTree)
class Install(unittest.TestCase):
    def install(self, **kw):
        tree = h.InstalledTree(BUILD, **kw)
        self.addCleanup(tree.cleanup)
        return tree.install()

    def hidden(self, binary, *args):
        """Runs an installed binary with the trees it came from hidden, and
        the directory of the prefix it was built for (a copy installed there
        earlier must not stand in for the tree under test)."""
        built_for = os.path.join(h.cmake_cached(BUILD, "CMAKE_INSTALL_PREFIX"), "share", "registrar")
        hide = [SOURCE, BUILD] + ([built_for] if os.path.isdir(built_for) else [])
        return h.run_hidden([binary, *args], hide)

    def assertRunsAlone(self, tree, binary, config):
        """`version`, and `registrar -c CONFIG check` on the README's worked
        example, from the installed tree alone."""
        r = self.hidden(binary, "version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), VERSION_LINE)
        fixture = os.path.join(tree.workdir, "worked-example.json")
        shutil.copy(FIXTURE, fixture)
        r = self.hidden(binary, "-c", config, "-H", "mesos-master", "-a", "10.0.1.100",
                        "check", "--containers", fixture)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(WORKED_KEY, r.stdout.splitlines())
        self.assertEqual(r.stderr, "")

    def test_a_moved_prefix_runs_on_its_own(self):
        tree = self.install()
        self.assertTrue(os.path.isfile(tree.path("share/registrar/scripts/naming/default.lua")))
        tree.move("moved")
        self.assertRunsAlone(tree, tree.path("bin/registrar"), tree.path("etc/registrar/registrar.yml"))

    def test_without_its_scripts_it_says_where_it_looked(self):
        tree = self.install()
        os.rename(tree.path("share/registrar/scripts"), tree.path("share/registrar/elsewhere"))
        r = self.hidden(tree.path("bin/registrar"), "check", "--containers", "/nonexistent.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot find registrar's scripts", r.stderr)
        self.assertIn("REGISTRAR_SCRIPTS", r.stderr)

    def test_destdir_stages_a_usr_install(self):
        tree = self.install(prefix="/usr", destdir="stage")
        self.assertEqual(
            {f for f in tree.files() if not f.startswith("usr/share/registrar/scripts/")},
            {"usr/bin/registrar", "usr/share/man/man8/registrar.8.gz",
             "etc/registrar/registrar.yml", "lib/systemd/system/registrar.service"})
        self.assertTrue(os.path.isfile(tree.path("/usr/share/registrar/scripts/backends/file.lua")))
        with open(tree.path("/lib/systemd/system/registrar.service")) as f:
            self.assertIn("\nExecStart=/usr/bin/registrar -c /etc/registrar/registrar.yml run\n", f.read())
        with gzip.open(tree.path("/usr/share/man/man8/registrar.8.gz"), "rt") as f:
            self.assertTrue(f.read().startswith(".\\\" registrar(8)"))
        with open(os.path.join(BUILD, "install_manifest.txt")) as f:
            self.assertIn("/etc/registrar/registrar.yml", f.read().split())

        tree.move("moved")
        self.assertRunsAlone(tree, tree.path("/usr/bin/registrar"), tree.path("/etc/registrar/registrar.yml"))

    def test_an_edited_configuration_survives_a_reinstall(self):
        tree = self.install()
        config = tree.path("etc/registrar/registrar.yml")
        with open(config, "a") as f:
            f.write("interval: 1500\n")
        tree.install()
        with open(config) as f:
            self.assertTrue(f.read().endswith("interval: 1500\n"), "the operator's edit was overwritten")
        with open(config + ".new") as new, open(os.path.join(SOURCE, "packaging", "registrar.yml")) as shipped:
            self.assertEqual(new.read(), shipped.read())
        self.assertRegex(tree.output, r"Keeping: .*registrar\.yml \(edited\)")


if __name__ == "__main__":
    unittest.main()
