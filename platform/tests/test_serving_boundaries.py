"""Serving rules at their edges: every traffic target kind (percent, tag only, latest), the
conditions of each Revision state, and the messages of a refused apply or traffic edit."""

import pytest

from knit.resources.model import Service, TrafficTarget
from knit.serving.revisions import RevisionConflict, revision_for
from knit.serving.state import Condition, InvalidApply, RevisionHealth, ServingState
from knit.serving.traffic import InvalidTraffic, RouteTarget, edit_traffic, resolve, static_problems


def service(image="hello:1", traffic=(), name="hello", revision=None, namespace="default", annotations=None):
    template = {"spec": {"containers": [{"image": image, "command": ["serve"]}]}}
    if revision or annotations:
        template["metadata"] = {"name": revision, "annotations": annotations or {}}
    return Service.model_validate(
        {
            "apiVersion": "serving.knit.dev/v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": template, "traffic": list(traffic)},
        }
    )


def targets(*entries):
    return [TrafficTarget.model_validate(entry) for entry in entries]


# --- Traffic target kinds ---------------------------------------------------------------------


def test_given_each_kind_of_target_then_the_route_says_which_revision_and_whether_it_follows_the_latest():
    traffic = targets(
        {"revisionName": "hello-00001", "percent": 80},  # pinned, by percent
        {"latestRevision": True, "percent": 20},  # the latest ready, by percent
        {"revisionName": "hello-00001", "tag": "old"},  # pinned, by tag only
        {"latestRevision": True, "tag": "next"},  # the latest ready, by tag only
    )
    route = resolve(traffic, ["hello-00001", "hello-00002"], "hello-00002")
    assert route.targets == (
        RouteTarget("hello-00001", 80, None, latest=False),
        RouteTarget("hello-00002", 20, None, latest=True),
        RouteTarget("hello-00001", 0, "old", latest=False),
        RouteTarget("hello-00002", 0, "next", latest=True),
    )
    assert route.split == {"hello-00001": 80, "hello-00002": 20}
    assert route.tags == {"old": "hello-00001", "next": "hello-00002"}


def test_given_a_revision_reached_only_by_its_tag_then_it_is_routable_but_gets_no_share():
    state = ServingState()
    state.apply([service("hello:1")])
    state.apply([service("hello:2", traffic=[{"latestRevision": True, "percent": 100},
                                             {"revisionName": "hello-00001", "tag": "old"}])])  # fmt: skip
    for name in ("hello-00001", "hello-00002"):
        state.set_health(name, RevisionHealth(True))
    record = state.record("default", "hello")
    assert record.route.split == {"hello-00002": 100}
    assert record.route.tags == {"old": "hello-00001"}
    assert state.routable("hello-00001")


def test_given_a_tag_only_target_then_it_adds_nothing_to_the_percent_total():
    assert static_problems(targets({"latestRevision": True, "percent": 100}, {"revisionName": "a", "tag": "x"})) == []


def test_given_a_service_without_revisions_then_an_unknown_name_says_it_has_none():
    with pytest.raises(InvalidTraffic) as raised:
        resolve(targets({"revisionName": "hello-00009", "percent": 100}), [], None)
    assert str(raised.value) == "spec.traffic[0].revisionName: no Revision 'hello-00009'; this Service has none"


def test_given_two_unknown_names_then_the_message_joins_both_problems():
    with pytest.raises(InvalidTraffic) as raised:
        resolve(targets({"revisionName": "a", "percent": 50}, {"revisionName": "b", "percent": 50}), ["c"], "c")
    assert str(raised.value) == (
        "spec.traffic[0].revisionName: no Revision 'a'; this Service has c; "
        "spec.traffic[1].revisionName: no Revision 'b'; this Service has c"
    )


# --- Traffic edits, as kn makes them -------------------------------------------------------------


def shape(edited):
    return [(t.revision_name, t.latest_revision, t.percent, t.tag) for t in edited]


@pytest.mark.parametrize(
    ("current", "split", "tags", "expected"),
    [
        # a tag goes on the Revision's untagged target, not on a new one
        ([{"revisionName": "a", "percent": 100}], [], ["a=blue"], [("a", None, 100, "blue")]),
        # @latest already tagged: the new tag gets a target of its own that follows the latest
        ([{"latestRevision": True, "percent": 100, "tag": "current"}], [], ["@latest=next"],
         [(None, True, 100, "current"), (None, True, None, "next")]),
        # a split by Revision name leaves that Revision's tagged target alone
        ([{"revisionName": "a", "percent": 100, "tag": "x"}], ["a=100"], [],
         [("a", None, 0, "x"), ("a", None, 100, None)]),
        # a target with no revisionName follows the latest, like latestRevision: true
        ([{"revisionName": "a", "percent": 50}, {"percent": 50}], ["a=20", "@latest=80"], [],
         [("a", None, 20, None), (None, None, 80, None)]),
        # a tagged target the split does not name keeps its tag with 0 percent
        ([{"revisionName": "a", "percent": 50, "tag": "x"}, {"revisionName": "b", "percent": 50}], ["b=100"], [],
         [("a", None, 0, "x"), ("b", None, 100, None)]),
    ],
    ids=["tag an untagged target", "tag @latest twice", "split past a tag", "implicit latest", "tag keeps 0"],
)  # fmt: skip
def test_given_a_kn_style_edit_then_targets_are_changed_in_place_where_one_fits(current, split, tags, expected):
    assert shape(edit_traffic(targets(*current), split, tags)) == expected


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (["=50"], "'=50' must be of the form REF=PERCENT"),
        (["a="], "'a=' must be of the form REF=PERCENT"),
        (["a=b=50"], "traffic entry 'a=b=50': the percent must be a whole number from 0 to 100"),
    ],
)
def test_given_a_split_entry_missing_a_part_then_it_is_refused_saying_the_form(split, message):
    with pytest.raises(ValueError) as raised:
        edit_traffic([], split)
    assert str(raised.value) == message


# --- Revisions ---------------------------------------------------------------------------------


def test_given_a_new_template_then_its_revision_belongs_to_the_service_and_namespace():
    revision = revision_for(service(name="cart", namespace="shop"), [])
    assert (revision.name, revision.service, revision.namespace, revision.generation) == (
        "cart-00001",
        "cart",
        "shop",
        1,
    )


def test_given_the_same_annotations_written_in_another_order_then_no_new_revision_is_made():
    first = service(annotations={"autoscaling.knit.dev/min-scale": "1", "autoscaling.knit.dev/max-scale": "3"})
    again = service(annotations={"autoscaling.knit.dev/max-scale": "3", "autoscaling.knit.dev/min-scale": "1"})
    assert revision_for(again, [revision_for(first, [])]) is None


def test_given_a_name_reused_for_another_template_then_the_conflict_says_how_to_fix_it():
    blue = revision_for(service("hello:1", revision="hello-blue"), [])
    with pytest.raises(RevisionConflict) as raised:
        revision_for(service("hello:2", revision="hello-blue"), [blue])
    assert str(raised.value) == (
        "revision 'hello-blue' already exists with a different template; revisions are immutable, "
        "so give the changed template a new name (or remove the name to get one generated)"
    )


# --- Applying: all or nothing, every problem named -----------------------------------------------


def test_given_two_bad_services_then_the_apply_names_the_problems_of_both():
    state = ServingState()
    state.apply([service("hello:1", revision="hello-blue")])
    bad_name = service("hello:2", revision="hello-blue")
    bad_traffic = service(name="cart", traffic=[{"revisionName": "cart-00009", "percent": 100}])
    bad_too = service(name="shop", traffic=[{"revisionName": "shop-00009", "percent": 100}])
    with pytest.raises(InvalidApply) as raised:
        state.apply([bad_name, bad_traffic, bad_too])
    assert raised.value.problems == [
        "Service default/hello: spec.template.metadata.name: revision 'hello-blue' already exists with a different "
        "template; revisions are immutable, so give the changed template a new name (or remove the name to get one "
        "generated)",
        "Service default/cart: spec.traffic[0].revisionName: no Revision 'cart-00009'; this Service has cart-00001",
        "Service default/shop: spec.traffic[0].revisionName: no Revision 'shop-00009'; this Service has shop-00001",
    ]
    assert str(raised.value) == "\n".join(raised.value.problems)


@pytest.mark.parametrize(
    ("applied", "message"),
    [
        ((), "no Service default/nope; known: none"),
        (("hello", "cart"), "no Service default/nope; known: default/cart, default/hello"),
    ],
)
def test_given_an_unknown_service_then_the_error_lists_the_known_ones(applied, message):
    state = ServingState()
    state.apply([service(name=name) for name in applied])
    with pytest.raises(KeyError) as raised:
        state.record("default", "nope")
    assert raised.value.args == (message,)


# --- Conditions in every Revision state ---------------------------------------------------------


def test_given_a_new_revision_then_it_is_deploying_and_nothing_is_ready_yet():
    state = ServingState()
    state.apply([service()])
    assert state.health["hello-00001"] == RevisionHealth(None, "Deploying")
    assert state.conditions(state.record("default", "hello")) == {
        "ConfigurationsReady": Condition(
            "ConfigurationsReady", "Unknown", "Deploying", "Revision 'hello-00001' is not ready yet"
        ),
        "RoutesReady": Condition(
            "RoutesReady", "Unknown", "RevisionMissing", "no ready Revision to send traffic to yet"
        ),
        "Ready": Condition("Ready", "Unknown", "Deploying", "Revision 'hello-00001' is not ready yet"),
    }


@pytest.mark.parametrize(("reason", "shown"), [("ExitCode3", "ExitCode3"), ("", "RevisionFailed")])
def test_given_the_latest_revision_failed_then_configurations_ready_is_false_with_its_reason(reason, shown):
    state = ServingState()
    state.apply([service()])
    state.set_health("hello-00001", RevisionHealth(False, reason, "exited with code 3"))
    conditions = state.conditions(state.record("default", "hello"))
    assert conditions["ConfigurationsReady"] == Condition(
        "ConfigurationsReady", "False", shown, "Revision 'hello-00001' failed: exited with code 3"
    )


@pytest.mark.parametrize(("reason", "shown"), [("OOMKilled", "OOMKilled"), ("", "RevisionFailed")])
def test_given_traffic_pinned_to_a_failed_revision_then_routes_and_service_are_not_ready(reason, shown):
    state = ServingState()
    state.apply([service("hello:1")])
    state.apply([service("hello:2", traffic=[{"revisionName": "hello-00001", "percent": 100}])])
    state.set_health("hello-00001", RevisionHealth(False, reason, "out of memory"))  # the latest is still deploying
    conditions = state.conditions(state.record("default", "hello"))
    failed = Condition(
        "RoutesReady", "False", shown, "Revision 'hello-00001' receives traffic but failed: out of memory"
    )
    assert conditions["RoutesReady"] == failed
    assert conditions["Ready"] == Condition("Ready", "False", shown, failed.message)  # False wins over Unknown


def test_given_traffic_pinned_to_a_deploying_revision_while_the_latest_is_ready_then_the_service_is_not_ready_yet():
    state = ServingState()
    state.apply([service("hello:1")])
    state.apply([service("hello:2", traffic=[{"revisionName": "hello-00001", "percent": 100}])])
    state.set_health("hello-00002", RevisionHealth(True))
    conditions = state.conditions(state.record("default", "hello"))
    deploying = Condition("RoutesReady", "Unknown", "Deploying", "Revision 'hello-00001' is not ready yet")
    assert conditions["RoutesReady"] == deploying
    # Unknown wins over True
    assert conditions["Ready"] == Condition("Ready", "Unknown", "Deploying", deploying.message)


def test_given_a_starting_revision_reported_without_a_reason_then_its_reason_is_deploying():
    state = ServingState()
    state.apply([service()])
    state.set_health("hello-00001", RevisionHealth(None))
    assert state.conditions(state.record("default", "hello"))["ConfigurationsReady"] == Condition(
        "ConfigurationsReady", "Unknown", "Deploying", "Revision 'hello-00001' is not ready yet"
    )
