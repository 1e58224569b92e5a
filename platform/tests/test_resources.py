"""Loading manifests: Knative's shape, aliases, and one clear line per problem."""

import textwrap

import pytest

from knit.admission import Context, load_manifests
from knit.resources import InvalidManifests

SERVICE = """
apiVersion: {api}
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: hello:dev
          command: [python, -m, http.server]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("api", ["serving.knit.dev/v1", "serving.knative.dev/v1"])
def test_a_service_loads_with_either_api_group(tmp_path, api):
    manifests = load_manifests([write(tmp_path, "svc.yaml", SERVICE.format(api=api))])
    (service,) = manifests.services
    assert service.name == "hello"
    assert service.namespace == "default"
    assert service.spec.template.spec.container.command == ["python", "-m", "http.server"]
    assert service.spec.template.spec.container_concurrency == 0
    assert service.spec.template.spec.timeout_seconds == 300


def test_a_folder_loads_every_yaml_file_and_every_document(tmp_path):
    write(tmp_path, "a.yaml", SERVICE.format(api="serving.knit.dev/v1"))
    write(
        tmp_path,
        "b.yml",
        SERVICE.format(api="serving.knit.dev/v1").replace("hello", "world")
        + """
---
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka:9092]
  topics: [t]
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: world}}
""",
    )
    write(tmp_path, "notes.txt", "not a manifest")
    manifests = load_manifests([tmp_path])
    assert [s.name for s in manifests.services] == ["hello", "world"]
    (source,) = manifests.kafka_sources
    assert source.spec.initial_offset == "latest"
    assert source.spec.ordering == "ordered"
    assert source.consumer_group == "knit-kafkasource-default-feed"
    assert manifests.folder_of(source) == tmp_path.resolve()


def test_every_problem_is_reported_with_its_file_object_and_field_path(tmp_path):
    path = write(
        tmp_path,
        "bad.yaml",
        """
        apiVersion: serving.knit.dev/v1
        kind: Service
        metadata: {name: Bad_Name}
        spec:
          template:
            spec:
              containerConcurrency: -1
              containers:
                - command: [x]
                  imagee: typo
          traffic:
            - latestRevision: true
            - percent: 101
        """,
    )
    with pytest.raises(InvalidManifests) as raised:
        load_manifests([path])
    problems = raised.value.problems
    prefix = f"{path} (Service Bad_Name): "
    assert all(p.startswith(prefix) for p in problems), problems
    paths = sorted(p[len(prefix) :].split(":")[0] for p in problems)
    assert paths == [
        "metadata.name",
        "spec.template.spec.containerConcurrency",
        "spec.template.spec.containers[0].image",
        "spec.template.spec.containers[0].imagee",
        "spec.traffic[1].percent",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", "kind: unknown kind 'Secret'"),
        (
            "apiVersion: serving.knit.dev/v2\nkind: Service\nmetadata: {name: x}\n",
            "apiVersion: 'serving.knit.dev/v2' is not accepted for Service; use one of serving.knit.dev/v1",
        ),
        ("- a list\n", "expected a mapping with apiVersion and kind; got list"),
        ("key: [unclosed\n", "not valid YAML"),
    ],
)
def test_documents_that_are_not_resources_are_named(tmp_path, text, problem):
    with pytest.raises(InvalidManifests, match=r"(?s)" + __import__("re").escape(problem)):
        load_manifests([write(tmp_path, "x.yaml", text)])


def test_references_must_name_an_addressable_that_exists(tmp_path):
    path = write(
        tmp_path,
        "refs.yaml",
        SERVICE.format(api="serving.knit.dev/v1")
        + """
---
apiVersion: sources.knit.dev/v1
kind: SinkBinding
metadata: {name: bind}
spec:
  subject: {apiVersion: serving.knit.dev/v1, kind: Service, name: nobody}
  sink: {ref: {apiVersion: v1, kind: Pod, name: hello}}
""",
    )
    with pytest.raises(InvalidManifests) as raised:
        load_manifests([path])
    assert raised.value.problems == [
        f"{path}[1] (SinkBinding bind): spec.sink.ref: must refer to a Service (serving.knit.dev/v1) "
        "or Broker (eventing.knit.dev/v1); got v1 Pod",
        f"{path}[1] (SinkBinding bind): spec.subject.name: no Service 'nobody' exists",
    ]


def test_a_destination_needs_a_ref_or_a_uri(tmp_path):
    path = write(
        tmp_path,
        "src.yaml",
        """
        apiVersion: sources.knit.dev/v1
        kind: KafkaSource
        metadata: {name: feed}
        spec: {bootstrapServers: [k:9092], topics: [t], sink: {}}
        """,
    )
    with pytest.raises(InvalidManifests, match=r"spec\.sink: Value error, needs a ref, a uri, or both"):
        load_manifests([path])


def test_a_name_defined_twice_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", SERVICE.format(api="serving.knit.dev/v1"))
    write(tmp_path, "b.yaml", SERVICE.format(api="serving.knative.dev/v1"))
    with pytest.raises(InvalidManifests, match=r"Service default/hello is also defined in .*a\.yaml"):
        load_manifests([tmp_path])


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(InvalidManifests, match="nowhere: no such file or folder"):
        load_manifests([tmp_path / "nowhere"])


def test_the_repository_manifests_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    manifests = load_manifests([root / "manifests" / "app"])
    assert {s.name for s in manifests.services} == {"danmaku-web", "danmaku-processor"}


def test_references_may_name_what_was_applied_before(tmp_path):
    path = write(
        tmp_path,
        "source.yaml",
        """
        apiVersion: sources.knit.dev/v1
        kind: KafkaSource
        metadata: {name: feed}
        spec:
          bootstrapServers: [k:9092]
          topics: [t]
          sink: {ref: {apiVersion: serving.knit.dev/v1, kind: Service, name: earlier}}
        """,
    )
    with pytest.raises(InvalidManifests, match="no Service 'earlier' exists"):
        load_manifests([path])
    assert load_manifests([path], Context(known={("Service", "default", "earlier")})).kafka_sources


EVENTING = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: orders}
spec:
  broker: default
  filters: [{prefix: {type: com.shop.order.}}]
  subscriber: {uri: "http://127.0.0.1:9/hook"}
  delivery: {deadLetterSink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  timezone: Europe/Paris
  contentType: application/json
  data: '{"hello": "world"}'
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""


def test_brokers_triggers_and_ping_sources_load(tmp_path):
    manifests = load_manifests([write(tmp_path, "eventing.yaml", EVENTING)])
    (broker,) = manifests.brokers
    (trigger,) = manifests.triggers
    (ping,) = manifests.ping_sources
    assert broker.topic == "knative-broker-default-default"
    assert trigger.consumer_group == "knative-trigger-default-orders"
    assert ping.spec.schedule == "*/1 * * * *"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("broker: default", "broker: other"), "(Trigger orders): spec.broker: no Broker 'other' exists"),
        (("filters: [{prefix: {type: com.shop.order.}}]", "filters: [{prefix: {type: ''}}]"),
         "(Trigger orders): spec.filters[0].prefix.type: must be a non-empty string; got ''"),
        (("filters: [{prefix: {type: com.shop.order.}}]", "filters: [{like: {type: x}}]"),
         "(Trigger orders): spec.filters[0]: unknown dialect 'like'"),
        (('schedule: "*/1 * * * *"', 'schedule: "every minute"'),
         "(PingSource tick): spec.schedule: must be a 5-field cron expression"),
        (("timezone: Europe/Paris", "timezone: Mars/Olympus"),
         "(PingSource tick): spec.timezone: must be an IANA time zone such as 'Europe/Paris'; got 'Mars/Olympus'"),
    ],
)  # fmt: skip
def test_eventing_resources_are_checked_with_paths(tmp_path, change, problem):
    path = write(tmp_path, "eventing.yaml", EVENTING.replace(*change))
    with pytest.raises(InvalidManifests) as raised:
        load_manifests([path])
    assert any(problem in line for line in raised.value.problems), raised.value.problems
