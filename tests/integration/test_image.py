"""registrar as a container, as users of the old tool run it:

    docker run -v /var/run/docker.sock:/var/run/docker.sock -e HOST=… -e IPADDRESS=… registrar run

The image is the build's own (`cmake --build BUILD --target image`, which
assembles a root filesystem with packaging/image/build-rootfs.sh and loads
it with `docker import`) in the test's private dockerd; that dockerd's
socket is mounted into the registrar container, and the file backend
writes to a host directory mounted at /var/lib/registrar, read back from
the host side.  packaging/image/Dockerfile cannot be built here (no image
registry): its lint is at the end."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness as h
from common import REGISTRAR, SOURCE, DockerTest, host_port

BUILD = os.path.dirname(REGISTRAR)
IMAGE = "registrar:%s" % re.search(r"project\(registrar VERSION (\S+)",
                                   open(os.path.join(SOURCE, "CMakeLists.txt")).read()).group(1)
HOST, IPADDRESS = "imagehost", "10.0.7.7"
SANITIZED = os.environ.get("REGISTRAR_SANITIZED") in ("1", "ON", "TRUE", "true")


@unittest.skipUnless(os.path.exists(os.path.join(BUILD, "CMakeCache.txt")),
                     "REGISTRAR_BIN is not in a CMake build tree (the image target builds from it)")
@h.skip_unless_available(h.Dockerd)
class RegistrarAsAContainer(DockerTest):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = dict(os.environ, DOCKER_HOST=cls.docker.host_uri,
                   DOCKER_CONFIG=os.path.join(cls.docker.workdir, "cli"))
        r = subprocess.run(["cmake", "--build", BUILD, "--target", "image"], capture_output=True, text=True,
                           env=env, timeout=600)
        if r.returncode != 0:
            raise AssertionError("the image target failed:\n" + r.stdout + r.stderr)

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="registrar-image-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def start_registrar(self, name, registry_dir, *env):
        """The image as a user runs it: the socket mounted, the host's name
        and address given, a port of its own published (so only the rule
        that it is registrar's own container keeps it out)."""
        os.makedirs(registry_dir, exist_ok=True)
        args = ["--name", name, "-v", "%s:/var/run/docker.sock" % self.docker.socket,
                "-v", "%s:/var/lib/registrar" % registry_dir,
                "-e", "HOST=" + HOST, "-e", "IPADDRESS=" + IPADDRESS, "-e", "INTERVAL=500",
                "-e", "LISTEN=0.0.0.0:9090", "-p", "9090", "--stop-timeout", "20"]
        if SANITIZED:
            args += ["-e", "ASAN_OPTIONS=detect_leaks=0"]
        for e in env:
            args += ["-e", e]
        cid = self.docker.run(*args, IMAGE, stop_timeout=None)
        self.addCleanup(lambda: self.docker.docker("rm", "-f", cid, check=False))
        return cid

    def registry(self, registry_dir):
        try:
            with open(os.path.join(registry_dir, "registry.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def wait_for(self, registry_dir, predicate, message, cid):
        """The registry file once predicate holds for it."""
        try:
            h.wait_until(lambda: predicate(self.registry(registry_dir)), timeout=30, message=message)
        except AssertionError:
            raise AssertionError("%s; registrar's log:\n%s" % (message, self.docker.docker("logs", cid, check=False)))
        return self.registry(registry_dir)

    def test_it_registers_the_other_containers_with_the_hosts_address_and_not_itself(self):
        web = self.docker.run("-e", "NAME=web", "-e", "ENVIRONMENT=dev", "-P", "--expose", "80",
                              self.image, "sleep", "3600")
        registry_dir = os.path.join(self.dir, "registry")
        me = self.start_registrar("registrar", registry_dir)
        w = self.docker.inspect(web)
        web_key = "/services/dev/web/80/%s/%s" % (host_port(w, "80/tcp"), w["Config"]["Hostname"])
        doc = self.wait_for(registry_dir, lambda r: r and web_key in r["services"], "the web container's key", me)
        services = doc["services"]
        self.assertEqual(services[web_key]["ipaddress"], IPADDRESS)
        self.assertEqual(services[web_key]["host_port"], host_port(w, "80/tcp"))
        self.assertEqual(doc["host"], HOST)
        # registrar's container publishes 9090 too, and stays out
        mine = self.docker.inspect(me)
        self.assertTrue(mine["NetworkSettings"]["Ports"]["9090/tcp"])
        self.assertEqual(list(services), [web_key])
        self.assertEqual(doc["hosts"]["/hosts/" + HOST]["keys"], [web_key])
        self.assertIn("registrar %s" % IMAGE.split(":")[1], self.docker.docker("logs", me))

    def test_it_registers_itself_when_asked(self):
        registry_dir = os.path.join(self.dir, "registry-self")
        me = self.start_registrar("registrar-self", registry_dir, "REGISTER_SELF=true")
        mine = self.docker.inspect(me)
        own_key = "/services/9090/%s/%s" % (host_port(mine, "9090/tcp"), mine["Config"]["Hostname"])
        doc = self.wait_for(registry_dir, lambda r: r and own_key in r["services"], "registrar's own key", me)
        self.assertEqual(doc["services"][own_key]["id"], mine["Id"])

    def test_docker_stop_ends_it_cleanly(self):
        registry_dir = os.path.join(self.dir, "registry-stop")
        me = self.start_registrar("registrar-stop", registry_dir)
        self.wait_for(registry_dir, lambda r: r is not None, "the first write", me)
        # a registrar that ignored SIGTERM (it is PID 1 here) would be killed after
        # the 20 s stop timeout, exit status 137
        self.docker.docker("stop", me, timeout=60)
        state = self.docker.inspect(me)["State"]
        self.assertEqual((state["Running"], state["ExitCode"], state["OOMKilled"]), (False, 0, False),
                         self.docker.docker("logs", me, check=False))
        self.assertRegex(self.docker.docker("logs", me), r"SIGTERM")


class DockerfileLint(unittest.TestCase):
    """packaging/image/Dockerfile cannot be built without an image registry;
    what can be checked without building it is."""

    DOCKERFILE = os.path.join(SOURCE, "packaging", "image", "Dockerfile")

    def stages(self):
        with open(self.DOCKERFILE) as f:
            text = re.sub(r"\\\n", " ", f.read())
        stages = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("FROM "):
                stages.append({"from": line.split()[1], "lines": []})
            elif line and not line.startswith("#"):
                stages[-1]["lines"].append(line)
        return stages

    @staticmethod
    def apt_packages(stage):
        out = set()
        for line in stage["lines"]:
            for command in line.split("&&"):
                words = command.split()
                if words[:2] == ["apt-get", "install"] or words[1:3] == ["apt-get", "install"]:
                    out.update(w for w in words[words.index("install") + 1:] if not w.startswith("-"))
        return out

    def test_it_builds_on_debian_12_slim_in_two_stages(self):
        self.assertEqual([s["from"] for s in self.stages()], ["debian:12-slim", "debian:12-slim"])

    def test_the_build_stage_installs_what_ci_builds_with(self):
        with open(os.path.join(SOURCE, ".ci", "deps")) as f:
            build = re.search(r'build="([^"]*)"', f.read()).group(1).split()
        self.assertLessEqual(set(build), self.apt_packages(self.stages()[0]))

    @unittest.skipUnless(shutil.which("dpkg-query") and shutil.which("ldd"), "dpkg-query and ldd are needed")
    def test_the_runtime_stage_brings_every_library_the_binary_links(self):
        runtime = self.apt_packages(self.stages()[1])
        needed = set()
        for line in subprocess.run(["ldd", REGISTRAR], capture_output=True, text=True, check=True).stdout.splitlines():
            m = re.search(r"=> (/\S+)", line)
            if m and not re.search(r"lib(asan|ubsan|lsan)", m.group(1)):
                owner = subprocess.run(["dpkg-query", "-S", os.path.realpath(m.group(1))],
                                       capture_output=True, text=True)
                if owner.returncode == 0:
                    needed.add(owner.stdout.split(":")[0])
        # what the runtime packages bring, with what they depend on
        brought, todo = set(), list(runtime)
        while todo:
            pkg = todo.pop()
            if pkg in brought:
                continue
            brought.add(pkg)
            deps = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", pkg],
                                  capture_output=True, text=True).stdout
            for alternative in deps.split(","):
                name = alternative.split("|")[0].strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
        self.assertTrue(needed)
        self.assertLessEqual(needed, brought, "libraries the runtime stage does not bring")

    def test_the_image_starts_registrar_run(self):
        lines = self.stages()[1]["lines"]
        self.assertIn('ENTRYPOINT ["/usr/bin/registrar"]', lines)
        self.assertIn('CMD ["run"]', lines)
        self.assertIn("COPY --from=build /out/ /", lines)


if __name__ == "__main__":
    unittest.main()
