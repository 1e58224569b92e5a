"""The dashboard's pure parts (history, rates, the chart) and its server's bounds, with a
reader standing in for a runtime (the whole dashboard under knit dev: e2e/test_dashboard.py)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ElementTree

import aiohttp
from aiohttp import web

from knit.dashboard import server
from knit.dashboard.history import CHART_HEIGHT, CHART_WIDTH, KEPT_SECONDS, History, Reading, RevisionReading, chart_svg

SERVICE = {"name": "hello", "namespace": "default", "url": "http://hello.default.localhost:8080", "ready": True,
           "reason": ""}  # fmt: skip


def revision(requests: float, actual: int = 1, desired: int = 1, name: str = "hello-00001") -> RevisionReading:
    return RevisionReading("hello", "default", name, 100, True, actual, desired, False, requests, 0)


def reading(*revisions: RevisionReading) -> Reading:
    return Reading([SERVICE], list(revisions), [])


def test_requests_per_second_come_from_the_counter_between_two_readings():
    history = History()
    history.record(10.0, reading(revision(100)))
    history.record(12.0, reading(revision(130)))
    assert [sample.rps for sample in history.samples("hello-00001")] == [0.0, 15.0]


def test_a_counter_that_went_down_starts_the_rate_again_rather_than_going_negative():
    history = History()
    history.record(10.0, reading(revision(100)))
    history.record(11.0, reading(revision(5)))
    history.record(12.0, reading(revision(9)))
    assert [sample.rps for sample in history.samples("hello-00001")] == [0.0, 0.0, 4.0]


def test_a_revision_no_longer_read_is_forgotten_and_the_window_is_bounded():
    history = History()
    for second in range(KEPT_SECONDS + 50):
        history.record(float(second), reading(revision(second), revision(0, name="hello-00002")))
    assert len(history.samples("hello-00001")) == KEPT_SECONDS
    history.record(1000.0, reading(revision(1)))
    assert history.samples("hello-00002") == []


def test_the_snapshot_groups_revisions_under_their_service_with_the_peak_of_the_window():
    history = History()
    for second, actual in enumerate([1, 4, 2]):
        history.record(float(second), reading(revision(second * 10, actual=actual, desired=2)))
    (service,) = history.snapshot()["services"]
    assert service["name"] == "hello"
    assert service["revisions"] == [
        {"name": "hello-00001", "percent": 100, "ready": True, "actual": 2, "desired": 2, "panic": False,
         "rps": 10.0, "in_flight": 0, "peak": 4},
    ]  # fmt: skip


def test_the_chart_is_svg_with_both_lines_inside_its_box():
    history = History()
    for second, (actual, desired) in enumerate([(0, 1), (1, 3), (3, 3)]):
        history.record(float(second), reading(revision(0, actual=actual, desired=desired)))
    svg = ElementTree.fromstring(chart_svg(history.samples("hello-00001"), now=2.0))
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2
    for line in lines:
        points = [tuple(map(float, point.split(","))) for point in line.get("points").split()]
        assert len(points) == 3
        assert all(0 <= x <= CHART_WIDTH and 0 <= y <= CHART_HEIGHT for x, y in points)
    ready = [y for _, y in (tuple(map(float, p.split(","))) for p in lines[1].get("points").split())]
    assert ready[0] > ready[1] > ready[2]  # 0, 1, 3 instances: higher is up
    assert svg.find("{http://www.w3.org/2000/svg}text").text == "3"  # the scale's top


async def with_server(scenario, reader=lambda: reading(revision(0))):
    runner = web.AppRunner(server.dashboard_app(reader))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        async with aiohttp.ClientSession() as client:
            await scenario(client, url)
    finally:
        await runner.cleanup()


def test_the_page_snapshot_and_chart_are_served_read_only_with_a_content_policy():
    async def scenario(client, url):
        async with client.get(f"{url}/") as page:
            assert page.status == 200
            assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self' covers it
            assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        async with client.get(f"{url}/snapshot") as snapshot:
            assert (await snapshot.json())["services"][0]["revisions"][0]["name"] == "hello-00001"
        async with client.get(f"{url}/charts/hello-00001.svg") as chart:
            assert chart.content_type == "image/svg+xml"
        async with client.post(f"{url}/snapshot") as post:
            assert post.status == 405

    asyncio.run(with_server(scenario))


def test_a_chart_of_an_unknown_revision_is_404_saying_so():
    async def scenario(client, url):
        async with client.get(f"{url}/charts/nope-00001.svg") as chart:
            body = await chart.json()
        assert chart.status == 404
        assert body["error"] == {
            "code": "unknown_revision",
            "message": "no Revision 'nope-00001' is running; the dashboard lists those that are",
        }

    asyncio.run(with_server(scenario))


def test_live_streams_are_bounded_and_a_failing_reader_keeps_the_last_reading(monkeypatch):
    monkeypatch.setattr(server, "MAX_STREAMS", 2)
    readings = iter([reading(revision(0))])

    def reader():
        return next(readings)  # the first read works; every later one raises StopIteration

    async def scenario(client, url):
        streams = [await client.get(f"{url}/events") for _ in range(2)]
        for stream in streams:
            line = await stream.content.readline()
            assert line.startswith(b"data: {") and b"hello-00001" in line
        async with client.get(f"{url}/events") as third:
            body = await third.json()
        assert third.status == 503
        assert body["error"]["code"] == "too_many_streams"
        for stream in streams:
            stream.close()
        await asyncio.sleep(server.SAMPLE_SECONDS * 1.5)  # a failed read meanwhile
        async with client.get(f"{url}/events") as again:  # the closed ones were let go
            assert again.status == 200
            assert b"hello-00001" in await again.content.readline()

    asyncio.run(with_server(scenario, reader))
