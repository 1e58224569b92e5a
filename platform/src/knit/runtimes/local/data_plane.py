"""The local runtime's HAProxy data plane: knit's state carried into a running HAProxy.

The runtime says what should be (Revisions, their ready instances, routes, cluster-local
ports, whether the activator stays in a Revision's path); one task makes HAProxy match. A
new Revision or Service (a backend or a listener HAProxy cannot add at runtime) renders the
configuration and reloads it; instances, splits and modes change through the Runtime API.
Every tenth of a second another task reads HAProxy's stats: the requests HAProxy has at each
Revision's instances and in its queue feed the autoscaler (`proxy_meter`; the activator
meters its own requests), and each instance's count tells a draining instance when its
last request is done.

`ProxiedInstances` is what a RevisionRunner reports its instances to: each ready instance
becomes an HAProxy server and an endpoint of the activator's RevisionBackend, so either can
send it requests, HAProxy while the Revision has spare capacity, the activator otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from knit.autoscaling.metrics import ConcurrencyMeter
from knit.gateway import haproxy
from knit.gateway.activator import Endpoint, RevisionBackend
from knit.gateway.limits import GatewayLimits
from knit.gateway.routing import RouteTable

log = logging.getLogger(__name__)
STATS_INTERVAL = 0.1  # seconds between readings of HAProxy's stats


class ProxiedRevision:
    """One Revision as the HAProxy data plane keeps it: its slots as wanted and as applied."""

    def __init__(self, backend: haproxy.RevisionBackend, activator: RevisionBackend) -> None:
        self.desired = backend  # the slots as knit wants them
        self.applied: list[haproxy.Server | None] = list(backend.slots)  # as HAProxy has them
        self.draining: set[int] = set()  # slots in maintenance whose requests are not all done
        self.activator = activator
        self.proxy_meter = ConcurrencyMeter(time.monotonic())  # requests HAProxy sent straight to instances
        self.through_activator = True  # until the autoscaler says there is capacity to spare
        self.endpoints: dict[int, Endpoint] = {}  # by slot, draining ones included
        self.slot_of: dict[str, int] = {}  # instance name → its slot
        self.served = 0  # requests sent to its servers, at the last reading

    def free_slot(self) -> int:
        """A slot empty both as wanted and in HAProxy; a new one (a reload) when none is."""
        for index, (wanted, applied) in enumerate(zip(self.desired.slots, self.applied, strict=True)):
            if wanted is None and applied is None:
                return index
        index = len(self.desired.slots)
        self.desired.slots += [None] * index  # twice as many
        self.applied += [None] * index
        return index


class ProxiedInstances:
    """A RevisionRunner's view of the data plane: `add`, `remove` and `failure`, as RevisionBackend."""

    def __init__(self, plane: HaproxyDataPlane, revision: str) -> None:
        self.plane, self.revision = plane, revision

    @property
    def failure(self) -> str | None:
        parts = self.plane.revisions.get(self.revision)
        return parts.activator.failure if parts else None

    @failure.setter
    def failure(self, message: str | None) -> None:
        if self.revision in self.plane.revisions:
            self.plane.revisions[self.revision].activator.failure = message

    def add(self, endpoint: Endpoint) -> None:
        self.plane.add_server(self.revision, endpoint)

    def remove(self, endpoint: Endpoint) -> None:
        self.plane.remove_server(self.revision, endpoint)


class HaproxyDataPlane:
    def __init__(
        self, folder: Path, ports: haproxy.Ports, limits: GatewayLimits, activation_timeout: float, routes: RouteTable
    ) -> None:
        self.proxy = haproxy.Haproxy(folder)
        self.ports, self.limits, self.activation_timeout, self.routes = ports, limits, activation_timeout, routes
        self.revisions: dict[str, ProxiedRevision] = {}
        self.service_ports: dict[int, tuple[str, str]] = {}  # cluster-local port → (namespace, service)
        self._structure_changed = True
        self._applied_routes: dict[str, str] = {}
        self._applied_modes: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one pass at a time: Runtime API commands must not interleave
        self._tasks: list[asyncio.Task[None]] = []

    # --- what the runtime says should be ----------------------------------------------------------

    def add_service_port(self, port: int, namespace: str, service: str) -> None:
        self.service_ports[port] = (namespace, service)
        self._structure_changed = True
        self._wake.set()

    def add_revision(self, revision: str, container_concurrency: int, timeout: float,
                     activator: RevisionBackend) -> ProxiedInstances:  # fmt: skip
        backend = haproxy.RevisionBackend(revision, container_concurrency, timeout)
        self.revisions[revision] = ProxiedRevision(backend, activator)
        self._structure_changed = True
        self._wake.set()
        return ProxiedInstances(self, revision)

    def remove_revision(self, revision: str) -> None:
        if self.revisions.pop(revision, None):
            self._structure_changed = True
            self._wake.set()

    def add_server(self, revision: str, endpoint: Endpoint) -> None:
        parts = self.revisions.get(revision)
        if parts is None:
            return
        slots = len(parts.desired.slots)
        index = parts.free_slot()
        if len(parts.desired.slots) > slots:
            self._structure_changed = True
        parts.desired.slots[index] = haproxy.Server(endpoint.host, endpoint.port)
        parts.endpoints[index] = endpoint
        parts.slot_of[endpoint.name] = index
        parts.activator.add(endpoint)
        self._wake.set()

    def remove_server(self, revision: str, endpoint: Endpoint) -> None:
        parts = self.revisions.get(revision)
        if parts is None:
            return
        parts.activator.remove(endpoint)
        index = parts.slot_of.pop(endpoint.name, None)
        if index is None:
            return
        parts.desired.slots[index] = None
        if parts.applied[index] is not None:
            # HAProxy may send it requests until the slot is in maintenance: the instance is busy
            # until a reading after that says otherwise.
            endpoint.proxied = max(endpoint.proxied, 1)
        self._wake.set()

    def serve_through_activator(self, revision: str, through: bool) -> None:
        parts = self.revisions.get(revision)
        if parts is not None and parts.through_activator != through:
            parts.through_activator = through
            self._wake.set()

    def routes_changed(self) -> None:
        self._wake.set()

    def service_of_port(self, port: int) -> tuple[str, str] | None:
        return self.service_ports.get(port)

    def traffic(self, revision: str, now: float) -> tuple[float, int]:
        """What HAProxy sent straight to the Revision's instances since the last call."""
        return self.revisions[revision].proxy_meter.collect(now)

    # --- making HAProxy match ---------------------------------------------------------------------

    def _routes(self) -> dict[str, str]:
        hosts = {host: entry.split.weights for host, entry in self.routes.hosts().items()}
        ports: dict[int, Mapping[str, int]] = {}
        for port, (namespace, service) in self.service_ports.items():
            entry = self.routes.service_route(service, namespace)
            ports[port] = entry.split.weights if entry else {}
        return {
            key: revision for key, revision in haproxy.route_map(hosts, ports).items() if revision in self.revisions
        }

    def _modes(self) -> dict[str, str]:
        return haproxy.mode_map({name: parts.through_activator for name, parts in self.revisions.items()})

    def _render(self) -> str:
        return haproxy.render_config(
            self.ports,
            sorted(self.service_ports),
            {name: parts.desired for name, parts in self.revisions.items()},
            self.limits,
            self.activation_timeout,
            self.proxy.admin_socket,
            self.proxy.routes_map,
            self.proxy.modes_map,
            self.proxy.errors,
        )

    def _write(self) -> None:
        self._applied_routes, self._applied_modes = self._routes(), self._modes()
        self.proxy.write(self._render(), self._applied_routes, self._applied_modes)
        for parts in self.revisions.values():
            # The new worker starts with the slots as wanted; requests the old one still has
            # finish there, unseen: the instances they are on count as done.
            for index in parts.draining:
                if parts.desired.slots[index] is None and (endpoint := parts.endpoints.pop(index, None)):
                    endpoint.proxied = 0
            parts.applied, parts.draining = list(parts.desired.slots), set()

    async def start(self) -> None:
        self.proxy.check()
        self.proxy.folder.mkdir(parents=True, exist_ok=True)
        self._write()
        await self.proxy.start()
        self._structure_changed = False
        self._tasks = [asyncio.create_task(self._sync_forever()), asyncio.create_task(self._read_stats_forever())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.proxy.stop()

    async def _sync_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.apply()
            except (OSError, RuntimeError, TimeoutError) as error:
                log.warning("haproxy: could not apply a change, trying again: %s", error)
                await asyncio.sleep(0.2)
                self._wake.set()

    async def apply(self) -> None:
        """One pass: HAProxy made to match what the runtime wants."""
        async with self._lock:
            if self._structure_changed:
                self._structure_changed = False
                self._write()
                await self.proxy.reload()
                return
            await self._sync_servers()
            await self._sync_map(self.proxy.routes_map, self._applied_routes, self._routes())
            await self._sync_map(self.proxy.modes_map, self._applied_modes, self._modes())

    async def _sync_servers(self) -> None:
        for name, parts in self.revisions.items():
            backend = haproxy.backend_name(name)
            for index, (wanted, applied) in enumerate(zip(parts.desired.slots, parts.applied, strict=True)):
                server = f"{backend}/{haproxy.slot_name(index)}"
                if applied is not None and wanted != applied and index not in parts.draining:
                    await self.proxy.command(f"set server {server} state maint")  # its requests finish
                    parts.draining.add(index)
                elif applied is None and wanted is not None:
                    answer = await self.proxy.command(f"set server {server} addr {wanted.host} port {wanted.port}")
                    if "changed from" not in answer and "no need to change" not in answer:
                        raise RuntimeError(f"set server {server} addr: {answer.strip()}")
                    await self.proxy.command(f"set server {server} state ready")
                    parts.applied[index] = wanted

    async def _sync_map(self, path: Path, applied: dict[str, str], desired: dict[str, str]) -> None:
        """Change `applied` (what HAProxy has) into `desired`, a route's worth of entries per round trip."""
        commands = [
            f"{'set' if key in applied else 'add'} map {path} {key} {value}"
            for key, value in desired.items()
            if applied.get(key) != value
        ]
        commands += [f"del map {path} {key}" for key in applied if key not in desired]
        for start in range(0, len(commands), haproxy.BUCKETS):
            await self.proxy.command("; ".join(commands[start : start + haproxy.BUCKETS]))
        applied.clear()
        applied.update(desired)

    # --- reading HAProxy's stats --------------------------------------------------------------------

    async def _read_stats_forever(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            try:
                stats = haproxy.parse_stats(await self.proxy.command("show stat"))
            except (OSError, TimeoutError, KeyError, ValueError) as error:
                log.debug("haproxy: no stats this time: %s", error)
                continue
            self.record(stats, time.monotonic())

    def record(self, stats: Mapping[str, haproxy.BackendStats], now: float) -> None:
        """Feed each Revision's proxy meter and its instances' counts from one reading."""
        for name, parts in self.revisions.items():
            backend = stats.get(name)
            if backend is None:
                continue
            served = sum(server.served for server in backend.servers.values())
            in_flight = sum(server.in_flight for server in backend.servers.values())
            parts.proxy_meter.observe(now, in_flight + backend.queued, max(0, served - parts.served))
            parts.served = served
            for index, endpoint in list(parts.endpoints.items()):
                server = backend.servers.get(index)
                if index in parts.draining:
                    if server is None or server.in_flight == 0:  # its last request is done: the slot is free
                        parts.draining.discard(index)
                        parts.applied[index] = None
                        endpoint.proxied = 0
                        del parts.endpoints[index]
                    else:
                        endpoint.proxied = server.in_flight
                elif server is not None and parts.applied[index] is not None and parts.desired.slots[index]:
                    # Only slots HAProxy has as knit wants them: one being taken out counts as busy
                    # until its maintenance state is applied.
                    endpoint.proxied = server.in_flight
