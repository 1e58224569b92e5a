"""The processor as it runs in production: real gunicorn, real HTTP, a real sink."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from danmaku_events import events

pytestmark = pytest.mark.integration

START_TIMEOUT = 60.0  # only catches a hang: the wait ends when gunicorn answers


@pytest.fixture
def processor_url(sink, free_port, tmp_path):
    """Starts gunicorn with the shipped config; always stops it."""
    log_path = tmp_path / "gunicorn.log"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(free_port), "K_SINK": sink.url}
    url = f"http://127.0.0.1:{free_port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:danmaku_processor.gunicorn_conf",
                "danmaku_processor.wsgi:app",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(f"{url}/readyz", process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_ready(url, process, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or no worker yet
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn was not ready at {url} within {START_TIMEOUT}s:\n{log_path.read_text()}")


def test_a_submitted_comment_posted_to_gunicorn_reaches_the_sink_published(processor_url, sink):
    comment = {"id": "01JDQ9A1B2C3", "room": "lobby", "text": "first! spam", "ts": 1732700000000}
    headers = {
        "ce-specversion": "1.0",
        "ce-type": events.SUBMITTED,
        "ce-source": "/danmaku-web/rooms/lobby",
        "ce-id": comment["id"],
        "ce-danmakusender": "sid-7",
        "content-type": "application/json",
    }

    response = requests.post(processor_url, headers=headers, data=json.dumps(comment), timeout=10)

    assert response.status_code == 200, response.text
    [event] = sink.events()
    assert (event.get_type(), event.get_id()) == (events.PUBLISHED, comment["id"])
    assert events.sender_of(event) == "sid-7"
    assert events.comment_of(event).text == "first! ****"
