"""A Revision's instances on this machine: started, checked, restarted, drained, stopped.

`scale_to(n)` is the only order the autoscaler gives. New instances join the gateway once
their readiness check passes; surplus ones leave it at once, finish the requests they
have (up to the Revision's timeoutSeconds), then get SIGTERM. An instance that exits on
its own is replaced after a backoff that doubles with each failure in a row (0.5 s up to
30 s), as Kubernetes does with a crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from knit.gateway.activator import Endpoint
from knit.host import HOST, free_port
from knit.runtimes.local.forking import ForkedProcess, ForkServer
from knit.runtimes.local.plan import ProcessPlan
from knit.runtimes.local.processes import LogSink, Process, ProcessFailed, restart_delay
from knit.runtimes.local.readiness import NotReady, wait_until_ready
from knit.serving.revisions import Revision
from knit.serving.state import RevisionHealth

PlanFor = Callable[[str, int], ProcessPlan]  # (instance name, port) -> how to run it


class Backend(Protocol):
    """Where a Revision's ready instances are sent requests from: the gateway's RevisionBackend,
    or HAProxy's servers (`data_plane.ProxiedInstances`)."""

    failure: str | None  # why the Revision is failing, for the activator's 503

    def add(self, endpoint: Endpoint) -> None: ...

    def remove(self, endpoint: Endpoint) -> None: ...


@dataclass(eq=False)
class Instance:
    name: str
    plan: ProcessPlan
    process: Process | ForkedProcess
    started_at: float
    endpoint: Endpoint | None = None  # set while the gateway may send it requests
    leaving: bool = False  # scaled down: it drains and stops, and is not replaced
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.endpoint is not None


def _retire_first(instance: Instance) -> tuple[bool, int]:
    """Scaling down: instances still starting go first, then the least busy."""
    return (instance.ready, instance.endpoint.busy if instance.endpoint else 0)


class RevisionRunner:
    def __init__(
        self,
        revision: Revision,
        plan_for: PlanFor,
        backend: Backend,
        logs: LogSink,
        report: Callable[[RevisionHealth], None],
        ready_timeout: float,
        fork_server: ForkServer | None = None,
    ) -> None:
        self.revision = revision
        self.plan_for = plan_for
        self.backend = backend
        self.logs = logs
        self.report = report
        self.ready_timeout = ready_timeout
        self.fork_server = fork_server
        self.desired = 0
        self.instances: list[Instance] = []
        self.ever_ready = False  # an instance passed its readiness check
        self.ready_reported = False
        self.failures_in_a_row = 0
        self._numbers = itertools.count(1)
        self._restart: asyncio.TimerHandle | None = None
        self._draining: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def ready_count(self) -> int:
        return sum(1 for i in self.instances if i.ready and not i.leaving)

    @property
    def active(self) -> list[Instance]:
        return [i for i in self.instances if not i.leaving]

    def scale_to(self, desired: int) -> None:
        if desired == 0 and not self.ready_reported and not self.instances:
            # initial-scale 0: Knative calls a Revision ready once it reached its initial scale.
            self.ready_reported = True
            self.report(RevisionHealth(True))
        self.desired = desired
        self._reconcile()

    def _reconcile(self) -> None:
        if self._stopping:
            return
        active = self.active
        surplus = len(active) - self.desired
        if surplus > 0:
            for instance in sorted(active, key=_retire_first)[:surplus]:
                self._retire(instance)
        elif surplus < 0 and self._restart is None:
            delay = restart_delay(self.failures_in_a_row)
            if delay:
                self._restart = asyncio.get_running_loop().call_later(delay, self._restart_due)
            else:
                for _ in range(-surplus):
                    self._launch()

    def _restart_due(self) -> None:
        self._restart = None
        missing = self.desired - len(self.active)
        for _ in range(max(0, missing)):
            self._launch()

    def _launch(self) -> None:
        name = f"{self.revision.name}/{next(self._numbers)}"
        plan = self.plan_for(name, free_port())
        if self.fork_server is not None and self.fork_server.alive:
            process: Process | ForkedProcess = ForkedProcess(
                name, plan.argv, plan.env, plan.cwd, self.logs, self.fork_server
            )
        else:
            process = Process(name, plan.argv, plan.env, plan.cwd, self.logs)
        instance = Instance(name, plan, process, time.monotonic())
        self.instances.append(instance)
        instance.task = asyncio.create_task(self._run(instance))

    async def _run(self, instance: Instance) -> None:
        try:
            await instance.process.start()
            await wait_until_ready(
                instance.plan.probe, HOST, instance.plan.port, self.ready_timeout, lambda: instance.process.running
            )
        except (NotReady, ProcessFailed) as error:
            await instance.process.stop()
            if not instance.leaving:
                code = instance.process.returncode
                exited = isinstance(error, NotReady) and code is not None
                reason = f"the process exited with code {code} before it was ready" if exited else str(error)
                self._failed(instance, reason)
            self._forget(instance)
            return
        if not instance.leaving:
            instance.endpoint = Endpoint(instance.name, HOST, instance.plan.port)
            self.backend.add(instance.endpoint)
            self.failures_in_a_row = 0
            self.backend.failure = None
            if not self.ever_ready:
                self.ever_ready = self.ready_reported = True
                self.report(RevisionHealth(True))
        code = await instance.process.wait()
        if not instance.leaving:
            self._failed(instance, f"the process exited with code {code} while serving")
        self._forget(instance)

    def _failed(self, instance: Instance, reason: str) -> None:
        self.failures_in_a_row += 1
        if instance.endpoint:
            self.backend.remove(instance.endpoint)
            instance.endpoint = None
        message = f"instance {instance.name} failed: {reason}"
        if not self.ever_ready:
            self.backend.failure = message
            code = getattr(instance.process, "returncode", None)
            reason_code = f"ExitCode{code}" if code is not None else "ProgressDeadlineExceeded"
            self.report(RevisionHealth(False, reason_code, message))
        self.logs.line(instance.name, message)

    def _forget(self, instance: Instance) -> None:
        if instance in self.instances:
            self.instances.remove(instance)
        self._reconcile()

    def _retire(self, instance: Instance) -> None:
        instance.leaving = True
        task = asyncio.create_task(self._drain(instance))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, instance: Instance) -> None:
        """Take the instance out of the gateway, let its requests finish, then stop it."""
        endpoint = instance.endpoint
        if endpoint is not None:
            self.backend.remove(endpoint)
            deadline = time.monotonic() + self.revision.template.spec.timeout_seconds
            while endpoint.busy and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        await instance.process.stop()
        if instance.task:
            with contextlib.suppress(asyncio.CancelledError):
                await instance.task

    async def stop(self) -> None:
        """Stop every instance (draining them), then the fork server."""
        self._stopping = True
        if self._restart:
            self._restart.cancel()
        for instance in self.active:
            self._retire(instance)
        await asyncio.gather(*self._draining)
        if self.fork_server:
            await self.fork_server.stop()
