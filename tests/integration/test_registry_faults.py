"""A registry that hangs or answers garbage: Docker events are still read,
SIGTERM still ends registrar at once, and nothing is lost."""
import json
import os
import socket
import tempfile
import threading
import time
import unittest

import harness as h
from common import DockerTest, start_registrar


class BlackHole:
    """Accepts TCP connections on loopback and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.stopped = True
        for c in self.conns:
            c.close()
        self.sock.close()


class Garbage:
    """Answers every HTTP request with 200 and a body that is not JSON."""

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                body = b"<html>proxy error</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_PUT = do_POST = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@h.skip_unless_available(h.Dockerd)
class RegistryFaults(DockerTest):
    def registrar(self, backend):
        return start_registrar(self, "run", "-B", backend, "-D", self.docker.socket, "-H", "h1",
                               "-a", "10.0.0.1", "-i", "500", "--log-level", "debug", env={"TIMEOUT": "2000"})

    def test_a_hung_registry_blocks_neither_docker_events_nor_sigterm(self):
        hole = BlackHole()
        self.addCleanup(hole.close)
        reg = self.registrar("etcd3://127.0.0.1:%d" % hole.port)
        reg.wait_log(r"Docker API")
        cid = self.docker.run("-e", "NAME=x", "-P", "--expose", "80", self.image, "sleep", "3600")
        reg.wait_log(r"event start %s" % cid[:12])           # read while the registry hangs
        reg.wait_log(r"registry etcd3://127\.0\.0\.1:\d+: open failed: .*timed out")
        started = time.monotonic()
        self.assertEqual(reg.terminate(timeout=5), 0)
        self.assertLess(time.monotonic() - started, 5)

    def test_garbage_from_the_registry_is_reported_and_deletes_nothing(self):
        junk = Garbage()
        self.addCleanup(junk.close)
        for scheme in ("etcd3", "etcd2", "consul"):
            reg = self.registrar("%s://127.0.0.1:%d" % (scheme, junk.port))
            reg.wait_log(r"registry %s://\S+: (open|advertised|register|apply) failed: " % scheme)
            self.assertTrue(reg.alive())
            self.assertEqual(reg.terminate(timeout=5), 0)


if __name__ == "__main__":
    unittest.main()
