"""Deleting from a running knit dev, as kubectl and kn do: a Service goes with its Revisions and
Route (instances stopped, host 404), the source that sent to it stops and shows why, and
re-applying brings everything back, with the records that waited in Kafka."""

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import requests
from kafka import KafkaProducer

from knit.client import ControlError
from knit.testing.harness import HANG, KnitDev

pytestmark = pytest.mark.integration

SINK = """
import http.server, os

class Sink(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open("received.txt", "a") as received:
            received.write(self.headers["ce-id"] + "\\n")
        self.send_response(202); self.end_headers()

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Sink).serve_forever()
"""

MANIFEST = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: sink}
spec:
  template:
    spec:
      containers: [{image: sink:dev, command: [python, sink.py], workingDir: ..}]
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka:9092]
  topics: [delete-test]
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: sink}}
"""


def knit(*args: str, cwd: Path) -> tuple[int, list[str]]:
    process = subprocess.run([sys.executable, "-m", "knit", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    return process.returncode, (process.stdout + process.stderr).splitlines()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG  # only catches a hang: each wait ends on its condition
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {HANG}s"
        time.sleep(0.05)


def received(project: Path) -> list[str]:
    path = project / "received.txt"
    return path.read_text().split() if path.exists() else []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def dev(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "app.yaml").write_text(textwrap.dedent(MANIFEST))
    (tmp_path / "sink.py").write_text(textwrap.dedent(SINK))
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    running = KnitDev(tmp_path / "manifests", cwd=tmp_path, env=env)
    running.wait_ready()
    yield running, tmp_path
    running.stop()


def test_deleting_a_service_stops_it_blocks_its_source_and_reapplying_delivers_what_waited(dev):
    dev, project = dev
    control = ("--control", dev.control)
    bootstrap = next(line.split()[1] for line in dev.lines if line.split()[:1] == ["kafka"])
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send("delete-test", b"one", partition=0).get(30)
    wait_until(lambda: len(received(project)) == 1, "delivered")
    pids = [i["pid"] for r in dev.describe("sink")["revisions"] for i in r["instances"]]
    assert pids and all(alive(pid) for pid in pids)

    # When the Service is deleted
    code, lines = knit("service", "delete", "sink", *control, cwd=project)

    # Then its Revision's instances stopped, its host answers 404, and the source says why it stopped
    assert code == 0, lines
    assert lines[0] == "Service default/sink: deleted with its Revisions sink-00001"
    assert lines[1].startswith("KafkaSource default/feed: stopped (spec.sink.ref: no Service 'sink';")
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(ControlError, match="no Service default/sink"):
        dev.describe("sink")
    gateway = dev.gateway.removeprefix("http://")
    assert_status(gateway, "sink.default.localhost", 404)
    code, lines = knit("eventing", "list", *control, cwd=project)
    assert code == 0
    assert lines[1].split()[:4] == ["KafkaSource", "feed", "False", "SinkNotFound"]

    # When records arrive meanwhile, and the Service is applied again
    for n in (2, 3):
        producer.send("delete-test", str(n).encode(), partition=0).get(30)
    producer.close(10)
    code, lines = knit("apply", "-f", "manifests", *control, cwd=project)
    assert code == 0, lines
    assert "Service default/sink: created Revision sink-00001" in lines
    assert any(line.startswith("KafkaSource default/feed: dispatching to http://127.0.0.1:") for line in lines)

    # Then the records that waited in Kafka arrive, each once: the offsets committed before stay
    wait_until(lambda: len(received(project)) == 3, "all three delivered")
    assert sorted(received(project)[1:]) == ["partition:0/offset:1", "partition:0/offset:2"]
    code, lines = knit("eventing", "list", *control, cwd=project)
    assert lines[1].split()[:3] == ["KafkaSource", "feed", "True"]


def test_deleting_a_source_stops_its_dispatcher_and_keeps_the_service(dev):
    dev, project = dev
    (dispatcher,) = dispatchers(dev)
    code, lines = knit("delete", "kafkasource", "feed", "--control", dev.control, cwd=project)
    assert (code, lines) == (0, ["KafkaSource default/feed: deleted", "KafkaSource default/feed: stopped"])
    assert not alive(dispatcher)
    assert dispatchers(dev) == []
    assert [s["name"] for s in dev.call("GET", "/services")["services"]] == ["sink"]
    assert dev.call("GET", "/eventing")["resources"] == []


def test_deleting_what_is_not_applied_deletes_nothing_and_names_it(dev):
    dev, project = dev
    code, lines = knit("delete", "-f", "manifests", "--control", dev.control, cwd=project)
    assert code == 0
    assert lines[:2] == [
        "Service default/sink: deleted with its Revisions sink-00001",
        "KafkaSource default/feed: deleted",
    ]

    code, lines = knit("delete", "service", "sink", "--control", dev.control, cwd=project)
    assert code == 2
    assert lines == [
        "knit: nothing was deleted:",
        "  not applied: Service default/sink; `knit service list` and `knit eventing list` show what is",
    ]


def dispatchers(dev: KnitDev) -> list[int]:
    """The pids of knit dev's dispatcher processes (its descendants running knit.eventing.dispatcher)."""
    found = []
    for process in psutil.Process(dev.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "knit.eventing.dispatcher" in process.cmdline():
                found.append(process.pid)
    return found


def assert_status(gateway: str, host: str, status: int) -> None:
    response = requests.get(f"http://{gateway}/", headers={"Host": host}, timeout=10)
    assert response.status_code == status, response.text
