"""The gateway's HTTP side: an aiohttp server in front, an aiohttp client pool behind.

HTTP/1.1 with keep-alive both ways, WebSockets relayed message by message, hop-by-hop
headers dropped, `X-Forwarded-For` appended to and `X-Forwarded-Proto/-Host` set (never
taken from the client). The public listener routes by Host; each Service's cluster-local
listener goes to that Service's route whatever the Host (the local stand-in for
`<svc>.<ns>.svc.cluster.local`).

Request bodies are read whole, within `GatewayLimits` (size and time), before the request
takes an instance's slot, as nginx's `proxy_request_buffering` does: an instance (a few
gunicorn threads) never waits on a slow client. Responses stream as they come.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
from aiohttp import WSMsgType, hdrs, web
from multidict import CIMultiDict
from yarl import URL

from knit.gateway.activator import Endpoint, RevisionBackend, Unavailable
from knit.gateway.limits import GatewayLimits
from knit.gateway.listener import GuardedServer, error_response
from knit.gateway.routing import RouteEntry, RouteTable
from knit.observability import GatewayMetrics

HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade")
)  # fmt: skip
# aiohttp's client adds these unless told not to; a proxy must send only what it was sent.
_NO_AUTOMATIC_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_WEBSOCKET_HANDSHAKE = frozenset(
    ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept",
     "sec-websocket-protocol")
)  # fmt: skip
# What only the gateway may say about a request: a client's own values are dropped, so an app
# that trusts one proxy hop (werkzeug's ProxyFix) cannot be told another scheme or host.
_SET_BY_GATEWAY = frozenset(("x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
                             "forwarded"))  # fmt: skip


# Tries of one request on instances that refuse the connection, each then passed over for a
# moment (activator.REFUSED_BACKOFF): nothing was sent, so any method may go again.
CONNECT_ATTEMPTS = 3


class _Refused(Exception):
    """The instance refused the connection: nothing was sent to it, nor to the client."""


def _dropped(headers: CIMultiDict[str] | aiohttp.typedefs.LooseHeaders) -> set[str]:
    drop = set(HOP_BY_HOP)
    for value in headers.getall(hdrs.CONNECTION, ()):  # type: ignore[union-attr]
        drop.update(token.strip().lower() for token in value.split(","))
    return drop


class Gateway:
    def __init__(
        self,
        routes: RouteTable,
        backends: dict[str, RevisionBackend],
        metrics: GatewayMetrics,
        activation_timeout: Callable[[str], float],
        request_timeout: Callable[[str], float],
        limits: GatewayLimits | None = None,
        behind_proxy: bool = False,
    ) -> None:
        self.routes = routes
        self.backends = backends
        self.metrics = metrics
        self.activation_timeout = activation_timeout  # per revision, seconds to wait for an instance
        self.request_timeout = request_timeout  # per revision: its timeoutSeconds
        self.limits = limits or GatewayLimits()  # what one client can make the gateway hold
        # As the activator behind HAProxy: the X-Forwarded-* headers HAProxy set are kept as they are.
        self.behind_proxy = behind_proxy
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.ServerRunner] = []

    async def start_session(self) -> None:
        # Idle connections are dropped before gunicorn's own 2 s keep-alive closes them: a POST
        # on a connection the instance just closed would fail, and aiohttp retries only GETs.
        connector = aiohttp.TCPConnector(limit=0, use_dns_cache=False, keepalive_timeout=1.5)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # pass bodies through as they are
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTOMATIC_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )

    async def listen(
        self,
        host: str,
        port: int,
        route: Callable[[web.BaseRequest], RouteEntry | None],
        limits: GatewayLimits | None = None,
    ) -> int:
        """Serve on host:port (0 = a free port), routing each request with `route`; the port."""

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return await self.handle(request, route(request))

        runner = web.ServerRunner(GuardedServer(handler, limits or self.limits), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        self._runners.append(runner)
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session:
            await self._session.close()

    def by_host(self, request: web.BaseRequest) -> RouteEntry | None:
        return self.routes.match(request.host or "")

    async def handle(self, request: web.BaseRequest, route: RouteEntry | None) -> web.StreamResponse:
        if route is None:
            known = self.routes.known_hosts()
            listing = ", ".join(f"http://{host}" for host in known) or "none"
            return error_response(
                404, "no_route", f"no Service answers to host {request.host!r}; known routes: {listing}"
            )
        revision = route.split.pick()
        backend = self.backends.get(revision) if revision else None
        if backend is None:
            why = f": {route.not_ready}" if route.not_ready else ""
            return error_response(
                503, "no_ready_revision", f"Service {route.namespace}/{route.service} has no ready revision yet{why}"
            )
        started = time.perf_counter()
        websocket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        body = b"" if websocket else await self._read_body(request)
        if isinstance(body, web.Response):  # too large, too slow, or the client left
            self.metrics.observe(route.service, backend.revision, body.status, time.perf_counter() - started)
            return body
        timeout = self.activation_timeout(backend.revision)
        deadline = time.monotonic() + timeout
        refused: list[str] = []
        while len(refused) < CONNECT_ATTEMPTS:
            try:
                endpoint = await backend.acquire(max(deadline - time.monotonic(), 0.0) if refused else timeout)
            except Unavailable as error:
                self.metrics.observe(route.service, backend.revision, 503, time.perf_counter() - started)
                after = f" (before that, {'; '.join(refused)})" if refused else ""
                return error_response(503, "revision_unavailable", f"{error}{after}")
            try:
                return await self._send(request, route, backend, endpoint, body, websocket, started)
            except _Refused as error:
                refused.append(f"{endpoint.name} failed: {error}")
        self.metrics.observe(route.service, backend.revision, 502, time.perf_counter() - started)
        return error_response(502, "upstream_failed", "; ".join(refused))

    async def _send(
        self,
        request: web.BaseRequest,
        route: RouteEntry,
        backend: RevisionBackend,
        endpoint: Endpoint,
        body: bytes,
        websocket: bool,
        started: float,
    ) -> web.StreamResponse:
        """The request to one reserved instance; `_Refused` if it refused the connection, with
        the slot handed back and nothing sent to the client."""
        status = 503
        done = False

        def finish(answered: int) -> None:
            """The instance is done with the request: free its slot and count it, once. Called
            before the response's last byte, so whoever reads the answer also sees the count."""
            nonlocal done
            if not done:
                done = True
                backend.release(endpoint)
                self.metrics.observe(route.service, backend.revision, answered, time.perf_counter() - started)

        try:
            if websocket:
                response = await self._relay_websocket(request, endpoint)
            else:
                timeout = self.request_timeout(backend.revision)
                response = await self._forward(request, endpoint, body, timeout, finish)
            status = response.status
            return response
        except _Refused:
            done = True  # neither counted nor released as an answer: the caller tries again
            backend.refuse(endpoint)
            raise
        finally:
            finish(status)

    async def _read_body(self, request: web.BaseRequest) -> bytes | web.Response:
        """The whole request body, or the error to answer when it is too large or too slow.
        Nothing has been sent upstream yet, so a refusal forwards nothing."""
        if not request.body_exists:
            return b""
        limit = self.limits.max_request_body
        too_large = error_response(
            413, "request_body_too_large",
            f"the request body is larger than the gateway's limit of {limit} bytes (knit dev --max-request-body)",
        )  # fmt: skip
        too_large.force_close()  # the rest of the body is not read
        if request.content_length is not None and request.content_length > limit:
            return too_large
        if request.version >= (1, 1) and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the low-level server leaves it to us
        chunks, size = [], 0
        timeout = self.limits.request_body_timeout
        try:
            async with asyncio.timeout(timeout):
                while chunk := await request.content.readany():
                    size += len(chunk)
                    if size > limit:
                        return too_large
                    chunks.append(chunk)
        except TimeoutError:
            slow = error_response(
                408, "request_body_timeout",
                f"the request body did not arrive within {timeout:g}s (knit dev --request-body-timeout); "
                f"{size} bytes came",
            )  # fmt: skip
            slow.force_close()
            return slow
        except (ConnectionError, aiohttp.ClientPayloadError, web.RequestPayloadError):
            return web.Response(status=499)  # the client went away or sent a broken body: nobody to answer
        return b"".join(chunks)

    def _upstream_headers(self, request: web.BaseRequest, drop: set[str]) -> CIMultiDict[str]:
        if self.behind_proxy:
            return CIMultiDict((name, value) for name, value in request.headers.items() if name.lower() not in drop)
        drop = drop | _SET_BY_GATEWAY
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in request.headers.items() if name.lower() not in drop
        )
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = peer[0] if peer else ""
        # Appended to, as every proxy does: an app trusting one hop reads the last entry, the real peer.
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.host
        return headers

    async def _forward(
        self, request: web.BaseRequest, endpoint: Endpoint, body: bytes, timeout: float, finish: Callable[[int], None]
    ) -> web.StreamResponse:
        assert self._session is not None
        drop = _dropped(request.headers) | {"expect", "content-length"}  # the body is whole: its length is known
        url = URL(f"http://{endpoint.host}:{endpoint.port}{request.raw_path}", encoded=True)
        try:
            async with self._session.request(
                request.method,
                url,
                headers=self._upstream_headers(request, drop),
                data=body if request.body_exists else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=5),
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                dropped = _dropped(upstream.headers)
                for name, value in upstream.headers.items():
                    if name.lower() not in dropped:
                        response.headers.add(name, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    if upstream.content.at_eof():  # the last chunk: count before the client can have it all
                        finish(upstream.status)
                    await response.write(chunk)
                finish(upstream.status)
                await response.write_eof()
                return response
        except TimeoutError:
            return error_response(504, "upstream_timeout", f"{endpoint.name} did not answer within {timeout:g}s")
        except aiohttp.ClientConnectorError as error:
            raise _Refused(error) from error
        except aiohttp.ClientError as error:
            return error_response(502, "upstream_failed", f"{endpoint.name} failed: {type(error).__name__}: {error}")
        except ConnectionError:  # the client went away mid-request: nobody to answer
            return web.Response(status=499)

    async def _relay_websocket(self, request: web.BaseRequest, endpoint: Endpoint) -> web.StreamResponse:
        assert self._session is not None
        drop = _dropped(request.headers) | _WEBSOCKET_HANDSHAKE | {"host"}
        headers = self._upstream_headers(request, drop)
        headers["Host"] = request.host
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        url = URL(f"http://{endpoint.host}:{endpoint.port}{request.raw_path}", encoded=True)
        try:
            upstream = await self._session.ws_connect(
                url, headers=headers, protocols=protocols, autoping=False, compress=0,
                max_msg_size=self.limits.max_websocket_message,  # a larger one closes the session with 1009
            )  # fmt: skip
        except aiohttp.WSServerHandshakeError as error:
            return error_response(error.status or 502, "upgrade_refused", f"{endpoint.name} refused the upgrade")
        except aiohttp.ClientConnectorError as error:
            raise _Refused(error) from error
        except aiohttp.ClientError as error:
            return error_response(502, "upstream_failed", f"{endpoint.name} failed: {type(error).__name__}: {error}")
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (), autoping=False, compress=False,
            max_msg_size=self.limits.max_websocket_message,
        )  # fmt: skip
        await client.prepare(request)
        pumps = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await upstream.close()
            await client.close()
        return client


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:  # fmt: skip
    async for message in source:
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == WSMsgType.PING:
            await sink.ping(message.data)
        elif message.type == WSMsgType.PONG:
            await sink.pong(message.data)
    await sink.close(code=source.close_code or 1000)
