"""The fork server ("template process"): one per Revision that asks for it, holding the
Revision's Python entry point and modules already imported, so an instance starts by
fork() in tens of milliseconds instead of a fresh interpreter's import time.

Run by the local runtime as `python -m knit.runtimes.local.forkserver --fd N --entry E
[--preload MODULE ...]` with the Revision's environment and working directory. `--fd` is
its end of a SOCK_SEQPACKET socket pair: one JSON message per packet, file descriptors
travelling with the message they belong to.

    runtime -> fork server: {"op": "spawn", "id", "argv", "env", "cwd"} + fds stdin, stdout, stderr
                            {"op": "signal", "pid", "signal"}      (to the instance's process group)
    fork server -> runtime: {"op": "ready"} once; {"op": "spawned", "id", "pid"};
                            {"op": "exit", "pid", "code"}           (code < 0: killed by -code)
                            {"op": "error", "id", "error"}

The fork server is every instance's parent and the only one to reap them; an instance is
a process group, killed whole when its leader exits. When the runtime goes away (EOF) it
stops every instance and exits. Pure standard library: it must import nothing of its own.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import importlib
import json
import os
import random
import runpy
import selectors
import shutil
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def resolve_entry(entry: str) -> Callable[[], Any]:
    """`console:<script>` (an installed console script) or `module:<name>` (python -m)."""
    kind, _, name = entry.partition(":")
    if kind == "console":
        (point,) = entry_points(group="console_scripts", name=name)
        return point.load()
    if kind == "module":
        return lambda: runpy.run_module(name, run_name="__main__", alter_sys=True)
    raise ValueError(f"entry must be console:<script> or module:<name>; got {entry!r}")


def _save_coverage_on_sigterm() -> None:
    """Under `make coverage` only (coverage.py measuring this process): an instance stopped by
    SIGTERM saves its coverage data first, as a fresh Python started by coverage's subprocess
    hook would; _reset_signals removed coverage's own handler. Without coverage.py: nothing."""
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is None or not current.config.sigterm:
        return

    def save_and_die(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):
            current.stop()
            current.save()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, save_and_die)


def _reset_signals() -> None:
    """The signal dispositions and mask of a freshly started Python."""
    signal.set_wakeup_fd(-1)
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            if signum == signal.SIGINT:
                signal.signal(signum, signal.default_int_handler)
            elif signum in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(signum, signal.SIG_IGN)
            else:
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class ForkServer:
    def __init__(self, control: socket.socket, entry: Callable[[], Any], base_path: list[str]) -> None:
        self.control = control
        self.entry = entry
        self.base_path = base_path
        self.pid = os.getpid()
        self.instances: set[int] = set()
        self.selector = selectors.DefaultSelector()
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd fires
        signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "child")

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.control, [data], fds)
        else:
            self.control.send(data)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_read, 512):
                            pass
                    self.reap()
                    continue
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 8)
                except ConnectionResetError:
                    data, fds = b"", []
                if not data:
                    self.shutdown()
                    return
                message = json.loads(data)
                try:
                    self.handle(message, fds)
                except Exception as error:  # a bad request must not end the fork server
                    for fd in fds:
                        os.close(fd)
                    self.send({"op": "error", "id": message.get("id"), "error": repr(error)})

    def handle(self, message: dict[str, Any], fds: list[int]) -> None:
        if message["op"] == "spawn":
            self.spawn(message, fds)
        elif message["op"] == "signal":
            pid = int(message["pid"])
            if pid in self.instances:  # never signal a pid that was reaped and may be reused
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, int(message["signal"]))
        else:
            raise ValueError(f"unknown op {message['op']!r}")

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.instances:
                self.instances.discard(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)  # the instance dies whole, as a container does
                self.send({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def shutdown(self) -> None:
        for pid in self.instances:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def spawn(self, message: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 3:
            raise ValueError(f"spawn needs 3 fds (stdin, stdout, stderr); got {len(fds)}")
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:  # fork copies only this thread: another one's locks would stay locked
            raise RuntimeError(f"the fork server has {threads} threads (a preloaded module started one)")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                self._become_instance(message, fds)
                code = self._run_entry()
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                # Never unwind into the fork server's frames: exit as an interpreter would.
                with contextlib.suppress(BaseException):
                    atexit._run_exitfuncs()
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(BaseException):
                        stream.flush()
                os._exit(code)
        for fd in fds:
            os.close(fd)
        self.instances.add(pid)
        self.send({"op": "spawned", "id": message["id"], "pid": pid})

    def _become_instance(self, message: dict[str, Any], fds: list[int]) -> None:
        os.setsid()  # its own process group: the instance is stopped as a unit
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self.pid:
            os._exit(1)
        _reset_signals()
        _save_coverage_on_sigterm()
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
        for fd in {*fds, self.wake_read, self.wake_write}:
            if fd > 2:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.selector.close()
        self.control.close()  # an instance holding it would hide the fork server's exit
        env = message["env"]
        os.environ.clear()
        os.environ.update(env)
        if env.get("PYTHONUNBUFFERED"):
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(line_buffering=True, write_through=True)
        os.chdir(message["cwd"])
        argv = list(message["argv"])
        script = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
        pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.path.dirname(os.path.abspath(script)), *pythonpath, *self.base_path]
        sys.argv = argv
        random.seed()  # instances must not share the template's random state

    def _run_entry(self) -> int:
        try:
            result = self.entry()
        except SystemExit as exit_:
            result = exit_.code
        if result is None:
            return 0
        if isinstance(result, int):
            return result & 0xFF
        print(result, file=sys.stderr)
        return 1


def main() -> None:
    parser = argparse.ArgumentParser(description="knit's fork server (started by the local runtime)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--entry", required=True)
    parser.add_argument("--preload", action="append", default=[])
    args = parser.parse_args()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the runtime is gone: so is the template
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # processes orphaned inside an instance come back to be reaped
    control = socket.socket(fileno=args.fd)
    os.set_inheritable(args.fd, False)
    base_path = sys.path[1:]
    sys.path[0] = os.getcwd()
    entry = resolve_entry(args.entry)
    for module in args.preload:
        importlib.import_module(module)
    server = ForkServer(control, entry, base_path)
    server.send({"op": "ready", "pid": os.getpid()})
    server.serve()


if __name__ == "__main__":
    main()
