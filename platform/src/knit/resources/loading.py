"""Loading manifests: YAML files (or folders of them) into validated resources.

Every problem is reported, one line each with the file, the object and the field path
(`spec.template.spec.containers[0].image: Field required`), and nothing is returned
when there is any: a half-valid set of manifests is never applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from knit.resources.model import (
    KINDS,
    ConfigMap,
    KafkaSource,
    Resource,
    Service,
    SinkBinding,
    accepted_api_versions,
    document_kind,
    same_kind,
)
from knit.resources.validation import service_problems

R = TypeVar("R", bound=Resource)
YAML_SUFFIXES = (".yaml", ".yml")


class InvalidManifests(ValueError):
    """One or more manifests are wrong; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Manifests:
    """A validated set of resources and the file each came from."""

    resources: tuple[Resource, ...]
    origins: dict[tuple[str, str, str], Path] = field(default_factory=dict)

    def of_kind(self, kind: type[R]) -> list[R]:
        return [resource for resource in self.resources if isinstance(resource, kind)]

    @property
    def services(self) -> list[Service]:
        return self.of_kind(Service)

    @property
    def kafka_sources(self) -> list[KafkaSource]:
        return self.of_kind(KafkaSource)

    @property
    def sink_bindings(self) -> list[SinkBinding]:
        return self.of_kind(SinkBinding)

    @property
    def config_maps(self) -> list[ConfigMap]:
        return self.of_kind(ConfigMap)

    def service(self, name: str, namespace: str = "default") -> Service | None:
        return next((s for s in self.services if (s.name, s.namespace) == (name, namespace)), None)

    def folder_of(self, resource: Resource) -> Path:
        """The folder of the file a resource came from: relative paths in it start there."""
        return self.origins[_identity(resource)].parent


def _identity(resource: Resource) -> tuple[str, str, str]:
    return (resource.kind, resource.namespace, resource.name)


def format_location(location: Iterable[str | int]) -> str:
    """('spec', 'traffic', 1, 'percent') -> 'spec.traffic[1].percent'"""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidManifests([f"{path}: no such file or folder"])
    return files


def _parse_document(document: Any, where: str, problems: list[str]) -> Resource | None:
    if not isinstance(document, dict):
        problems.append(f"{where}: expected a mapping with apiVersion and kind; got {type(document).__name__}")
        return None
    kind = document_kind(document)
    if kind is None:
        known = ", ".join(KINDS)
        problems.append(f"{where}: kind: unknown kind {document.get('kind')!r}; knit knows {known}")
        return None
    label = f"{where} ({kind.__name__} {document.get('metadata', {}).get('name', '?')})"
    api_version = document.get("apiVersion")
    if api_version not in accepted_api_versions(kind):
        problems.append(
            f"{label}: apiVersion: {api_version!r} is not accepted for {kind.__name__}; "
            f"use one of {', '.join(accepted_api_versions(kind))}"
        )
        return None
    try:
        return kind.model_validate(document)
    except ValidationError as error:
        for detail in error.errors():
            problems.append(f"{label}: {format_location(detail['loc'])}: {detail['msg']}")
        return None


def _check_references(resources: Sequence[Resource], labels: dict[int, str], problems: list[str]) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for resource in resources:
        identity = _identity(resource)
        if identity in seen:
            problems.append(
                f"{labels[id(resource)]}: metadata.name: {resource.describe()} is also defined in {seen[identity]}"
            )
        seen.setdefault(identity, labels[id(resource)])

    services = {(s.namespace, s.name) for s in resources if isinstance(s, Service)}

    def check_service_ref(
        resource: Resource, path: str, api_version: str, kind: str, name: str, namespace: str | None
    ) -> None:
        if not same_kind(api_version, kind, Service):
            problems.append(
                f"{labels[id(resource)]}: {path}: knit can resolve references to a Service "
                f"(serving.knit.dev/v1); got {api_version} {kind}"
            )
        elif (namespace or resource.namespace, name) not in services:
            problems.append(f"{labels[id(resource)]}: {path}.name: no Service {name!r} in these manifests")

    for resource in resources:
        if isinstance(resource, Service):
            for path, message in service_problems(resource):
                problems.append(f"{labels[id(resource)]}: {path}: {message}")
        if isinstance(resource, (KafkaSource, SinkBinding)) and resource.spec.sink.ref:
            ref = resource.spec.sink.ref
            check_service_ref(resource, "spec.sink.ref", ref.api_version, ref.kind, ref.name, ref.namespace)
        if isinstance(resource, SinkBinding):
            subject = resource.spec.subject
            check_service_ref(
                resource, "spec.subject", subject.api_version, subject.kind, subject.name, subject.namespace
            )


def load_manifests(paths: Iterable[Path | str]) -> Manifests:
    """Read and validate every resource in the given files and folders."""
    problems: list[str] = []
    resources: list[Resource] = []
    origins: dict[tuple[str, str, str], Path] = {}
    labels: dict[int, str] = {}
    for file in manifest_files(Path(p) for p in paths):
        try:
            documents = [d for d in yaml.safe_load_all(file.read_text()) if d is not None]
        except yaml.YAMLError as error:
            problems.append(f"{file}: not valid YAML: {error}".replace("\n", " "))
            continue
        for index, document in enumerate(documents):
            where = f"{file}" if len(documents) == 1 else f"{file}[{index}]"
            resource = _parse_document(document, where, problems)
            if resource is not None:
                resources.append(resource)
                labels[id(resource)] = f"{where} ({resource.kind} {resource.name})"
                origins.setdefault(_identity(resource), file.resolve())
    _check_references(resources, labels, problems)
    if problems:
        raise InvalidManifests(problems)
    return Manifests(tuple(resources), origins)
