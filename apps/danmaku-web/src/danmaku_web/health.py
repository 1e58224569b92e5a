"""Probes: `/healthz` says the process serves requests, `/readyz` that Kafka is reachable."""

from __future__ import annotations

from flask import Blueprint

from danmaku_web.errors import ApiError
from danmaku_web.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, str]:
    problem = services().publisher.problem()
    if problem:
        raise ApiError(503, "unavailable", problem)
    return {"status": "ready"}
