"""`knit dev` as a user runs it: a real process tree, stopped by a signal, nothing left behind."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests
import yaml

from knit.testing.harness import KnitDev

pytestmark = pytest.mark.integration

MANIFEST = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers:
        - image: hello:dev
          command: [python, -m, http.server, "$(PORT)", --bind, "$(HOST)"]
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka.kafka.svc:9092]
  topics: [cli-test]
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: hello}}
"""


def knit(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "knit", *args], cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env or os.environ.copy(),
    )  # fmt: skip


def descendants(pid: int) -> set[int]:
    return {child.pid for child in psutil.Process(pid).children(recursive=True)}


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "app.yaml").write_text(textwrap.dedent(MANIFEST))
    return tmp_path


def through_gateway(url: str, **kwargs) -> requests.Response:
    """GET a *.localhost URL: browsers and curl resolve those names to 127.0.0.1, Python does not."""
    parts = urlsplit(url)
    return requests.get(
        f"http://127.0.0.1:{parts.port}{parts.path}", headers={"Host": parts.netloc}, timeout=10, **kwargs
    )


def test_knit_dev_starts_everything_prints_the_url_and_leaves_nothing_behind_on_sigterm(project):
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    dev = KnitDev(project / "manifests", cwd=project, env=env)
    try:
        url = dev.wait_ready()
        assert url.startswith("http://hello.default.localhost:")
        assert through_gateway(url).status_code == 200
        assert any(line.strip().startswith("kafka") and "embedded" in line for line in dev.lines)
        children = descendants(dev.process.pid)
        assert len(children) >= 3  # the broker, the service, the dispatcher
    finally:
        assert dev.stop() == 0
    deadline = time.monotonic() + 60  # they are stopping: the wait only catches one that never exits
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in children if alive(pid)] == []
    assert (project / ".knit" / "logs" / "kafka.log").read_text().startswith("tansu broker")


def test_an_unreachable_kafka_is_one_clear_line_and_nothing_starts(project):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    process = knit("dev", "-f", "manifests", "--kafka-timeout", "0.5", cwd=project, env=env)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert output.strip().splitlines() == [
        "knit: no Kafka broker answered at 127.0.0.1:1: start one there, "
        "or unset KAFKA_BOOTSTRAP_SERVERS to let knit start its embedded broker"
    ]


def test_invalid_manifests_are_listed_and_nothing_starts(project):
    (project / "manifests" / "app.yaml").write_text(textwrap.dedent(MANIFEST).replace("image: hello:dev", "imag: x"))
    process = knit("dev", "-f", "manifests", cwd=project)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "knit: the manifests have problems, nothing was started:" in output
    assert "(Service hello): spec.template.spec.containers[0].image: Field required" in output
    assert "(Service hello): spec.template.spec.containers[0].imag: Extra inputs are not permitted" in output
    assert not (project / ".knit").exists()


def test_a_revision_that_never_gets_ready_is_reported_and_its_requests_fail_clearly(project):
    serving = 'command: [python, -m, http.server, "$(PORT)", --bind, "$(HOST)"]'
    manifest = textwrap.dedent(MANIFEST).replace(serving, "command: [python, -c, 'import sys; sys.exit(3)']")
    (project / "manifests" / "app.yaml").write_text(manifest)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    dev = KnitDev(project / "manifests", cwd=project, env=env)
    try:
        url = dev.wait_ready()
        banner = next(line for line in dev.lines if line.strip().startswith("hello "))
        assert "NOT READY: ExitCode3" in banner

        described = knit("service", "describe", "hello", "--control", dev.control, cwd=project)
        output, _ = described.communicate(timeout=30)
        assert described.returncode == 0
        assert "[FAILED]" in output
        # its audience, for tokens sent to it, verified with the keys knit dev publishes
        assert "Audience:    serving.knit.dev/service/default/hello" in output
        assert (project / ".knit" / "oidc" / "jwks.json").exists()
        ready = next(line for line in output.splitlines() if line.strip().startswith("!!") and " Ready " in line)
        assert "ExitCode3" in ready and "exited with code 3" in ready

        response = through_gateway(url)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "no_ready_revision"
        assert "Revision 'hello-00001' failed" in response.json()["error"]["message"]
        assert "exited with code 3" in response.json()["error"]["message"]
    finally:
        dev.stop()


def run_knit(*args: str, cwd: Path) -> tuple[int, str]:
    process = knit(*args, cwd=cwd)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


def test_apply_update_and_describe_work_against_a_running_knit_dev(project):
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    dev = KnitDev(project / "manifests", cwd=project, env=env)
    try:
        dev.wait_ready()
        control = ("--control", dev.control)
        changed = textwrap.dedent(MANIFEST).replace("image: hello:dev", "image: hello:v2")
        (project / "v2.yaml").write_text(changed)

        code, output = run_knit("apply", "-f", "v2.yaml", *control, cwd=project)
        assert (code, output.splitlines()[0]) == (0, "Service default/hello: created Revision hello-00002")

        code, output = run_knit(
            "service", "update", "hello", "--traffic", "hello-00001=90,@latest=10", "--tag", "hello-00002=next",
            *control, cwd=project,
        )  # fmt: skip
        assert code == 0, output
        code, output = run_knit("route", "describe", "hello", *control, cwd=project)
        assert code == 0
        rows = [line.split() for line in output.splitlines() if line.strip().endswith("%") or "%" in line]
        assert ["90%", "hello-00001"] in [row[:2] for row in rows]
        assert any(row[:2] == ["10%", "hello-00002"] for row in rows)
        assert "http://next-hello.default.localhost:" in output

        code, output = run_knit("revision", "list", *control, cwd=project)
        assert code == 0
        assert [line.split()[:3] for line in output.splitlines()[1:3]] == [
            ["hello-00002", "hello", "10%"],
            ["hello-00001", "hello", "90%"],
        ]

        code, output = run_knit("service", "update", "hello", "--traffic", "hello-00001=50", *control, cwd=project)
        assert code == 2
        assert "spec.traffic: percents must add up to 100; they add up to 50" in output
    finally:
        dev.stop()


def test_the_commands_say_when_no_knit_dev_is_running(project):
    code, output = run_knit("service", "list", "--control", "http://127.0.0.1:1", cwd=project)
    assert code == 1
    assert "no knit dev answered at http://127.0.0.1:1" in output


def test_render_prints_the_derived_objects_without_starting_anything(project):
    code, output = run_knit("render", "-f", "manifests", cwd=project)
    assert code == 0
    documents = list(yaml.safe_load_all(output))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Configuration", "hello"),
        ("Revision", "hello-00001"),
        ("Route", "hello"),
    ]
    assert documents[2]["status"]["traffic"] == [
        {"revisionName": "hello-00001", "percent": 100, "latestRevision": True}
    ]
    assert not (project / ".knit").exists()


@pytest.mark.parametrize(
    ("annotation", "value", "problem"),
    [
        ("window", "1s", 'must be a duration from 6s to 1h, like "60s", "1m30s", "500ms", "1h"; got "1s"'),
        ("target-utilization-percentage", "150", 'must be a number from 1 to 100; got "150"'),
    ],
)
def test_apply_refuses_a_bad_autoscaling_annotation_naming_its_field_and_changes_nothing(
    project, annotation, value, problem
):
    # Given knit dev running the Service's first Revision
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    dev = KnitDev(project / "manifests", cwd=project, env=env)
    try:
        url = dev.wait_ready()
        control = ("--control", dev.control)

        # When a new template with an annotation out of its range is applied
        documents = list(yaml.safe_load_all(textwrap.dedent(MANIFEST)))
        template = documents[0]["spec"]["template"]
        template["metadata"] = {"annotations": {f"autoscaling.knit.dev/{annotation}": value}}
        template["spec"]["containers"][0]["image"] = "hello:v2"
        (project / "bad.yaml").write_text(yaml.safe_dump_all(documents))
        code, output = run_knit("apply", "-f", "bad.yaml", *control, cwd=project)

        # Then it is refused with the field path, the value and the allowed range ...
        assert code == 2
        assert output.splitlines() == [
            "knit: the manifests have problems, nothing was applied:",
            "  bad.yaml[0] (Service hello): spec.template.metadata.annotations: "
            f"autoscaling.knit.dev/{annotation}: {problem}",
        ]
        # ... and nothing changed: one Revision, still serving
        assert [r["name"] for r in dev.describe("hello")["revisions"]] == ["hello-00001"]
        assert through_gateway(url).status_code == 200
    finally:
        dev.stop()
