"""Knative's delivery rules: what is retried, and how long each wait is."""

from datetime import timedelta

import pytest

from knit.eventing.delivery import DeliveryPolicy, is_retryable, is_success
from knit.resources.model import Delivery


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504, 404, 408, 409, 429])
def test_network_errors_server_errors_and_some_client_errors_are_retried(status):
    assert is_retryable(status)


@pytest.mark.parametrize("status", [400, 401, 403, 405, 413, 415, 422])
def test_other_client_errors_are_not_retried(status):
    assert not is_retryable(status)


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (202, True), (204, True), (299, True), (300, False), (500, False)]
)
def test_only_2xx_is_success(status, ok):
    assert is_success(status) is ok


def test_exponential_backoff_doubles_from_the_first_retry():
    policy = DeliveryPolicy(backoff_policy="exponential", backoff_delay=0.2)
    assert [policy.delay_before_retry(n) for n in (1, 2, 3, 4)] == pytest.approx([0.4, 0.8, 1.6, 3.2])


def test_linear_backoff_grows_by_the_delay():
    policy = DeliveryPolicy(backoff_policy="linear", backoff_delay=0.5)
    assert [policy.delay_before_retry(n) for n in (1, 2, 3)] == pytest.approx([0.5, 1.0, 1.5])


def test_retries_stop_at_the_configured_count():
    policy = DeliveryPolicy(retry=2)
    assert [policy.may_retry(done) for done in (0, 1, 2)] == [True, True, False]


def test_unset_fields_take_knatives_kafka_source_defaults_but_an_attempt_gets_10_seconds():
    assert DeliveryPolicy.from_spec(None) == DeliveryPolicy(
        retry=10, backoff_policy="exponential", backoff_delay=10.0, timeout=10.0
    )
    assert DeliveryPolicy().timeout == 10.0
    assert DeliveryPolicy.from_spec(Delivery(retry=3)).timeout == 10.0
    partial = DeliveryPolicy.from_spec(Delivery(retry=0, backoff_delay=timedelta(milliseconds=200)))
    assert (partial.retry, partial.backoff_delay, partial.backoff_policy) == (0, 0.2, "exponential")


def test_iso_8601_durations_are_parsed():
    spec = Delivery.model_validate({"backoffDelay": "PT0.2S", "timeout": "PT1M30S"})
    assert DeliveryPolicy.from_spec(spec).timeout == 90.0
