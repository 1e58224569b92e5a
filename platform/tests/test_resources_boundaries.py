"""Resource rules at their exact limits: field ranges one step inside and outside, names
that almost match, PingSource schedules at the 1s floor, and kinds that share a name."""

import pytest
from pydantic import ValidationError

from knit.admission import schedule_problem, service_problems
from knit.resources.model import (
    ConfigMap,
    ContainerPort,
    Delivery,
    KafkaSourceSpec,
    Probe,
    RevisionSpec,
    Service,
    TrafficTarget,
    accepted_api_versions,
    api_group,
    same_kind,
)

CONTAINER = {"image": "hello:1"}


@pytest.mark.parametrize(
    ("model", "field", "inside", "outside"),
    [
        (RevisionSpec, "containerConcurrency", [0, 1000], [-1, 1001]),
        (RevisionSpec, "timeoutSeconds", [1], [0]),
        (TrafficTarget, "percent", [0, 100], [-1, 101]),
        (ContainerPort, "containerPort", [1, 65535], [0, 65536]),
        (Probe, "timeoutSeconds", [1], [0]),
        (Probe, "periodSeconds", [0], [-1]),
        (Probe, "initialDelaySeconds", [0], [-1]),
        (Probe, "successThreshold", [1], [0]),
        (Probe, "failureThreshold", [1], [0]),
        (Delivery, "retry", [0], [-1]),
        (KafkaSourceSpec, "consumers", [1], [0]),
    ],
)
def test_given_a_numeric_field_then_its_limits_are_accepted_and_one_past_them_refused(model, field, inside, outside):
    base = {
        RevisionSpec: {"containers": [CONTAINER]},
        KafkaSourceSpec: {"bootstrapServers": ["kafka:9092"], "topics": ["orders"], "sink": {"uri": "http://sink"}},
    }.get(model, {})
    for value in inside:
        assert model.model_validate({**base, field: value}) is not None
    for value in outside:
        with pytest.raises(ValidationError):
            model.model_validate({**base, field: value})


@pytest.mark.parametrize(
    ("name", "valid"),
    [("a" * 63, True), ("a" * 64, False), ("a", True), ("a-1", True), ("-a", False), ("a-", False), ("A", False)],
    ids=["63 characters", "64 characters", "one", "with a dash", "leading dash", "trailing dash", "upper case"],
)
def test_given_a_tag_then_it_must_be_a_dns_label_of_at_most_63_characters(name, valid):
    if valid:
        assert TrafficTarget(tag=name).tag == name
    else:
        with pytest.raises(ValidationError):
            TrafficTarget(tag=name)


@pytest.mark.parametrize("containers", [[], [CONTAINER, CONTAINER]], ids=["none", "two"])
def test_given_other_than_exactly_one_container_then_the_revision_is_refused(containers):
    with pytest.raises(ValidationError):
        RevisionSpec.model_validate({"containers": containers})


def hello(revision_name):
    template = {"spec": {"containers": [CONTAINER]}, "metadata": {"name": revision_name}}
    return Service.model_validate({"apiVersion": "serving.knit.dev/v1", "kind": "Service",
                                   "metadata": {"name": "hello"}, "spec": {"template": template}})  # fmt: skip


@pytest.mark.parametrize(
    ("revision_name", "problems"),
    [
        ("hello-blue", []),
        ("hello", ["revision name 'hello' must start with the Service name: hello-…"]),
        ("helloo-1", ["revision name 'helloo-1' must start with the Service name: hello-…"]),
    ],
    ids=["prefixed", "the service name alone", "one letter more"],
)
def test_given_a_revision_name_then_it_must_start_with_the_service_name_and_a_dash(revision_name, problems):
    assert service_problems(hello(revision_name)) == [("spec.template.metadata.name", p) for p in problems]


CRON_FORMS = "must be a 5-field cron expression such as '*/5 * * * *', @hourly or '@every 30s'; "


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("@every 1s", None),
        ("@every 30s", None),
        ("@every 999ms", "'@every 999ms': the interval must be at least 1s"),
        ("@hourly", None),
        ("*/5 * * * *", None),
        ("61 * * * *", CRON_FORMS + "got '61 * * * *'"),
        ("0 9 * * * *", CRON_FORMS + "got '0 9 * * * *'"),
    ],
    ids=["every 1s", "every 30s", "every 999ms", "descriptor", "cron", "minute 61", "six fields"],
)
def test_given_a_ping_schedule_then_only_intervals_of_at_least_1s_and_5_field_crons_are_valid(schedule, problem):
    assert schedule_problem(schedule) == problem


def test_given_an_every_schedule_that_is_no_duration_then_the_problem_quotes_it():
    assert schedule_problem("@every soon").startswith("'@every soon': the interval ")


@pytest.mark.parametrize(
    ("api_version", "kind", "target", "same"),
    [
        ("serving.knative.dev/v1", "Service", Service, True),
        ("serving.knit.dev/v1", "Service", Service, True),
        ("v1", "Service", Service, False),  # Kubernetes' own Service is not a knit Service
        ("v1", "ConfigMap", ConfigMap, True),
        ("serving.knit.dev/v1", "Route", Service, False),
    ],
)
def test_given_a_reference_then_it_points_at_a_kind_only_with_its_name_and_one_of_its_groups(
    api_version, kind, target, same
):
    assert same_kind(api_version, kind, target) is same


def test_given_the_core_group_then_its_api_version_is_the_bare_version():
    assert (api_group("v1"), api_group("serving.knit.dev/v1")) == ("", "serving.knit.dev")
    assert accepted_api_versions(ConfigMap) == ["v1"]
