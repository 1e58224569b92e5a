"""The danmaku app on kind, as `make demo` leaves it (manifests/app, unchanged): a comment goes
through danmaku-web, the cluster's Kafka, the KafkaSource's dispatcher pod and the processor,
which starts from zero for it, and comes back to danmaku-web with the processor's token;
then the processor goes back to zero. The browser's view of the same path: `make e2e-kind`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from knit.testing.kind import GATEWAY, Kind

WEB = "danmaku-web.default.localhost:8080"
PROCESSOR = "danmaku-processor-00001"
IDLE = 240.0  # Knative's defaults: a 60 s window, then a 30 s grace period, then the pod's exit


def web(method: str, path: str, **options: Any) -> requests.Response:
    return requests.request(method, f"{GATEWAY}{path}", headers={"Host": WEB}, timeout=60, **options)


def processor_pods(kind: Kind) -> list[str]:
    return kind.pods(PROCESSOR, namespace="default")


@pytest.mark.timeout(3 * IDLE)
def test_a_comment_wakes_the_processor_from_zero_and_comes_back_published() -> None:
    kind = Kind()
    kind.wait("the processor at zero pods", lambda: not processor_pods(kind), timeout=IDLE)
    room = f"kind-{uuid.uuid4().hex[:8]}"
    text = f"hello from kind {uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    posted = web("POST", f"/api/rooms/{room}/danmaku", json={"text": text})
    assert posted.status_code == 202, posted.text

    def published() -> list[dict[str, Any]]:
        return [c for c in web("GET", f"/api/rooms/{room}/history").json()["items"] if c["text"] == text]

    (comment,) = kind.wait("the comment published in its room", published)
    print(f"comment → published with the processor at zero: {time.monotonic() - started:.2f} s")
    assert comment["id"] == posted.json()["id"]
    deployment = kind.get("apps/v1", "Deployment", f"{PROCESSOR}-deployment", "default")
    assert deployment["status"].get("readyReplicas", 0) >= 1 or processor_pods(kind)
    kind.wait("the processor back at zero", lambda: not processor_pods(kind), timeout=IDLE)
