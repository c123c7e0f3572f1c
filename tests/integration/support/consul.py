"""The Consul stand-in (tests/consul_standin/, its own module with its own
tests): Consul's HTTP API on 127.0.0.1, served by background threads of the
test process.  Nothing is spawned, so nothing is registered for cleanup:
tests stop it with ``.stop()`` (normally ``self.addCleanup``), and its
threads are daemon threads that end with the test process.
"""

import os
import sys

STANDIN_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "consul_standin")


def start_consul_standin(**kwargs):
    """``consul_standin.start_standin(**kwargs)``: a started stand-in, with
    ``.port``, ``.url``, ``.requests``, ``.agent_services()``, ``.stop()``
    (tests/consul_standin/README.md lists the rest)."""
    if STANDIN_DIR not in sys.path:
        sys.path.insert(0, STANDIN_DIR)
    from consul_standin import start_standin
    return start_standin(**kwargs)
