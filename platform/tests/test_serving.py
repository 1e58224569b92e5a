"""Revisions and traffic: Knative's rules for what a Service change makes and where requests go."""

import pytest

from knit.resources.model import Service, TrafficTarget
from knit.serving.revisions import RevisionConflict, revision_for
from knit.serving.traffic import InvalidTraffic, RouteTarget, resolve, static_problems


def service(image="hello:1", name=None, traffic=()):
    template = {"spec": {"containers": [{"image": image, "command": ["serve"]}]}}
    if name:
        template["metadata"] = {"name": name}
    return Service.model_validate(
        {
            "apiVersion": "serving.knit.dev/v1",
            "kind": "Service",
            "metadata": {"name": "hello"},
            "spec": {"template": template, "traffic": list(traffic)},
        }
    )


def targets(*entries):
    return [TrafficTarget.model_validate(entry) for entry in entries]


def test_the_first_template_makes_revision_00001():
    revision = revision_for(service(), [])
    assert (revision.name, revision.generation) == ("hello-00001", 1)


def test_an_unchanged_template_makes_no_revision():
    first = revision_for(service(), [])
    assert revision_for(service(), [first]) is None


def test_a_changed_template_makes_the_next_generation():
    first = revision_for(service("hello:1"), [])
    second = revision_for(service("hello:2"), [first])
    assert (second.name, second.generation) == ("hello-00002", 2)


def test_going_back_to_an_old_template_still_makes_a_new_revision():
    first = revision_for(service("hello:1"), [])
    second = revision_for(service("hello:2"), [first])
    third = revision_for(service("hello:1"), [first, second])
    assert third.name == "hello-00003"


def test_a_named_template_keeps_its_name():
    assert revision_for(service(name="hello-blue"), []).name == "hello-blue"


def test_a_revision_name_cannot_be_reused_for_a_different_template():
    first = revision_for(service("hello:1", name="hello-blue"), [])
    with pytest.raises(RevisionConflict, match="'hello-blue' already exists with a different template"):
        revision_for(service("hello:2", name="hello-blue"), [first])


def test_no_traffic_block_sends_everything_to_the_latest_ready_revision():
    route = resolve([], ["hello-00001", "hello-00002"], latest_ready="hello-00002")
    assert route.split == {"hello-00002": 100}
    assert route.targets == (RouteTarget("hello-00002", 100, latest=True),)


def test_a_split_between_a_pinned_and_the_latest_revision():
    route = resolve(
        targets(
            {"revisionName": "hello-00001", "percent": 90}, {"latestRevision": True, "percent": 10, "tag": "canary"}
        ),
        ["hello-00001", "hello-00002"],
        latest_ready="hello-00002",
    )
    assert route.split == {"hello-00001": 90, "hello-00002": 10}
    assert route.tags == {"canary": "hello-00002"}
    assert route.revisions == {"hello-00001", "hello-00002"}


def test_a_tag_with_no_percent_is_reachable_only_by_its_own_url():
    route = resolve(
        targets({"latestRevision": True, "percent": 100}, {"revisionName": "hello-00001", "tag": "old"}),
        ["hello-00001", "hello-00002"],
        latest_ready="hello-00002",
    )
    assert route.split == {"hello-00002": 100}
    assert route.tags == {"old": "hello-00001"}


def test_targets_naming_one_revision_add_up():
    route = resolve(
        targets({"revisionName": "hello-00001", "percent": 50, "tag": "a"}, {"latestRevision": True, "percent": 50}),
        ["hello-00001"],
        latest_ready="hello-00001",
    )
    assert route.split == {"hello-00001": 100}


def test_a_route_to_the_latest_with_none_ready_has_no_revision():
    assert resolve([], [], latest_ready=None).split == {}


def test_an_unknown_revision_is_named_with_the_known_ones():
    with pytest.raises(InvalidTraffic) as raised:
        resolve(targets({"revisionName": "hello-00009", "percent": 100}), ["hello-00001"], "hello-00001")
    assert raised.value.problems == [
        ("spec.traffic[0].revisionName", "no Revision 'hello-00009'; this Service has hello-00001")
    ]


@pytest.mark.parametrize(
    ("traffic", "problem"),
    [
        ([{"latestRevision": True, "percent": 90}], ("spec.traffic", "percents must add up to 100; they add up to 90")),
        (
            [{"revisionName": "hello-00001", "latestRevision": True, "percent": 100}],
            ("spec.traffic[0].latestRevision", "may not be true when revisionName is set"),
        ),
        (
            [{"latestRevision": False, "percent": 100}],
            ("spec.traffic[0].revisionName", "is required when latestRevision is false"),
        ),
        (
            [{"latestRevision": True, "percent": 50, "tag": "x"}, {"revisionName": "a", "percent": 50, "tag": "x"}],
            ("spec.traffic[1].tag", "'x' is also the tag of spec.traffic[0]"),
        ),
    ],
)
def test_a_bad_traffic_block_is_explained_with_its_path(traffic, problem):
    assert static_problems(targets(*traffic)) == [problem]


def test_a_good_traffic_block_has_no_problems():
    assert static_problems(targets({"latestRevision": True, "percent": 60}, {"revisionName": "a", "percent": 40})) == []
