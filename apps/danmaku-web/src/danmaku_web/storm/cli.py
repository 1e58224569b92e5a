"""`danmaku-storm`: the run. Connect the viewers and posters, send on schedule, print a line a
second, drain, print the summary. What the numbers mean is in the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import secrets
import sys
from collections.abc import Sequence
from typing import Any

import socketio

from danmaku_web.storm import options as storm_options
from danmaku_web.storm.clients import Person, connect_all
from danmaku_web.storm.ledger import Ledger, Window, comment_number, comment_text, source_address
from danmaku_web.storm.options import OptionError, StormOptions
from danmaku_web.storm.status import InstancesPoller, StatusError, default_source, reader

CONNECT_SECONDS = 60.0  # for every viewer and poster to connect (and viewers to join)
CLOSE_SECONDS = 10.0  # for every connection to close at the end
DRAIN_POLL_SECONDS = 0.1


def main(argv: Sequence[str] | None = None) -> int:
    parser = storm_options.parser()
    try:
        options = storm_options.parse(argv)
    except OptionError as error:
        parser.error(str(error))
    source = options.status or default_source(options.control)
    try:
        read, where = reader(source, options.control)
        if read is not None:
            read()  # once up front: a status source asked for and not answering is said now, not every second
    except StatusError as error:
        print(f"danmaku-storm: --status {source}: {error}", file=sys.stderr)
        return 1
    # Connection failures are counted and reported by the storm; the clients' own log lines would repeat them.
    for name in ("socketio.client", "engineio.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _raise_open_files_limit(2 * (options.viewers + options.poster_count) + 64)
    poller = InstancesPoller(read) if read is not None else None
    try:
        return asyncio.run(_storm(options, poller, where))
    except ConnectionError as error:
        print(f"danmaku-storm: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("danmaku-storm: interrupted; no summary", file=sys.stderr)
        return 130


def _raise_open_files_limit(needed: int) -> None:
    """A socket per connection, and as many again for those still closing while others open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _span(rooms: list[str]) -> str:
    return f"room {rooms[0]}" if len(rooms) == 1 else f"rooms {rooms[0]} to {rooms[-1]}"


class _Viewer:
    """Where a viewer counts in the ledger: its room's index and its slot in that room."""

    def __init__(self, person: Person, room: int) -> None:
        self.person = person
        self.room = room
        self.slot: int | None = None  # given once joined


async def _storm(options: StormOptions, poller: InstancesPoller | None, where: str) -> int:
    loop = asyncio.get_running_loop()
    run = secrets.token_hex(3)
    rooms = options.room_names()
    posters = [Person(options.url, source_address(index)) for index in range(options.poster_count)]
    viewers = [
        _Viewer(Person(options.url, source_address(options.poster_count + index)), index % options.rooms)
        for index in range(options.viewers)
    ]
    print(
        f"danmaku-storm {run}: {options.viewers} viewers in {_span(rooms)}, {len(posters)} posters "
        f"(from {posters[0].address} to {viewers[-1].person.address}), {options.rate:g} comments/s for "
        f"{options.seconds:g} s ({options.comments} comments) to {options.url}; processor instances from {where}",
        flush=True,
    )
    ledger: Ledger | None = None  # made once the viewers have joined: it counts them per room

    def on_danmaku(viewer: _Viewer, data: Any) -> None:
        at = loop.time()
        number = comment_number(run, data.get("text") if isinstance(data, dict) else None)
        if ledger is not None and viewer.slot is not None and number is not None:
            ledger.delivered(number, viewer.room, viewer.slot, at)

    def on_rejected(data: Any) -> None:
        if ledger is not None and isinstance(data, dict):
            ledger.rejected(str(data.get("id")))

    def on_gone(viewer: _Viewer) -> None:
        if ledger is not None and viewer.slot is not None:
            ledger.left(viewer.room, viewer.slot)

    for viewer in viewers:
        viewer.person.on("danmaku", lambda data, viewer=viewer: on_danmaku(viewer, data))
        viewer.person.gone = lambda viewer=viewer: on_gone(viewer)
    for poster in posters:
        poster.on("rejected", on_rejected)
    everyone = [viewer.person for viewer in viewers] + posters
    try:
        joined = await _connect(viewers, posters, rooms)
        ledger = Ledger(joined)
        interrupted = await _send_and_drain(options, run, ledger, [p for p in posters if p.connected], poller)
    finally:
        if poller is not None:
            poller.stop()
        await _close(everyone)
    assert ledger is not None
    summary = ledger.summary(poller.sample()[1] if poller is not None else None)
    print(summary.not_counted())
    print(summary.line(), flush=True)
    return 130 if interrupted else 0


async def _connect(viewers: list[_Viewer], posters: list[Person], rooms: list[str]) -> list[int]:
    """Every viewer connected and joined, every poster connected, or ConnectionError; viewers per room."""
    people = [viewer.person for viewer in viewers] + posters
    wanted: list[str | None] = [rooms[viewer.room] for viewer in viewers] + [None] * len(posters)
    try:
        failures = await asyncio.wait_for(connect_all(people, wanted), CONNECT_SECONDS)
    except TimeoutError:
        raise ConnectionError(
            f"{len(people)} connections were not all made within {CONNECT_SECONDS:g} s; "
            "is the app up (make dev)? fewer --viewers or --posters connect sooner"
        ) from None
    failed = [(person, failure) for person, failure in zip(people, failures, strict=True) if failure is not None]
    if failed:
        person, failure = failed[0]
        raise ConnectionError(
            f"{len(failed)} of {len(people)} connections failed, the first from {person.address} to {person.url}: "
            f"{type(failure).__name__}: {failure}; is the app up (make dev), and is --url what it printed?"
        )
    per_room = [0] * len(rooms)
    for viewer in viewers:
        viewer.slot = per_room[viewer.room]
        per_room[viewer.room] += 1
    return per_room


async def _send_and_drain(
    options: StormOptions, run: str, ledger: Ledger, posters: list[Person], poller: InstancesPoller | None
) -> bool:
    """Send on schedule, then drain; True when interrupted (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    rooms = options.room_names()
    started = loop.time()
    if poller is not None:
        poller.start()
    ticker = asyncio.create_task(_tick(ledger, poller, started))
    try:
        for number in range(options.comments):
            due = started + number / options.rate
            if (delay := due - loop.time()) > 0:
                await asyncio.sleep(delay)
            room = number % options.rooms
            poster = posters[number % len(posters)]
            sent = ledger.sent(room, loop.time())
            comment = {"room": rooms[room], "text": comment_text(run, sent), "nick": "storm"}
            try:
                await poster.send(comment, lambda ack, sent=sent: ledger.answered(sent, ack))
            except socketio.exceptions.SocketIOError:  # the poster's connection is gone
                ledger.unsent(sent)
        deadline = loop.time() + options.drain
        while not ledger.settled():
            if loop.time() >= deadline:
                print(
                    f"the drain ended after {options.drain:g} s with comments still on their way: what has not "
                    "arrived counts as lost; a longer --drain tells late from lost",
                    flush=True,
                )
                break
            await asyncio.sleep(DRAIN_POLL_SECONDS)
    except asyncio.CancelledError:  # Ctrl-C: stop sending, no drain, and sum up what happened so far
        print("interrupted: what was on its way counts as lost or unanswered", flush=True)
        return True
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if (last := ledger.tick()).sent or last.delivered:  # the part of a second since the last line
            _print_line(loop.time() - started, last, poller)
    return False


async def _tick(ledger: Ledger, poller: InstancesPoller | None, started: float) -> None:
    loop = asyncio.get_running_loop()
    second = 1
    while True:
        await asyncio.sleep(max(0.0, started + second - loop.time()))
        _print_line(loop.time() - started, ledger.tick(), poller)
        second += 1


def _print_line(elapsed: float, window: Window, poller: InstancesPoller | None) -> None:
    latest, _, error = poller.sample() if poller is not None else (None, None, None)
    instances = "-" if latest is None else str(latest)
    p50 = "-" if window.p50 is None else str(window.p50)
    p99 = "-" if window.p99 is None else str(window.p99)
    print(
        f"{elapsed:6.1f}s  sent/s {window.sent:5}  delivered/s {window.delivered:6}  "
        f"send→display p50 {p50:>5} ms  p99 {p99:>5} ms  processor instances {instances}"
        + (f"  (status: {error})" if error else ""),
        flush=True,
    )


async def _close(people: list[Person]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(person.close() for person in people), return_exceptions=True), CLOSE_SECONDS
        )


if __name__ == "__main__":
    sys.exit(main())
