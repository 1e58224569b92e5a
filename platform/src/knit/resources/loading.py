"""Loading manifests: YAML files (or folders of them) into validated resources.

Every problem is reported, one line each with the file, the object and the field path
(`spec.template.spec.containers[0].image: Field required`), and nothing is returned
when there is any: a half-valid set of manifests is never applied. Whatever a file
holds, loading ends in Manifests or InvalidManifests: text that is not UTF-8, YAML nested
too deeply for the parser, and aliases that nest a document too deeply (a recursive
alias) or expand it past a size no manifest has (an alias bomb) are problems like others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from knit.resources.model import (
    ADDRESSABLE,
    KINDS,
    Broker,
    ConfigMap,
    Destination,
    KafkaSource,
    KReference,
    PingSource,
    Resource,
    Service,
    SinkBinding,
    Subject,
    Trigger,
    accepted_api_versions,
    document_kind,
    same_kind,
)

R = TypeVar("R", bound=Resource)
Identity = tuple[str, str, str]  # (kind, namespace, name)
# Admission's rules, given every resource read: (resource, field path, message) per problem.
Check = Callable[[Sequence[Resource]], Iterable[tuple[Resource, str, str]]]
YAML_SUFFIXES = (".yaml", ".yml")
# A Service nests about 10 levels (spec.template.spec.containers[0].env[0].valueFrom...);
# Trigger filters nest as deep as their author likes, but not this deep.
MAX_DEPTH = 64
# Values in one document once aliases are expanded: far more than any manifest has.
MAX_VALUES = 100_000


class InvalidManifests(ValueError):
    """One or more manifests are wrong; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Manifests:
    """A validated set of resources and the file each came from."""

    resources: tuple[Resource, ...]
    origins: dict[Identity, Path] = field(default_factory=dict)

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

    @property
    def ping_sources(self) -> list[PingSource]:
        return self.of_kind(PingSource)

    @property
    def brokers(self) -> list[Broker]:
        return self.of_kind(Broker)

    @property
    def triggers(self) -> list[Trigger]:
        return self.of_kind(Trigger)

    def service(self, name: str, namespace: str = "default") -> Service | None:
        return next((s for s in self.services if (s.name, s.namespace) == (name, namespace)), None)

    def folder_of(self, resource: Resource) -> Path:
        """The folder of the file a resource came from: relative paths in it start there
        (the current folder for one that came from no file, as from the Kubernetes API)."""
        origin = self.origins.get(_identity(resource))
        return origin.parent if origin else Path()


def _identity(resource: Resource) -> Identity:
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


def _shape_problem(document: Any) -> str | None:
    """Why a document cannot be validated safely (None when it can): it nests deeper than
    MAX_DEPTH (a recursive alias nests forever) or expands to more than MAX_VALUES values.
    Iterative, so the check itself cannot run out of stack."""
    values, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            return f"more than {MAX_VALUES} values once YAML aliases are expanded; write the manifest out plainly"
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if children and depth >= MAX_DEPTH:
            return (
                f"nested more than {MAX_DEPTH} levels deep, deeper than any manifest (or a YAML alias contains itself)"
            )
        stack.extend((child, depth + 1) for child in children)
    return None


def _parse_document(document: Any, where: str, problems: list[str]) -> Resource | None:
    if not isinstance(document, dict):
        problems.append(f"{where}: expected a mapping with apiVersion and kind; got {type(document).__name__}")
        return None
    shape = _shape_problem(document)
    if shape is not None:
        problems.append(f"{where}: {shape}")
        return None
    given_kind = document.get("kind")
    kind = document_kind(document) if isinstance(given_kind, str) else None
    if kind is None:
        known = ", ".join(KINDS)
        problems.append(f"{where}: kind: unknown kind {given_kind!r}; knit knows {known}")
        return None
    metadata = document.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, dict) else "?"
    label = f"{where} ({kind.__name__} {name})"
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


def _check_references(
    resources: Sequence[Resource], labels: dict[int, str], problems: list[str], known: Set[Identity] | None
) -> None:
    """Each name defined once, and each reference of a kind it may name. With `known` (what is
    applied already), the objects referred to must exist too; None: not checked (a cluster's
    objects arrive in any order, and one that names a missing object shows as not ready)."""
    seen: dict[Identity, str] = {}
    for resource in resources:
        identity = _identity(resource)
        if identity in seen:
            problems.append(
                f"{labels[id(resource)]}: metadata.name: {resource.describe()} is also defined in {seen[identity]}"
            )
        seen.setdefault(identity, labels[id(resource)])
    existing = None if known is None else set(seen) | set(known)

    def check(resource: Resource, path: str, ref: KReference | Subject, kinds: tuple[type[Resource], ...]) -> None:
        kind = next((k for k in kinds if same_kind(ref.api_version, ref.kind, k)), None)
        if kind is None:
            accepted = " or ".join(f"{k.__name__} ({k.GROUP}/v1)" for k in kinds)
            got = f"{ref.api_version} {ref.kind}"
            problems.append(f"{labels[id(resource)]}: {path}: must refer to a {accepted}; got {got}")
        elif existing is not None and (kind.__name__, ref.namespace or resource.namespace, ref.name) not in existing:
            problems.append(f"{labels[id(resource)]}: {path}.name: no {kind.__name__} {ref.name!r} exists")

    for resource in resources:
        for path, destination in destinations_of(resource):
            if destination.ref:
                check(resource, f"{path}.ref", destination.ref, ADDRESSABLE)
        if isinstance(resource, SinkBinding):
            check(resource, "spec.subject", resource.spec.subject, (Service,))
        if (
            isinstance(resource, Trigger)
            and existing is not None
            and ("Broker", resource.namespace, resource.spec.broker) not in existing
        ):
            problems.append(f"{labels[id(resource)]}: spec.broker: no Broker {resource.spec.broker!r} exists")


def destinations_of(resource: Resource) -> list[tuple[str, Destination]]:
    """Every (path, Destination) a resource sends events to."""
    found: list[tuple[str, Destination]] = []
    spec = getattr(resource, "spec", None)
    for field_name, path in (("sink", "spec.sink"), ("subscriber", "spec.subscriber")):
        destination = getattr(spec, field_name, None)
        if isinstance(destination, Destination):
            found.append((path, destination))
    delivery = getattr(spec, "delivery", None)
    if delivery is not None and delivery.dead_letter_sink is not None:
        found.append(("spec.delivery.deadLetterSink", delivery.dead_letter_sink))
    return found


def read_manifests(
    paths: Iterable[Path | str], known: Set[Identity] = frozenset(), check: Check | None = None
) -> Manifests:
    """Read and validate every resource in the given files and folders. References may
    name resources in these files or in `known` (kind, namespace, name): ones already applied.
    `check` adds admission's rules (knit.admission.load_manifests is what callers use)."""
    problems: list[str] = []
    documents: list[tuple[str, Any, Path | None]] = []
    for file in manifest_files(Path(p) for p in paths):
        try:
            text = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(f"{file}: not UTF-8 text ({error}); save it as UTF-8")
            continue
        try:
            in_file = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            problems.append(f"{file}: not valid YAML: {error}".replace("\n", " "))
            continue
        except RecursionError:  # PyYAML's parser recurses once per level of nesting
            problems.append(
                f"{file}: not valid YAML: nested too deeply to read (at most {MAX_DEPTH} levels are accepted)"
            )
            continue
        for index, document in enumerate(in_file):
            where = f"{file}" if len(in_file) == 1 else f"{file}[{index}]"
            documents.append((where, document, file.resolve()))
    return read_documents(documents, known, check, problems)


def read_documents(
    documents: Iterable[tuple[str, Any, Path | None]],
    known: Set[Identity] | None = frozenset(),
    check: Check | None = None,
    problems: list[str] | None = None,
) -> Manifests:
    """Validate documents already parsed: (where, document, file it came from or None) each.
    As read_manifests, which reads them from files; the Kubernetes controller reads them from
    the API. InvalidManifests lists every problem (`problems` holds any found before)."""
    problems = problems if problems is not None else []
    resources: list[Resource] = []
    origins: dict[Identity, Path] = {}
    labels: dict[int, str] = {}
    for where, document, origin in documents:
        resource = _parse_document(document, where, problems)
        if resource is not None:
            resources.append(resource)
            labels[id(resource)] = f"{where} ({resource.kind} {resource.name})"
            if origin is not None:
                origins.setdefault(_identity(resource), origin)
    _check_references(resources, labels, problems, known)
    for resource, path, message in check(resources) if check else ():
        problems.append(f"{labels[id(resource)]}: {path}: {message}")
    if problems:
        raise InvalidManifests(problems)
    return Manifests(tuple(resources), origins)
