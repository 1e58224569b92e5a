"""The gateway's listening side: aiohttp's low-level HTTP server with the limits it lacks.

aiohttp itself bounds each header line, the number of headers and the idle keep-alive
time. This module adds, per connection (`GuardedServer`):

- a deadline for a complete request head, from the connection's start or from the first
  byte of a later request on it (slowloris); aiohttp has none: a head trickled one byte
  a second would hold the connection for as long as the client likes;
- a bound on a head's total size, counted while it arrives;
- a bound on open connections per client address, per listener;
- requests that are not origin-form (`GET http://other/ HTTP/1.1`, `CONNECT`, `OPTIONS *`)
  refused with 400: the gateway is a reverse proxy, not a forward one;
- errors in the contract's shape (`{"error": {"code", "message"}}`) for requests aiohttp
  cannot parse, without its traceback-and-HTML defaults.

It relies on two of aiohttp's RequestHandler internals (pinned in constraints.txt): `_waiter`
is pending exactly while the connection waits for its next request, and `_request_count`
grows as each request head is parsed. tests/test_gateway_limits.py pins the behaviour.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from knit.gateway.limits import GatewayLimits

log = logging.getLogger(__name__)
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _raw_error(status: int, code: str, message: str) -> bytes:
    """A whole response written straight to the socket, for when there is no request to answer."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def head_size(request: web.BaseRequest) -> int:
    """Bytes in the request's head as sent: request line, header lines, CRLFs."""
    line = len(request.method) + len(request.raw_path) + len(" HTTP/1.1\r\n") + 1
    return line + sum(len(name) + len(value) + 4 for name, value in request.raw_headers) + 2


class GuardedServer(web.Server):
    """aiohttp's low-level server for one gateway listener, with `limits` enforced."""

    def __init__(self, handler: Handler, limits: GatewayLimits) -> None:
        self.limits = limits
        self.open_by_address: Counter[str] = Counter()  # client address -> open connections

        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            if not request.raw_path.startswith("/"):
                return _closing(error_response(
                    400, "bad_request_target",
                    f"the gateway serves origin-form request targets (a path such as /index.html); "
                    f"got {request.method} {request.raw_path[:200]!r}: it is not a forward proxy",
                ))  # fmt: skip
            size = head_size(request)
            if size > limits.max_header_size:
                return _closing(error_response(
                    431, "headers_too_large",
                    f"the request's head is {size} bytes; the gateway takes at most {limits.max_header_size} "
                    "(knit dev --max-header-size)",
                ))  # fmt: skip
            return await handler(request)

        super().__init__(
            guarded,
            access_log=None,
            keepalive_timeout=limits.keepalive_timeout,
            max_line_size=limits.max_header_line,
            max_field_size=limits.max_header_line,
            max_headers=limits.max_header_count,
        )

    def __call__(self) -> RequestHandler:
        return _GuardedConnection(self, loop=self._loop, **self._kwargs)


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


class _GuardedConnection(RequestHandler):
    """One client connection: counted against its address, its request heads timed and sized."""

    def __init__(self, server: GuardedServer, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._server = server
        self._limits = server.limits
        self._address: str | None = None  # set once the connection is admitted and counted
        self._refused = False
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    # --- connections per client address ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        limit = self._limits.max_connections_per_address
        if self._server.open_by_address[address] >= limit:
            self._refused = True
            message = (
                f"{address} already has {limit} connections open to this gateway listener "
                "(knit dev --max-connections-per-address); close some and try again"
            )
            transport.write(_raw_error(429, "too_many_connections", message))  # type: ignore[attr-defined]
            transport.close()
            return
        self._server.open_by_address[address] += 1
        self._address = address
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        self._disarm_head_deadline()
        if self._address is not None:
            counts = self._server.open_by_address
            counts[self._address] -= 1
            if counts[self._address] <= 0:
                del counts[self._address]
            self._address = None
        super().connection_lost(exc)

    # --- request heads: a deadline and a size ------------------------------------------------

    def _waiting_for_a_request(self) -> bool:
        return self._waiter is not None and not self._waiter.done()

    def _arm_head_deadline(self) -> None:
        self._head_bytes = 0
        self._head_deadline = self._loop.call_later(self._limits.request_header_timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and data and self._waiting_for_a_request():
            self._arm_head_deadline()  # the first bytes of a later request on this connection
        if self._head_deadline is not None:
            self._head_bytes += len(data)
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a head is complete (or refused by the parser)
            self._disarm_head_deadline()
        elif self._head_deadline is not None and self._head_bytes > self._limits.max_header_size:
            self._disarm_head_deadline()
            self._close_with(431, "headers_too_large", (
                f"the request's head passed {self._limits.max_header_size} bytes before it ended; the gateway "
                "takes at most that (knit dev --max-header-size)"
            ))  # fmt: skip

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport is None or self._force_close:
            return
        if not self._head_bytes:  # an idle connection (a browser's preconnect): nothing to answer
            self.force_close()
            return
        timeout = self._limits.request_header_timeout
        self._close_with(408, "request_header_timeout", (
            f"the request's head (request line and headers) did not arrive within {timeout:g}s "
            "(knit dev --request-header-timeout)"
        ))  # fmt: skip

    def _close_with(self, status: int, code: str, message: str) -> None:
        if self.transport is not None:
            self.transport.write(_raw_error(status, code, message))  # type: ignore[attr-defined]
        self.force_close()

    # --- what aiohttp cannot parse, in the contract's shape -----------------------------------------

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun; no error can be sent now")  # as aiohttp does
        limits = self._limits
        if isinstance(exc, LineTooLong):
            response = error_response(
                431, "headers_too_large",
                f"a request line, header name or header value is longer than {limits.max_header_line} bytes "
                "(knit dev --max-header-line)",
            )  # fmt: skip
        elif isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
            response = error_response(
                431, "headers_too_large",
                f"the request has more than {limits.max_header_count} headers (knit dev --max-header-count)",
            )  # fmt: skip
        elif isinstance(exc, HttpProcessingError) or status == 400:
            detail = exc.message if isinstance(exc, HttpProcessingError) else (message or "")
            response = error_response(400, "bad_request", f"the request is not valid HTTP/1.1: {detail[:200]}")
        elif status == 504:
            response = error_response(504, "gateway_timeout", "the gateway gave up on this request")
        else:
            log.error("the gateway failed on a request from %s", request.remote, exc_info=exc)
            response = error_response(500, "internal_error", "the gateway failed on this request; see knit dev's log")
        return _closing(response)
