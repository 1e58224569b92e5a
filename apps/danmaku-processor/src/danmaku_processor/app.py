"""The Flask application factory and the processor's settings.

Settings come from the defaults below, then environment variables named
DANMAKU_PROCESSOR_<SETTING> (Flask's `from_prefixed_env`: a value that parses as JSON is
used as such), then the `config` given to create_app. K_SINK, where results go, has
Knative's name: a SinkBinding sets it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from danmaku_processor import routes
from danmaku_processor.sink import Sink
from danmaku_processor.wordlist import load_wordlist

ENV_PREFIX = "DANMAKU_PROCESSOR"
DEFAULTS: dict[str, Any] = {
    "WORDLIST": None,  # path of a word list file; None means the one shipped with the package
    "SINK_TIMEOUT": 2.0,  # seconds to wait for K_SINK to accept an event
    "MAX_CONTENT_LENGTH": 64 * 1024,  # bytes; a comment event is well under 1 KiB
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS, K_SINK=os.environ.get("K_SINK") or None)
    app.config.from_prefixed_env(ENV_PREFIX)
    app.config.update(config or {})
    app.extensions[routes.WORDLIST] = load_wordlist(app.config["WORDLIST"])
    app.extensions[routes.SINK] = _sink(app.config["K_SINK"], app.config["SINK_TIMEOUT"])
    app.register_blueprint(routes.bp)
    return app


def _sink(url: str | None, timeout: Any) -> Sink | None:
    """None when K_SINK is unset: the app still starts, and `POST /` answers 503."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"K_SINK must be an http(s) URL such as http://danmaku-web/events; got {url!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"{ENV_PREFIX}_SINK_TIMEOUT must be a positive number of seconds, e.g. 2.5; got {timeout!r}")
    return Sink(url, float(timeout))
