"""Knative Serving on the local runtime, with real gunicorn processes behind the real gateway:
scale from zero and back, percent splits, tags, containerConcurrency, new Revisions, and the
gateway's timeouts (timeoutSeconds: 504; no instance within the activation timeout: 503)."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket
import yaml

from knit.runtimes.local.runtime import DATA_PLANES, Options
from knit.testing import sample_app
from knit.testing.harness import RunningManifests

pytestmark = pytest.mark.integration

CONTAINER = sample_app.container(threads=16)
PRELOAD = {"local.knit.dev/preload": sample_app.PRELOAD}
# Waits for a state (a scale reached, instances gone) give up only after this long: a hang, not a
# slow machine. How fast the runtime gets there is measured by bench/, not asserted here.
HANG = 120


def service(
    name="hello", annotations=None, traffic=None, revision=None, version="1", concurrency=0, timeout_seconds=None
):
    template = {
        "metadata": {"annotations": {**PRELOAD, **(annotations or {})}},
        "spec": {
            "containerConcurrency": concurrency,
            "containers": [{**CONTAINER, "env": [{"name": "VERSION", "value": version}]}],
            **({"timeoutSeconds": timeout_seconds} if timeout_seconds else {}),
        },
    }
    if revision:
        template["metadata"]["name"] = revision
    spec = {"template": template, **({"traffic": traffic} if traffic else {})}
    return {"apiVersion": "serving.knit.dev/v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


FAST_AUTOSCALER = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "config-autoscaler"},
    "data": {"stable-window": "6s", "scale-to-zero-grace-period": "1s", "tick-interval": "1s",
             "allow-zero-initial-scale": "true"},
}  # fmt: skip


@pytest.fixture(params=DATA_PLANES)
def data_plane(request) -> str:
    """Asked for by the tests that run on both data planes (with its default
    target-burst-capacity, HAProxy hands these small Revisions to the activator); the others
    run on the one their options name."""
    return request.param


@pytest.fixture
def run(kafka_bootstrap, tmp_path, request):
    """Start the given resources on the local runtime; stopped after the test."""
    plane = request.getfixturevalue("data_plane") if "data_plane" in request.fixturenames else None
    started: list[RunningManifests] = []
    counter = iter(range(100))

    def write(*documents) -> list:
        path = tmp_path / f"manifests-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        return [path]

    def start(*documents, options: Options | None = None) -> RunningManifests:
        options = options or Options(port=0)
        if plane:
            options = dataclasses.replace(options, data_plane=plane)
        running = RunningManifests(write(*documents), kafka_bootstrap, tmp_path / "processes.log", options)
        started.append(running)
        running.start()
        running.write = write
        return running

    yield start
    for running in started:
        running.stop()


def get(running: RunningManifests, host: str = "hello.default.localhost", session=requests, **params):
    return session.get(running.gateway + "/", params=params, headers={"Host": host}, timeout=30)


def revision_status(running: RunningManifests, service: str = "hello") -> dict:
    return running.describe(service)["revisions"][0]


def load_until_scale(running, clients: int, scale: int, timeout: float = HANG, down: bool = False, **query):
    """Closed-loop clients send `GET /?<query>` until the Revision has reached `scale` ready
    instances, from below (or from above with `down`; asserted; `timeout` only catches a hang);
    the status codes they got."""
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                statuses[get(running, session=session, **query).status_code] += 1

    reached, actual = False, None
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not reached:
            actual = revision_status(running)["actual_scale"]
            reached = actual <= scale if down else actual >= scale
            time.sleep(0.1)
        stop.set()
    assert reached, f"the Revision had {actual} ready instances, not {scale}, after {timeout:g} s"
    return statuses


def test_load_scales_a_revision_from_zero_to_three_and_back_to_zero_without_a_failed_request(run, data_plane):
    annotations = {"autoscaling.knit.dev/target": "1", "autoscaling.knit.dev/target-utilization-percentage": "100",
                   "autoscaling.knit.dev/initial-scale": "0"}  # fmt: skip
    running = run(service(annotations=annotations), FAST_AUTOSCALER)
    assert revision_status(running)["actual_scale"] == 0

    statuses = load_until_scale(running, clients=4, scale=3, sleep_ms=300)
    assert set(statuses) == {200}, statuses
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline and (status := revision_status(running))["instances"]:
        time.sleep(0.2)
    assert status["actual_scale"] == 0 and status["instances"] == [], status


def test_a_90_10_split_over_2000_requests_lands_within_3_points_and_a_tag_reaches_only_its_revision(run, data_plane):
    pinned = {"autoscaling.knit.dev/min-scale": "1"}
    running = run(service(annotations=pinned, revision="hello-blue", version="1"))
    add_canary(running, pinned)

    assert_90_10_and_canary(running)


def add_canary(running: RunningManifests, annotations: dict[str, str]) -> None:
    """A second Revision, hello-green, taking 10% and tagged canary; hello-blue keeps 90%."""
    traffic = [
        {"revisionName": "hello-blue", "percent": 90},
        {"revisionName": "hello-green", "percent": 10, "tag": "canary"},
    ]
    running.apply(running.write(service(annotations=annotations, revision="hello-green", version="2", traffic=traffic)))


def assert_90_10_and_canary(running: RunningManifests) -> None:
    """2,000 requests split 90/10 within 3 points; 50 to the canary host all reach hello-green."""
    with requests.Session() as session:
        served = Counter(get(running, session=session).json()["revision"] for _ in range(2000))
        canary = Counter(get(running, "canary-hello.default.localhost", session).json()["revision"] for _ in range(50))

    assert abs(served["hello-green"] / 2000 - 0.10) <= 0.03, served
    assert served["hello-blue"] + served["hello-green"] == 2000
    assert canary == {"hello-green": 50}


def test_with_container_concurrency_1_no_instance_ever_serves_two_requests_at_once(run, data_plane):
    annotations = {"autoscaling.knit.dev/max-scale": "2", "autoscaling.knit.dev/min-scale": "1"}
    running = run(service(annotations=annotations, concurrency=1))

    def one(_: int) -> dict:
        response = get(running, sleep_ms=100)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(6) as clients:
        answers = list(clients.map(one, range(36)))

    assert {a["in_flight"] for a in answers} == {1}
    assert {a["max_in_flight"] for a in answers} == {1}


def test_a_new_template_makes_a_new_revision_that_takes_the_traffic_once_ready(run, data_plane):
    running = run(service(version="1"))
    assert get(running).json()["revision"] == "hello-00001"

    changes = running.apply(running.write(service(version="2")))

    assert "Service default/hello: created Revision hello-00002" in changes
    assert get(running).json()["revision"] == "hello-00002"
    assert [r["name"] for r in running.describe("hello")["revisions"]] == ["hello-00002", "hello-00001"]


def test_a_crashed_instance_is_replaced_and_requests_keep_being_served(run, data_plane):
    running = run(service(annotations={"autoscaling.knit.dev/min-scale": "1"}))
    first = get(running).json()["pid"]
    (instance,) = revision_status(running)["instances"]
    os.kill(instance["pid"], signal.SIGKILL)  # the instance's leader: gunicorn's master

    deadline = time.monotonic() + HANG
    while not any(i["ready"] and i["pid"] != instance["pid"] for i in revision_status(running)["instances"]):
        assert time.monotonic() < deadline, f"no new ready instance after {HANG} s"
        time.sleep(0.1)
    response = get(running)
    assert response.status_code == 200
    assert response.json()["pid"] != first
    assert "exited with code -9 while serving" in running.log_path.read_text()


def test_a_request_in_flight_finishes_when_its_instance_is_scaled_down(run, data_plane):
    running = run(service())
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, running, sleep_ms=1500)
        deadline = time.monotonic() + HANG  # the request has reached the instance
        while not any(i["in_flight"] for i in revision_status(running)["instances"]):
            assert time.monotonic() < deadline and not slow.done(), slow
            time.sleep(0.01)
        running.suspend("hello")  # desired scale 0: the instance drains, then stops
        assert slow.result().status_code == 200
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline and revision_status(running)["instances"]:
        time.sleep(0.1)
    assert revision_status(running)["instances"] == []


def test_the_hpa_class_scales_on_the_cpu_the_instances_use(run, data_plane):
    annotations = {"autoscaling.knit.dev/class": "hpa", "autoscaling.knit.dev/metric": "cpu",
                   "autoscaling.knit.dev/target": "30", "autoscaling.knit.dev/max-scale": "3"}  # fmt: skip
    running = run(service(annotations=annotations), FAST_AUTOSCALER)
    load_until_scale(running, clients=2, scale=2, burn_ms=200)


def test_the_gateway_and_the_autoscaler_export_prometheus_metrics(run, data_plane):
    running = run(service())
    assert get(running).status_code == 200
    exposition = running.runtime.metrics.exposition().decode()
    labels = 'revision="hello-00001",service="hello"'
    assert f'knit_gateway_requests_total{{code_class="2xx",{labels}}} 1.0' in exposition
    assert f"knit_gateway_request_duration_seconds_count{{{labels}}} 1.0" in exposition
    for series in ("knit_autoscaler_desired_scale", "knit_autoscaler_actual_scale", "knit_autoscaler_panic_mode",
                   "knit_gateway_in_flight_requests"):  # fmt: skip
        assert f"{series}{{{labels}}}" in exposition


def test_a_request_the_instance_does_not_answer_within_timeout_seconds_is_a_504_naming_it(run, data_plane):
    # Given a Revision whose requests may take 1 s (timeoutSeconds), served by an app that can sleep
    running = run(service(timeout_seconds=1))

    # When a request takes the app 3 s
    response = get(running, sleep_ms=3000)

    # Then the gateway gives up after 1 s with a 504 in the error contract, naming the instance
    assert response.status_code == 504
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "error": {"code": "upstream_timeout", "message": "hello-00001/1 did not answer within 1s"}
    }
    # and it is counted as a 5xx of that Revision; the next quick request is served as usual
    exposition = running.runtime.metrics.exposition().decode()
    assert 'knit_gateway_requests_total{code_class="5xx",revision="hello-00001",service="hello"} 1.0' in exposition
    assert get(running).json()["revision"] == "hello-00001"


def test_a_revision_whose_instance_never_gets_ready_answers_503_after_the_activation_timeout(run, data_plane):
    # Given a Revision at zero (initial-scale 0) whose instances never pass their readiness check,
    # and a gateway that waits 1 s for an instance
    never_ready = {"image": "stuck:dev", "command": ["python", "-c", "import time; time.sleep(600)"]}
    document = {
        "apiVersion": "serving.knit.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {"template": {"metadata": {"annotations": {"autoscaling.knit.dev/initial-scale": "0"}},
                              "spec": {"containers": [never_ready]}}},
    }  # fmt: skip
    running = run(document, FAST_AUTOSCALER, options=Options(port=0, activation_timeout=1.0))
    assert revision_status(running)["actual_scale"] == 0

    # When a request comes
    response = get(running)

    # Then it waited for an instance (asking for one), and after 1 s got a 503 saying why
    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "revision_unavailable",
            "message": "revision hello-00001 had no ready instance within 1s (it is starting or scaling from zero)",
        }
    }
    assert [instance["ready"] for instance in revision_status(running)["instances"]] == [False]


# --- HAProxy's direct path: with spare capacity (target-burst-capacity 0) the activator steps aside ---

DIRECT = {"autoscaling.knit.dev/min-scale": "1", "autoscaling.knit.dev/target-burst-capacity": "0"}
ECHO = """
import os
from aiohttp import web

async def echo(request):
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    async for message in socket:
        await socket.send_str("echo " + message.data)
    return socket

app = web.Application()
app.add_routes([web.get("/ws", echo)])
web.run_app(app, host=os.environ["HOST"], port=int(os.environ["PORT"]), print=None)
"""


@pytest.fixture
def on_haproxy(run):
    """Start resources on the HAProxy data plane and wait until the given Revisions are served
    straight by HAProxy (the autoscaler has seen spare capacity)."""

    def start(*documents, direct: tuple[str, ...]) -> RunningManifests:
        running = run(*documents, options=Options(port=0, data_plane="haproxy"))
        wait_straight(running, direct)
        return running

    return start


def wait_straight(running: RunningManifests, revisions: tuple[str, ...]) -> None:
    """Until HAProxy serves the Revisions without the activator (HANG only catches a hang)."""
    deadline = time.monotonic() + HANG
    while any(running.through_activator(r) for r in revisions) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running.through_activator(r) for r in revisions), "the activator never stepped aside"


def served_by_instances(running: RunningManifests, revision: str) -> int:
    """Requests HAProxy sent straight to the Revision's instances so far (not to the activator)."""
    rows = [line.split(",") for line in running.haproxy_stats().splitlines() if line.startswith(f"rev-{revision},")]
    return sum(int(row[7]) for row in rows if row[1] not in ("activator", "BACKEND"))


def sent_to_activator(running: RunningManifests) -> int:
    """Requests HAProxy has passed to the activator so far, from any frontend or backend."""
    rows = [line.split(",") for line in running.haproxy_stats().splitlines() if not line.startswith("#")]
    return sum(int(row[7]) for row in rows if len(row) > 7 and row[1] == "activator")


def test_with_spare_capacity_haproxy_serves_a_split_and_a_tag_without_the_activator(on_haproxy):
    running = on_haproxy(service(annotations=DIRECT, revision="hello-blue", version="1"), direct=("hello-blue",))
    add_canary(running, DIRECT)
    wait_straight(running, ("hello-green",))
    before = served_by_instances(running, "hello-blue") + served_by_instances(running, "hello-green")

    assert_90_10_and_canary(running)

    after = served_by_instances(running, "hello-blue") + served_by_instances(running, "hello-green")
    assert after - before == 2050  # every one of them straight from HAProxy to an instance


def test_a_split_changed_while_load_runs_drops_no_request(on_haproxy):
    running = on_haproxy(service(annotations=DIRECT, revision="hello-blue", version="1"), direct=("hello-blue",))
    green = service(annotations=DIRECT, revision="hello-green", version="2",
                    traffic=[{"revisionName": "hello-blue", "percent": 100}])  # fmt: skip
    running.apply(running.write(green))
    statuses: Counter[int] = Counter()
    revisions: Counter[str] = Counter()
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = get(running, session=session)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    revisions[response.json()["revision"]] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for blue in (0, 50, 100, 10, 0):
            traffic = [{"revisionName": "hello-blue", "percent": blue},
                       {"revisionName": "hello-green", "percent": 100 - blue}]  # fmt: skip
            green["spec"]["traffic"] = traffic
            running.apply(running.write(green))
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(HANG)

    assert set(statuses) == {200}, statuses
    assert revisions["hello-blue"] and revisions["hello-green"], revisions


def test_straight_through_haproxy_instances_join_and_leave_under_load_without_a_failed_request(on_haproxy):
    annotations = {**DIRECT, "autoscaling.knit.dev/target": "1", "autoscaling.knit.dev/max-scale": "3",
                   "autoscaling.knit.dev/target-utilization-percentage": "100"}  # fmt: skip
    running = on_haproxy(service(annotations=annotations), FAST_AUTOSCALER, direct=("hello-00001",))
    before = sent_to_activator(running)

    statuses = load_until_scale(running, clients=4, scale=3, sleep_ms=300)  # instances join
    statuses += load_until_scale(running, clients=1, scale=1, down=True, sleep_ms=50)  # and leave, draining

    assert set(statuses) == {200}, statuses
    assert sent_to_activator(running) == before  # every request went straight from HAProxy to an instance


def test_straight_through_haproxy_an_instance_slower_than_timeout_seconds_gets_a_504_in_the_contract(on_haproxy):
    running = on_haproxy(service(annotations=DIRECT, timeout_seconds=1), direct=("hello-00001",))

    response = get(running, sleep_ms=3000)

    assert response.status_code == 504
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_a_websocket_goes_through_haproxy_to_the_instance_and_back(on_haproxy, tmp_path):
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    container = {"image": "echo", "command": [sys.executable, str(script)]}
    template = {"metadata": {"annotations": DIRECT}, "spec": {"containers": [container]}}
    echo = {"apiVersion": "serving.knit.dev/v1", "kind": "Service", "metadata": {"name": "echo"},
            "spec": {"template": template}}  # fmt: skip
    running = on_haproxy(echo, direct=("echo-00001",))
    before = served_by_instances(running, "echo-00001")

    socket = websocket.create_connection(
        running.gateway.replace("http", "ws") + "/ws", host="echo.default.localhost", timeout=30
    )
    try:
        socket.send("hello")
        answer = socket.recv()
    finally:
        socket.close()

    assert answer == "echo hello"
    assert served_by_instances(running, "echo-00001") == before + 1
