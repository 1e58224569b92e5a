"""Instances forked from a fork server: what can be forked, and a real fork server at work."""

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest
import requests

from knit.host import free_port
from knit.runtimes.local.forking import ForkedProcess, ForkServer, fork_entry, preloaded_modules
from knit.runtimes.local.processes import LogSink
from knit.runtimes.local.readiness import wait_until_ready
from knit.runtimes.local.runtime import base_environment

BIN = str(Path(sys.executable).parent)


def test_a_console_script_of_this_python_can_be_forked():
    entry = fork_entry(["gunicorn", "--config", "x", "app:app"], {"PATH": BIN})
    assert entry == ("console:gunicorn", ["gunicorn", "--config", "x", "app:app"])


def test_python_dash_m_with_this_interpreter_can_be_forked():
    assert fork_entry([sys.executable, "-m", "http.server", "8000"], {"PATH": BIN}) == (
        "module:http.server",
        ["http.server", "8000"],
    )


@pytest.mark.parametrize("argv", [["sleep", "1"], ["/usr/bin/python3", "-m", "http.server"], ["no-such-command"], []])
def test_anything_else_is_started_as_a_fresh_process(argv):
    assert fork_entry(argv, {"PATH": os.environ["PATH"]}) is None


def test_the_preload_annotation_lists_modules():
    annotations = {"local.knit.dev/preload": "myapp.wsgi, gunicorn.workers.gthread"}
    assert preloaded_modules(annotations) == ["myapp.wsgi", "gunicorn.workers.gthread"]
    assert preloaded_modules({}) == []


@pytest.mark.integration
def test_instances_forked_from_a_fork_server_serve_log_and_stop(tmp_path):
    async def scenario():
        env = base_environment()
        server = ForkServer("hello", "module:http.server", ["http.server"], env, tmp_path)
        await server.start()
        output = io.StringIO()
        logs = LogSink(output, color=False)
        ports = [free_port(), free_port()]
        instances = [
            ForkedProcess(f"hello-{n}", ["http.server", str(port), "--bind", "127.0.0.1"], env, tmp_path, logs, server)
            for n, port in enumerate(ports)
        ]
        try:
            for instance in instances:
                await instance.start()
            for instance, port in zip(instances, ports, strict=True):
                await wait_until_ready(None, "127.0.0.1", port, 10, lambda i=instance: i.running)
            statuses = [await asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/", timeout=5) for port in ports]
            assert [s.status_code for s in statuses] == [200, 200]
            assert len({instance.pid for instance in instances}) == 2
            await instances[0].stop()
            assert instances[0].returncode == -15  # SIGTERM: http.server has no handler for it
            assert instances[1].running
        finally:
            for instance in instances:
                await instance.stop()
            await server.stop()
        assert not server.alive
        assert '"GET / HTTP/1.1" 200' in output.getvalue()
        assert "hello-0 " in output.getvalue() and "exited with code -15" in output.getvalue()

    asyncio.run(scenario())
