"""The storm's simulated people: Socket.IO clients, each from its own loopback source address.

Each person has an aiohttp session whose connector binds the source address
(`local_addr`), and python-socketio's asyncio client uses that session for its WebSocket,
so the gateway sees one TCP peer per person and appends it to X-Forwarded-For, where
danmaku-web (trusting one proxy) reads the address its limits count. Names under
`.localhost` are the loopback (RFC 6761), as browsers resolve them, whatever the system
resolver says: `knit dev` serves on 127.0.0.1 and routes by the Host header, which keeps
the name of the URL.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio
from aiohttp.abc import AbstractResolver, ResolveResult

WAIT_SECONDS = 10.0  # for one connection, or one join, to be answered
LOOPBACK = "127.0.0.1"


class LoopbackResolver(AbstractResolver):
    """localhost and *.localhost are 127.0.0.1; the storm connects nowhere else (options checks
    --url, and IP addresses are not resolved at all)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        if name != "localhost" and not name.endswith(".localhost"):
            raise OSError(f"danmaku-storm connects to this machine only; {host!r} is not a *.localhost name")
        return [{"hostname": host, "host": LOOPBACK, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


class Person:
    """One Socket.IO connection to the app from `address`, as a browser tab makes it.

    `on` registers event handlers before `connect`; `gone` is called when the connection
    drops without `close` having been called.
    """

    def __init__(self, url: str, address: str) -> None:
        self.url = url
        self.address = address
        self.gone: Callable[[], None] = lambda: None
        self._closing = False
        self._session: aiohttp.ClientSession | None = None
        self.client: socketio.AsyncClient | None = None
        self._handlers: list[tuple[str, Callable[..., Any]]] = []

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self._handlers.append((event, handler))

    async def connect(self) -> None:
        """Connected over a WebSocket, or an exception that says why not."""
        connector = aiohttp.TCPConnector(local_addr=(self.address, 0), resolver=LoopbackResolver(), limit=4)
        self._session = aiohttp.ClientSession(connector=connector)
        # No reconnection: a person who drops is reported, not brought back behind the count's back.
        self.client = socketio.AsyncClient(
            reconnection=False, handle_sigint=False, http_session=self._session, request_timeout=WAIT_SECONDS
        )
        for event, handler in self._handlers:
            self.client.on(event, handler)
        self.client.on("disconnect", self._disconnected)
        await self.client.connect(self.url, transports=["websocket"], wait_timeout=WAIT_SECONDS)

    def _disconnected(self, reason: Any = None) -> None:
        if not self._closing:
            self.gone()

    async def join(self, room: str) -> None:
        assert self.client is not None
        ack = await self.client.call("join", {"room": room}, timeout=WAIT_SECONDS)
        if not (isinstance(ack, dict) and ack.get("ok")):
            raise ConnectionError(f"joining room {room!r} was refused: {ack}")

    async def send(self, comment: dict[str, Any], answered: Callable[[Any], None]) -> None:
        """Emit `send`; `answered(ack)` is called with the app's ack when it comes."""
        assert self.client is not None
        await self.client.emit("send", comment, callback=lambda *args: answered(args[0] if len(args) == 1 else None))

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected and not self._closing

    async def close(self) -> None:
        self._closing = True
        try:
            if self.client is not None and self.client.connected:
                await self.client.disconnect()
        finally:
            if self._session is not None:
                await self._session.close()


async def connect_all(people: list[Person], rooms: list[str | None], at_once: int = 50) -> list[BaseException | None]:
    """Connect each person (and join rooms[i] unless None), `at_once` at a time, as a crowd arrives
    rather than all in one instant; per person None or what went wrong."""
    gate = asyncio.Semaphore(at_once)

    async def one(person: Person, room: str | None) -> None:
        async with gate:
            await person.connect()
            if room is not None:
                await person.join(room)

    return await asyncio.gather(*(one(p, r) for p, r in zip(people, rooms, strict=True)), return_exceptions=True)
