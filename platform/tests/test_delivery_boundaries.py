"""Delivery policy at its edges: retry counts 0, 1 and n, the first and the n-th backoff,
and a DeliverySpec with each field left out."""

from datetime import timedelta

import pytest

from knit.eventing.delivery import DeliveryPolicy, is_retryable, is_success
from knit.resources.model import Delivery


@pytest.mark.parametrize(
    ("retry", "allowed"),
    [(0, [False]), (1, [True, False]), (3, [True, True, True, False])],
    ids=["retry 0", "retry 1", "retry 3"],
)
def test_given_a_retry_count_then_exactly_that_many_retries_are_allowed(retry, allowed):
    policy = DeliveryPolicy(retry=retry)
    assert [policy.may_retry(done) for done in range(retry + 1)] == allowed


@pytest.mark.parametrize(
    ("policy", "delays"),
    [("exponential", [0.4, 0.8, 6.4]), ("linear", [0.2, 0.4, 1.0])],
)
def test_given_a_backoff_of_200ms_then_retries_1_2_and_5_wait_as_the_policy_says(policy, delays):
    backoff = DeliveryPolicy(backoff_policy=policy, backoff_delay=0.2)
    assert [backoff.delay_before_retry(n) for n in (1, 2, 5)] == pytest.approx(delays)


def test_given_a_delivery_spec_without_retry_then_knatives_10_retries_apply():
    policy = DeliveryPolicy.from_spec(Delivery(backoff_policy="linear"))
    assert (policy.retry, policy.backoff_policy) == (10, "linear")


def test_given_a_delivery_spec_without_backoff_policy_then_it_is_exponential():
    assert DeliveryPolicy.from_spec(Delivery(retry=2)).backoff_policy == "exponential"


@pytest.mark.parametrize(("status", "retried"), [(499, False), (500, True), (599, True), (403, False), (429, True)])
def test_given_a_status_at_the_edge_of_the_server_errors_then_only_5xx_and_listed_4xx_are_retried(status, retried):
    assert is_retryable(status) is retried


@pytest.mark.parametrize(("status", "ok"), [(199, False), (200, True), (299, True), (300, False)])
def test_given_a_status_at_either_end_of_2xx_then_only_2xx_is_success(status, ok):
    assert is_success(status) is ok


def test_given_a_timeout_then_it_is_the_seconds_of_one_attempt():
    assert DeliveryPolicy.from_spec(Delivery(timeout=timedelta(seconds=30))).timeout == 30.0
