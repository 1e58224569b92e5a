"""A Service's Knative-shaped status, from one pure function of the serving state."""

from knit.control.status import service_status
from knit.resources.model import Service
from knit.serving.state import RevisionHealth, ServingState

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
