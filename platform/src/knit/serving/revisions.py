"""Revisions: immutable snapshots of a Service's template, one per change.

Knative's rules: the Configuration's generation counts template changes; a new template
makes Revision `<service>-<generation as 5 digits>`, or the name given in
`spec.template.metadata.name` ("bring your own"; that it starts with `<service>-` is
checked when manifests load), which may not be reused for a different template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from knit.resources.model import RevisionTemplate, Service


class RevisionConflict(ValueError):
    """A template change would break a Revision's immutability; the message says how."""

    path = "spec.template.metadata.name"


@dataclass(frozen=True)
class Revision:
    name: str
    service: str
    namespace: str
    generation: int  # the Configuration generation that created it
    template: RevisionTemplate

    @property
    def container_concurrency(self) -> int:
        return self.template.spec.container_concurrency

    @property
    def annotations(self) -> dict[str, str]:
        return self.template.metadata.annotations


def template_key(template: RevisionTemplate) -> str:
    """Two templates make the same Revision exactly when their keys are equal."""
    return json.dumps(template.model_dump(mode="json", by_alias=True, exclude_defaults=True), sort_keys=True)


def revision_for(service: Service, revisions: list[Revision]) -> Revision | None:
    """The Revision a newly applied Service needs, or None when its template is the latest's.

    `revisions` are the Service's existing Revisions, oldest first.
    """
    template = service.spec.template
    latest = revisions[-1] if revisions else None
    if latest and template_key(latest.template) == template_key(template):
        return None
    generation = (latest.generation if latest else 0) + 1
    name = template.metadata.name or f"{service.name}-{generation:05d}"
    if any(revision.name == name for revision in revisions):
        raise RevisionConflict(
            f"revision {name!r} already exists with a different template; revisions are immutable, "
            "so give the changed template a new name (or remove the name to get one generated)"
        )
    return Revision(name, service.name, service.namespace, generation, template)
