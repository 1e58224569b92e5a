"""One admission path: `knit render` refuses exactly what `knit apply` refuses against a running
knit dev, with the same lines (file, object, field path, message), and the control API refuses
them too; what is refused changes nothing."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from knit.admission import Context, admit_documents, load_manifests
from knit.client import ControlError
from knit.resources import InvalidManifests
from knit.testing.harness import KnitDev

RUNNING = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers:
        - image: hello:dev
          command: [python, -m, http.server, "$(PORT)", --bind, "$(HOST)"]
"""

SERVICE = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: other}}
spec:
  template:
    metadata: {{name: {revision}, annotations: {{{annotations}}}}}
    spec:
      containers: [{{image: other:1, command: [python, -m, http.server, "$(PORT)"]}}]
  traffic: {traffic}
"""


def service(annotations: str = "", revision: str = "other-v1", traffic: str = "[]") -> str:
    return SERVICE.format(annotations=annotations, revision=revision, traffic=traffic)


BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n---\n"
PING = "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata: {{name: tick}}\nspec: {{{spec}}}\n"
SINK = "sink: {uri: 'http://127.0.0.1:1/'}"

# (what is wrong, manifest text, a problem line must end with this)
INVALID = [
    ("a stable window under 6s", service('autoscaling.knit.dev/window: "1s"'),
     'spec.template.metadata.annotations: autoscaling.knit.dev/window: must be a duration from 6s to 1h, '
     'like "60s", "1m30s", "500ms", "1h"; got "1s"'),
    ("a utilization over 100", service('autoscaling.knit.dev/target-utilization-percentage: "150"'),
     'autoscaling.knit.dev/target-utilization-percentage: must be a number from 1 to 100; got "150"'),
    ("initial scale 0 where config-autoscaler does not allow it", service('autoscaling.knit.dev/initial-scale: "0"'),
     'autoscaling.knit.dev/initial-scale: may be 0 only when config allow-zero-initial-scale is "true"; got "0"'),
    ("a bad config-autoscaler value",
     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler}\ndata: {max-scale-up-rate: '0.5'}\n",
     "(ConfigMap config-autoscaler): data.max-scale-up-rate: must be a number > 1; got \"0.5\""),
    ("percents that do not add up to 100", service(traffic="[{latestRevision: true, percent: 60}]"),
     "spec.traffic: percents must add up to 100; they add up to 60"),
    ("a revision name without the Service's", service(revision="hello-v1"),
     "spec.template.metadata.name: revision name 'hello-v1' must start with the Service name: other-…"),
    ("a Trigger filter in CESQL",
     BROKER + "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n"
     "spec: {broker: default, filters: [{cesql: \"type = 'x'\"}], subscriber: {uri: 'http://127.0.0.1:1'}}\n",
     "spec.filters[0].cesql: CESQL is not supported; use exact, prefix, suffix, all, any or not"),
    ("a six-field cron", PING.format(spec=f"schedule: '* * * * * *', {SINK}"),
     "spec.schedule: must be a 5-field cron expression such as '*/5 * * * *', @hourly or '@every 30s'; "
     "got '* * * * * *'"),
    ("an unknown time zone", PING.format(spec=f"schedule: '@hourly', timezone: Mars/Olympus, {SINK}"),
     "spec.timezone: must be an IANA time zone such as 'Europe/Paris'; got 'Mars/Olympus'"),
    ("a sink that does not exist", PING.format(spec="schedule: '@hourly', "
     "sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: nobody}}"),
     "spec.sink.ref.name: no Service 'nobody' exists"),
    ("a missing field", service().replace("image: other:1, ", ""),
     "spec.template.spec.containers[0].image: Field required"),
]  # fmt: skip


def knit(*args: str, cwd: Path) -> tuple[int, list[str]]:
    process = subprocess.run(
        [sys.executable, "-m", "knit", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    return process.returncode, (process.stdout + process.stderr).splitlines()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """knit dev running one Service, `hello`; its folder is where the tests write manifests."""
    folder = tmp_path_factory.mktemp("admission")
    (folder / "manifests").mkdir()
    (folder / "manifests" / "hello.yaml").write_text(textwrap.dedent(RUNNING))
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    dev = KnitDev(folder / "manifests", cwd=folder, env=env)
    dev.wait_ready()
    yield dev, folder
    dev.stop()


@pytest.mark.integration
@pytest.mark.parametrize(("what", "text", "problem"), INVALID, ids=[case[0] for case in INVALID])
def test_render_and_apply_refuse_the_same_manifest_with_the_same_lines(running, what, text, problem):
    dev, folder = running
    (folder / "bad.yaml").write_text(text)

    rendered = knit("render", "-f", "bad.yaml", cwd=folder)
    applied = knit("apply", "-f", "bad.yaml", "--control", dev.control, cwd=folder)

    # Both refuse (exit 2), each with its headline, then the same problem lines
    assert rendered[0] == applied[0] == 2
    assert rendered[1][0] == "knit: the manifests have problems:"
    assert applied[1][0] == "knit: the manifests have problems, nothing was applied:"
    assert rendered[1][1:] == applied[1][1:]
    assert any(line.startswith("  bad.yaml") and line.endswith(problem) for line in applied[1][1:]), applied[1]
    # The control API, asked directly, refuses the file too (without quoting it) ...
    with pytest.raises(ControlError) as refused:
        dev.call("POST", "/apply", {"paths": [str(folder / "bad.yaml")]})
    assert refused.value.problems[0].startswith(f"{folder / 'bad.yaml'}: ")
    # ... and nothing changed
    assert [s["name"] for s in dev.call("GET", "/services")["services"]] == ["hello"]
    assert dev.call("GET", "/admission")["autoscaler"] == {}


@pytest.mark.integration
def test_apply_admits_against_what_knit_dev_already_runs(running):
    dev, folder = running
    # A source whose sink is the running Service: render alone does not know it, apply does
    sink = "sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: hello}}"
    (folder / "source.yaml").write_text(PING.format(spec=f"schedule: '@hourly', {sink}"))
    code, lines = knit("render", "-f", "source.yaml", cwd=folder)
    assert (code, lines[1:]) == (2, ["  source.yaml (PingSource tick): spec.sink.ref.name: no Service 'hello' exists"])
    code, lines = knit("apply", "-f", "source.yaml", "--control", dev.control, cwd=folder)
    assert (code, lines) == (0, ["PingSource default/tick: @hourly -> " + dev.address("hello")])
    assert ["PingSource", "default", "tick"] in dev.call("GET", "/admission")["known"]


def test_the_autoscaler_config_in_force_decides_what_an_annotation_may_be(tmp_path):
    # Given a Service asking for initial scale 0
    path = tmp_path / "svc.yaml"
    path.write_text(service('autoscaling.knit.dev/initial-scale: "0"'))

    # Then it is refused under Knative's default config, and admitted where config-autoscaler allows it
    with pytest.raises(InvalidManifests, match=r"autoscaling\.knit\.dev/initial-scale: may be 0 only when"):
        load_manifests([path])
    allowed = load_manifests([path], Context(autoscaler={"allow-zero-initial-scale": "true"}))
    assert [s.name for s in allowed.services] == ["other"]


def test_a_config_autoscaler_in_the_same_files_is_the_one_annotations_are_checked_against(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler}\n"
        "data: {allow-zero-initial-scale: 'true'}\n"
    )
    (tmp_path / "svc.yaml").write_text(service('autoscaling.knit.dev/initial-scale: "0"'))
    assert [s.name for s in load_manifests([tmp_path]).services] == ["other"]
    # ... even when the config in force says otherwise
    assert load_manifests([tmp_path], Context(autoscaler={"allow-zero-initial-scale": "false"})).services


# --- the rules, without a running knit dev (mutation testing runs these) ---------------------------

CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {%s}\n"


def problems_in(tmp_path, *documents):
    path = tmp_path / "m.yaml"
    path.write_text("\n---\n".join(documents))
    try:
        load_manifests([path])
    except InvalidManifests as error:
        return error.problems
    return []


def test_an_annotation_out_of_range_is_named_with_its_file_object_and_field(tmp_path):
    assert problems_in(tmp_path, service('autoscaling.knit.dev/window: "1s"')) == [
        f"{tmp_path / 'm.yaml'} (Service other): spec.template.metadata.annotations: autoscaling.knit.dev/window: "
        'must be a duration from 6s to 1h, like "60s", "1m30s", "500ms", "1h"; got "1s"'
    ]


def test_a_bad_config_autoscaler_is_named_and_annotations_are_not_judged_against_it(tmp_path):
    bad_config = CONFIG % ("config-autoscaler", "max-scale-up-rate: '0.5'")
    assert problems_in(tmp_path, bad_config, service('autoscaling.knit.dev/window: "1s"')) == [
        f"{tmp_path / 'm.yaml'}[0] (ConfigMap config-autoscaler): data.max-scale-up-rate: "
        'must be a number > 1; got "0.5"'
    ]


def test_a_configmap_of_another_name_is_not_the_autoscalers(tmp_path):
    other = CONFIG % ("settings", "max-scale-up-rate: '0.5', allow-zero-initial-scale: 'true'")
    assert problems_in(tmp_path, other) == []
    zero = service('autoscaling.knit.dev/initial-scale: "0"')
    assert [p.split(": ", 2)[1] for p in problems_in(tmp_path, other, zero)] == ["spec.template.metadata.annotations"]


def test_every_problem_of_a_service_is_listed_traffic_name_and_annotations(tmp_path):
    text = service('autoscaling.knit.dev/max-scale: "-1"', revision="hello-v1",
                   traffic="[{latestRevision: true, percent: 60}]")  # fmt: skip
    assert [p.split(": ", 2)[1] for p in problems_in(tmp_path, text)] == [
        "spec.traffic",
        "spec.template.metadata.annotations",
        "spec.template.metadata.name",
    ]


def test_triggers_and_ping_sources_are_judged_beside_services(tmp_path):
    trigger = (
        BROKER + "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n"
        "spec: {broker: default, filters: [{cesql: \"type = 'x'\"}], subscriber: {uri: 'http://127.0.0.1:1'}}\n"
    )
    ping = PING.format(spec=f"schedule: 'often', {SINK}")
    found = problems_in(tmp_path, trigger, ping, service())
    assert [p.split(": ", 2)[1] for p in found] == ["spec.filters[0].cesql", "spec.schedule"]


def test_a_bad_config_autoscaler_is_blamed_even_when_another_kind_has_its_name(tmp_path):
    named_alike = (
        service()
        .replace("metadata: {name: other}", "metadata: {name: config-autoscaler}")
        .replace("name: other-v1", "name: config-autoscaler-v1")
    )
    bad_config = CONFIG % ("config-autoscaler", "max-scale-up-rate: '0.5'")
    (problem,) = problems_in(tmp_path, named_alike, bad_config)
    assert problem.startswith(f"{tmp_path / 'm.yaml'}[1] (ConfigMap config-autoscaler): data.max-scale-up-rate: ")


def test_on_a_cluster_an_object_may_name_one_that_does_not_exist_yet_but_never_a_wrong_kind():
    """The controller admits each object alone, as it arrives: a KafkaSource before its sink, a
    Trigger before its Broker (they show not ready until then). What admission refuses anyway:
    a reference to a kind that cannot be one."""
    audit = {"apiVersion": "serving.knit.dev/v1", "kind": "Service", "name": "audit"}
    trigger = {"apiVersion": "eventing.knit.dev/v1", "kind": "Trigger", "metadata": {"name": "t", "namespace": "shop"},
               "spec": {"broker": "default", "subscriber": {"ref": audit}}}  # fmt: skip
    with pytest.raises(InvalidManifests) as locally:
        admit_documents([("Trigger shop/t", trigger)])
    assert any("no Broker 'default' exists" in p for p in locally.value.problems)
    assert any("no Service 'audit' exists" in p for p in locally.value.problems)
    assert admit_documents([("Trigger shop/t", trigger)], names_must_exist=False).resources[0].name == "t"
    audit["kind"] = "ConfigMap"
    with pytest.raises(InvalidManifests) as wrong_kind:
        admit_documents([("Trigger shop/t", trigger)], names_must_exist=False)
    assert "spec.subscriber.ref: must refer to a" in wrong_kind.value.problems[0]
