"""The busybox image: a minimal root filesystem (static /bin/busybox and
applet links) built once per test process, as a directory or a tar, that
Dockerd and Podman import as ``BUSYBOX_IMAGE`` instead of pulling anything.
"""

import atexit
import io
import os
import shutil
import struct
import tarfile
import threading

from .util import MissingDependency, _claim_workdir, _require, _rmtree

BUSYBOX_IMAGE = "registrar-test/busybox:latest"

BUSYBOX_APPLETS = ("sh", "sleep", "nc", "httpd", "true", "false", "cat", "echo", "env",
                   "wget", "ls", "ps", "kill", "mkdir", "hostname", "grep")

_rootfs_lock = threading.Lock()
_rootfs_cache = {}


def _elf_is_dynamic(path):
    """True if the ELF file has a PT_INTERP header, i.e. needs ld.so and
    shared libraries that a bare rootfs does not have."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            raise MissingDependency("%s is not an ELF binary" % path)
        is64, order = head[4] == 2, "<" if head[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(order + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
        else:
            phoff, = struct.unpack_from(order + "I", head, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 0x2A)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(order + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return True
    return False


def busybox_rootfs():
    """Path of a minimal root filesystem: a static /bin/busybox, applet
    symlinks, /etc/passwd, /etc/group and /tmp.  Built once per process."""
    with _rootfs_lock:
        if "path" in _rootfs_cache and os.path.isdir(_rootfs_cache["path"]):
            return _rootfs_cache["path"]
        _require(["/bin/busybox"])
        if _elf_is_dynamic("/bin/busybox"):
            raise MissingDependency("/bin/busybox is dynamically linked; install the "
                                    "busybox-static Debian package")
        top, _ = _claim_workdir("rb")
        root = os.path.join(top, "rootfs")
        for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var/www"):
            os.makedirs(os.path.join(root, d))
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
        for applet in BUSYBOX_APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        files = {
            "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            "etc/group": "root:x:0:\nnogroup:x:65534:\n",
            # Mount targets for the runtime's bind mounts.
            "etc/hosts": "127.0.0.1 localhost\n",
            "etc/hostname": "",
            "etc/resolv.conf": "",
        }
        for rel, text in files.items():
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        _rootfs_cache["path"] = root
        _rootfs_cache["top"] = top
        return root


def busybox_tarball():
    """The busybox rootfs as an uncompressed tar (bytes), owned by root."""
    with _rootfs_lock:
        if "tar" in _rootfs_cache:
            return _rootfs_cache["tar"]
    root = busybox_rootfs()

    def owned_by_root(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(os.path.join(root, entry), arcname=entry, filter=owned_by_root)
    with _rootfs_lock:
        _rootfs_cache["tar"] = buf.getvalue()
    return _rootfs_cache["tar"]


@atexit.register
def _remove_rootfs():
    if _rootfs_cache.get("top"):
        _rmtree(_rootfs_cache["top"])

