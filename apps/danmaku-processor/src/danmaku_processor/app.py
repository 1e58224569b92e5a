"""The Flask application factory and the processor's settings.

Settings come from the defaults below, then environment variables named
DANMAKU_PROCESSOR_<SETTING> (Flask's `from_prefixed_env`: a value that parses as JSON is
used as such), then the `config` given to create_app. K_SINK, where results go, has
Knative's name: a SinkBinding sets it. So do the sender identity settings the platform
gives (see `auth`): K_OIDC_ISSUER, K_OIDC_JWKS and K_AUDIENCE to verify who sends here,
K_OIDC_TOKEN_FILE for the token sent to K_SINK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from danmaku_events.auth import TokenFile
from danmaku_processor import auth, routes
from danmaku_processor.bodyread import BodyReader
from danmaku_processor.sink import Sink
from danmaku_processor.wordlist import load_wordlist

ENV_PREFIX = "DANMAKU_PROCESSOR"
DEFAULTS: dict[str, Any] = {
    "WORDLIST": None,  # path of a word list file; None means the one shipped with the package
    "SINK_TIMEOUT": 2.0,  # seconds to wait for K_SINK to accept an event
    "MAX_CONTENT_LENGTH": 64 * 1024,  # bytes; a comment event is well under 1 KiB
    "BODY_TIMEOUT": 5.0,  # seconds a client has to send a request's whole body (see bodyread)
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    platform = {name: os.environ.get(name) or None for name in ("K_SINK", *auth.SETTINGS)}
    app.config.from_mapping(DEFAULTS, **platform)
    app.config.from_prefixed_env(ENV_PREFIX)
    app.config.update(config or {})
    app.extensions[routes.WORDLIST] = load_wordlist(app.config["WORDLIST"])
    token_file = app.config[auth.TOKEN_FILE_ENV]
    app.extensions[routes.SINK] = _sink(app.config["K_SINK"], app.config["SINK_TIMEOUT"], token_file)
    auth.register(app)
    app.register_blueprint(routes.bp)
    app.wsgi_app = BodyReader(  # type: ignore[method-assign]
        app.wsgi_app, app.config["BODY_TIMEOUT"], app.config["MAX_CONTENT_LENGTH"], f"{ENV_PREFIX}_BODY_TIMEOUT"
    )
    return app


def _sink(url: str | None, timeout: Any, token_file: str | None) -> Sink | None:
    """None when K_SINK is unset: the app still starts, and `POST /` answers 503."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"K_SINK must be an http(s) URL such as http://danmaku-web/events; got {url!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"{ENV_PREFIX}_SINK_TIMEOUT must be a positive number of seconds, e.g. 2.5; got {timeout!r}")
    return Sink(url, float(timeout), TokenFile(token_file) if token_file else None)
