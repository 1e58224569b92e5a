"""Child processes: started in their own session, output streamed line by line under
their name, stopped with SIGTERM then SIGKILL, never left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from knit.host import die_with_parent

_COLORS = (36, 33, 35, 32, 34, 91, 96, 93)
MAX_RESTART_DELAY = 30.0


def restart_delay(failures_in_a_row: int) -> float:
    """Seconds to wait before starting again a process that failed: none after a success,
    then 0.5 s doubling with each failure in a row up to 30 s, as Kubernetes' crash loop."""
    if failures_in_a_row <= 0:
        return 0.0
    return min(MAX_RESTART_DELAY, 0.5 * 2 ** (failures_in_a_row - 1))


class LogSink:
    """Where process output goes: one line per write, prefixed with the process name."""

    def __init__(self, stream: TextIO = sys.stdout, color: bool | None = None) -> None:
        self.stream = stream
        self.color = stream.isatty() if color is None else color
        self.width = 18
        self._palette: dict[str, int] = {}

    def line(self, name: str, text: str) -> None:
        self.width = max(self.width, len(name))
        prefix = f"{name:<{self.width}} |"
        if self.color:
            code = self._palette.setdefault(name, _COLORS[len(self._palette) % len(_COLORS)])
            prefix = f"\033[{code}m{prefix}\033[0m"
        self.stream.write(f"{prefix} {text}\n")
        self.stream.flush()


async def pump_lines(stream: asyncio.StreamReader, name: str, logs: LogSink) -> None:
    """Copy a process's output to the log, line by line, until it closes."""
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the buffer: take what is there
            line = await stream.read(1 << 16)
        if not line:
            return
        logs.line(name, line.decode(errors="replace").rstrip())


class Process:
    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, logs: LogSink) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.logs = logs
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    async def start(self) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches knit only; knit stops children in order
                preexec_fn=die_with_parent,
            )
        except OSError as error:
            raise ProcessFailed(f"{self.name}: cannot run {self.argv[0]!r} in {self.cwd}: {error}") from error
        self._pump = asyncio.create_task(self._pump_output())

    async def _pump_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        await pump_lines(self._process.stdout, self.name, self.logs)
        code = await self._process.wait()
        self.logs.line(self.name, f"exited with code {code}")

    async def wait(self) -> int:
        assert self._process is not None
        code = await self._process.wait()
        if self._pump:
            await self._pump
        return code

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the whole process group (gunicorn's workers too), SIGKILL after `grace`."""
        if not self.running:
            if self._pump:
                await self._pump
            return
        assert self._process is not None
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            self._signal_group(signal.SIGKILL)
            await self.wait()

    def _signal_group(self, signum: int) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self._process.pid, signum)


class ProcessFailed(RuntimeError):
    """A process could not start, or exited before it became ready."""
