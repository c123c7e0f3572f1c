"""Support modules of the integration-test harness, one per job; tests
normally reach them through ``import harness as h`` (harness.py re-exports
the public names).

util.py       dependency checks and skip decorators, free_port, wait_until,
              running commands, the per-instance naming of work dirs
processes.py  Process, the /proc helpers that signal only our own
              processes, the cleanup registry (atexit and SIGTERM)
sweep.py      sweep_stale(): what SIGKILLed test runs left behind
engine.py     what Dockerd and Podman share: Engine API over a Unix socket,
              the dead proxy, container mounts and cgroups
busybox.py    the busybox rootfs and image tarball (BUSYBOX_IMAGE)
docker.py     Dockerd, its bridges and subnets
podman.py     Podman, in a network namespace of its own
etcd.py       Etcd (TLS, auth, v2 and v3 key helpers), EtcdError
zkclient.py   ZkClient (ZooKeeper wire protocol), ZkError
zookeeper.py  ZooKeeper (one server), ZooKeeperEnsemble (several as one)
consul.py     start_consul_standin(): the Consul stand-in of tests/consul_standin/
install.py    InstalledTree (cmake --install into a work dir), run_hidden (a
              program with the source and build trees hidden)

Rules every module follows (the rules of one job are in its module's
docstring):

* Python 3 standard library only.
* Network traffic only to loopback, to bridges the harness creates, or
  inside network namespaces it creates (docker.py, podman.py, engine.py's
  dead proxy).
* It never signals a process it did not start (processes.py).
* Names are unique per instance: ``<prefix>-<pid>-<counter>`` (util.py).
"""
