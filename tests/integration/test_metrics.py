"""statsd: the old tool's metric names (milliseconds, as the names say),
plus Docker requests per resync, under prefix_stats."""
import os
import socket
import tempfile
import threading
import unittest

import harness as h
from common import DockerTest, start_registrar


class StatsdListener:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self.lock:
                self.lines.extend(data.decode().splitlines())

    def seen(self, prefix):
        with self.lock:
            return [line for line in self.lines if line.startswith(prefix)]

    def close(self):
        self.sock.close()


@h.skip_unless_available(h.Dockerd)
class Statsd(DockerTest):
    def test_metrics_reach_statsd_under_the_prefix(self):
        statsd = StatsdListener()
        self.addCleanup(statsd.close)
        tmp = tempfile.TemporaryDirectory(prefix="registrar-metrics-")
        self.addCleanup(tmp.cleanup)
        start_registrar(self, "run", "-B", "file://" + os.path.join(tmp.name, "s.json"), "-D", self.docker.socket,
                        "-H", "h1", "-a", "10.0.0.1", "-i", "300",
                        env={"STATSD": "127.0.0.1:%d" % statsd.port, "PREFIX_STATSD": "site.reg"})
        self.docker.run("-e", "NAME=m", "-P", "--expose", "80", self.image, "sleep", "3600")
        h.wait_until(lambda: statsd.seen("site.reg.registrations:1|c"), message="a registration counted")
        h.wait_until(lambda: statsd.seen("site.reg.docker.requests_per_resync:1|g"),
                     message="a quiet resync: one Docker request")
        h.wait_until(lambda: statsd.seen("site.reg.docker.events:1|c"), message="events counted")
        timings = statsd.seen("site.reg.services.set.ms:")
        self.assertTrue(timings and all(t.endswith("|ms") for t in timings), timings)
        # milliseconds, not seconds: a local file write takes well under a second
        self.assertTrue(all(float(t.split(":")[1].split("|")[0]) < 1000 for t in timings), timings)


if __name__ == "__main__":
    unittest.main()
