"""Checks on a Service that its schema alone cannot express (Knative's webhook rules)."""

from __future__ import annotations

from knit.resources.model import Service
from knit.serving.traffic import Problem, static_problems


def service_problems(service: Service) -> list[Problem]:
    problems = static_problems(service.spec.traffic)
    name = service.spec.template.metadata.name
    if name and not name.startswith(f"{service.name}-"):
        message = f"revision name {name!r} must start with the Service name: {service.name}-…"
        problems.append(("spec.template.metadata.name", message))
    return problems
