"""Installed trees: ``cmake --install`` of a build into a work dir of its
own (``InstalledTree``), and ``run_hidden``, which runs a program with
the source and build trees out of its reach.

Rule: an installed binary is only ever judged with the trees it was built
from hidden (an empty tmpfs over each, in a private mount namespace) and
an empty environment, so it can use nothing but what was installed.  The
namespace ends with the program: nothing is mounted on the machine.
"""

import os
import shutil
import subprocess

from .util import MissingDependency, _claim_workdir, _find, _rmtree, _run


def build_dir_of(binary):
    """The CMake build directory holding ``binary`` (REGISTRAR_BIN), or None."""
    d = os.path.dirname(os.path.abspath(binary))
    return d if os.path.exists(os.path.join(d, "CMakeCache.txt")) else None


def cmake_cached(build_dir, name):
    """A variable's value in a build's CMakeCache.txt, or None."""
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key.split(":")[0] == name:
                return value
    return None


class InstalledTree:
    """``cmake --install BUILD --prefix PREFIX`` (with DESTDIR when given)
    into /tmp/ri-<pid>-<n>/, removed by ``cleanup()``; ``path()`` says where
    an installed file is on this machine."""

    def __init__(self, build_dir, prefix=None, destdir=None):
        self.build_dir = build_dir
        self.workdir, _ = _claim_workdir("ri")
        self.prefix = prefix or os.path.join(self.workdir, "prefix")
        self.destdir = os.path.join(self.workdir, destdir) if destdir else None
        self.output = ""

    @staticmethod
    def missing():
        return None if _find("cmake") else "cmake not found (Debian package: cmake)"

    def install(self):
        env = dict(os.environ)
        env.pop("DESTDIR", None)
        if self.destdir:
            env["DESTDIR"] = self.destdir
        cp = _run(["cmake", "--install", self.build_dir, "--prefix", self.prefix], env=env, timeout=120)
        self.output = cp.stdout
        return self

    def path(self, p):
        """Where ``p`` is on this machine: a path relative to the prefix, or
        an absolute one as the installed system sees it (/etc/...), below
        DESTDIR if there is one."""
        if not os.path.isabs(p):
            p = os.path.join(self.prefix, p)
        return self.destdir + p if self.destdir else p

    def files(self):
        """Every file and link installed, as paths relative to DESTDIR (or /)."""
        top = self.destdir or self.prefix
        out = set()
        for d, _, names in os.walk(top):
            for n in names:
                full = os.path.join(d, n)
                out.add(os.path.relpath(full, self.destdir) if self.destdir else full)
        return out

    def move(self, name):
        """Moves the installed files elsewhere in the work dir, as an operator
        moving an install tree would; ``path()`` follows."""
        new = os.path.join(self.workdir, name)
        if self.destdir:
            shutil.move(self.destdir, new)
            self.destdir = new
        else:
            shutil.move(self.prefix, new)
            self.prefix = new
        return self

    def cleanup(self):
        _rmtree(self.workdir)

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.cleanup()


# Inside the namespace: cover each directory with an empty tmpfs, check it
# worked, then exec the program with no environment at all.
_HIDE = r'''
for d; do
  [ "$d" = -- ] && break
  shift
  [ -d "$d" ] || continue
  mount -t tmpfs -o size=1m,mode=0755 registrar-test-hidden "$d" || exit 125
  [ -z "$(ls -A "$d")" ] || { echo "run_hidden: $d still shows files" >&2; exit 125; }
done
shift
exec env -i "$@"
'''


def run_hidden(argv, hide, timeout=60):
    """Runs argv in a private mount namespace where every directory in
    ``hide`` is an empty tmpfs, with an empty environment; returns the
    CompletedProcess (text).  Exit status 125 means the hiding failed."""
    if _find("unshare") is None:
        raise MissingDependency("unshare not found (Debian package: util-linux)")
    # deepest first: once a parent is covered, a path below it is gone
    dirs = sorted({os.path.realpath(d) for d in hide}, key=len, reverse=True)
    cp = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _HIDE,
                         "sh", *dirs, "--", *argv],
                        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if cp.returncode == 125:
        raise RuntimeError("could not hide %s: %s" % (", ".join(dirs), cp.stderr.strip()))
    return cp
