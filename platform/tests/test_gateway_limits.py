"""What a hostile client can make the gateway hold: a real gateway, a real upstream, raw sockets.

Each limit is set small here so a test reaches it with little traffic; the defaults are
in `GatewayLimits` and docs/serving.md (checked below to agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web

from knit.gateway.activator import Endpoint, RevisionBackend
from knit.gateway.limits import GatewayLimits, KiB, MiB, limits_markdown, parse_size
from knit.gateway.proxy import Gateway
from knit.gateway.routing import RouteTable
from knit.observability import Metrics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOST = "hello.default.localhost"
HANG = 30.0  # only catches a hang: every wait below ends on a condition


@dataclass
class Upstream:
    """The instance behind the gateway; `seen` lists (method, path, body) of every request it got."""

    port: int = 0
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)


async def upstream_app(upstream: Upstream) -> web.Application:
    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        upstream.seen.append((request.method, request.path, body))
        return web.json_response({"headers": dict(request.headers), "length": len(body)})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=0)  # the gateway's limit is under test, not this one
        await socket.prepare(request)
        async for message in socket:
            if message.type == WSMsgType.TEXT and message.data.startswith("send me "):
                await socket.send_bytes(b"x" * int(message.data.removeprefix("send me ")))
            elif message.type == WSMsgType.TEXT:
                upstream.seen.append(("WS", request.path, message.data.encode()))
                await socket.send_str(f"echo: {message.data}")
            elif message.type == WSMsgType.BINARY:
                upstream.seen.append(("WS", request.path, message.data))
        return socket

    app = web.Application(client_max_size=64 * MiB)
    app.add_routes([web.get("/ws", websocket), web.route("*", "/{tail:.*}", record)])
    return app


@dataclass
class Running:
    gateway: Gateway
    port: int
    backend: RevisionBackend
    upstream: Upstream

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@contextlib.asynccontextmanager
async def gateway_with(
    limits: GatewayLimits | None = None, container_concurrency: int = 0, activation_timeout: float = HANG
) -> AsyncIterator[Running]:
    upstream = Upstream()
    runner = web.AppRunner(await upstream_app(upstream))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream.port = site._server.sockets[0].getsockname()[1]
    routes = RouteTable()
    routes.set_route("hello", "default", {"hello-00001": 100}, {}, cluster_local=False)
    backend = RevisionBackend("hello-00001", container_concurrency)
    backend.add(Endpoint("hello-00001/1", "127.0.0.1", upstream.port))
    gateway = Gateway(
        routes, {"hello-00001": backend}, Metrics().gateway, lambda _: activation_timeout, lambda _: HANG, limits
    )
    await gateway.start_session()
    port = await gateway.listen("127.0.0.1", 0, gateway.by_host)
    try:
        yield Running(gateway, port, backend, upstream)
        # Let the gateway see the test's sockets close: at shutdown aiohttp would otherwise wait out
        # its lingering time (10 s) on a connection whose unread body it was discarding.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANG):
                while any(listener.server.open_by_address for listener in gateway._runners):
                    await asyncio.sleep(0.01)
    finally:
        await gateway.close()
        await runner.cleanup()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: status, headers (lower-case), body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), HANG)
    return int(status_line.split()[1]), headers, body


async def closed_by_peer(reader: asyncio.StreamReader) -> bytes:
    """Everything the peer sends until it closes the connection."""
    # A reset ends it too; a write of ours may have met the reset first (EPIPE, stored on the stream).
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        return await asyncio.wait_for(reader.read(), HANG)
    return b""


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


# --- the knobs: one definition, read by the docs ----------------------------------------------------


def test_the_serving_docs_list_every_gateway_limit_as_defined():
    assert limits_markdown().strip() in (ROOT / "docs" / "serving.md").read_text()


def test_sizes_are_written_in_bytes_kib_or_mib_and_never_zero():
    assert [parse_size(text) for text in ("65536", "64KiB", "8MiB")] == [65536, 64 * KiB, 8 * MiB]
    for wrong in ("0", "8MB", "-1", "1.5MiB"):
        with pytest.raises(ValueError, match="number of bytes above 0"):
            parse_size(wrong)
    with pytest.raises(ValueError, match="max_request_body must be above 0"):
        GatewayLimits(max_request_body=0)


# --- request heads: request line, headers, their time ------------------------------------------------


def test_an_absolute_form_request_target_is_a_400_in_the_contract_shape():
    async def scenario():
        async with gateway_with() as running:
            reader, writer = await running.connect()
            writer.write(f"GET http://other.example/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            status, headers, body = await read_response(reader)
            writer.close()
            assert status == 400
            assert headers["content-type"].startswith("application/json")
            assert error_of(body)["code"] == "bad_request_target"
            assert "'http://other.example/'" in error_of(body)["message"]
            assert running.upstream.seen == []

    asyncio.run(scenario())


def test_a_client_cannot_choose_the_forwarded_proto_or_host_but_its_forwarded_for_is_kept_before_the_peer():
    async def scenario():
        async with gateway_with() as running, aiohttp.ClientSession() as client:
            lies = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "bank.example",
                    "X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9;proto=https"}  # fmt: skip
            async with client.get(f"{running.url}/headers", headers=lies) as response:
                seen = (await response.json())["headers"]
        assert seen["X-Forwarded-Proto"] == "http"
        assert seen["X-Forwarded-Host"] == HOST
        assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"  # ProxyFix with one trusted hop reads the last
        assert "Forwarded" not in seen

    asyncio.run(scenario())


def test_a_header_line_over_the_limit_is_a_431():
    async def scenario():
        async with gateway_with(GatewayLimits(max_header_line=1024)) as running:
            reader, writer = await running.connect()
            writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'a' * 2000}\r\n\r\n".encode())
            status, _, body = await read_response(reader)
            writer.close()
        assert status == 431
        assert error_of(body) == {
            "code": "headers_too_large",
            "message": "a request line, header name or header value is longer than 1024 bytes "
            "(knit dev --max-header-line)",
        }
        assert running.upstream.seen == []

    asyncio.run(scenario())


def test_a_head_over_the_total_limit_is_a_431_whether_it_arrives_at_once_or_keeps_coming():
    async def scenario():
        async with gateway_with(GatewayLimits(max_header_size=4 * KiB)) as running:
            many = "".join(f"X-Header-{n}: {'v' * 100}\r\n" for n in range(60))  # 60 short lines, ~7 KiB
            reader, writer = await running.connect()
            writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n".encode())
            status, _, body = await read_response(reader)
            assert (status, error_of(body)["code"]) == (431, "headers_too_large")
            assert "4096" in error_of(body)["message"]
            writer.close()

            reader, writer = await running.connect()  # the head never ends: refused once it passes the limit
            writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{many}".encode())
            answer = await closed_by_peer(reader)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 431 ")
            assert b'"headers_too_large"' in answer
        assert running.upstream.seen == []

    asyncio.run(scenario())


def test_more_headers_than_the_limit_is_a_431():
    async def scenario():
        async with gateway_with(GatewayLimits(max_header_count=20)) as running:
            reader, writer = await running.connect()
            many = "".join(f"X-H{n}: v\r\n" for n in range(30))
            writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n".encode())
            status, _, body = await read_response(reader)
            writer.close()
        assert (status, error_of(body)["code"]) == (431, "headers_too_large")
        assert "more than 20 headers" in error_of(body)["message"]

    asyncio.run(scenario())


async def trickle(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    """Send `data` a byte at a time; stop quietly when the gateway hangs up. Bounded by len(data)."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause)


def test_a_head_sent_slowly_is_cut_at_the_header_timeout_with_a_408():
    async def scenario():
        async with gateway_with(GatewayLimits(request_header_timeout=0.5)) as running:
            reader, writer = await running.connect()
            head = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: {'z' * 300}\r\n\r\n".encode()
            sending = asyncio.create_task(trickle(writer, head, 0.05))  # would take ~17 s
            answer = await closed_by_peer(reader)
            assert not sending.done()  # cut while the client was still sending its head
            sending.cancel()
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b'"request_header_timeout"' in answer
        assert running.upstream.seen == []

    asyncio.run(scenario())


def test_the_header_timeout_applies_to_every_request_on_a_keep_alive_connection_and_idle_ones_are_closed():
    async def scenario():
        limits = GatewayLimits(request_header_timeout=0.5, keepalive_timeout=60)
        async with gateway_with(limits) as running:
            reader, writer = await running.connect()
            writer.write(f"GET /first HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            status, _, _ = await read_response(reader)
            assert status == 200
            head = f"GET /second HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: {'z' * 300}\r\n\r\n".encode()
            sending = asyncio.create_task(trickle(writer, head, 0.05))
            answer = await closed_by_peer(reader)
            assert not sending.done()
            sending.cancel()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408 ")

            reader, writer = await running.connect()  # says nothing at all: closed without an answer
            assert await closed_by_peer(reader) == b""
            writer.close()
        assert [path for _, path, _ in running.upstream.seen] == ["/first"]

    asyncio.run(scenario())


# --- request bodies: read whole, bounded, before an instance is involved ----------------------------


def test_a_body_declared_over_the_limit_is_a_413_and_nothing_is_forwarded():
    async def scenario():
        async with gateway_with(GatewayLimits(max_request_body=64 * KiB)) as running:
            reader, writer = await running.connect()
            writer.write(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {1 * MiB}\r\n\r\n".encode())
            writer.write(b"x" * 1000)
            status, headers, body = await read_response(reader)
            writer.close()
        assert status == 413
        assert headers["connection"] == "close"
        assert error_of(body) == {
            "code": "request_body_too_large",
            "message": "the request body is larger than the gateway's limit of 65536 bytes "
            "(knit dev --max-request-body)",
        }
        assert running.upstream.seen == []
        assert running.backend.in_flight == 0

    asyncio.run(scenario())


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_at_the_limit_with_nothing_forwarded():
    async def scenario():
        async with gateway_with(GatewayLimits(max_request_body=64 * KiB)) as running:
            reader, writer = await running.connect()
            writer.write(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            chunk = b"y" * 16 * KiB
            with contextlib.suppress(ConnectionError):
                for _ in range(8):  # 128 KiB, twice the limit; the chunked body never ends
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
            status, _, body = await read_response(reader)
            writer.close()
        assert (status, error_of(body)["code"]) == (413, "request_body_too_large")
        assert running.upstream.seen == []

    asyncio.run(scenario())


def test_a_chunked_body_under_the_limit_reaches_the_instance_whole_with_its_length():
    async def scenario():
        async with gateway_with(GatewayLimits(max_request_body=64 * KiB)) as running:
            reader, writer = await running.connect()
            writer.write(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            for part in (b"hello ", b"chunked ", b"world"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
            status, _, body = await read_response(reader)
            writer.close()
        assert status == 200
        assert json.loads(body)["headers"]["Content-Length"] == "19"
        assert running.upstream.seen == [("POST", "/upload", b"hello chunked world")]

    asyncio.run(scenario())


def test_a_body_that_does_not_arrive_in_time_is_a_408_and_nothing_is_forwarded():
    async def scenario():
        async with gateway_with(GatewayLimits(request_body_timeout=0.5)) as running:
            reader, writer = await running.connect()
            writer.write(f"POST /slow HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000\r\n\r\n".encode())
            sending = asyncio.create_task(trickle(writer, b"b" * 1000, 0.05))
            status, headers, body = await read_response(reader)
            assert not sending.done()
            sending.cancel()
            writer.close()
        assert (status, headers["connection"]) == (408, "close")
        assert error_of(body)["code"] == "request_body_timeout"
        assert "did not arrive within 0.5s (knit dev --request-body-timeout)" in error_of(body)["message"]
        assert running.upstream.seen == []

    asyncio.run(scenario())


def test_slow_bodies_do_not_hold_an_instance_a_normal_request_is_answered_while_they_trickle():
    """The finding: 20 slow-body connections held every gunicorn thread. Here the instance
    takes one request at a time (containerConcurrency 1); three clients trickle their
    bodies; a normal request is still served, and the instance never saw the slow ones."""

    async def scenario():
        async with gateway_with(container_concurrency=1, activation_timeout=10) as running:
            slow = []
            for n in range(3):
                reader, writer = await running.connect()
                writer.write(f"POST /slow/{n} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\n".encode())
                slow.append((reader, writer, asyncio.create_task(trickle(writer, b"s" * 100000, 0.05))))
            await asyncio.sleep(0.3)  # they have started sending; nothing depends on how far they got
            async with (
                aiohttp.ClientSession() as client,
                client.post(f"{running.url}/normal", data=b"hi", headers={"Host": HOST}) as response,
            ):
                assert response.status == 200
            assert all(not sending.done() for _, _, sending in slow)  # still trickling
            assert [path for _, path, _ in running.upstream.seen] == ["/normal"]
            assert running.backend.in_flight == 0  # the slow ones hold no slot
            for _, writer, sending in slow:
                sending.cancel()
                writer.close()

    asyncio.run(scenario())


# --- connections per client address ----------------------------------------------------------------


def test_connections_over_the_per_address_limit_get_a_429_and_are_closed():
    async def scenario():
        async with gateway_with(GatewayLimits(max_connections_per_address=4)) as running:
            held = []
            for n in range(4):
                reader, writer = await running.connect()
                writer.write(f"GET /held/{n} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                assert (await read_response(reader))[0] == 200  # admitted and kept alive
                held.append(writer)
            reader, writer = await running.connect()
            answer = await closed_by_peer(reader)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 429 ")
            error = error_of(answer.partition(b"\r\n\r\n")[2])
            assert error["code"] == "too_many_connections"
            assert "127.0.0.1 already has 4 connections open" in error["message"]

            held.pop().close()  # one leaves: a newcomer is served again
            while sum(running.gateway._runners[0].server.open_by_address.values()) > 3:
                await asyncio.sleep(0.01)
            reader, writer = await running.connect()
            writer.write(f"GET /again HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert (await read_response(reader))[0] == 200
            writer.close()
            for writer in held:
                writer.close()

    asyncio.run(scenario())


# --- WebSocket messages ----------------------------------------------------------------------------


def test_a_websocket_message_over_the_limit_closes_that_websocket_with_1009_either_way():
    async def scenario():
        limits = GatewayLimits(max_websocket_message=64 * KiB)
        async with gateway_with(limits) as running, aiohttp.ClientSession() as client:
            url = f"{running.url}/ws"
            async with client.ws_connect(url, headers={"Host": HOST}, max_msg_size=0) as socket:
                await socket.send_bytes(b"z" * (64 * KiB + 1))  # client -> instance
                closing = await socket.receive(HANG)
                assert (closing.type, socket.close_code) == (WSMsgType.CLOSE, WSCloseCode.MESSAGE_TOO_BIG)

            async with client.ws_connect(url, headers={"Host": HOST}, max_msg_size=0) as socket:
                await socket.send_str(f"send me {64 * KiB + 1}")  # instance -> client
                closing = await socket.receive(HANG)
                assert (closing.type, socket.close_code) == (WSMsgType.CLOSE, WSCloseCode.MESSAGE_TOO_BIG)

            async with client.ws_connect(url, headers={"Host": HOST}) as socket:  # the gateway still serves
                await socket.send_str("still here")
                assert (await socket.receive(HANG)).data == "echo: still here"
        assert [body for kind, _, body in running.upstream.seen if kind == "WS"] == [b"still here"]

    asyncio.run(scenario())


GATEWAY_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from knit.gateway.activator import Endpoint, RevisionBackend
    from knit.gateway.proxy import Gateway
    from knit.gateway.routing import RouteTable
    from knit.observability import Metrics

    async def main():
        routes = RouteTable()
        routes.set_route("hello", "default", {"hello-00001": 100}, {}, cluster_local=False)
        backend = RevisionBackend("hello-00001", 0)
        backend.add(Endpoint("hello-00001/1", "127.0.0.1", int(sys.argv[1])))
        gateway = Gateway(routes, {"hello-00001": backend}, Metrics().gateway, lambda _: 30, lambda _: 30)
        await gateway.start_session()
        print(await gateway.listen("127.0.0.1", 0, gateway.by_host), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin

    asyncio.run(main())
    """
)


def peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark (VmHWM), bytes: growth shows even if freed since."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from Linux's /proc")
def test_a_64_mb_websocket_frame_does_not_grow_the_gateway_process(tmp_path):
    """A gateway process with the default limits (1 MiB messages): one 64 MB frame is refused
    from its header, so the process's peak memory stays within a bound far below 64 MB."""

    async def scenario():
        upstream = Upstream()
        runner = web.AppRunner(await upstream_app(upstream))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        (tmp_path / "gateway.py").write_text(GATEWAY_PROCESS)
        process = subprocess.Popen(
            [sys.executable, str(tmp_path / "gateway.py"), str(site._server.sockets[0].getsockname()[1])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
        )  # fmt: skip
        try:
            port = int(await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), HANG))
            async with aiohttp.ClientSession() as client:
                url = f"http://127.0.0.1:{port}/ws"
                async with client.ws_connect(url, headers={"Host": HOST}) as socket:  # warm: code paths loaded
                    await socket.send_str("warm")
                    assert (await socket.receive(HANG)).data == "echo: warm"
                before = peak_rss(process.pid)

                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                )
                assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)).startswith(b"HTTP/1.1 101")
                size = 64 * 1000 * 1000
                writer.write(b"\x82\xff" + size.to_bytes(8, "big") + b"\x00\x00\x00\x00")  # binary, masked by 0
                block = bytes(MiB)
                with contextlib.suppress(ConnectionError):
                    for _ in range(size // len(block) + 1):  # bounded: stops early once the gateway hangs up
                        writer.write(block)
                        await writer.drain()
                answer = await closed_by_peer(reader)
                writer.close()
                growth = peak_rss(process.pid) - before
                assert growth < 32 * MiB, f"the gateway's peak memory grew by {growth / MiB:.0f} MiB"
                if answer:  # the close frame, unless the reset overtook it
                    assert answer[:2] == b"\x88\x02" and int.from_bytes(answer[2:4], "big") == 1009

                async with client.ws_connect(url, headers={"Host": HOST}) as socket:  # and it still serves
                    await socket.send_str("after")
                    assert (await socket.receive(HANG)).data == "echo: after"
        finally:
            process.stdin.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            await runner.cleanup()
        assert [body for kind, _, body in upstream.seen if kind == "WS"] == [b"warm", b"after"]

    asyncio.run(scenario())
