"""The serving state: applying Services, following the latest ready Revision, conditions, traffic edits."""

import pytest

from knit.control.render import render_service
from knit.resources.model import Service, TrafficTarget
from knit.serving.state import InvalidApply, RevisionHealth, ServingState
from knit.serving.traffic import edit_traffic


def service(image="hello:1", traffic=(), name=None, labels=None):
    template = {"spec": {"containers": [{"image": image, "command": ["serve"]}]}}
    if name:
        template["metadata"] = {"name": name}
    return Service.model_validate(
        {
            "apiVersion": "serving.knit.dev/v1",
            "kind": "Service",
            "metadata": {"name": "hello", "labels": labels or {}},
            "spec": {"template": template, "traffic": list(traffic)},
        }
    )


def ready(state, revision):
    state.set_health(revision, RevisionHealth(True))


def test_a_new_service_gets_a_revision_that_takes_traffic_once_ready():
    state = ServingState()
    (change,) = state.apply([service()])
    record = state.record("default", "hello")
    assert change.new_revision.name == "hello-00001"
    assert record.route.split == {}
    assert state.conditions(record)["Ready"].status == "Unknown"

    ready(state, "hello-00001")

    assert record.route.split == {"hello-00001": 100}
    assert {c.type: c.status for c in state.conditions(record).values()} == {
        "ConfigurationsReady": "True",
        "RoutesReady": "True",
        "Ready": "True",
    }


def test_traffic_stays_on_the_old_revision_until_the_new_one_is_ready():
    state = ServingState()
    state.apply([service("hello:1")])
    ready(state, "hello-00001")
    state.apply([service("hello:2")])
    record = state.record("default", "hello")
    assert record.route.split == {"hello-00001": 100}
    assert record.generation == 2

    ready(state, "hello-00002")
    assert record.route.split == {"hello-00002": 100}


def test_a_failed_latest_revision_makes_the_service_not_ready_with_the_reason():
    state = ServingState()
    state.apply([service()])
    state.set_health("hello-00001", RevisionHealth(False, "ExitCode3", "the process exited with code 3"))
    ready_condition = state.conditions(state.record("default", "hello"))["Ready"]
    assert ready_condition.status == "False"
    assert ready_condition.reason == "ExitCode3"
    assert "Revision 'hello-00001' failed: the process exited with code 3" in ready_condition.message


def test_applying_an_unknown_revision_applies_nothing():
    state = ServingState()
    state.apply([service()])
    bad = service("hello:2", traffic=[{"revisionName": "hello-00009", "percent": 100}])
    with pytest.raises(InvalidApply) as raised:
        state.apply([bad])
    assert raised.value.problems == [
        "Service default/hello: spec.traffic[0].revisionName: no Revision 'hello-00009'; "
        "this Service has hello-00001, hello-00002"
    ]
    assert [r.name for r in state.record("default", "hello").revisions] == ["hello-00001"]


def test_a_split_can_name_the_revision_being_created():
    state = ServingState()
    state.apply([service("hello:1", name="hello-blue")])
    traffic = [{"revisionName": "hello-blue", "percent": 90}, {"revisionName": "hello-green", "percent": 10}]
    state.apply([service("hello:2", name="hello-green", traffic=traffic)])
    ready(state, "hello-blue")
    ready(state, "hello-green")
    assert state.record("default", "hello").route.split == {"hello-blue": 90, "hello-green": 10}
    assert state.routable("hello-green")


def test_an_old_revision_without_traffic_is_not_routable():
    state = ServingState()
    state.apply([service("hello:1")])
    ready(state, "hello-00001")
    state.apply([service("hello:2")])
    ready(state, "hello-00002")
    assert not state.routable("hello-00001")


def test_updating_traffic_changes_the_route_and_not_the_revisions():
    state = ServingState()
    state.apply([service("hello:1")])
    state.apply([service("hello:2")])
    for name in ("hello-00001", "hello-00002"):
        ready(state, name)
    state.update_traffic("default", "hello", edit_traffic([], ["hello-00001=90", "@latest=10"], ["hello-00002=next"]))
    record = state.record("default", "hello")
    assert record.route.split == {"hello-00001": 90, "hello-00002": 10}
    assert record.route.tags == {"next": "hello-00002"}
    assert len(record.revisions) == 2


@pytest.mark.parametrize(
    ("current", "split", "tags", "untags", "expected"),
    [
        ([], ["a=90", "@latest=10"], [], [], [(None, True, 10, None), ("a", None, 90, None)]),
        ([], [], ["a=old"], [], [(None, True, 100, None), ("a", None, 0, "old")]),
        ([{"revisionName": "a", "percent": 100, "tag": "x"}], [], [], ["x"], [("a", None, 100, None)]),
        ([{"revisionName": "a", "percent": 100}, {"revisionName": "b", "tag": "x"}], [], [], ["x"],
         [("a", None, 100, None)]),
        ([{"revisionName": "a", "percent": 100}, {"revisionName": "b", "tag": "x"}], ["x=30", "a=70"], [], [],
         [("a", None, 70, None), ("b", None, 30, "x")]),
    ],
)  # fmt: skip
def test_kn_style_traffic_edits_set_percents_and_tags_on_the_named_targets(current, split, tags, untags, expected):
    edited = edit_traffic([TrafficTarget.model_validate(t) for t in current], split, tags, untags)
    assert [(t.revision_name, t.latest_revision, t.percent or 0, t.tag) for t in edited] == expected


@pytest.mark.parametrize(
    ("split", "tags", "untags", "message"),
    [
        (["a"], [], [], "'a' must be of the form REF=PERCENT"),
        (["a=ten"], [], [], "the percent must be a whole number"),
        ([], ["a"], [], "'a' must be of the form REF=TAG"),
        ([], [], ["missing"], "no target has the tag 'missing'"),
    ],
)
def test_a_malformed_traffic_edit_says_what_is_wrong(split, tags, untags, message):
    with pytest.raises(ValueError, match=message):
        edit_traffic([], split, tags, untags)


def test_render_shows_configuration_revisions_and_route_as_knative_would():
    state = ServingState()
    state.apply([service("hello:1")])
    ready(state, "hello-00001")
    state.apply([service("hello:2", traffic=[{"revisionName": "hello-00001", "percent": 100, "tag": "stable"}])])
    objects = render_service(
        state, state.record("default", "hello"), lambda s, n, t: f"http://{t + '-' if t else ''}{s}.{n}.localhost"
    )
    assert [o["kind"] for o in objects] == ["Configuration", "Revision", "Revision", "Route"]
    configuration, _, second, route = objects
    assert configuration["status"] == {
        "latestCreatedRevisionName": "hello-00002",
        "latestReadyRevisionName": "hello-00001",
    }
    assert second["metadata"]["labels"]["serving.knit.dev/configurationGeneration"] == "2"
    assert route["status"]["url"] == "http://hello.default.localhost"
    assert route["status"]["traffic"] == [
        {"revisionName": "hello-00001", "percent": 100, "tag": "stable", "url": "http://stable-hello.default.localhost"}
    ]


def test_removing_a_service_forgets_its_revisions_health_and_route_and_only_its_own():
    state = ServingState()
    state.apply([service("hello:1")])
    ready(state, "hello-00001")
    state.apply([service("hello:2")])
    other = service("other:1")
    state.apply([other.model_copy(update={"metadata": other.metadata.model_copy(update={"name": "other"})})])
    ready(state, "other-00001")

    removed = state.remove("default", "hello")

    assert [r.name for r in removed.revisions] == ["hello-00001", "hello-00002"]
    assert list(state.records) == [("default", "other")]
    assert set(state.health) == {"other-00001"}
    assert not state.routable("hello-00001") and state.routable("other-00001")
    with pytest.raises(KeyError, match="no Service default/hello; known: default/other"):
        state.remove("default", "hello")
