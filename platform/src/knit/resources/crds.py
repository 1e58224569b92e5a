"""CustomResourceDefinitions for the knit groups, generated from the resource models.

One definition of each field: the pydantic models in knit.resources.model. Their JSON
schemas become Kubernetes' structural schemas (every `$ref` inlined, optional fields
`nullable`, no defaults: the controller applies the models' defaults when it reads an
object, as `knit dev` does). What a schema cannot say (a Destination needs a ref or a
URI, admission's cross-field rules) is checked by the controller with the same code as
locally. `knit crds` prints them; manifests/platform/crds.yaml is that output, checked in,
and a test fails when the two drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from knit.resources.model import (
    Broker,
    KafkaSource,
    PingSource,
    Resource,
    RevisionSpec,
    RevisionTemplate,
    Service,
    SinkBinding,
    Spec,
    TrafficTarget,
    Trigger,
)

# Keywords a structural schema keeps as they are; everything else is rewritten or dropped:
# title; description (docstrings are written for Python readers); default; and `format`
# (pydantic's "duration" is ISO 8601, Kubernetes' is Go's).
_KEPT = ("type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
         "minItems", "maxItems", "required", "x-kubernetes-int-or-string")  # fmt: skip
_READY = '.status.conditions[?(@.type=="Ready")]'


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0  # 1: only with `kubectl get -o wide`


_READY_COLUMNS = (Column("Ready", f"{_READY}.status"), Column("Reason", f"{_READY}.reason"))
_AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Definition:
    """One custom resource: its kind, the model of its spec, and how kubectl shows it."""

    kind: str
    group: str
    versions: tuple[str, ...]
    spec: type[BaseModel]
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def plural(self) -> str:
        return self.kind.lower() + "s"


class _Configuration(Spec):
    template: RevisionTemplate


class _Route(Spec):
    traffic: tuple[TrafficTarget, ...] = ()


def _resource(kind: type[Resource], short_names: tuple[str, ...], columns: tuple[Column, ...]) -> Definition:
    spec = kind.model_fields["spec"].annotation
    assert isinstance(spec, type) and issubclass(spec, BaseModel)
    return Definition(kind.__name__, kind.GROUP, kind.VERSIONS, spec, short_names, columns)


_SERVING = Service.GROUP
DEFINITIONS: tuple[Definition, ...] = (
    _resource(
        Service,
        ("ksvc",),
        (
            Column("URL", ".status.url"),
            Column("LatestCreated", ".status.latestCreatedRevisionName"),
            Column("LatestReady", ".status.latestReadyRevisionName"),
            *_READY_COLUMNS,
        ),
    ),
    # What the controller derives from a Service, as Knative does; never applied by people.
    Definition(
        "Configuration",
        _SERVING,
        ("v1",),
        _Configuration,
        ("config", "cfg"),
        (
            Column("LatestCreated", ".status.latestCreatedRevisionName"),
            Column("LatestReady", ".status.latestReadyRevisionName"),
            *_READY_COLUMNS,
        ),
    ),
    Definition(
        "Revision",
        _SERVING,
        ("v1",),
        RevisionSpec,
        ("rev",),
        (
            Column("Config Name", r".metadata.labels.serving\.knit\.dev/configuration"),
            Column("Generation", r".metadata.labels.serving\.knit\.dev/configurationGeneration"),
            *_READY_COLUMNS,
            Column("Actual Replicas", ".status.actualReplicas", "integer"),
            Column("Desired Replicas", ".status.desiredReplicas", "integer"),
        ),
    ),
    Definition("Route", _SERVING, ("v1",), _Route, ("rt",), (Column("URL", ".status.url"), *_READY_COLUMNS)),
    _resource(
        KafkaSource,
        ("kafkasrc",),
        (
            Column("Topics", ".spec.topics"),
            Column("Sink", ".status.sinkUri"),
            *_READY_COLUMNS,
            _AGE,
        ),
    ),
    _resource(PingSource, ("pingsrc",), (Column("Schedule", ".spec.schedule"), *_READY_COLUMNS, _AGE)),
    _resource(SinkBinding, ("sinkbinding",), (Column("Sink", ".status.sinkUri"), *_READY_COLUMNS, _AGE)),
    _resource(Broker, (), (Column("URL", ".status.address.url"), *_READY_COLUMNS, _AGE)),
    _resource(Trigger, (), (Column("Broker", ".spec.broker"), *_READY_COLUMNS, _AGE)),
)


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON-schema node as a Kubernetes structural schema node."""
    if "$ref" in node:
        return _structural({**defs[node["$ref"].rpartition("/")[2]], **_without(node, "$ref")}, defs)
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        rest = _without(node, "anyOf")
        if len(options) == 1:
            schema = _structural({**options[0], **rest}, defs)
        elif {option.get("type") for option in options} <= {"string", "integer", "number"}:
            # A quantity such as "500m", 1 or 0.5, as Kubernetes' own resource fields.
            schema = _structural({**rest, "x-kubernetes-int-or-string": True}, defs)
        else:
            raise ValueError(f"no structural schema for anyOf {options}")
        return {**schema, "nullable": True} if nullable else schema
    schema = {key: node[key] for key in _KEPT if key in node}
    if "const" in node:
        schema["enum"] = [node["const"]]
    if "properties" in node:
        schema["properties"] = {name: _structural(child, defs) for name, child in node["properties"].items()}
    if "items" in node:
        schema["items"] = _structural(node["items"], defs)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        schema["additionalProperties"] = _structural(extra, defs)
    elif extra is True or (node.get("type") == "object" and "properties" not in node):
        schema["x-kubernetes-preserve-unknown-fields"] = True  # free-form, checked by admission
    if not schema.get("type") and not schema.get("x-kubernetes-int-or-string"):
        schema["x-kubernetes-preserve-unknown-fields"] = True  # any JSON value (typing.Any)
    return schema


def _without(node: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != key and k not in ("title", "default")}


def spec_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    return _structural(_without(schema, "$defs"), schema.get("$defs", {}))


# Knative's duck-typed status: observedGeneration and conditions are checked, the rest is
# the kind's own (url, address, traffic, latest revisions, sinkUri...).
_CONDITION = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        name: {"type": "string"} for name in ("type", "status", "reason", "message", "lastTransitionTime", "severity")
    },
}
STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "conditions": {"type": "array", "items": _CONDITION},
    },
}


def crd(definition: Definition) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(definition.spec),
            "status": STATUS_SCHEMA,
        },
    }
    if definition.kind != "Broker":  # a Broker's spec may be left out
        schema["required"] = ["spec"]
    columns = [
        {"name": c.name, "type": c.type, "jsonPath": c.json_path, **({"priority": c.priority} if c.priority else {})}
        for c in definition.columns
    ]
    names = {
        "kind": definition.kind,
        "listKind": f"{definition.kind}List",
        "plural": definition.plural,
        "singular": definition.kind.lower(),
        "categories": ["all", "knit"],
    }
    if definition.short_names:
        names["shortNames"] = list(definition.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{definition.plural}.{definition.group}"},
        "spec": {
            "group": definition.group,
            "scope": "Namespaced",
            "names": names,
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == definition.versions[0],
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
                for version in definition.versions
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    return [crd(definition) for definition in DEFINITIONS]
