"""The control API of a running `knit dev`, which the `knit` commands talk to.

JSON over HTTP on 127.0.0.1: apply manifests (and read what admission checks them against),
delete objects, read Services, Revisions, Routes and the eventing objects, change a Service's
traffic, and Prometheus metrics at /metrics.

Applying a manifest runs its command as the user, so the API is guarded against the
rest of the machine, web pages in a browser included:

- every request must name a loopback Host (127.0.0.1, localhost, [::1], any port), else
  403: a page whose own name was re-pointed at 127.0.0.1 (DNS rebinding) is refused;
- every endpoint but `GET /healthz` and `GET /metrics` (read-only, they change nothing and
  show no manifest) needs `Authorization: Bearer <token>`, the token `knit dev` wrote to
  the user-only file `~/.knit/control/<port>.json` (control_token), else 401;
- POST bodies must be `Content-Type: application/json` (else 415: a cross-site form can
  only send text/plain, urlencoded or multipart without a CORS preflight), at most
  MAX_BODY bytes (else 413), valid JSON of the documented shape (else 400);
- manifest paths are read only when they are regular .yaml/.yml files of at most
  MAX_MANIFEST_FILE bytes, and problems with them name the path and the kind of problem,
  never the file's content (the commands read the user's own files locally and show the
  full messages there).

Errors are `{"error": {"code", "message"}, "problems": [one line each]}`.
"""

from __future__ import annotations

import hmac
import json
import logging
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import hdrs, web

from knit.admission import Context, load_manifests, problems_of
from knit.control_token import (
    DEFAULT_PORT,
    TOKEN_ENV,
    is_loopback_authority,
    new_token,
    remove_token_file,
    token_file,
    write_token_file,
)
from knit.observability import CONTENT_TYPE_LATEST
from knit.resources.loading import YAML_SUFFIXES, InvalidManifests, Manifests, manifest_files
from knit.runtimes.local.processes import ProcessFailed
from knit.runtimes.local.runtime import LocalRuntime
from knit.serving.state import InvalidApply
from knit.serving.traffic import edit_traffic

MAX_BODY = 64 * 1024  # bytes in a request body: a list of paths or a traffic change
MAX_MANIFEST_FILE = 1024 * 1024  # bytes in one manifest file read through the API
IDLE_TIMEOUT = 15.0  # seconds a connection may sit without a complete request (aiohttp's keep-alive timer)
OPEN_PATHS = frozenset(("/healthz", "/metrics"))  # GET only: read-only, no token needed

log = logging.getLogger(__name__)


class Refused(Exception):
    """A request the control API will not act on: status, code and one line per problem."""

    def __init__(self, status: int, code: str, problems: list[str] | str) -> None:
        self.status, self.code = status, code
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def _error(status: int, code: str, problems: list[str]) -> web.Response:
    body = {"error": {"code": code, "message": "\n".join(problems)}, "problems": problems}
    return web.json_response(body, status=status)


# --- the guard in front of every endpoint --------------------------------------------------------


def _guard(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        try:
            _check_host(request)
            if not (request.path in OPEN_PATHS and request.method in ("GET", "HEAD")):
                _check_token(request, token)
            if request.method == "POST" and request.content_type != "application/json":
                raise Refused(
                    415, "unsupported_media_type",
                    f"the control API takes JSON bodies sent as Content-Type: application/json; "
                    f"got {request.headers.get(hdrs.CONTENT_TYPE, 'none')!r}",
                )  # fmt: skip
            return await handler(request)
        except Refused as refused:
            response = _error(refused.status, refused.code, refused.problems)
            if refused.status == 401:
                response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="knit control API"'
            return response
        except web.HTTPException as error:  # aiohttp's own: no such path, method, or a body too large
            return _from_aiohttp(request, error)
        except Exception:
            log.exception("the control API failed on %s %s", request.method, request.path)
            return _error(500, "internal_error", ["the control API failed on this request; see knit dev's output"])

    return guard


def _check_host(request: web.Request) -> None:
    host = request.headers.get(hdrs.HOST)
    if host is None or not is_loopback_authority(host):
        raise Refused(
            403, "host_not_allowed",
            f"the control API answers only to a loopback Host (127.0.0.1, localhost or [::1]); got {host!r}. "
            "Call it at http://127.0.0.1:<port>; a web page that points its own name at this machine is refused",
        )  # fmt: skip


def _check_token(request: web.Request, token: str) -> None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    where = token_file(sockname[1]) if sockname else token_file(DEFAULT_PORT).with_stem("<port>")
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Refused(
            401, "unauthorized",
            f"the control API needs the token knit dev wrote to {where}: send it as `Authorization: Bearer "
            f"<token>`. The knit commands read that file themselves ({TOKEN_ENV} overrides it)",
        )  # fmt: skip
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Refused(
            401, "unauthorized",
            f"the token does not match the one in {where}; the knit dev on this port may have restarted "
            f"since it was read, or {TOKEN_ENV} holds another knit dev's token",
        )  # fmt: skip


def _from_aiohttp(request: web.Request, error: web.HTTPException) -> web.Response:
    if error.status == 413:
        return _error(413, "body_too_large", [f"the body is larger than {MAX_BODY} bytes, the control API's limit"])
    if error.status == 404:
        return _error(404, "not_found", [f"no endpoint {request.path}"])
    if error.status == 405:
        return _error(405, "method_not_allowed", [f"{request.method} is not allowed on {request.path}"])
    return _error(error.status, "bad_request", [error.reason])


# --- bodies: JSON of a known shape ---------------------------------------------------------------


async def _json_object(request: web.Request, shape: dict[str, str]) -> dict[str, list[str]]:
    """The body as {field: list of strings}; `shape` names the accepted fields, with examples."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refused(413, "body_too_large", f"the body is larger than {MAX_BODY} bytes, the control API's limit")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise Refused(400, "malformed_json", f"the body is not valid JSON: {error}") from None
    expected = "{" + ", ".join(f'"{name}": {example}' for name, example in shape.items()) + "}"
    if not isinstance(body, dict):
        raise Refused(400, "invalid_body", f"the body must be a JSON object, {expected}; got a {_json_type(body)}")
    problems = [f"{name!r} is not a field here; the body is {expected}" for name in body if name not in shape]
    for name, value in body.items():
        if name in shape and not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            problems.append(f"{name} must be a list of strings, as in {expected}; got a {_json_type(value)}")
    if problems:
        raise Refused(400, "invalid_body", problems)
    return body


def _json_type(value: Any) -> str:
    names = {dict: "JSON object", list: "JSON list", str: "string", bool: "boolean", type(None): "null"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "number")


# --- manifest paths: read with care, reported without content ------------------------------------


def _manifests(paths: list[str], context: Context) -> Manifests:
    if not paths:
        raise Refused(400, "invalid_body", "paths must name at least one manifest file or folder")
    problems = []
    for text in paths:
        path = Path(text)
        if not path.is_absolute():
            problems.append(f"{text}: not an absolute path; the control API does not know your working folder")
        elif not path.exists():
            problems.append(f"{path}: no such file or folder")
        elif not path.is_dir() and path.suffix not in YAML_SUFFIXES:
            problems.append(f"{path}: not a YAML file; knit reads manifests from files ending in .yaml or .yml")
    if problems:
        raise Refused(422, "invalid_manifests", problems)
    files = manifest_files(Path(p) for p in paths)
    problems = [problem for problem in map(_unreadable, files) if problem]
    if problems:
        raise Refused(422, "invalid_manifests", problems)
    try:
        return load_manifests(files, context)
    except InvalidManifests as error:  # its lines quote values from the files: count them instead
        raise Refused(422, "invalid_manifests", _content_free(files, error.problems)) from None


def _unreadable(file: Path) -> str | None:
    """What stops `file` from being read as manifests, named without its content; None if nothing."""
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            return f"{file}: not a regular file"
        if info.st_size > MAX_MANIFEST_FILE:
            return f"{file}: {info.st_size} bytes; the control API reads manifest files of at most {MAX_MANIFEST_FILE}"
        text = file.read_bytes().decode("utf-8")
    except OSError as error:
        return f"{file}: cannot be read ({error.strerror or type(error).__name__})"
    except UnicodeDecodeError:
        return f"{file}: not UTF-8 text, so not a manifest"
    try:
        for _ in yaml.safe_load_all(text):
            pass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{file}: not valid YAML: cannot be parsed{where}"
    except yaml.YAMLError:
        return f"{file}: not valid YAML"
    return None


def _content_free(files: list[Path], problems: list[str]) -> list[str]:
    counts = dict.fromkeys(files, 0)
    others = 0
    for problem in problems:
        file = next((f for f in files if problem.startswith((f"{f}:", f"{f}[", f"{f} ("))), None)
        if file is None:
            others += 1
        else:
            counts[file] += 1
    lines = [
        f"{file}: {count} problem{'s' if count > 1 else ''} in its objects (kind, apiVersion, fields or references); "
        f"the control API does not quote manifest content: `knit render -f {file}` lists them"
        for file, count in counts.items()
        if count
    ]
    return lines + ([f"{others} more problem{'s' if others > 1 else ''} across the files"] if others else [])


# --- the endpoints -------------------------------------------------------------------------------


def control_app(runtime: LocalRuntime, token: str) -> web.Application:
    async def apply(request: web.Request) -> web.Response:
        body = await _json_object(request, {"paths": '["/abs/path/app.yaml", "/abs/folder"]'})
        manifests = _manifests(body.get("paths", []), runtime.admission_context())
        try:
            changes = await runtime.apply(manifests)
        except InvalidApply as error:
            raise Refused(422, "invalid_apply", error.problems) from None
        except ProcessFailed as error:
            raise Refused(500, "process_failed", str(error)) from None
        return web.json_response({"changes": changes})

    def describe(namespace: str, name: str) -> dict[str, Any]:
        try:
            return runtime.describe(namespace, name)
        except KeyError as error:
            raise Refused(404, "not_found", error.args[0]) from None

    async def delete(request: web.Request) -> web.Response:
        body = await _json_object(request, {"objects": '["KIND/NAMESPACE/NAME", ...]'})
        identities, problems = [], []
        for text in body.get("objects", []):
            parts = text.split("/")
            if len(parts) != 3 or not all(parts):
                problems.append(f"{text!r}: name an object as KIND/NAMESPACE/NAME, e.g. Service/default/hello")
            else:
                identities.append((parts[0], parts[1], parts[2]))
        if problems or not identities:
            raise Refused(400, "invalid_body", problems or "objects must name at least one object")
        try:
            changes = await runtime.delete(identities)
        except KeyError as error:
            raise Refused(404, "not_found", error.args[0]) from None
        return web.json_response({"changes": changes})

    async def eventing(_: web.Request) -> web.Response:
        return web.json_response({"resources": runtime.eventing()})

    async def admission(_: web.Request) -> web.Response:
        """What new manifests are admitted against, so `knit apply` checks them as this knit dev will."""
        context = runtime.admission_context()
        return web.json_response({"known": sorted(context.known), "autoscaler": context.autoscaler})

    async def services(_: web.Request) -> web.Response:
        return web.json_response({"services": runtime.services()})

    async def service(request: web.Request) -> web.Response:
        return web.json_response(describe(request.match_info["namespace"], request.match_info["name"]))

    async def update_traffic(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        body = await _json_object(
            request, {"traffic": '["REF=PERCENT", ...]', "tags": '["REF=TAG", ...]', "untags": '["TAG", ...]'}
        )
        try:
            record = runtime.state.record(namespace, name)
            traffic = edit_traffic(
                record.service.spec.traffic, body.get("traffic", []), body.get("tags", []), body.get("untags", [])
            )
        except KeyError as error:
            raise Refused(404, "not_found", error.args[0]) from None
        except ValueError as error:
            raise Refused(422, "invalid_traffic", str(error)) from None
        # Admitted as the whole Service would be, so `kn`-style edits obey the same rules as manifests
        spec = record.service.spec.model_copy(update={"traffic": traffic})
        edited = record.service.model_copy(update={"spec": spec})
        problems = [f"{path}: {message}" for path, message in problems_of(edited, runtime.autoscaler_config)]
        if problems:
            raise Refused(422, "invalid_traffic", problems)
        try:
            runtime.update_traffic(namespace, name, traffic)
        except InvalidApply as error:
            raise Refused(422, "invalid_traffic", error.problems) from None
        return web.json_response(describe(namespace, name))

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=runtime.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "gateway": f"http://127.0.0.1:{runtime.port}"})

    app = web.Application(middlewares=[_guard(token)], client_max_size=MAX_BODY)
    app.add_routes(
        [
            web.post("/apply", apply),
            web.get("/admission", admission),
            web.post("/delete", delete),
            web.get("/eventing", eventing),
            web.get("/services", services),
            web.get("/services/{namespace}/{name}", service),
            web.post("/services/{namespace}/{name}/traffic", update_traffic),
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
        ]
    )
    return app


async def serve_control(runtime: LocalRuntime, port: int) -> tuple[web.AppRunner, int]:
    """Serve the control API on 127.0.0.1:port (0 = a free one) with a new token, written to
    the port's token file; `runner.cleanup()` stops it and removes the file. The port."""
    token = new_token()
    app = control_app(runtime, token)
    written: list[int] = []

    async def remove_token(_: web.Application) -> None:
        for bound in written:
            remove_token_file(bound, token)

    app.on_cleanup.append(remove_token)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=IDLE_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        write_token_file(bound, f"http://127.0.0.1:{bound}", token)
    except BaseException:
        await runner.cleanup()
        raise
    written.append(bound)
    return runner, bound
