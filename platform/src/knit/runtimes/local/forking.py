"""Instances forked from a Revision's fork server (see forkserver.py), and the decision
whether a container can be: its command must be a Python console script or `python -m`,
run by the same interpreter as knit.

A ForkedProcess behaves as a Process (start, stop, wait, running) so the runtime treats
both alike; its output comes back through a pipe passed to the fork server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from knit.host import die_with_parent
from knit.runtimes.local.processes import LogSink, ProcessFailed, pump_lines

PRELOAD_ANNOTATION = "local.knit.dev/preload"
MAX_MESSAGE = 1 << 20


def _same_interpreter(path: str) -> bool:
    return os.path.realpath(path) == os.path.realpath(sys.executable)


def fork_entry(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """(entry, the instance's sys.argv) when a fork server can run this command, else None."""
    if not argv:
        return None
    program = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
    if len(argv) >= 3 and argv[1] == "-m" and _same_interpreter(program):
        return f"module:{argv[2]}", [argv[2], *argv[3:]]
    name = os.path.basename(argv[0])
    if not entry_points(group="console_scripts", name=name):
        return None
    try:
        with open(program, "rb") as script:
            shebang = script.readline()
    except OSError:
        return None
    interpreter = shebang[2:].split()[0].decode() if shebang.startswith(b"#!") and shebang[2:].split() else ""
    return (f"console:{name}", list(argv)) if interpreter and _same_interpreter(interpreter) else None


def preloaded_modules(annotations: Mapping[str, str]) -> list[str]:
    """The modules a Revision's template imports: `local.knit.dev/preload`, comma or space separated."""
    return annotations.get(PRELOAD_ANNOTATION, "").replace(",", " ").split()


class ForkServer:
    """The runtime's side of one fork server."""

    def __init__(self, name: str, entry: str, preload: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.entry = entry
        self.preload = list(preload)
        self.env = dict(env)
        self.cwd = cwd
        self._socket: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ready: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-m", "knit.runtimes.local.forkserver", "--fd", str(theirs.fileno())]
        argv += ["--entry", self.entry, *itertools.chain.from_iterable(("--preload", m) for m in self.preload)]
        self._ready = loop.create_future()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv, cwd=self.cwd, env=self.env, pass_fds=[theirs.fileno()],
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        loop.add_reader(ours.fileno(), self._receive)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            await self.stop()
            raise ProcessFailed(f"{self.name}: the fork server was not ready within {timeout:.0f}s") from None

    def _receive(self) -> None:
        assert self._socket is not None
        try:
            data, _, _, _ = socket.recv_fds(self._socket, MAX_MESSAGE, 0)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        message = json.loads(data)
        op = message["op"]
        if op == "ready" and self._ready and not self._ready.done():
            self._ready.set_result(None)
        elif op == "spawned":
            future = self._spawning.pop(message["id"], None)
            if future and not future.done():
                future.set_result(message["pid"])
        elif op == "exit":
            future = self._exits.setdefault(message["pid"], asyncio.get_running_loop().create_future())
            if not future.done():
                future.set_result(message["code"])
        elif op == "error":
            future = self._spawning.pop(message.get("id"), None)
            if future and not future.done():
                future.set_exception(ProcessFailed(f"{self.name}: the fork server refused: {message['error']}"))

    def _lost(self) -> None:
        """The fork server exited: its instances died with it (they are its children)."""
        assert self._socket is not None
        asyncio.get_running_loop().remove_reader(self._socket.fileno())
        error = ProcessFailed(f"{self.name}: the fork server exited")
        for future in self._spawning.values():
            if not future.done():
                future.set_exception(error)
        for future in self._exits.values():
            if not future.done():
                future.set_result(-signal.SIGKILL)
        if self._ready and not self._ready.done():
            self._ready.set_exception(error)

    def _send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        assert self._socket is not None
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self._socket, [data], fds)
        else:
            self._socket.send(data)

    async def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, output_fd: int) -> int:
        spawn_id = next(self._ids)
        future = self._spawning[spawn_id] = asyncio.get_running_loop().create_future()
        with open(os.devnull, "rb") as devnull:
            message = {"op": "spawn", "id": spawn_id, "argv": list(argv), "env": dict(env), "cwd": str(cwd)}
            self._send(message, [devnull.fileno(), output_fd, output_fd])
        pid = await future
        self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        return pid

    def exit_of(self, pid: int) -> asyncio.Future[int]:
        return self._exits[pid]

    def signal(self, pid: int, signum: int) -> None:
        if self.alive:
            self._send({"op": "signal", "pid": pid, "signal": int(signum)})

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._socket.close()  # EOF: the fork server stops its instances and exits
        if self._process is not None and self._process.returncode is None:
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()


class ForkedProcess:
    """An instance forked by a ForkServer; the same interface as processes.Process."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, logs: LogSink,
                 server: ForkServer) -> None:  # fmt: skip
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.logs = logs
        self.server = server
        self.pid: int | None = None
        self.returncode: int | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.pid is not None and self.returncode is None

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.pid = await self.server.spawn(self.argv, self.env, self.cwd, write_fd)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._pump = asyncio.create_task(self._follow(read_fd))

    async def _follow(self, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        try:
            await pump_lines(reader, self.name, self.logs)
        finally:
            transport.close()
        assert self.pid is not None
        self.returncode = await self.server.exit_of(self.pid)
        self.logs.line(self.name, f"exited with code {self.returncode}")

    async def wait(self) -> int:
        assert self._pump is not None
        await self._pump
        assert self.returncode is not None
        return self.returncode

    async def stop(self, grace: float = 10.0) -> None:
        if self.running:
            assert self.pid is not None
            self.server.signal(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.wait()), grace)
            except TimeoutError:
                self.server.signal(self.pid, signal.SIGKILL)
        if self._pump:
            await self._pump
