"""A Service's Knative-shaped status, from one pure function of the serving state."""

from knit.control.status import eventing_conditions, service_status
from knit.resources.model import Service
from knit.serving.state import Condition, RevisionHealth, ServingState

ADDRESS = "http://127.0.0.1:4000"


def service(image: str, traffic=None, cluster_local: bool = False) -> Service:
    labels = {"networking.knative.dev/visibility": "cluster-local"} if cluster_local else {}
    return Service.model_validate(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "hello", "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}, "traffic": traffic or []},
        }
    )


def url_of(name: str, namespace: str, tag: str | None) -> str:
    return f"http://{tag + '-' if tag else ''}{name}.{namespace}.localhost"


def status_of(state: ServingState, url=url_of):
    return service_status(state, state.record("default", "hello"), url, ADDRESS)


def test_a_ready_service_after_a_template_change_reports_both_revisions_and_its_tagged_traffic():
    state = ServingState()
    state.apply([service("hello:1")])
    state.set_health("hello-00001", RevisionHealth(True))
    state.apply([service("hello:2", traffic=[{"revisionName": "hello-00001", "percent": 100, "tag": "stable"}])])

    status = status_of(state)

    assert status.to_knative() == {
        "observedGeneration": 2,
        "conditions": [
            {"type": "ConfigurationsReady", "status": "Unknown", "reason": "Deploying",
             "message": "Revision 'hello-00002' is not ready yet"},
            {"type": "RoutesReady", "status": "True", "reason": "", "message": ""},
            {"type": "Ready", "status": "Unknown", "reason": "Deploying",
             "message": "Revision 'hello-00002' is not ready yet"},
        ],
        "latestCreatedRevisionName": "hello-00002",
        "latestReadyRevisionName": "hello-00001",
        "url": "http://hello.default.localhost",
        "address": {"url": ADDRESS, "audience": "serving.knit.dev/service/default/hello"},
        "traffic": [
            {"revisionName": "hello-00001", "percent": 100, "tag": "stable",
             "url": "http://stable-hello.default.localhost"},
        ],
    }  # fmt: skip


def test_a_failed_revision_makes_the_service_not_ready_with_its_reason():
    state = ServingState()
    state.apply([service("hello:1")])
    state.set_health("hello-00001", RevisionHealth(False, "ExitCode3", "the process exited with code 3"))
    ready = status_of(state).ready
    assert (ready.status, ready.reason) == ("False", "ExitCode3")
    assert ready.message == "Revision 'hello-00001' failed: the process exited with code 3"


def test_a_cluster_local_service_has_an_address_but_no_url_and_no_tag_urls():
    state = ServingState()
    state.apply(
        [service("hello:1", traffic=[{"latestRevision": True, "percent": 100, "tag": "now"}], cluster_local=True)]
    )
    state.set_health("hello-00001", RevisionHealth(True))
    status = status_of(state, url=lambda name, namespace, tag: None)
    assert (status.url, status.address, status.ready.status) == (None, ADDRESS, "True")
    assert status.to_knative()["traffic"] == [
        {"revisionName": "hello-00001", "percent": 100, "latestRevision": True, "tag": "now"}
    ]


def test_computing_the_status_twice_gives_the_same_status():
    state = ServingState()
    state.apply([service("hello:1")])
    assert status_of(state) == status_of(state)


def summary(conditions):
    return [(c.type, c.status, c.reason) for c in conditions]


def test_a_running_source_is_ready_with_its_sink_provided_and_its_adapter_deployed():
    conditions = eventing_conditions("KafkaSource", None, "dispatching to http://x", "")
    assert summary(conditions) == [("SinkProvided", "True", ""), ("Deployed", "True", ""), ("Ready", "True", "")]
    assert conditions[1].message == "dispatching to http://x"


def test_a_source_without_its_sink_is_not_deployed_and_not_ready_for_that_reason():
    missing = Condition("SinkProvided", "False", "SinkNotFound", "spec.sink.ref: no Service 'web'")
    conditions = eventing_conditions("PingSource", missing, None, "")
    assert summary(conditions) == [
        ("SinkProvided", "False", "SinkNotFound"),
        ("Deployed", "False", "NotDeployed"),
        ("Ready", "False", "SinkNotFound"),
    ]
    assert conditions[-1].message == "spec.sink.ref: no Service 'web'"


def test_a_trigger_without_its_broker_says_so_and_keeps_its_other_dependencies_true():
    missing = Condition("BrokerReady", "False", "BrokerDoesNotExist", "spec.broker: no Broker 'default'")
    assert summary(eventing_conditions("Trigger", missing, None, "")) == [
        ("BrokerReady", "False", "BrokerDoesNotExist"), ("SubscriberResolved", "True", ""),
        ("DeadLetterSinkResolved", "True", ""), ("Deployed", "False", "NotDeployed"),
        ("Ready", "False", "BrokerDoesNotExist"),
    ]  # fmt: skip


def test_a_broker_is_addressable_while_the_ingress_runs():
    running = eventing_conditions("Broker", None, "ingress", "http://127.0.0.1:9/default/default")
    assert summary(running) == [("Addressable", "True", ""), ("Ready", "True", "")]
    assert running[0].message == "http://127.0.0.1:9/default/default"
    stopped = eventing_conditions("Broker", None, None, "http://127.0.0.1:9/default/default")
    assert summary(stopped)[-1] == ("Ready", "Unknown", "IngressNotRunning")


def test_a_sink_binding_is_ready():
    assert summary(eventing_conditions("SinkBinding", None, None, "")) == [("Ready", "True", "")]
