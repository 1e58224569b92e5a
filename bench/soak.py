"""Soak under faults: a comment storm from many client addresses while processes are killed.

`knit dev` runs the danmaku app (manifests/app). Simulated users post comments over the
HTTP API, each from its own loopback source address (127.0.0.2, 127.0.0.3, …), so the
per-address rate limit applies to each of them as it would to real people; listeners
(Socket.IO clients that reconnect and rejoin on their own) sit in every room. Meanwhile a
killer SIGKILLs, at random, a danmaku-processor instance, the danmaku-web instance or the
KafkaSource dispatcher, and the platform has to bring each back.

At the end it waits for the pipeline to drain and prints one line:

    sent N, accepted A, delivered M, lost L, duplicated D, refused R (kills: …)

accepted = answered 202 (the comment is in Kafka: from here on the platform owes it to the
room); delivered = accepted comments that reached at least one listener of their room, live or
in the history a (re)joining listener is given;
lost = accepted − delivered (goal 0); duplicated = comments a listener saw more than once;
refused = posts answered 429/503 or not answered while something was down (the client was
told, nothing was promised). Bounded: --seconds of storm, then at most --drain seconds.

    python bench/soak.py [--seconds 180] [--users 40] [--rooms 4] [--kill-every 12]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import socketio
from _common import ROOT, machine, save

from knit.testing.harness import KnitDev

WEB_HOST = "danmaku-web.default.localhost"


class Ledger:
    """What the posters were told and what the listeners saw, shared by their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.accepted: dict[str, str] = {}  # comment id -> room
        self.refused: collections.Counter[str] = collections.Counter()
        self.seen: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    def delivered(self) -> set[str]:
        with self.lock:
            return {cid for cid in self.accepted if cid in self.seen}


def post_forever(ledger: Ledger, gateway: tuple[str, int], source: str, rooms: list[str], rate: float,
                 stop: threading.Event) -> None:  # fmt: skip
    """One simulated user: posts at `rate` per second from its own source address."""
    rng = random.Random(source)
    connection: http.client.HTTPConnection | None = None
    next_at = time.monotonic() + rng.random() / rate
    n = 0
    while not stop.is_set():
        stop.wait(max(0.0, next_at - time.monotonic()))
        next_at += 1 / rate
        if stop.is_set():
            break
        room = rng.choice(rooms)
        body = json.dumps({"text": f"soak {source} #{n}", "nick": source[-7:]})
        n += 1
        with ledger.lock:
            ledger.sent += 1
        try:
            if connection is None:
                connection = http.client.HTTPConnection(*gateway, timeout=30, source_address=(source, 0))
            connection.request("POST", f"/api/rooms/{room}/danmaku", body=body,
                               headers={"Host": WEB_HOST, "Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            answer = response.read()
            if response.status == 202:
                with ledger.lock:
                    ledger.accepted[json.loads(answer)["id"]] = room
            else:
                with ledger.lock:
                    ledger.refused[str(response.status)] += 1
        except (OSError, http.client.HTTPException) as error:
            with ledger.lock:
                ledger.refused[type(error).__name__] += 1
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


def listener(ledger: Ledger, url: str, room: str) -> socketio.Client:
    """A viewer of `room` that rejoins after every reconnect."""
    client = socketio.Client(reconnection_delay=0.1, reconnection_delay_max=0.5)

    def on_joined(ack: dict[str, Any]) -> None:
        # As the page does: what the room published while this viewer was away (its web
        # instance restarted, say) comes in the join's history. Not counted as a second
        # delivery of what the viewer already had.
        with ledger.lock:
            for comment in ack.get("history", []) if ack.get("ok") else []:
                ledger.seen[comment["id"]].setdefault(id(client), 1)

    @client.on("connect")
    def on_connect() -> None:
        client.emit("join", {"room": room}, callback=on_joined)

    @client.on("danmaku")
    def on_danmaku(comment: dict[str, Any]) -> None:
        with ledger.lock:
            ledger.seen[comment["id"]][id(client)] += 1

    client.connect(url, transports=["websocket"], wait_timeout=30)
    return client


def victims(dev: KnitDev) -> dict[str, list[int]]:
    """The pids that may be killed, by what they are."""
    found: dict[str, list[int]] = {"danmaku-processor": [], "danmaku-web": [], "dispatcher": []}
    for service in ("danmaku-processor", "danmaku-web"):
        for revision in dev.describe(service)["revisions"]:
            found[service] += [i["pid"] for i in revision["instances"] if i["ready"] and i["pid"]]
    assert dev.process is not None
    for child in psutil.Process(dev.process.pid).children(recursive=True):
        try:
            if "knit.eventing.dispatcher" in " ".join(child.cmdline()):
                found["dispatcher"].append(child.pid)
        except psutil.Error:
            continue
    return found


def kill_forever(dev: KnitDev, every: float, stop: threading.Event, kills: list[tuple[float, str]],
                 started: float) -> None:  # fmt: skip
    rng = random.Random(7)
    while not stop.wait(every * rng.uniform(0.6, 1.4)):
        # A kind first, then one of its processes: each kind is hit as often, however many it has.
        candidates = {what: pids for what, pids in victims(dev).items() if pids}
        if not candidates:
            continue
        what = rng.choice(sorted(candidates))
        pid = rng.choice(candidates[what])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        kills.append((round(time.monotonic() - started, 1), what))
        print(f"  t={kills[-1][0]:6.1f}s  SIGKILL {what} (pid {pid})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the storm (default 180)")
    parser.add_argument("--users", type=int, default=40, help="posting users, one source address each (max 250)")
    parser.add_argument("--rate", type=float, default=0.8, help="comments per second per user (default 0.8)")
    parser.add_argument("--rooms", type=int, default=4, help="rooms (default 4)")
    parser.add_argument("--listeners", type=int, default=2, help="listeners per room (default 2)")
    parser.add_argument("--kill-every", type=float, default=12.0, help="mean seconds between kills (default 12)")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for stragglers (default 120)")
    args = parser.parse_args()
    if not 1 <= args.users <= 250:
        raise SystemExit(f"--users must be 1-250 (one loopback address each); got {args.users}")

    dev = KnitDev(ROOT / "manifests" / "app", cwd=Path(tempfile.mkdtemp(prefix="bench-soak-")))
    ledger, stop, kills = Ledger(), threading.Event(), []
    clients: list[socketio.Client] = []
    try:
        dev.wait_ready(120)
        url = dev.address("danmaku-web") + "/"  # listeners: Python clients cannot resolve *.localhost
        assert dev.gateway is not None
        host, port = dev.gateway.split("//")[1].split(":")
        gateway = (host, int(port))  # posters: the public gateway, with Host: danmaku-web.default.localhost
        print(f"knit dev ready (log: {dev.log_path}); gateway {dev.gateway}, listeners on {url}")
        rooms = [f"soak-{n}" for n in range(args.rooms)]
        clients = [listener(ledger, url, room) for room in rooms for _ in range(args.listeners)]
        started = time.monotonic()
        posters = [
            threading.Thread(
                target=post_forever, args=(ledger, gateway, f"127.0.0.{n + 2}", rooms, args.rate, stop), daemon=True
            )
            for n in range(args.users)
        ]
        killer = threading.Thread(target=kill_forever, args=(dev, args.kill_every, stop, kills, started), daemon=True)
        for thread in [*posters, killer]:
            thread.start()
        while (elapsed := time.monotonic() - started) < args.seconds:
            time.sleep(min(10.0, args.seconds - elapsed))
            elapsed = time.monotonic() - started
            with ledger.lock:
                sent, accepted = ledger.sent, len(ledger.accepted)
            print(f"t={elapsed:6.1f}s  sent {sent}  accepted {accepted}  delivered {len(ledger.delivered())}")
        stop.set()
        for thread in [*posters, killer]:
            thread.join(60)
        drain_until = time.monotonic() + args.drain
        while len(ledger.delivered()) < len(ledger.accepted) and time.monotonic() < drain_until:
            time.sleep(1.0)
        drained_in = args.drain - max(0.0, drain_until - time.monotonic())
    finally:
        stop.set()
        for client in clients:
            client.disconnect()
        code = dev.stop()

    delivered = ledger.delivered()
    lost = sorted(set(ledger.accepted) - delivered)
    duplicated = sum(1 for counts in ledger.seen.values() if any(n > 1 for n in counts.values()))
    refused = sum(ledger.refused.values())
    kill_counts = collections.Counter(what for _, what in kills)
    line = (
        f"sent {ledger.sent}, accepted {len(ledger.accepted)}, delivered {len(delivered)}, lost {len(lost)}, "
        f"duplicated {duplicated}, refused {refused} "
        f"(kills: {', '.join(f'{n} {what}' for what, n in sorted(kill_counts.items())) or 'none'})"
    )
    print("\n" + line)
    if lost:
        print(f"lost ids (first 10): {lost[:10]}")
    save(
        "soak",
        {
            "args": vars(args),
            "summary": line,
            "sent": ledger.sent,
            "accepted": len(ledger.accepted),
            "delivered": len(delivered),
            "lost": lost,
            "duplicated": duplicated,
            "refused": dict(ledger.refused),
            "kills": kills,
            "drain_seconds": round(drained_in, 1),
            "knit_exit_code": code,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
