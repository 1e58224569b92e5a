"""The objects Knative derives from a Service, as plain data: Configuration, Revisions, Route.

Used by `knit render` (a dry run that starts nothing) and shaped like Knative's own, so
a Knative user recognises them. Their status comes from `knit.control.status`, the same
function `knit service describe` prints.
"""

from __future__ import annotations

from typing import Any

from knit.control.status import UrlOf, service_status
from knit.serving.revisions import Revision
from knit.serving.state import ServiceRecord, ServingState

API_VERSION = "serving.knit.dev/v1"
SERVICE_LABEL = "serving.knit.dev/service"
CONFIGURATION_LABEL = "serving.knit.dev/configuration"
GENERATION_LABEL = "serving.knit.dev/configurationGeneration"


def _metadata(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def render_service(state: ServingState, record: ServiceRecord, url_of: UrlOf) -> list[dict[str, Any]]:
    service = record.service
    status = service_status(state, record, url_of, f"http://{service.name}.{service.namespace}.svc.cluster.local")
    template = service.spec.template.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": API_VERSION,
            "kind": "Configuration",
            "metadata": _metadata(service.name, service.namespace, generation=record.generation),
            "spec": {"template": template},
            "status": {
                "latestCreatedRevisionName": status.latest_created_revision_name,
                "latestReadyRevisionName": status.latest_ready_revision_name,
            },
        }
    ]
    objects.extend(revision_manifest(revision) for revision in record.revisions)
    spec_traffic = [t.model_dump(by_alias=True, exclude_none=True) for t in service.spec.traffic] or [
        {"latestRevision": True, "percent": 100}
    ]
    objects.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": _metadata(service.name, service.namespace),
            "spec": {"traffic": spec_traffic},
            "status": {"url": status.url, "traffic": [target.to_knative() for target in status.traffic]},
        }
    )
    return objects


def revision_manifest(revision: Revision) -> dict[str, Any]:
    metadata = _metadata(revision.name, revision.namespace, labels=revision_labels(revision))
    if revision.annotations:
        metadata["annotations"] = revision.annotations
    spec = revision.template.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return {"apiVersion": API_VERSION, "kind": "Revision", "metadata": metadata, "spec": spec}


def revision_labels(revision: Revision) -> dict[str, str]:
    return {
        SERVICE_LABEL: revision.service,
        CONFIGURATION_LABEL: revision.service,
        GENERATION_LABEL: str(revision.generation),
    }
