"""The Kubernetes runtime when the API server fails: nothing the control core decided is lost.

A stand-in for the API (pure logic under test: what the runtime does about failures; the
real API server's side is test_kubernetes_controller.py) refuses the first calls of each kind,
as an API server does while it starts (429) or while a webhook is down.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from knit.control.core import RevisionHooks
from knit.host import HOST
from knit.resources.model import Service
from knit.runtimes.kubernetes import objects
from knit.runtimes.kubernetes.api import Listing
from knit.runtimes.kubernetes.runtime import ClusterOptions, KubernetesRuntime, first_line
from knit.serving.revisions import revision_for


class FlakyApi:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: Counter[str] = Counter()
        self.made: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicas: dict[str, int] = {}

    def _maybe_fail(self, call: str) -> None:
        self.calls[call] += 1
        if self.calls[call] <= self.failures:
            raise RuntimeError(f"429 Too Many Requests: storage is (re)initializing ({call})")

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("apply")
        made = {**obj, "metadata": {**obj["metadata"], "uid": f"uid-{obj['metadata']['name']}"}}
        self.made[(obj["kind"], obj["metadata"]["name"])] = made
        return made

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("create")
        return self.made.setdefault((obj["kind"], obj["metadata"]["name"]), obj)

    async def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        self._maybe_fail("scale")
        self.replicas[deployment] = replicas

    async def list(self, *_: Any) -> Listing:
        return Listing([], "1")

    async def watch(self, *_: Any) -> Any:
        await asyncio.Event().wait()  # nothing ever changes
        yield  # pragma: no cover (makes this an async generator)


def test_a_revision_is_made_and_scaled_though_the_api_server_refuses_at_first() -> None:
    service = Service.model_validate({
        "apiVersion": "serving.knit.dev/v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"image": "web:1"}]}}},
    })  # fmt: skip
    revision = revision_for(service, [])
    assert revision is not None
    api = FlakyApi(failures=2)

    async def scenario() -> None:
        runtime = KubernetesRuntime(api, ClusterOptions(gateway_port=0))  # type: ignore[arg-type]
        await runtime.start(HOST)
        try:
            owner = objects.Owner("serving.knit.dev/v1", "Service", "web", "uid-web")
            runtime.owners[("Service", "default", "web")] = owner
            await runtime.prepare_service(service, None)  # type: ignore[arg-type]
            await runtime.run_revision(revision, service, RevisionHooks(lambda _: None, lambda: None))
            runtime.scale(revision.name, 1)  # the autoscaler's word, before the Deployment exists
            async with asyncio.timeout(30):
                while api.replicas.get("web-00001-deployment") != 1:
                    await asyncio.sleep(0.05)
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert {("Revision", "web-00001"), ("Deployment", "web-00001-deployment"), ("Service", "web-00001"),
            ("Service", "web")} <= set(api.made)  # fmt: skip
    assert api.calls["scale"] == 3  # refused twice, then done


def test_an_error_without_a_message_is_logged_by_its_type() -> None:
    # asyncio.TimeoutError from a watch has no message; logging it once stopped the controller.
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line(ValueError("first\nsecond")) == "first"
