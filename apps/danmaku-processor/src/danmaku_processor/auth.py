"""Who may send the processor events, and the token it sends its results with.

When the platform says how to verify senders (K_OIDC_ISSUER, K_OIDC_JWKS, K_AUDIENCE:
knit sets them for every instance), every `POST` must carry a valid token for this
service's audience, from any sender of the platform: the processor is cluster-local and
its events come from the platform's dispatchers. Anything else is 401 with the error
body, before the event is read. Without those settings it takes any delivery; but a
processor holding a token to vouch for its results (K_OIDC_TOKEN_FILE) must verify what
it vouches for, so that combination refuses to start.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from danmaku_events.auth import TOKEN_FILE_ENV, AuthError, Verifier, verifier_from_settings

# Flask config keys, read from the environment variables of the same names.
SETTINGS = ("K_OIDC_ISSUER", "K_OIDC_JWKS", "K_AUDIENCE", TOKEN_FILE_ENV)
VERIFIER = "danmaku_processor.verifier"


def verifier(config: dict[str, Any]) -> Verifier | None:
    checker = verifier_from_settings(config.get("K_OIDC_ISSUER"), config.get("K_OIDC_JWKS"), config.get("K_AUDIENCE"))
    if checker is None and config.get(TOKEN_FILE_ENV):
        raise ValueError(
            f"{TOKEN_FILE_ENV} is set, so the processor's results carry its identity, but K_OIDC_ISSUER, "
            "K_OIDC_JWKS and K_AUDIENCE are not: it would vouch for events from anyone; set them too"
        )
    return checker


def register(app: Flask) -> None:
    checker = app.extensions[VERIFIER] = verifier(app.config)
    if checker is None:
        return

    @app.before_request
    def require_a_platform_sender() -> Any:
        if request.method != "POST":
            return None
        try:
            checker.verify(request.headers)
        except AuthError as error:
            return error.to_error(), error.status, error.headers
        return None
