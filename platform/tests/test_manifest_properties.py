"""Properties of manifest loading: whatever a file holds, `load_manifests` returns the
resources or raises InvalidManifests whose every problem names the file, never another
exception (which `knit apply` or the control API would show as a crash)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knit.admission import load_manifests
from knit.resources import InvalidManifests, Manifests

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

API_VERSIONS = [
    "serving.knit.dev/v1", "serving.knative.dev/v1", "sources.knit.dev/v1", "sources.knative.dev/v1",
    "eventing.knit.dev/v1", "eventing.knative.dev/v1", "v1", "apps/v1", "",
]  # fmt: skip
KINDS = ["Service", "KafkaSource", "SinkBinding", "PingSource", "Broker", "Trigger", "ConfigMap", "Deployment", ""]
FIELDS = [
    "name", "namespace", "labels", "annotations", "template", "spec", "metadata", "containers", "image", "command",
    "args", "env", "value", "ports", "containerPort", "traffic", "percent", "tag", "revisionName",
    "latestRevision", "containerConcurrency", "sink", "ref", "uri", "apiVersion", "kind", "delivery", "retry",
    "backoffDelay", "timeout", "deadLetterSink", "topics", "bootstrapServers", "consumerGroup", "initialOffset",
    "ordering", "subject", "ceOverrides", "extensions", "broker", "subscriber", "filter", "filters", "attributes",
    "exact", "prefix", "all", "any", "not", "schedule", "data", "contentType", "readinessProbe", "httpGet", "path",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["PT1S", "P1D", "http://x/", "@every 1s", "*/5 * * * *", "default", "web", "-1", "1000"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=25,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(API_VERSIONS) | scalars,
        "kind": st.sampled_from(KINDS) | values,
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["web", "feed", "default"]) | scalars,
                "namespace": st.sampled_from(["default", "x"]) | scalars,
                "annotations": values,
            },
        )
        | values,
        "spec": values,
        "data": values,
    },
)


def dumped(docs: list) -> str:
    return yaml.safe_dump_all(docs, allow_unicode=True)


@st.composite
def deep_yaml(draw):
    depth = draw(st.integers(1, 600))  # PyYAML runs out of stack from about 400 levels
    opening, closing = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("[{all: ", "}]")]))
    body = opening * depth + "x" + closing * draw(st.integers(0, depth))
    return f"apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: t}}\nspec: {body}\n"


texts = (
    st.lists(documents, min_size=1, max_size=3).map(dumped)
    | st.text(max_size=200)
    | deep_yaml()
    | st.sampled_from(["&a [*a]\n", "spec: &s {template: *s}\nkind: Service\napiVersion: serving.knit.dev/v1\n"])
)


def load_text(content: str | bytes) -> tuple[Path, Manifests | InvalidManifests]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifests.yaml"
        path.write_bytes(content.encode("utf-8", errors="surrogatepass") if isinstance(content, str) else content)
        try:
            return path, load_manifests([path])
        except InvalidManifests as error:
            return path, error


def assert_loaded_or_problems_name_the_file(path: Path, outcome: Manifests | InvalidManifests) -> None:
    if isinstance(outcome, InvalidManifests):
        assert outcome.problems
        for problem in outcome.problems:
            assert problem.startswith(str(path)), problem


@SETTINGS
@given(text=texts)
def test_any_yaml_text_loads_or_is_invalid_manifests_naming_the_file(text):
    assert_loaded_or_problems_name_the_file(*load_text(text))


@SETTINGS
@given(content=st.binary(max_size=200))
def test_any_bytes_load_or_are_invalid_manifests_naming_the_file(content):
    assert_loaded_or_problems_name_the_file(*load_text(content))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff\xfekind: Service\n", "not UTF-8 text"),
        ("[" * 600 + "]" * 600, "nested too deeply to read"),
        ("apiVersion: serving.knit.dev/v1\nkind: Service\nmetadata: &m {name: x, annotations: *m}\n", "YAML alias"),
        ("apiVersion: v1\nkind: [ConfigMap]\n", "kind: unknown kind ['ConfigMap']"),
        ("apiVersion: serving.knit.dev/v1\nkind: Service\nmetadata: 5\n", "(Service ?): metadata: Input should be"),
    ],
)
def test_a_file_that_used_to_crash_loading_is_a_problem_naming_it(content, problem):
    path, outcome = load_text(content)
    assert isinstance(outcome, InvalidManifests)
    assert any(line.startswith(str(path)) and problem in line for line in outcome.problems), outcome.problems


def test_an_alias_bomb_is_refused_before_validation_walks_it():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, previous in zip("bcdef", "abcde", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    text = "\n".join([*lines, "apiVersion: v1", "kind: ConfigMap", "metadata: {name: c}", "data: {k: *f}"]) + "\n"
    path, outcome = load_text(text)
    assert isinstance(outcome, InvalidManifests)
    assert outcome.problems == [
        f"{path}: more than 100000 values once YAML aliases are expanded; write the manifest out plainly"
    ]
