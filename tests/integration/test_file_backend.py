"""The embedded default: this host's services in one JSON file, as the
README's quick start runs it, and a site script that changes the layout."""
import json
import os
import tempfile
import unittest

import harness as h
from common import DockerTest, host_port, old_tool_document, start_registrar

HOST = "filehost"
IPADDRESS = "10.0.9.9"


@h.skip_unless_available(h.Dockerd)
class FileBackend(DockerTest):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="registrar-file-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.path = os.path.join(self.dir, "registry", "services.json")

    def registrar(self, *args):
        return start_registrar(self, "run", "-B", "file://" + self.path, "-D", self.docker.socket,
                               "-H", HOST, "-a", IPADDRESS, "-i", "1000", *args)

    def services(self):
        try:
            with open(self.path) as f:
                return json.load(f)["services"]
        except FileNotFoundError:
            return {}

    def wait(self, predicate, message):
        return h.wait_until(lambda: predicate(self.services()), timeout=10, message=message)

    def test_the_file_follows_the_running_containers(self):
        web = self.docker.run("-e", "NAME=web", "-e", "ENVIRONMENT=dev", "-P", "--expose", "80",
                              self.image, "sleep", "3600")
        reg = self.registrar()
        w = self.docker.inspect(web)
        web_key = "/services/dev/web/80/%s/%s" % (host_port(w, "80/tcp"), w["Config"]["Hostname"])
        self.wait(lambda s: web_key in s, "the running container in the file")
        with open(self.path) as f:
            self.assertEqual(json.load(f)["host"], HOST)
        self.assertEqual(self.services()[web_key], old_tool_document(w, "80/tcp", web_key, HOST, IPADDRESS))

        db = self.docker.run("-e", "NAME=db", "-P", "--expose", "5432", self.image, "sleep", "3600")
        d = self.docker.inspect(db)
        db_key = "/services/db/5432/%s/%s" % (host_port(d, "5432/tcp"), d["Config"]["Hostname"])
        self.wait(lambda s: db_key in s and web_key in s, "the new container added")

        self.docker.docker("rm", "-f", web)
        self.wait(lambda s: web_key not in s, "the removed container gone")
        self.assertEqual(set(self.services()), {db_key})
        self.assertEqual(os.listdir(os.path.dirname(self.path)), ["services.json"], "a temporary file was left")
        self.assertEqual(reg.terminate(), 0)

    def test_a_site_script_changes_the_layout(self):
        site = os.path.join(self.dir, "site.lua")
        with open(site, "w") as f:
            f.write(
                "local registrar = require 'registrar'\n"
                "-- /teams/<team label>/<name>/<host>:<port>, documents from the default\n"
                "function key(service)\n"
                "  local team = service.labels.team\n"
                "  if not team then return registrar.default.key(service) end\n"
                "  return ('/teams/%s/%s/%s:%s'):format(team, service.name, registrar.host.hostname,\n"
                "                                       service.host_port)\n"
                "end\n")
        c = self.docker.run("--label", "team=search", "-e", "SERVICE_NAME=indexer", "-P", "--expose", "9200",
                            self.image, "sleep", "3600")
        plain = self.docker.run("-e", "NAME=plain", "-P", "--expose", "81", self.image, "sleep", "3600")
        self.registrar("--script", site)
        i, p = self.docker.inspect(c), self.docker.inspect(plain)
        team_key = "/teams/search/indexer/%s:%s" % (HOST, host_port(i, "9200/tcp"))
        plain_key = "/services/plain/81/%s/%s" % (host_port(p, "81/tcp"), p["Config"]["Hostname"])
        self.wait(lambda s: set(s) == {team_key, plain_key}, "the site layout and the default one")
        self.assertEqual(self.services()[team_key]["path"], team_key)


if __name__ == "__main__":
    unittest.main()
