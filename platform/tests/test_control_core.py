"""The control core against a fake runtime that records what it is told, one table per kind:
create, change, delete, a child that fails, and reconciling twice changing nothing."""

import asyncio
import textwrap
import time

import pytest

from knit.admission import load_manifests
from knit.control.core import ControlCore, RevisionHooks
from knit.serving.state import RevisionHealth

SERVICE = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: %s}
spec:
  template:
    spec:
      containers: [{image: "%s", command: [serve]}]
"""
SOURCE = """
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka:9092]
  topics: [comments]
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: web}}
"""
BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
TRIGGER = """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: all}
spec:
  broker: default
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: web}}
"""


class FakeRuntime:
    """Records every call the core makes; instances are 'ready' when a test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.hooks: dict[str, RevisionHooks] = {}
        self.ready: dict[str, int] = {}
        self.routes: dict[tuple[str, str], tuple[dict, str]] = {}

    def address_of(self, kind, namespace, name):
        return f"http://{kind.lower()}.{name}.{namespace}"

    def url_of(self, service, namespace, tag):
        return f"http://{tag + '-' if tag else ''}{service}.{namespace}.example"

    async def prepare_service(self, service, folder):
        self.calls.append(("prepare_service", service.name))

    async def run_revision(self, revision, service, hooks):
        self.calls.append(("run_revision", revision.name))
        self.hooks[revision.name] = hooks

    async def remove_revision(self, revision):
        self.calls.append(("remove_revision", revision))

    def scale(self, revision, desired):
        self.calls.append(("scale", revision, desired))

    def serve_through_activator(self, revision, through):
        self.calls.append(("through_activator", revision, through))

    def ready_count(self, revision):
        return self.ready.get(revision, 0)

    def traffic(self, revision, now):
        return (0.0, 0.0)

    def usage(self, revision):
        return None

    def set_route(self, service, route, not_ready):
        self.routes[(service.namespace, service.name)] = (dict(route.split), not_ready)

    def remove_route(self, namespace, name):
        self.calls.append(("remove_route", name))
        self.routes.pop((namespace, name))

    async def ensure_topics(self, topics):
        pass

    async def run_adapter(self, key, adapter):
        self.calls.append(("run_adapter", key[2], tuple(p.name for p in adapter.processes)))

    async def stop_adapter(self, key):
        self.calls.append(("stop_adapter", key[2]))

    async def run_ingress(self, config):
        self.calls.append(("run_ingress", tuple(config.brokers) if config else None))

    def take(self, kind: str | None = None) -> list[tuple]:
        """The calls so far (of one kind), forgotten once taken; autoscaling calls only when asked for."""
        taken = [c for c in self.calls if (c[0] == kind if kind else c[0] not in ("scale", "through_activator"))]
        self.calls = []
        return taken


@pytest.fixture
def core():
    runtime = FakeRuntime()
    return ControlCore(runtime, "kafka:9092", oidc=None), runtime


def apply(core, tmp_path, *documents, name="m.yaml"):
    path = tmp_path / name
    path.write_text("\n---\n".join(textwrap.dedent(d) for d in documents))
    return asyncio.run(core.apply(load_manifests([path], core.admission_context())))


def ready(core, runtime, revision):
    runtime.ready[revision] = 1
    runtime.hooks[revision].report(RevisionHealth(True))


# --- Service ------------------------------------------------------------------------------------


def test_a_new_service_runs_its_first_revision_and_routes_to_it_once_ready(core, tmp_path):
    core, runtime = core
    assert apply(core, tmp_path, SERVICE % ("web", "web:1")) == ["Service default/web: created Revision web-00001"]
    assert runtime.take() == [("prepare_service", "web"), ("run_revision", "web-00001")]
    assert runtime.routes[("default", "web")] == ({}, "Revision 'web-00001' is not ready yet")

    ready(core, runtime, "web-00001")
    assert runtime.routes[("default", "web")] == ({"web-00001": 100}, "")
    assert core.status(core.state.record("default", "web")).ready.status == "True"


def test_a_template_change_runs_a_new_revision_and_traffic_moves_when_it_is_ready(core, tmp_path):
    core, runtime = core
    apply(core, tmp_path, SERVICE % ("web", "web:1"))
    ready(core, runtime, "web-00001")
    runtime.take()

    assert apply(core, tmp_path, SERVICE % ("web", "web:2")) == ["Service default/web: created Revision web-00002"]
    assert runtime.take() == [("prepare_service", "web"), ("run_revision", "web-00002")]
    assert runtime.routes[("default", "web")][0] == {"web-00001": 100}  # until the new one is ready
    ready(core, runtime, "web-00002")
    assert runtime.routes[("default", "web")][0] == {"web-00002": 100}
    assert core.status(core.state.record("default", "web")).latest_ready_revision_name == "web-00002"


def test_deleting_a_service_removes_its_revisions_and_route(core, tmp_path):
    core, runtime = core
    apply(core, tmp_path, SERVICE % ("web", "web:1"))
    apply(core, tmp_path, SERVICE % ("web", "web:2"))
    runtime.take()

    changes = asyncio.run(core.delete([("Service", "default", "web")]))

    assert changes == ["Service default/web: deleted with its Revisions web-00001, web-00002"]
    assert runtime.take() == [
        ("remove_route", "web"),
        ("remove_revision", "web-00001"),
        ("remove_revision", "web-00002"),
    ]
    assert core.state.records == {} and core.scaling == {} and runtime.routes == {}
    with pytest.raises(KeyError, match="not applied: Service default/web"):
        asyncio.run(core.delete([("Service", "default", "web")]))


def test_a_revision_that_fails_makes_the_service_not_ready_with_the_reason(core, tmp_path):
    core, runtime = core
    apply(core, tmp_path, SERVICE % ("web", "web:1"))
    runtime.hooks["web-00001"].report(RevisionHealth(False, "ExitCode1", "exited with code 1"))
    status = core.status(core.state.record("default", "web"))
    assert (status.ready.status, status.ready.reason) == ("False", "ExitCode1")
    assert runtime.routes[("default", "web")][1] == "Revision 'web-00001' failed: exited with code 1"


def test_applying_the_same_service_twice_runs_nothing_new(core, tmp_path):
    core, runtime = core
    apply(core, tmp_path, SERVICE % ("web", "web:1"), SOURCE)
    runtime.take()
    assert apply(core, tmp_path, SERVICE % ("web", "web:1"), SOURCE) == [
        "Service default/web: unchanged template",
        "KafkaSource default/feed: unchanged",
    ]
    assert runtime.take() == [("prepare_service", "web")]


def test_a_request_waiting_at_zero_asks_the_runtime_for_an_instance_at_once(core, tmp_path):
    core, runtime = core
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler}\n"
    config += "data: {allow-zero-initial-scale: 'true'}\n"
    at_zero = (SERVICE % ("web", "web:1")).replace(
        "  template:\n", "  template:\n    metadata: {annotations: {autoscaling.knit.dev/initial-scale: '0'}}\n"
    )
    apply(core, tmp_path, config, at_zero)
    assert runtime.take("scale") == [("scale", "web-00001", 0)]
    runtime.hooks["web-00001"].on_demand()
    assert runtime.take("scale") == [("scale", "web-00001", 1)]
    runtime.hooks["web-00001"].on_demand()  # the same activation: the autoscaler heard it already
    assert runtime.take("scale") == []


@pytest.mark.parametrize(
    ("burst", "ready_instances", "through"),
    [
        ("211", 0, True),  # at zero the activator holds requests
        ("211", 1, True),  # 1 instance x target 100 - 211 < 0: too little spare capacity
        ("211", 3, False),  # 3 x 100 - 211 = 89 spare requests: straight to the instances
        ("0", 1, False),  # target-burst-capacity 0: the activator only at zero
        ("0", 0, True),
        ("-1", 5, True),  # -1: the activator always
    ],
)
def test_the_activator_stays_in_the_path_at_zero_and_while_spare_capacity_is_short(
    core, tmp_path, burst, ready_instances, through
):
    core, runtime = core
    annotated = (SERVICE % ("web", "web:1")).replace(
        "  template:\n",
        f"  template:\n    metadata: {{annotations: {{autoscaling.knit.dev/target-burst-capacity: '{burst}'}}}}\n",
    )
    apply(core, tmp_path, annotated)
    runtime.ready["web-00001"] = ready_instances
    runtime.take("through_activator")

    core.decide("web-00001", time.monotonic())

    assert runtime.take("through_activator") == [("through_activator", "web-00001", through)]


# --- KafkaSource --------------------------------------------------------------------------------


def test_a_source_runs_while_its_sink_exists_and_stops_while_it_is_deleted(core, tmp_path):
    core, runtime = core
    apply(core, tmp_path, SERVICE % ("web", "web:1"), SOURCE)
    assert ("run_adapter", "feed", ("kafkasource/feed",)) in runtime.take()

    changes = asyncio.run(core.delete([("Service", "default", "web")]))
    assert changes[1] == (
        "KafkaSource default/feed: stopped (spec.sink.ref: no Service 'web'; apply it (it was deleted or not "
        "applied yet))"
    )
    assert runtime.take("stop_adapter") == [("stop_adapter", "feed")]
    (row,) = core.eventing_status()
    assert (row["name"], row["ready"]["status"], row["ready"]["reason"]) == ("feed", "False", "SinkNotFound")

    apply(core, tmp_path, SERVICE % ("web", "web:1"), name="again.yaml")
    assert runtime.take("run_adapter") == [("run_adapter", "feed", ("kafkasource/feed",))]
    assert core.eventing_status()[0]["ready"]["status"] == "True"


# --- Broker and Trigger -------------------------------------------------------------------------


def test_a_trigger_runs_with_its_broker_and_stops_when_the_broker_is_deleted(core, tmp_path):
    core, runtime = core
    apply(core, tmp_path, SERVICE % ("web", "web:1"), BROKER, TRIGGER)
    calls = runtime.take()
    assert ("run_ingress", ("default/default",)) in calls
    assert ("run_adapter", "all", ("trigger/all",)) in calls
    addresses = {row["name"]: row.get("address") for row in core.eventing_status()}
    assert addresses == {"default": {"url": "http://broker.default.default"}, "all": None}

    assert asyncio.run(core.delete([("Broker", "default", "default")])) == [
        "Broker default/default: deleted",
        "Trigger default/all: stopped (spec.broker: no Broker 'default'; apply it (it was deleted or not applied yet))",
    ]
    assert runtime.take() == [("run_ingress", None), ("stop_adapter", "all")]
    rows = {row["name"]: row["ready"]["reason"] for row in core.eventing_status()}
    assert rows == {"all": "BrokerDoesNotExist"}
