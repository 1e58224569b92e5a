"""The objects Knative derives from a Service, as plain data: Configuration, Revisions, Route.

Used by `knit render` (a dry run that starts nothing) and shaped like Knative's own, so
a Knative user recognises them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from knit.serving.state import ServiceRecord, ServingState

API_VERSION = "serving.knit.dev/v1"
UrlOf = Callable[[str, str, str | None], str | None]  # (service, namespace, tag) -> URL or None


def _metadata(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def render_service(state: ServingState, record: ServiceRecord, url_of: UrlOf) -> list[dict[str, Any]]:
    service = record.service
    latest_ready = state.latest_ready(record)
    template = service.spec.template.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": API_VERSION,
            "kind": "Configuration",
            "metadata": _metadata(service.name, service.namespace, generation=record.generation),
            "spec": {"template": template},
            "status": {
                "latestCreatedRevisionName": record.latest_created.name,
                "latestReadyRevisionName": latest_ready.name if latest_ready else None,
            },
        }
    ]
    for revision in record.revisions:
        labels = {
            "serving.knit.dev/service": service.name,
            "serving.knit.dev/configuration": service.name,
            "serving.knit.dev/configurationGeneration": str(revision.generation),
        }
        metadata = _metadata(revision.name, revision.namespace, labels=labels)
        if revision.annotations:
            metadata["annotations"] = revision.annotations
        spec = revision.template.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        objects.append({"apiVersion": API_VERSION, "kind": "Revision", "metadata": metadata, "spec": spec})
    traffic = []
    for target in record.route.targets:
        entry: dict[str, Any] = {"revisionName": target.revision, "percent": target.percent}
        if target.latest:
            entry["latestRevision"] = True
        if target.tag:
            entry["tag"] = target.tag
            if url := url_of(service.name, service.namespace, target.tag):
                entry["url"] = url
        traffic.append(entry)
    spec_traffic = [t.model_dump(by_alias=True, exclude_none=True) for t in service.spec.traffic] or [
        {"latestRevision": True, "percent": 100}
    ]
    objects.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": _metadata(service.name, service.namespace),
            "spec": {"traffic": spec_traffic},
            "status": {"url": url_of(service.name, service.namespace, None), "traffic": traffic},
        }
    )
    return objects
