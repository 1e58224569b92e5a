"""Waiting for the local runtime to settle fails loudly: `knit dev` and the tests' harness wait
for every latest Revision to be ready or failed, and a wait that runs out names what is not."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from knit.admission import load_manifests
from knit.runtimes.local.processes import LogSink
from knit.runtimes.local.runtime import LocalRuntime, Options

pytestmark = pytest.mark.integration

NEVER_READY = {
    "apiVersion": "serving.knit.dev/v1",
    "kind": "Service",
    "metadata": {"name": "stuck"},
    "spec": {"template": {"spec": {"containers": [
        {"image": "stuck:dev", "command": ["python", "-c", "import time; time.sleep(600)"]}
    ]}}},
}  # fmt: skip


def test_a_revision_neither_ready_nor_failed_when_the_wait_runs_out_is_named(kafka_bootstrap, tmp_path):
    # Given a Service whose instance never gets ready, and a readiness deadline far away
    path = tmp_path / "stuck.yaml"
    path.write_text(yaml.safe_dump(NEVER_READY))

    async def scenario() -> None:
        with open(tmp_path / "processes.log", "w") as log:
            runtime = LocalRuntime(kafka_bootstrap, LogSink(log), Options(port=0, ready_timeout=600))
            await runtime.start()
            try:
                await runtime.apply(load_manifests([path]))
                # When the wait for it to settle runs out, then it says which Revision is undecided
                with pytest.raises(TimeoutError, match=r"^not ready nor failed after 0\.5s: stuck-00001$"):
                    await runtime.wait_settled(0.5)
            finally:
                await runtime.stop()

    asyncio.run(scenario())
