"""Delivery policy: which answers are retried, how long to wait, when to give up.

Pure logic, Knative's rules (eventing duck/v1 DeliverySpec): retry network errors and
5xx, 404, 408, 409 and 429; any other 4xx goes straight to the dead-letter sink. The
delay before retry n (1-based) is backoffDelay * 2^n (exponential) or backoffDelay * n
(linear). Unset fields take the defaults Knative gives a KafkaSource, except `timeout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from knit.resources.model import Delivery

RETRYABLE_CLIENT_ERRORS = frozenset({404, 408, 409, 429})

# Knative's KafkaSource defaults (eventing-kafka-broker, source v2).
DEFAULT_RETRY = 10
DEFAULT_BACKOFF_POLICY: Literal["exponential"] = "exponential"
DEFAULT_BACKOFF_DELAY = timedelta(seconds=10)
# How long one attempt may take before it counts as failed (and is retried). Knative's
# Kafka dispatcher allows 600 s, so a sink that accepts the connection and never answers
# (or a client holding its threads) holds an ordered partition for 10 minutes per attempt.
# 10 s is five times what the slowest part of the danmaku path takes (the processor waits
# at most 2 s for its K_SINK; a cold start through the gateway is 30-120 ms locally, a few
# seconds for a pod on Kubernetes). A sink that needs longer sets `delivery.timeout`.
DEFAULT_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class DeliveryPolicy:
    retry: int = DEFAULT_RETRY
    backoff_policy: Literal["exponential", "linear"] = DEFAULT_BACKOFF_POLICY
    backoff_delay: float = DEFAULT_BACKOFF_DELAY.total_seconds()
    timeout: float = DEFAULT_TIMEOUT.total_seconds()

    @classmethod
    def from_spec(cls, spec: Delivery | None) -> DeliveryPolicy:
        if spec is None:
            return cls()
        return cls(
            retry=DEFAULT_RETRY if spec.retry is None else spec.retry,
            backoff_policy=spec.backoff_policy or DEFAULT_BACKOFF_POLICY,
            backoff_delay=(spec.backoff_delay or DEFAULT_BACKOFF_DELAY).total_seconds(),
            timeout=(spec.timeout or DEFAULT_TIMEOUT).total_seconds(),
        )

    def delay_before_retry(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry)."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * retry_number
        return self.backoff_delay * 2**retry_number

    def may_retry(self, retries_done: int) -> bool:
        return retries_done < self.retry


def is_success(status: int) -> bool:
    return 200 <= status < 300


def is_retryable(status: int | None) -> bool:
    """None stands for a network error or a timeout: no answer at all."""
    return status is None or status >= 500 or status in RETRYABLE_CLIENT_ERRORS
