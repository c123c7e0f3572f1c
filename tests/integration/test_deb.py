"""The Debian package, as a user meets it: `cpack -G DEB` from a fresh
build, `apt-get install ./registrar_*.deb` (no network: the
dependencies are installed already), then the packaged binary, manual,
unit and configuration, an edited configuration kept across a reinstall,
and `apt-get remove` and `purge` leaving the machine as it was.

It installs into this machine's /usr, so it runs only as root, and skips
when a registrar is installed already rather than replace it."""
import glob
import os
import shutil
import subprocess
import unittest

import harness as h
from common import SOURCE
from support.util import _claim_workdir, _find, _rmtree, _run
from test_systemd import systemd_analyze_unusable

FIXTURE = os.path.join(SOURCE, "tests", "fixtures", "worked-example.json")
WORKED_KEY = "  key   /services/prod/etc/4001/49155/50ccf6e665e0"
CONFIG = "/etc/registrar/registrar.yml"
APT_ENV = {"PATH": h.SYSTEM_PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
# The libraries the binary links, by the names of their Debian packages.
RUNTIME_PACKAGES = ("liblua5.4-0", "libcurl4", "libcjson1", "libyaml-0-2", "libzookeeper-mt2")


def dpkg_status(package):
    """dpkg's word on package: "install ok installed", "deinstall ok
    config-files", ..., or "" when dpkg has no trace of it."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 and r.stdout != "unknown ok not-installed" else ""


def why_not():
    """Why this machine cannot take the package for a test, or None."""
    if os.geteuid() != 0:
        return "needs root (installs into /usr)"
    for tool, package in (("apt-get", "apt"), ("dpkg-query", "dpkg"), ("cpack", "cmake"),
                          ("dpkg-shlibdeps", "dpkg-dev"), ("file", "file"), ("unshare", "util-linux")):
        if _find(tool) is None:
            return "%s not found (Debian package: %s)" % (tool, package)
    if dpkg_status("registrar"):
        return "a registrar package is on this machine (%s): not replacing it" % dpkg_status("registrar")
    if os.path.lexists("/usr/bin/registrar") or os.path.lexists(CONFIG):
        return "/usr/bin/registrar or %s exists: not replacing it" % CONFIG
    return None


# No package sources, and no cache written from that view of them: apt
# can take nothing from the network, so every dependency must be installed.
APT_OFFLINE = ("-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=")


def apt_get(*args):
    return _run(["apt-get", "-y", "-q", "--no-install-recommends", *APT_OFFLINE, *args], env=APT_ENV,
                timeout=300)


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = why_not()
        if why:
            raise unittest.SkipTest(why)
        cls.workdir, _ = _claim_workdir("ri")
        cls.addClassCleanup(_rmtree, cls.workdir)
        cls.build = os.path.join(cls.workdir, "build")
        # the default prefix (/usr/local): the package is for /usr whatever the build's
        _run(["cmake", "-S", SOURCE, "-B", cls.build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
              "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON"], timeout=300)
        _run(["nice", "cmake", "--build", cls.build, "-j", "2", "--target", "registrar", "registrar_man"],
             timeout=900)
        r = subprocess.run(["cpack", "-G", "DEB"], cwd=cls.build, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("cpack -G DEB failed:\n" + r.stdout + r.stderr)
        (cls.deb,) = glob.glob(os.path.join(cls.build, "registrar_*.deb"))

    def setUp(self):
        # whatever happens in the test, the machine ends as it was
        self.addCleanup(lambda: dpkg_status("registrar") and apt_get("purge", "registrar"))

    def hidden(self, *args):
        """The installed binary with the source and build trees hidden."""
        return h.run_hidden(["/usr/bin/registrar", *args], [SOURCE, self.build])

    def check_packaged_config(self):
        fixture = os.path.join(self.workdir, "worked-example.json")
        shutil.copy(FIXTURE, fixture)
        r = self.hidden("-c", CONFIG, "-H", "mesos-master", "-a", "10.0.1.100", "check", "--containers", fixture)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn(WORKED_KEY, r.stdout.splitlines())

    def test_depends_on_the_libraries_it_links(self):
        depends = _run(["dpkg-deb", "-f", self.deb, "Depends"]).stdout
        names = {d.strip().split(" ")[0] for d in depends.split(",")}
        self.assertLessEqual(set(RUNTIME_PACKAGES), names, depends)

    def test_install_run_reinstall_remove_purge(self):
        apt_get("install", os.path.abspath(self.deb))
        self.assertEqual(dpkg_status("registrar"), "install ok installed")

        r = self.hidden("version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^registrar \d+\.\d+\.\d+ \(Lua 5\.4.*\), commit \S+\n$")
        self.check_packaged_config()

        listed = set(_run(["dpkg", "-L", "registrar"]).stdout.split())
        self.assertLessEqual({"/usr/bin/registrar", CONFIG, "/lib/systemd/system/registrar.service",
                              "/usr/share/man/man8/registrar.8.gz",
                              "/usr/share/registrar/scripts/naming/default.lua",
                              "/usr/share/registrar/scripts/backends/file.lua"}, listed)
        conffiles = _run(["dpkg-query", "-W", "-f=${Conffiles}", "registrar"]).stdout
        self.assertRegex(conffiles, r"^ %s [0-9a-f]{32}$" % CONFIG)
        self.assertEqual(_run(["man", "-w", "registrar"], env=APT_ENV).stdout.strip(),
                         "/usr/share/man/man8/registrar.8.gz")
        if not systemd_analyze_unusable():
            r = subprocess.run(["systemd-analyze", "verify", "/lib/systemd/system/registrar.service"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

        # an upgrade (here: the same package again) keeps an edited conffile
        with open(CONFIG, "a") as f:
            f.write("interval: 1500\n")
        apt_get("install", "--reinstall", os.path.abspath(self.deb))
        with open(CONFIG) as f:
            self.assertTrue(f.read().endswith("interval: 1500\n"), "the edited configuration was replaced")
        self.check_packaged_config()

        apt_get("remove", "registrar")
        self.assertFalse(os.path.exists("/usr/bin/registrar"))
        self.assertTrue(os.path.exists(CONFIG), "remove took the configuration (only purge does)")
        self.assertEqual(dpkg_status("registrar"), "deinstall ok config-files")

        apt_get("purge", "registrar")
        self.assertFalse(os.path.exists(os.path.dirname(CONFIG)))
        self.assertEqual(dpkg_status("registrar"), "")


if __name__ == "__main__":
    unittest.main()
