"""HAProxy as the gateway's hot path: its configuration, its maps and its Runtime API.

Knative keeps its own code out of the request path when it can: Envoy carries requests to
ready revisions, and the activator is in the path only while a revision is at zero or short
of burst capacity. Here HAProxy (2.6+, Debian's) does Envoy's part:

- one frontend on the public port routes by Host, one on every Service's cluster-local
  port routes by that port; both look the key up in the routes map, `<host or port>/<bucket>`
  → a Revision, with a bucket drawn from 0..99 per request, so a split of percentages is 100
  map entries and changes entry by entry at runtime (`set map`); the Revision's name goes
  along in `x-knit-revision`;
- the modes map says where a Revision's requests go: its own backend (its ready instances as
  servers, `maxconn` = containerConcurrency, with knit's activator as the `backup` server for
  when none is up), or straight to the activator, which holds them at zero, pokes the
  autoscaler and counts each instance's slots itself (Knative's proxy mode, kept while spare
  capacity is short, so a containerConcurrency of 1 is exact);
- instances fill server slots written in the configuration (`s1`, `s2`, …, disabled while
  empty) through the Runtime API (`set server … addr`, `… state ready|maint`): HAProxy 2.6
  keeps idle connections to such servers, not to servers added at runtime (`add server`),
  which opened a connection per request; a new Revision or Service, or a Revision needing
  more slots, needs configuration HAProxy cannot add at runtime: knit renders the whole
  configuration from its state and reloads (master-worker, listeners handed over,
  connections kept);
- what HAProxy cannot bound the way knit's limits say goes to the activator, which enforces
  them: chunked request bodies and bodies larger than `BODY_IN_PROXY`.

Everything here but `Haproxy` is pure: rendering, the maps and the stats parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import resource
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

from knit.gateway.limits import GatewayLimits
from knit.host import HOST, die_with_parent

log = logging.getLogger(__name__)

BUCKETS = 100  # split precision: one percentage point per map entry
BODY_IN_PROXY = 16 * 1024  # larger bodies (and chunked ones) are buffered and bounded by the activator
REVISION_HEADER = "x-knit-revision"  # internal: the Revision HAProxy chose, for the activator
SERVICE_PORT_HEADER = "x-knit-service-port"  # internal: the cluster-local port a request came in on
ACTIVATOR_SERVER = "activator"
# HAProxy's maxconn, open connections it holds at once (all clients together): each takes two
# file descriptors, client side and server side, within the limit HAProxy inherits from knit.
MAX_CONNECTIONS = max(256, min(20000, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200) // 2))


class HaproxyMissing(RuntimeError):
    """No haproxy binary to run."""


MIN_SLOTS = 4  # server slots per Revision backend; more (doubling) when its instances need them
PARKED = ("127.0.0.1", 1)  # the address of an empty slot (disabled: never connected to)


@dataclass(frozen=True)
class Server:
    """One ready instance in a slot."""

    host: str
    port: int


@dataclass
class RevisionBackend:
    """What HAProxy needs to know about one Revision: its server slots, filled or empty."""

    revision: str
    container_concurrency: int  # 0: no limit
    timeout_seconds: float
    slots: list[Server | None] = field(default_factory=lambda: [None] * MIN_SLOTS)


def slot_name(index: int) -> str:
    return f"s{index + 1}"


def slot_index(name: str) -> int | None:
    """`s3` → 2; None for a server that is not a slot (the activator)."""
    return int(name[1:]) - 1 if name[:1] == "s" and name[1:].isdigit() else None


@dataclass(frozen=True)
class Ports:
    public: int  # routes by Host
    activator: int  # knit's activator (the Python gateway) listens here


def backend_name(revision: str) -> str:
    return f"rev-{revision}"


def route_map(hosts: Mapping[str, Mapping[str, int]], service_ports: Mapping[int, Mapping[str, int]]) -> dict[str, str]:
    """The routes map's entries: `<host>/<bucket>` and `<port>/<bucket>` → a Revision.

    `hosts` and `service_ports` give each key's split (Revision → percent, adding up to 100).
    Buckets are handed out in contiguous runs, in the split's order; a key whose split is
    empty gets no entries, so its requests go to the activator, which says why.
    """
    entries: dict[str, str] = {}
    for key, split in [*hosts.items(), *((str(port), split) for port, split in service_ports.items())]:
        bucket = 0
        for revision, percent in split.items():
            for _ in range(percent):
                if bucket < BUCKETS:
                    entries[f"{key}/{bucket}"] = revision
                bucket += 1
    return entries


def mode_map(through_activator: Mapping[str, bool]) -> dict[str, str]:
    """The modes map's entries: each Revision → its backend, or the activator's."""
    return {
        revision: "activator" if through else backend_name(revision) for revision, through in through_activator.items()
    }


# HAProxy's own answers, in the contract's shape: for requests it cannot parse (a head too
# large included), heads that do not arrive in time, and instances that fail, are full or time out.
ERROR_PAGES = {
    400: ("bad_request", "the request could not be parsed, or its head is larger than the gateway's limits"),
    408: ("request_header_timeout", "the request did not arrive in time"),
    502: ("upstream_failed", "the instance failed to answer"),
    503: ("revision_unavailable", "no instance of the revision could take the request in time"),
    504: ("upstream_timeout", "the instance did not answer within the revision's timeoutSeconds"),
}


def error_page(status: int) -> bytes:
    """A whole HTTP response, as HAProxy's errorfile wants it."""
    code, message = ERROR_PAGES[status]
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _quote(text: str) -> str:
    return json.dumps(text)  # a double-quoted string HAProxy's parser reads back as is


def _error(status: int, code: str, message: str) -> str:
    body = json.dumps({"error": {"code": code, "message": message}})
    return f"status {status} content-type application/json string {_quote(body)}"


def render_config(
    ports: Ports,
    service_ports: list[int],
    revisions: Mapping[str, RevisionBackend],
    limits: GatewayLimits,
    activation_timeout: float,
    admin_socket: Path,
    routes_map: Path,
    modes_map: Path,
    errors: Path,
) -> str:
    """The whole configuration for knit's state: frontends, the activator and one backend per Revision."""
    head = max(limits.max_header_size, limits.max_header_line)
    too_many = f"more than {limits.max_connections_per_address} open connections from your address"
    not_origin_form = "the gateway is a reverse proxy: send origin-form request targets (GET /path)"
    too_large = (
        f"the request body is larger than the gateway's limit of {limits.max_request_body} bytes "
        "(knit dev --max-request-body)"
    )
    lines = [
        "global",
        "  master-worker",
        f"  stats socket {admin_socket} mode 600 level admin expose-fd listeners",
        "  nbthread 1",
        f"  maxconn {MAX_CONNECTIONS}",
        f"  tune.http.maxhdr {limits.max_header_count}",
        # A request head must fit in a buffer less the space kept for rewriting headers.
        f"  tune.bufsize {head + 1024 + BODY_IN_PROXY}",
        "  tune.maxrewrite 1024",
        "",
        "defaults",
        "  mode http",
        "  timeout connect 5s",
        "  retries 2",
        "  option redispatch 1",  # an instance that refuses the connection (stopping): try another
        f"  timeout client {_ms(limits.request_body_timeout)}",
        f"  timeout http-request {_ms(limits.request_header_timeout)}",
        f"  timeout http-keep-alive {_ms(limits.keepalive_timeout)}",
        f"  timeout queue {_ms(activation_timeout)}",
        "  timeout tunnel 1h",
        "  timeout client-fin 5s",
        "  timeout server-fin 5s",
        # HAProxy's own errors, in the contract's shape.
        *(f"  errorfile {status} {errors / f'{status}.http'}" for status in ERROR_PAGES),
        "",
    ]
    for name, bind_ports, key in (
        ("public", [ports.public], "req.hdr(host),field(1,:),lower"),
        ("cluster-local", service_ports, "dst_port"),
    ):
        if not bind_ports:
            continue
        lines += [f"frontend {name}"]
        lines += [f"  bind {HOST}:{port}" for port in bind_ports]
        lines += [
            "  stick-table type ip size 100k store conn_cur",
            "  tcp-request connection track-sc0 src",
            f"  http-request deny {_error(429, 'too_many_connections', too_many)} "
            f"if {{ sc0_conn_cur gt {limits.max_connections_per_address} }}",
            f"  http-request deny {_error(400, 'bad_request_target', not_origin_form)} if !{{ url_beg / }}",
            f"  http-request deny {_error(413, 'request_body_too_large', too_large)} "
            f"if {{ req.hdr_val(content-length) gt {limits.max_request_body} }}",
            f"  http-request del-header {REVISION_HEADER}",
            f"  http-request del-header {SERVICE_PORT_HEADER}",
            "  http-request del-header forwarded",
            "  http-request del-header x-forwarded-port",
            "  http-request del-header x-forwarded-prefix",
            "  http-request set-header x-forwarded-proto http",
            "  http-request set-header x-forwarded-host %[req.hdr(host)]",
            "  option forwardfor",
            # Small bodies are read before a server is chosen (nginx's proxy_request_buffering);
            # larger ones go to the activator, which reads them whole.
            f"  http-request wait-for-body time {_ms(limits.request_body_timeout)} at-least {BODY_IN_PROXY}",
            "  http-request set-var(txn.bucket) rand(100)",
            f"  http-request set-var(txn.key) {key},concat(/,txn.bucket)",
            f"  http-request set-var(txn.revision) var(txn.key),map({routes_map})",
            f"  http-request set-header {REVISION_HEADER} %[var(txn.revision)] if {{ var(txn.revision) -m found }}",
        ]
        if name == "cluster-local":
            lines.append(f"  http-request set-header {SERVICE_PORT_HEADER} %[dst_port]")
        lines += [
            # What HAProxy would not bound as knit's limits say: the activator reads and bounds it.
            "  use_backend activator if { req.hdr(transfer-encoding) -m found }",
            f"  use_backend activator if {{ req.hdr_val(content-length) gt {BODY_IN_PROXY} }}",
            f"  use_backend %[var(txn.revision),map({modes_map})] if {{ var(txn.revision),map({modes_map}) -m found }}",
            "  default_backend activator",
            "",
        ]
    lines += [
        "backend activator",
        f"  timeout server {_ms(activation_timeout + max([r.timeout_seconds for r in revisions.values()] or [300.0]))}",
        f"  server {ACTIVATOR_SERVER} {HOST}:{ports.activator}",
        "",
    ]
    for revision in revisions.values():
        lines += [
            f"backend {backend_name(revision.revision)}",
            "  balance leastconn",
            # The instances' timeoutSeconds; the backup activator, used only in the moment a
            # Revision loses its last instance before its mode changes, gets no longer.
            f"  timeout server {_ms(revision.timeout_seconds)}",
            f"  server {ACTIVATOR_SERVER} {HOST}:{ports.activator} backup",
        ]
        lines += [slot_line(revision, index) for index in range(len(revision.slots))]
        lines.append("")
    return "\n".join(lines) + "\n"


def slot_line(revision: RevisionBackend, index: int) -> str:
    server = revision.slots[index]
    host, port = (server.host, server.port) if server else PARKED
    limit = f" maxconn {revision.container_concurrency}" if revision.container_concurrency else ""
    return f"  server {slot_name(index)} {host}:{port}{limit}{'' if server else ' disabled'}"


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class ServerStats:
    in_flight: int  # requests at the server now (scur)
    served: int  # requests sent to it so far (stot)


@dataclass(frozen=True)
class BackendStats:
    queued: int  # requests waiting for a free slot (qcur)
    servers: dict[int, ServerStats]  # by slot index


def parse_stats(text: str) -> dict[str, BackendStats]:
    """`show stat` (CSV) → per Revision backend, its queue and its servers (the activator left out)."""
    rows = list(csv.DictReader(io.StringIO(text.lstrip("# "))))
    backends: dict[str, BackendStats] = {}
    for row in rows:
        proxy = row.get("pxname", "")
        if not proxy.startswith("rev-"):
            continue
        revision = proxy.removeprefix("rev-")
        stats = backends.setdefault(revision, BackendStats(0, {}))
        if row["svname"] == "BACKEND":
            backends[revision] = BackendStats(int(row["qcur"] or 0), stats.servers)
        elif (index := slot_index(row["svname"])) is not None:
            stats.servers[index] = ServerStats(int(row["scur"] or 0), int(row["stot"] or 0))
    return backends


# --- the process and its Runtime API -------------------------------------------------------------


class Haproxy:
    """One HAProxy in master-worker mode, in `folder`; spoken to through its Runtime API."""

    def __init__(self, folder: Path, binary: str | None = None) -> None:
        self.folder = folder
        self.binary = binary or shutil.which("haproxy") or ""
        self.config = folder / "haproxy.cfg"
        self.routes_map = folder / "routes.map"
        self.modes_map = folder / "modes.map"
        self.errors = folder / "errors"
        self.admin_socket = folder / "admin.sock"
        self.master_socket = folder / "master.sock"
        self.process: asyncio.subprocess.Process | None = None

    def check(self) -> None:
        if not self.binary:
            raise HaproxyMissing(
                "haproxy is not installed; `make install` installs it as root (apt-get install haproxy), "
                "or install HAProxy 2.6 or later yourself, or run knit dev --data-plane python"
            )

    def write(self, config: str, routes: Mapping[str, str], modes: Mapping[str, str]) -> None:
        self.errors.mkdir(exist_ok=True)
        for status in ERROR_PAGES:
            (self.errors / f"{status}.http").write_bytes(error_page(status))
        for path, entries in ((self.routes_map, routes), (self.modes_map, modes)):
            path.write_text("".join(f"{key} {value}\n" for key, value in sorted(entries.items())))
        self.config.write_text(config)

    async def start(self, timeout: float = 10.0) -> None:
        self.check()
        for path in (self.admin_socket, self.master_socket):
            path.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "-W", "-S", f"{self.master_socket},mode,600", "-f", str(self.config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=die_with_parent,  # its workers are in its process group
        )  # fmt: skip
        await self._wait_for_worker(None, timeout)

    async def reload(self, timeout: float = 10.0) -> None:
        """Start a new worker on the rendered files; the old one finishes what it holds."""
        log.debug("haproxy: reload")
        before = await self._worker_pid()
        async with asyncio.timeout(timeout):
            while True:  # the master re-executes itself on a reload: its socket is away meanwhile
                try:
                    await self._send(self.master_socket, "reload")
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    await asyncio.sleep(0.02)
        await self._wait_for_worker(before, timeout)

    async def _wait_for_worker(self, old: int | None, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while True:
                if self.process and self.process.returncode is not None:
                    error = (await self.process.stderr.read()).decode(errors="replace") if self.process.stderr else ""
                    raise RuntimeError(f"haproxy exited with code {self.process.returncode}: {error.strip()}")
                with contextlib.suppress(OSError, ValueError):
                    pid = await self._worker_pid()
                    if pid and pid != old:
                        return
                await asyncio.sleep(0.02)

    async def _worker_pid(self) -> int | None:
        for line in (await self.command("show info")).splitlines():
            if line.startswith("Pid:"):
                return int(line.split(":", 1)[1])
        return None

    async def command(self, line: str) -> str:
        """One Runtime API command to the current worker; its answer."""
        log.debug("haproxy: %s", line)
        return await self._send(self.admin_socket, line)

    @staticmethod
    async def _send(path: Path, line: str, timeout: float = 5.0) -> str:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
                return (await reader.read()).decode(errors="replace")
            finally:
                writer.close()

    async def stop(self) -> None:
        """Stop the master and every worker, old ones still finishing included."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        for path in (self.admin_socket, self.master_socket):
            with contextlib.suppress(OSError):
                os.unlink(path)
