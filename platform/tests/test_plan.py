"""What the local runtime runs for each resource, worked out before anything starts."""

import json
import textwrap

import pytest

from knit.admission import load_manifests
from knit.control.desired import binding_for, dispatcher_config, resolve_destination
from knit.resources.model import Destination
from knit.runtimes.local.plan import expand_references, instance_plan
from knit.serving.revisions import revision_for

MANIFESTS = """
apiVersion: serving.knit.dev/v1
kind: Service
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - image: web:dev
          command: [gunicorn]
          args: [--bind, "127.0.0.1:$(PORT)", "--name=$(GREETING)", "$(UNSET)", "$$(PORT)"]
          workingDir: ../app
          env: [{name: GREETING, value: hi}, {name: PORT, value: "1"}]
---
apiVersion: serving.knit.dev/v1
kind: Service
metadata: {name: worker}
spec:
  template:
    metadata: {name: worker-v2}
    spec:
      containers: [{image: w, command: [python, -m, worker]}]
---
apiVersion: sources.knit.dev/v1
kind: SinkBinding
metadata: {name: results}
spec:
  subject: {apiVersion: serving.knative.dev/v1, kind: Service, name: worker}
  sink: {ref: {apiVersion: serving.knit.dev/v1, kind: Service, name: web}, uri: /events}
  ceOverrides: {extensions: {team: moderation}}
---
apiVersion: sources.knit.dev/v1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka.kafka.svc.cluster.local:9092]
  topics: [a, b]
  initialOffset: earliest
  sink: {ref: {apiVersion: serving.knit.dev/v1, kind: Service, name: worker}}
  ceOverrides: {extensions: {origin: feed}}
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.5S, deadLetterSink: {uri: "http://dls.example/"}}
"""

PORTS = {("default", "web"): 9001, ("default", "worker"): 9002}


def address_of(kind, namespace, name):
    return f"http://127.0.0.1:{PORTS[(namespace, name)]}"


@pytest.fixture
def manifests(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(textwrap.dedent(MANIFESTS))
    return load_manifests([folder])


def test_references_in_command_and_args_expand_like_kubernetes():
    env = {"PORT": "8080", "NAME": "x"}
    assert expand_references("$(PORT)", env) == "8080"
    assert expand_references("a-$(NAME)-$(MISSING)", env) == "a-x-$(MISSING)"
    assert expand_references("$$(PORT) costs $$5", env) == "$(PORT) costs $5"


def plan_of(manifests, name, port):
    service = manifests.service(name)
    binding = binding_for(service.name, service.namespace, manifests.sink_bindings)
    revision = revision_for(service, [])
    folder = manifests.folder_of(service)
    return instance_plan(
        f"{revision.name}/1", revision, folder, port, "127.0.0.1:19092", binding, address_of, {"PATH": "/bin"}
    )


def test_an_instance_runs_its_command_with_the_platform_environment(manifests, tmp_path):
    plan = plan_of(manifests, "web", 9001)
    assert plan.name == "web-00001/1"
    assert plan.argv == ("gunicorn", "--bind", "127.0.0.1:9001", "--name=hi", "$(UNSET)", "$(PORT)")
    assert plan.cwd == (tmp_path / "app").resolve()
    assert plan.env["PATH"] == "/bin"
    # The platform's PORT wins over the container's own, as Knative's does.
    assert {k: plan.env[k] for k in ("PORT", "HOST", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")} == {
        "PORT": "9001",
        "HOST": "127.0.0.1",
        "K_SERVICE": "web",
        "K_REVISION": "web-00001",
        "K_CONFIGURATION": "web",
    }
    assert plan.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert "K_SINK" not in plan.env


def test_a_sink_binding_gives_its_subject_k_sink_and_overrides(manifests, tmp_path):
    plan = plan_of(manifests, "worker", 9002)
    assert plan.name == "worker-v2/1"
    assert plan.env["K_REVISION"] == "worker-v2"
    assert plan.cwd == (tmp_path / "manifests").resolve()
    assert plan.env["K_SINK"] == "http://127.0.0.1:9001/events"
    assert json.loads(plan.env["K_CE_OVERRIDES"]) == {"extensions": {"team": "moderation"}}


def test_a_kafka_source_reads_the_runtime_kafka_and_resolves_its_sinks(manifests):
    config = dispatcher_config(manifests.kafka_sources[0], "127.0.0.1:19092", address_of)
    assert config.bootstrap_servers == "127.0.0.1:19092"
    assert config.topics == ("a", "b")
    assert config.consumer_group == "knit-kafkasource-default-feed"
    assert config.sink == "http://127.0.0.1:9002"
    assert config.dead_letter_sink == "http://dls.example/"
    assert config.ce_extensions == {"origin": "feed"}
    assert (config.delivery.retry, config.delivery.backoff_policy, config.delivery.backoff_delay) == (3, "linear", 0.5)
    assert type(config).from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("destination", "url"),
    [
        ({"uri": "http://elsewhere:8080/hook"}, "http://elsewhere:8080/hook"),
        ({"ref": {"apiVersion": "serving.knit.dev/v1", "kind": "Service", "name": "web"}}, "http://127.0.0.1:9001"),
        (
            {"ref": {"apiVersion": "serving.knit.dev/v1", "kind": "Service", "name": "web"}, "uri": "/a/b"},
            "http://127.0.0.1:9001/a/b",
        ),
    ],
)
def test_a_destination_resolves_to_a_url(destination, url):
    assert resolve_destination(Destination.model_validate(destination), "default", address_of) == url
