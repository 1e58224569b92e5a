"""The platform's own processes on this machine (KafkaSource and Trigger dispatchers, the
Broker ingress, PingSources): started, kept running, stopped.

An adapter that exits on its own is started again on the same port after a backoff that
doubles with each failure in a row (0.5 s up to 30 s), as Kubernetes restarts a crashed
pod of a Deployment. A dispatcher commits only what it delivered, so its replacement
resumes from the last committed offset and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib

from knit.host import HOST
from knit.runtimes.local.plan import ProcessPlan
from knit.runtimes.local.processes import LogSink, Process, ProcessFailed, restart_delay
from knit.runtimes.local.readiness import NotReady, wait_until_ready


class Adapter:
    def __init__(self, plan: ProcessPlan, logs: LogSink, ready_timeout: float) -> None:
        self.plan = plan
        self.logs = logs
        self.ready_timeout = ready_timeout
        self.restarts = 0
        self.failures_in_a_row = 0
        self._process: Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start it and wait until it is ready; ProcessFailed says why it did not get there."""
        await self._start_once()
        self._watch = asyncio.create_task(self._keep_running())

    async def _start_once(self) -> None:
        plan = self.plan
        process = Process(plan.name, plan.argv, plan.env, plan.cwd, self.logs)
        self._process = process
        await process.start()
        try:
            await wait_until_ready(plan.probe, HOST, plan.port, self.ready_timeout, lambda: process.running)
        except NotReady as error:
            await process.stop()
            raise ProcessFailed(f"{plan.name} did not become ready: {error}") from None

    async def _keep_running(self) -> None:
        while True:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            self.failures_in_a_row += 1
            delay = restart_delay(self.failures_in_a_row)
            self.logs.line(self.plan.name, f"exited with code {code} on its own; starting it again in {delay:g}s")
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._start_once()
            except ProcessFailed as error:
                self.logs.line(self.plan.name, str(error))
                continue
            self.restarts += 1
            self.failures_in_a_row = 0

    async def stop(self) -> None:
        self._stopping = True
        if self._process is not None:
            await self._process.stop()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
