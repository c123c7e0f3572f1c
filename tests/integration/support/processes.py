"""Processes: ``Process`` (a child with its output in a log file), the /proc
helpers that find, wait for and kill them, and the cleanup registry.

Rule: the harness never signals a process it did not start.  Daemons are
tracked by their PID *and* start time (``_snapshot``: a recycled PID is not
the same process), their helpers by descendancy or by a command line that
names this instance's own unique work directory (``_users_of_dir``).

Cleanup registry: everything the harness starts is registered here and
cleaned up at interpreter exit, and on SIGTERM (turned into
KeyboardInterrupt so that atexit still runs), but tests should still call
``cleanup()`` themselves, normally via ``self.addCleanup(obj.cleanup)`` or a
``with`` block.  A runner killed with SIGKILL cannot clean up; its children
get ``death_signal`` (parent-death signal) and ``sweep.sweep_stale()``
removes the rest.
"""

import atexit
import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from .util import _PACKAGES, MissingDependency, _find, _rmtree, _tail

# ---------------------------------------------------------------------------
# /proc helpers: find, wait for and kill only the processes we started
# ---------------------------------------------------------------------------

def _proc_table():
    """{pid: (ppid, state, starttime, argv list)} for all live processes."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        # comm is in parentheses and may contain anything: split at the last ')'
        rest = stat[stat.rfind(")") + 2:].split()
        table[pid] = (int(rest[1]), rest[0], int(rest[19]), argv)
    return table


def _descendants(table, roots):
    children = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _snapshot(table, pids):
    """{pid: starttime} for the live (non-zombie) processes among ``pids``."""
    return {p: table[p][2] for p in pids if p in table and table[p][1] != "Z"}


def _still_alive(snap):
    """Subset of a snapshot whose processes still exist (same start time,
    not zombies: PID 1 of this sandbox reaps orphans only now and then)."""
    table = _proc_table()
    return {p: st for p, st in snap.items()
            if p in table and table[p][2] == st and table[p][1] != "Z"}


def _kill_snapshot(snap, sig=signal.SIGKILL):
    for pid, st in _still_alive(snap).items():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap_or_kill(snap, grace):
    """Wait ``grace`` seconds for the processes to exit, then SIGKILL them.
    Returns the processes that survived even that (should be empty)."""
    deadline = time.monotonic() + grace
    while _still_alive(snap) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _still_alive(snap):
        _kill_snapshot(snap)
        deadline = time.monotonic() + 5
        while _still_alive(snap) and time.monotonic() < deadline:
            time.sleep(0.05)
    return _still_alive(snap)


def _pdeathsig_preexec(sig):
    """preexec_fn: deliver ``sig`` to the child when the test runner dies.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so
    it is only armed for children started from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork
    signum = int(sig)

    def preexec():
        prctl(1, signum, 0, 0, 0)  # 1 == PR_SET_PDEATHSIG
    return preexec


def _users_of_dir(table, path):
    """Snapshot of the live processes whose command line names something
    below ``path`` (a work dir), and of their descendants."""
    marker = path + "/"
    roots = {p for p, (_, state, _, argv) in table.items()
             if state != "Z" and any(marker in a for a in argv)}
    return _snapshot(table, roots | _descendants(table, roots))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------
# Cleanup registry (atexit and SIGTERM safety net)
# ---------------------------------------------------------------------------

_live = []
_live_lock = threading.Lock()
_sigterm_installed = False


def _register(obj):
    global _sigterm_installed
    with _live_lock:
        if obj not in _live:
            _live.append(obj)
    # SIGTERM (CI timeout, kill) would skip atexit; turn it into
    # KeyboardInterrupt, which unittest lets through, so atexit cleans up.
    # Only if nobody installed a handler already.
    if (not _sigterm_installed and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        def _on_sigterm(signum, frame):
            raise KeyboardInterrupt("SIGTERM")
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


@atexit.register
def _cleanup_all():
    while True:
        with _live_lock:
            if not _live:
                return
            obj = _live.pop()
        try:
            obj.cleanup()
        except BaseException as e:  # noqa: BLE001 - best effort at exit
            sys.stderr.write("harness: cleanup of %r failed: %s\n" % (obj, e))


# ---------------------------------------------------------------------------
# Process
# ---------------------------------------------------------------------------

class Process:
    """A child process whose stdout and stderr go (merged) to a log file.

    ``env`` entries are added to a copy of os.environ (a value of None removes
    the variable); with ``inherit_env=False`` ``env`` is the whole
    environment.  ``log_path`` defaults to a temporary file that
    ``cleanup()`` deletes.  The child runs in its own session (a Ctrl-C
    aimed at the test runner does not hit it) and gets ``death_signal``
    (SIGKILL) if the test runner dies.
    """

    def __init__(self, argv, env=None, cwd=None, log_path=None, name=None,
                 death_signal=signal.SIGKILL, inherit_env=True, register=True):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.cwd = cwd
        self.death_signal = death_signal
        self._env = env
        self._inherit_env = inherit_env
        # The daemon classes own their Process and clean it up in order
        # (containers first), so theirs are not registered on their own.
        self._register = register
        self._own_log = log_path is None
        self.log_path = log_path  # a temp file is made by start() if None
        self._popen = None
        self._cleaned = False

    def __repr__(self):
        return "<Process %s pid=%s>" % (self.name, self.pid)

    def _environ(self):
        env = dict(os.environ) if self._inherit_env else {}
        for k, v in (self._env or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def start(self):
        if self.alive():
            return self
        if not os.path.isabs(self.argv[0]) and _find(self.argv[0]) is None:
            raise MissingDependency("%s not found (Debian package: %s)"
                                    % (self.argv[0], _PACKAGES.get(self.argv[0], "?")))
        self._cleaned = False
        if self.log_path is None:
            fd, self.log_path = _mkstemp_log(self.name)
            os.close(fd)
        if self._register:
            _register(self)
        log = open(self.log_path, "ab")
        try:
            self._popen = subprocess.Popen(
                self.argv, env=self._environ(), cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_pdeathsig_preexec(self.death_signal) if self.death_signal else None)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self._popen.pid if self._popen else None

    @property
    def returncode(self):
        """Exit code (negative signal number if killed), None while running."""
        return self._popen.poll() if self._popen else None

    def alive(self):
        return self._popen is not None and self._popen.poll() is None

    def log(self):
        """The whole log so far, as text."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines) if self.log_path else ""

    def mark(self):
        """Current log length, for ``wait_log(..., since=mark)``."""
        return len(self.log())

    def wait_log(self, regex, timeout=10, since=0, flags=re.M):
        """Wait until the log (from character ``since``) matches ``regex``;
        return the match.  Fails early if the process exits without it."""
        pattern = re.compile(regex, flags)
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.alive()
            m = pattern.search(self.log(), since)
            if m:
                return m
            if exited:
                raise AssertionError("%s exited (code %s) without logging /%s/; log tail:\n%s"
                                     % (self.name, self.returncode, regex, self.log_tail()))
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %ss waiting for /%s/ in %s log; tail:\n%s"
                                     % (timeout, regex, self.name, self.log_tail()))
            time.sleep(0.02)

    def signal(self, sig):
        if self.alive():
            self._popen.send_signal(sig)

    def wait(self, timeout=10):
        """Wait for exit and return the exit code; AssertionError on timeout."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ss" % (self.name, timeout)) from None

    # (sig defaults to None: in the class body "signal" is the method below)
    def stop(self, timeout=10, sig=None):
        """Send ``sig`` (SIGTERM), wait up to ``timeout``, then SIGKILL.  Never
        fails; returns the exit code (for daemons whose shutdown is not under
        test)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(sig or signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        return self._popen.returncode

    def terminate(self, timeout=10):
        """SIGTERM and wait; return the exit code.  If the process is still
        running after ``timeout`` seconds, SIGKILL it and fail."""
        if self._popen is None:
            raise AssertionError("%s was never started" % self.name)
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
                raise AssertionError("%s ignored SIGTERM for %ss and was killed; log tail:\n%s"
                                     % (self.name, timeout, self.log_tail())) from None
        return self._popen.returncode

    def kill9(self):
        """SIGKILL and wait; returns the exit code (-9 if it was running)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.kill()
        return self._popen.wait()

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        self.kill9()
        if self._own_log and self.log_path:
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class ServerProcess:
    """What the test servers (Etcd, ZooKeeper) share: one Process in
    ``self._proc``, a work dir removed at cleanup when the server made it
    (``self._own_workdir``), and use as a context manager."""

    def stop(self, timeout=10):
        """SIGTERM (SIGKILL after ``timeout``); data and ports are kept."""
        if self._proc is not None:
            return self._proc.stop(timeout=timeout)

    def kill(self):
        """SIGKILL, as in a crash."""
        if self._proc is not None:
            return self._proc.kill9()

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        _unregister(self)
        self.kill()
        if self.workdir and self._own_workdir and not _rmtree(self.workdir):
            raise RuntimeError("could not remove %s" % self.workdir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _mkstemp_log(name):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:20]
    return tempfile.mkstemp(prefix="rl-%d-%s-" % (os.getpid(), safe), suffix=".log", dir="/tmp")

