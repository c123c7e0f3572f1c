"""``ZkClient``: a minimal synchronous ZooKeeper client (the jute wire
protocol), enough to inspect what registrar wrote; ``ZkError`` for failed
requests.  Standard library only, so no ZooKeeper client package is needed.
"""

import socket
import struct


class ZkError(RuntimeError):
    """A ZooKeeper request failed with error code ``.code``."""

    NAMES = {-101: "NoNode", -110: "NodeExists", -111: "NotEmpty", -102: "NoAuth",
             -103: "BadVersion", -4: "ConnectionLoss", -112: "SessionExpired"}

    def __init__(self, op, path, code):
        super().__init__("%s %s: %s (%d)" % (op, path, self.NAMES.get(code, "error"), code))
        self.code = code


class ZkClient:
    """Minimal synchronous ZooKeeper client (jute wire protocol), enough to
    inspect what registrar wrote: get, children, exists, create, delete.

    One session per instance; ``close()`` ends it (ephemeral nodes go).
    """

    NONODE = -101
    _STAT = struct.Struct(">qqqqiiiqiiq")
    STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                   "ephemeralOwner", "dataLength", "numChildren", "pzxid")

    def __init__(self, host_port, session_timeout_ms=10000, timeout=5.0):
        host, port = host_port.rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._xid = 0
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
        # passwd (16 zero bytes), readOnly
        self._send(struct.pack(">iqiq", 0, 0, session_timeout_ms, 0) + self._buf(b"\0" * 16)
                   + b"\0")
        resp = self._recv()
        _, self.session_timeout_ms, self.session_id = struct.unpack_from(">iiq", resp)
        if self.session_timeout_ms <= 0:
            raise ZkError("connect", host_port, -112)

    @staticmethod
    def _buf(b):
        if b is None:
            return struct.pack(">i", -1)
        if isinstance(b, str):
            b = b.encode()
        return struct.pack(">i", len(b)) + b

    def _send(self, payload):
        self._sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("ZooKeeper closed the connection")
            data += chunk
        return data

    def _recv(self):
        n, = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(n)

    def _call(self, op, body, path):
        self._xid += 1
        self._send(struct.pack(">ii", self._xid, op) + body)
        while True:
            resp = self._recv()
            xid, _zxid, err = struct.unpack_from(">iqi", resp)
            if xid == self._xid:
                break  # skip watch events (-1) and pings (-2)
        if err:
            raise ZkError({1: "create", 2: "delete", 3: "exists", 4: "get", 8: "children",
                           -11: "close"}.get(op, str(op)), path, err)
        return resp[16:]

    def _read_buf(self, data, off):
        n, = struct.unpack_from(">i", data, off)
        off += 4
        if n < 0:
            return None, off
        return data[off:off + n], off + n

    def get(self, path):
        """(data bytes, stat dict) of a node; ZkError(NoNode) if absent."""
        rest = self._call(4, self._buf(path) + b"\0", path)
        data, off = self._read_buf(rest, 0)
        return data, dict(zip(self.STAT_FIELDS, self._STAT.unpack_from(rest, off)))

    def exists(self, path):
        """stat dict, or None if the node does not exist."""
        try:
            rest = self._call(3, self._buf(path) + b"\0", path)
        except ZkError as e:
            if e.code == self.NONODE:
                return None
            raise
        return dict(zip(self.STAT_FIELDS, self._STAT.unpack_from(rest, 0)))

    def children(self, path):
        rest = self._call(8, self._buf(path) + b"\0", path)
        count, = struct.unpack_from(">i", rest)
        off, names = 4, []
        for _ in range(max(count, 0)):
            name, off = self._read_buf(rest, off)
            names.append(name.decode())
        return sorted(names)

    def create(self, path, data=b"", ephemeral=False, makepath=False):
        if makepath:
            parent = path.rsplit("/", 1)[0]
            if parent and self.exists(parent) is None:
                self.create(parent, makepath=True)
        # ACL: world:anyone with all permissions (31)
        acl = struct.pack(">ii", 1, 31) + self._buf("world") + self._buf("anyone")
        rest = self._call(1, self._buf(path) + self._buf(data) + acl
                          + struct.pack(">i", 1 if ephemeral else 0), path)
        return self._read_buf(rest, 0)[0].decode()

    def delete(self, path, recursive=False):
        if recursive:
            for child in self.children(path):
                self.delete(path.rstrip("/") + "/" + child, recursive=True)
        self._call(2, self._buf(path) + struct.pack(">i", -1), path)

    def close(self):
        if self._sock is None:
            return
        try:
            self._call(-11, b"", "")
        except (OSError, ZkError):
            pass
        finally:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

