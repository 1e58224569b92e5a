"""The gateway's HTTP side against a real upstream: headers, streamed bodies, WebSockets, errors."""

import asyncio

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from knit.gateway.activator import REFUSED_BACKOFF, Endpoint, RevisionBackend
from knit.gateway.proxy import CONNECT_ATTEMPTS, Gateway
from knit.gateway.routing import RouteTable
from knit.observability import Metrics

pytestmark = pytest.mark.integration
HOST = "hello.default.localhost"
HANG = 30.0  # only catches a hang: every wait ends on a condition


async def upstream_app() -> web.Application:
    async def headers(request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    async def echo(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        async for chunk in request.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(f"echo: {message.data}")
        return socket

    async def frames(request: web.Request) -> web.WebSocketResponse:
        """Control frames by hand (autoping off): answers a ping with a pong of the same payload,
        pings on request, echoes binary messages, and lists what it got in `seen`."""
        socket = web.WebSocketResponse(autoping=False)
        await socket.prepare(request)
        async for message in socket:
            SEEN.append((message.type.name, message.data))
            if message.type == WSMsgType.PING:
                await socket.pong(message.data)
            elif message.type == WSMsgType.BINARY:
                await socket.send_bytes(message.data[::-1])
            elif message.type == WSMsgType.TEXT and message.data == "ping me":
                await socket.ping(b"are you there?")
        return socket

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "sign in first"}, status=403)

    app = web.Application()
    app.add_routes([web.get("/headers", headers), web.post("/echo", echo), web.get("/ws", websocket),
                    web.get("/frames", frames), web.get("/refuse", refuse)])  # fmt: skip
    return app


SEEN: list[tuple[str, object]] = []  # what the /frames upstream got, in order


async def with_gateway(scenario, activation_timeout=1.0):
    runner = web.AppRunner(await upstream_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream_port = site._server.sockets[0].getsockname()[1]
    routes = RouteTable()
    routes.set_route("hello", "default", {"hello-00001": 100}, {}, cluster_local=False)
    routes.set_route("idle", "default", {}, {}, cluster_local=False, not_ready="Revision 'idle-00001' is not ready yet")
    backend = RevisionBackend("hello-00001", 0)
    backend.add(Endpoint("hello-00001/1", "127.0.0.1", upstream_port))
    gateway = Gateway(routes, {"hello-00001": backend}, Metrics().gateway, lambda _: activation_timeout, lambda _: 30.0)
    await gateway.start_session()
    port = await gateway.listen("127.0.0.1", 0, gateway.by_host)
    try:
        async with aiohttp.ClientSession() as client:
            await scenario(client, f"http://127.0.0.1:{port}", backend)
    finally:
        await gateway.close()
        await runner.cleanup()


def test_a_request_is_forwarded_with_forwarding_headers_and_without_hop_by_hop_ones():
    async def scenario(client, gateway, backend):
        headers = {"Host": HOST, "Connection": "keep-alive, X-Private", "X-Private": "secret", "X-App": "1"}
        async with client.get(f"{gateway}/headers", headers=headers) as response:
            seen = await response.json()
        assert response.status == 200
        assert seen["Host"] == HOST
        assert seen["X-Forwarded-For"] == "127.0.0.1"
        assert seen["X-Forwarded-Proto"] == "http"
        assert seen["X-Forwarded-Host"] == HOST
        assert seen["X-App"] == "1"
        assert "X-Private" not in seen
        assert backend.in_flight == 0

    asyncio.run(with_gateway(scenario))


def test_a_large_body_streams_through_both_ways():
    async def scenario(client, gateway, _):
        payload = bytes(range(256)) * 8192  # 2 MiB

        async def chunks():
            for start in range(0, len(payload), 65536):
                yield payload[start : start + 65536]

        async with client.post(f"{gateway}/echo", data=chunks(), headers={"Host": HOST}) as response:
            assert response.status == 200
            assert await response.read() == payload

    asyncio.run(with_gateway(scenario))


def test_a_websocket_session_is_relayed():
    async def scenario(client, gateway, backend):
        async with client.ws_connect(f"{gateway}/ws", headers={"Host": HOST}) as socket:
            for text in ("one", "two"):
                await socket.send_str(text)
                assert (await socket.receive()).data == f"echo: {text}"
            assert backend.in_flight == 1  # a WebSocket session is one request for its whole life
        # The gateway releases the slot when it sees the close: wait for that (only a hang takes 30 s).
        deadline = asyncio.get_running_loop().time() + 30
        while backend.in_flight:
            assert asyncio.get_running_loop().time() < deadline, f"still {backend.in_flight} in flight"
            await asyncio.sleep(0.01)

    asyncio.run(with_gateway(scenario))


def test_binary_messages_and_pings_and_pongs_are_relayed_both_ways_with_their_payloads():
    SEEN.clear()

    async def scenario(client, gateway, _):
        async with client.ws_connect(f"{gateway}/frames", headers={"Host": HOST}, autoping=False) as socket:
            # a binary message (not valid UTF-8) goes up and comes back as binary, byte for byte
            await socket.send_bytes(b"\x00\xff\x10danmaku")
            echoed = await socket.receive(HANG)
            assert (echoed.type, echoed.data) == (WSMsgType.BINARY, b"ukamnad\x10\xff\x00")

            # the client's ping reaches the instance, whose pong comes back with the same payload
            await socket.ping(b"still there?")
            pong = await socket.receive(HANG)
            assert (pong.type, pong.data) == (WSMsgType.PONG, b"still there?")

            # the instance's ping reaches the client, whose pong reaches the instance
            await socket.send_str("ping me")
            ping = await socket.receive(HANG)
            assert (ping.type, ping.data) == (WSMsgType.PING, b"are you there?")
            await socket.pong(ping.data)
            await socket.send_str("done")  # arrives after the pong: the relay keeps frames in order
            while not SEEN or SEEN[-1] != ("TEXT", "done"):
                await asyncio.sleep(0.01)

        assert SEEN == [
            ("BINARY", b"\x00\xff\x10danmaku"),
            ("PING", b"still there?"),
            ("TEXT", "ping me"),
            ("PONG", b"are you there?"),
            ("TEXT", "done"),
        ]

    asyncio.run(with_gateway(scenario))


def test_an_upgrade_the_instance_refuses_is_answered_with_its_status_and_an_error_body():
    async def scenario(client, gateway, backend):
        headers = {"Host": HOST, "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        async with client.get(f"{gateway}/refuse", headers=headers) as response:
            body = await response.json()
        assert response.status == 403
        assert body["error"] == {"code": "upgrade_refused", "message": "hello-00001/1 refused the upgrade"}
        assert backend.in_flight == 0  # the instance's slot was given back

        # and an aiohttp client sees the refusal as a failed handshake with that status
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"{gateway}/refuse", headers={"Host": HOST})
        assert refused.value.status == 403

    asyncio.run(with_gateway(scenario))


def test_an_unknown_host_is_404_listing_the_known_routes():
    async def scenario(client, gateway, _):
        async with client.get(f"{gateway}/", headers={"Host": "nobody.default.localhost"}) as response:
            body = await response.json()
        assert response.status == 404
        assert body["error"]["code"] == "no_route"
        assert "'nobody.default.localhost'" in body["error"]["message"]
        assert "http://hello.default.localhost" in body["error"]["message"]

    asyncio.run(with_gateway(scenario))


def test_a_route_with_no_ready_revision_is_503_with_the_reason():
    async def scenario(client, gateway, _):
        async with client.get(f"{gateway}/", headers={"Host": "idle.default.localhost"}) as response:
            body = await response.json()
        assert response.status == 503
        assert body["error"] == {
            "code": "no_ready_revision",
            "message": "Service default/idle has no ready revision yet: Revision 'idle-00001' is not ready yet",
        }

    asyncio.run(with_gateway(scenario))


def test_an_instance_that_keeps_refusing_connections_is_a_502_naming_it_after_the_last_try():
    async def scenario(client, gateway, backend):
        backend.endpoints[0].port = 1  # nothing listens there
        async with client.post(f"{gateway}/echo", data=b"x", headers={"Host": HOST}) as response:
            body = await response.json()
        assert response.status == 502
        assert body["error"]["code"] == "upstream_failed"
        assert body["error"]["message"].count("hello-00001/1 failed") == CONNECT_ATTEMPTS
        assert backend.in_flight == 0 and backend.endpoints[0].in_flight == 0

    asyncio.run(with_gateway(scenario, activation_timeout=CONNECT_ATTEMPTS * REFUSED_BACKOFF + 10))


def test_requests_go_around_an_instance_that_refuses_connections():
    """An instance that stopped before the runtime said so: requests of any method, and
    WebSockets, go to the live one, and the stopped one is passed over for a moment."""

    async def scenario(client, gateway, backend):
        gone = Endpoint("hello-00001/2", "127.0.0.1", 1)
        backend.add(gone)
        for _ in range(4):
            async with client.post(f"{gateway}/echo", data=b"kept", headers={"Host": HOST}) as response:
                assert (response.status, await response.read()) == (200, b"kept")
        assert gone.refused_until > 0  # it was tried, and refused
        gone.refused_until = 0  # as when its moment has passed
        async with client.ws_connect(f"{gateway}/ws", headers={"Host": HOST}) as socket:
            await socket.send_str("one")
            assert (await socket.receive()).data == "echo: one"
        assert gone.refused_until > 0 and gone.in_flight == 0

    asyncio.run(with_gateway(scenario))


def test_a_request_whose_only_instance_went_away_waits_for_the_next_one():
    """A pod stopping while its Revision scales to zero: the request asks for an instance
    and is answered by the next one, not failed."""

    async def scenario(client, gateway, backend):
        pokes = []
        backend.on_demand = lambda: pokes.append(1)
        gone, live = backend.endpoints[0], Endpoint("hello-00001/2", "127.0.0.1", backend.endpoints[0].port)
        gone.port = 1
        request = asyncio.create_task(client.get(f"{gateway}/headers", headers={"Host": HOST}))
        async with asyncio.timeout(HANG):
            while not gone.refused_until:
                await asyncio.sleep(0.005)
        assert pokes  # nothing usable is left: the autoscaler heard of the request at once
        backend.remove(gone)  # the runtime catches up
        backend.add(live)
        response = await request
        assert response.status == 200
        response.release()
        assert backend.in_flight == 0

    asyncio.run(with_gateway(scenario, activation_timeout=HANG))
