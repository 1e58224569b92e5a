"""The local runtime: runs the manifests' Services and KafkaSources as processes.

Services start first (in parallel) and must pass their readiness check; then each
KafkaSource's dispatcher starts, so no event is sent to a sink that is not listening.
Stopping goes the other way round.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from knit.kafka.admin import ensure_topics
from knit.kafka.embedded import free_port
from knit.resources.loading import Manifests
from knit.runtimes.local.plan import (
    HOST,
    ProcessPlan,
    dispatcher_config,
    dispatcher_plan,
    service_plan,
)
from knit.runtimes.local.processes import LogSink, Process, ProcessFailed
from knit.runtimes.local.readiness import NotReady, wait_until_ready

# Set by the platform for each instance; a value left in the user's shell must not leak in.
_PLATFORM_VARIABLES = ("K_SINK", "K_CE_OVERRIDES", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "PORT")


def base_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment every process inherits: the user's, with this Python's bin folder
    first on PATH so `gunicorn` in a manifest is the one installed next to knit."""
    env = {k: v for k, v in environ.items() if k not in _PLATFORM_VARIABLES}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class LocalRuntime:
    def __init__(self, manifests: Manifests, kafka_bootstrap: str, logs: LogSink, ready_timeout: float = 60.0) -> None:
        self.manifests = manifests
        self.kafka_bootstrap = kafka_bootstrap
        self.logs = logs
        self.ready_timeout = ready_timeout
        self._ports = {(s.namespace, s.name): free_port() for s in manifests.services}
        base_env = base_environment()
        self.service_plans = {
            (s.namespace, s.name): service_plan(
                s, manifests, self._ports[(s.namespace, s.name)], kafka_bootstrap, self.address_of, base_env
            )
            for s in manifests.services
        }
        self.dispatcher_configs = {
            source.name: dispatcher_config(source, kafka_bootstrap, self.address_of)
            for source in manifests.kafka_sources
        }
        self.dispatcher_plans = [
            dispatcher_plan(source, self.dispatcher_configs[source.name], free_port(), base_env)
            for source in manifests.kafka_sources
        ]
        self.processes: dict[str, Process] = {}

    def address_of(self, namespace: str, name: str) -> str:
        return f"http://{HOST}:{self._ports[(namespace, name)]}"

    def public_urls(self) -> dict[str, str]:
        return {
            s.name: self.address_of(s.namespace, s.name) + "/" for s in self.manifests.services if not s.cluster_local
        }

    async def start(self) -> None:
        topics = [t for source in self.manifests.kafka_sources for t in source.spec.topics]
        await asyncio.get_running_loop().run_in_executor(None, ensure_topics, self.kafka_bootstrap, topics)
        await self._start_all(self.service_plans.values())
        await self._start_all(self.dispatcher_plans)

    async def _start_all(self, plans: Iterable[ProcessPlan]) -> None:
        await asyncio.gather(*(self._start(plan) for plan in plans))

    async def _start(self, plan: ProcessPlan) -> None:
        process = Process(plan.name, plan.argv, plan.env, plan.cwd, self.logs)
        self.processes[plan.name] = process
        await process.start()
        try:
            await wait_until_ready(plan.probe, HOST, plan.port, self.ready_timeout, lambda: process.running)
        except NotReady as error:
            raise ProcessFailed(f"{plan.name} did not become ready: {error}") from None

    async def stop(self) -> None:
        dispatchers = [p.name for p in self.dispatcher_plans]
        await asyncio.gather(*(self.processes[n].stop() for n in dispatchers if n in self.processes))
        await asyncio.gather(*(p.stop() for n, p in self.processes.items() if n not in dispatchers))

    def _service_plan(self, name: str, namespace: str) -> ProcessPlan:
        try:
            return self.service_plans[(namespace, name)]
        except KeyError:
            raise KeyError(
                f"no Service {namespace}/{name}; known: {sorted(n for _, n in self.service_plans)}"
            ) from None

    async def stop_service(self, name: str, namespace: str = "default") -> None:
        await self.processes[self._service_plan(name, namespace).name].stop()

    async def start_service(self, name: str, namespace: str = "default") -> None:
        await self._start(self._service_plan(name, namespace))
