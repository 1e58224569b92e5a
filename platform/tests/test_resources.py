"""Loading manifests: Knative's shape, aliases, and one clear line per problem."""

import textwrap

import pytest

from knit.resources import InvalidManifests, load_manifests

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


def test_references_must_name_a_service_in_the_manifests(tmp_path):
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
        f"{path}[1] (SinkBinding bind): spec.sink.ref: knit can resolve references to a Service "
        "(serving.knit.dev/v1); got v1 Pod",
        f"{path}[1] (SinkBinding bind): spec.subject.name: no Service 'nobody' in these manifests",
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
