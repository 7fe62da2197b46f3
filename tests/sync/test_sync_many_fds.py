"""A gate link whose socket is numbered past 1023 still works (issue #14's root cause).

paho's own ``Client.loop()`` waits in ``select()``, which refuses descriptors >= 1024: a
simulation worker hosting 150 gates had them and its links failed in a connect-and-close
loop with ``[Errno 9] Bad file descriptor``. The link now waits with ``selectors``
(:mod:`sync.netloop`). The child process below holds 1,100 open files first, so every
socket it makes is numbered past 1023; it shows that paho's ``loop()`` fails there and that
a GateLink connects, sends and deletes its acknowledged events all the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CHILD = r'''
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
port = int(sys.argv[1])
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sync_helpers import FakeCentre, Ledger, wait_for
from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox
# The stand-in centre runs on paho's own loop: start it while descriptors are still low.
centre = FakeCentre(port).start()
hold = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
plain = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="plain-paho")
plain.connect("127.0.0.1", port)
try:
    plain_rc = str(plain.loop(timeout=0.1))
except Exception as exc:
    plain_rc = type(exc).__name__ + ": " + str(exc)
plain_fd = plain.socket().fileno() if plain.socket() else None
db = os.path.join(sys.argv[3], "ledger.db")
ledger = Ledger(db, gate="g-fds")
with Outbox(db) as ob, GateLink(gate="g-fds", outbox=ob,
                                broker=BrokerConfig(port=port, ack_timeout_s=2.0)) as link:
    wait_for(lambda: link.status().connected, 60, "connected")
    fd = link._client.socket().fileno()
    ledger.admit(20)
    wait_for(lambda: ob.backlog() == 0, 60, "acknowledged")
    print(json.dumps({"plain": plain_rc, "plain_fd": plain_fd, "link_fd": fd,
                      "stored": len(centre.seqs("g-fds"))}))
centre.stop()
'''


@pytest.mark.broker
def test_a_link_whose_socket_is_past_1023_connects_sends_and_is_acknowledged(
    broker: Any, tmp_path: Path
) -> None:
    r = subprocess.run([sys.executable, "-c", CHILD, str(broker.port), str(HERE), str(tmp_path)],
                       capture_output=True, text=True, timeout=180,
                       cwd=HERE.parents[1])
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["link_fd"] >= 1024 and out["plain_fd"] >= 1024, out
    # The condition is real: paho's own loop cannot wait on such a socket...
    assert out["plain"] != "MQTTErrorCode.MQTT_ERR_SUCCESS", out
    # ...and the link, which does not use it, delivered every event.
    assert out["stored"] == 20, out
