"""What the integration tests share: the registrar binary and how to run it."""
import json
import os
import subprocess
import unittest

import harness as h

REGISTRAR = os.path.abspath(os.environ.get("REGISTRAR_BIN", "build/registrar"))
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_registrar(test, *args, env=None, name="registrar", log_path=None):
    """Starts `registrar ARGS` with only the given environment (plus PATH),
    as the old tool was configured; stopped when the test ends.  Its output
    goes to log_path when given (a file the test made), else to a temporary
    log."""
    full_env = {"PATH": h.SYSTEM_PATH}
    full_env.update(env or {})
    proc = h.Process([REGISTRAR, *args], env=full_env, inherit_env=False, name=name, log_path=log_path)
    test.addCleanup(proc.cleanup)
    test.addCleanup(stop_and_check_log, test, proc)
    proc.start()
    return proc


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def stop_and_check_log(test, proc):
    """Stops registrar with SIGTERM (so LeakSanitizer runs at exit); under
    the sanitizer build a report in its log fails the test."""
    proc.stop(timeout=10)
    log = proc.log()
    for marker in SANITIZER_REPORTS:
        test.assertNotIn(marker, log, "sanitizer report in the %s log" % proc.name)


def container_env(inspect):
    """Config.Env as a map, every '=' after the first kept in the value."""
    env = {}
    for item in inspect["Config"]["Env"] or []:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def host_port(inspect, port):
    bindings = inspect["NetworkSettings"]["Ports"][port]
    return bindings[0]["HostPort"]


def run_web(test, name):
    """A container publishing port 80, named NAME=name: (its id, the key the
    default naming gives it)."""
    cid = test.docker.run("--name", name, "-e", "NAME=" + name, "-P", "--expose", "80",
                          test.image, "sleep", "3600")
    i = test.docker.inspect(cid)
    return cid, "/services/%s/80/%s/%s" % (name, host_port(i, "80/tcp"), i["Config"]["Hostname"])


def old_tool_document(inspect, port, key, host, ipaddress, tags=()):
    """The document behaviour.md section 1 describes, from `docker inspect`."""
    number, _, proto = port.partition("/")
    return {
        "id": inspect["Id"], "host": host, "ipaddress": ipaddress,
        "env": container_env(inspect), "tags": list(tags),
        "name": inspect["Name"], "image": inspect["Config"]["Image"],
        "hostname": inspect["Config"]["Hostname"],
        "port": number, "proto": proto, "host_port": host_port(inspect, port), "path": key,
    }


def decoded(tree):
    return {k: json.loads(v) for k, v in tree.items()}


def etcd_v2_index(etcd):
    """etcd's v2 store index: it moves on every write, so an unchanged
    index proves nothing was written."""
    import urllib.request
    with urllib.request.urlopen(etcd.endpoint + "/v2/keys/", timeout=5) as r:
        return int(r.headers["X-Etcd-Index"])


def remove_all_containers(docker):
    ids = docker.docker("ps", "-aq").split()
    if ids:
        docker.docker("rm", "-f", *ids, check=False)


class DockerTest(unittest.TestCase):
    """One private dockerd, with the busybox image, per test class; every
    container a test starts is removed when the test ends."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.docker = h.Dockerd()
        cls.addClassCleanup(cls.docker.cleanup)
        cls.docker.start()
        cls.image = cls.docker.import_busybox()

    def setUp(self):
        super().setUp()
        self.addCleanup(remove_all_containers, self.docker)


def start_class_etcd(cls):
    """One private etcd (v2 API enabled) for a test class, as cls.etcd."""
    cls.etcd = h.Etcd(enable_v2=True)
    cls.addClassCleanup(cls.etcd.cleanup)
    cls.etcd.start()


class EtcdTest(DockerTest):
    """DockerTest plus one private etcd (v2 API enabled) per test class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        start_class_etcd(cls)


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate,
    laid out as dockerd and the docker CLI want them: ca.pem, cert.pem and
    key.pem in each of the two directories it returns (server, client)."""
    server, client = os.path.join(d, "server"), os.path.join(d, "certs")
    os.makedirs(server)
    os.makedirs(client)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=registrar-test-ca",
         "-keyout", d + "/ca-key.pem", "-out", server + "/ca.pem")
    for where, cn, ext in ((server, "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                           (client, "registrar-client", "extendedKeyUsage=clientAuth\n")):
        with open(where + "/ext", "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
             "-keyout", where + "/key.pem", "-out", where + "/csr.pem")
        ossl("x509", "-req", "-in", where + "/csr.pem", "-CA", server + "/ca.pem", "-CAkey",
             d + "/ca-key.pem", "-CAcreateserial", "-days", "2", "-extfile", where + "/ext",
             "-out", where + "/cert.pem")
    with open(server + "/ca.pem") as src, open(client + "/ca.pem", "w") as dst:
        dst.write(src.read())
    return server, client
