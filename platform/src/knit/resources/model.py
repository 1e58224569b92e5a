"""Knative-shaped resources: field names, defaults and meaning follow Knative.

`serving.knit.dev/v1` Service; `sources.knit.dev/v1` KafkaSource, PingSource and
SinkBinding; `eventing.knit.dev/v1` Broker and Trigger; and Kubernetes' ConfigMap. The
upstream groups (`serving.knative.dev`, `sources.knative.dev`, `eventing.knative.dev`) are
accepted as aliases so a Knative user's YAML loads unchanged. Unknown fields are errors,
so a typo is never ignored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
SubdomainName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)]
NonEmpty = Annotated[str, Field(min_length=1)]


class Spec(BaseModel):
    """Base of every part of a resource: camelCase in YAML, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ObjectMeta(Spec):
    name: Name
    namespace: Name = "default"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Resource(Spec):
    """A top-level object: apiVersion, kind, metadata, spec."""

    GROUP: ClassVar[str]
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ()
    VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)

    api_version: str
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


# --- Serving ---------------------------------------------------------------------------


class EnvVar(Spec):
    name: NonEmpty
    value: str = ""


class HTTPGetAction(Spec):
    path: str = "/"
    port: int | None = None
    scheme: Literal["HTTP"] = "HTTP"


class TCPSocketAction(Spec):
    port: int | None = None


class Probe(Spec):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int = Field(0, ge=0)
    period_seconds: int = Field(10, ge=0)
    timeout_seconds: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)
    failure_threshold: int = Field(3, ge=1)


class ContainerPort(Spec):
    container_port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP"] = "TCP"


class ResourceRequirements(Spec):
    limits: dict[str, str | int | float] = {}
    requests: dict[str, str | int | float] = {}


class Container(Spec):
    """One container. On the local runtime it runs as a process: `command` + `args`, in
    `workingDir` (relative to the manifest's folder), with `env`; `image` is for Kubernetes."""

    name: str | None = None
    image: NonEmpty
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] = []
    args: list[str] = []
    working_dir: str | None = None
    env: list[EnvVar] = []
    ports: list[ContainerPort] = Field(default=[], max_length=1)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    resources: ResourceRequirements | None = None


class RevisionTemplateMeta(Spec):
    name: Name | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class RevisionSpec(Spec):
    # One serving container: Knative's multi-container revisions (sidecars) are not supported.
    containers: list[Container] = Field(min_length=1, max_length=1)
    container_concurrency: int = Field(0, ge=0, le=1000)
    timeout_seconds: int = Field(300, ge=1)
    # The identity its instances send events as (see knit.eventing.identity); Kubernetes'
    # field, whose default is the namespace's ServiceAccount `default`.
    service_account_name: SubdomainName | None = None

    @property
    def container(self) -> Container:
        return self.containers[0]


class RevisionTemplate(Spec):
    metadata: RevisionTemplateMeta = RevisionTemplateMeta()
    spec: RevisionSpec


class TrafficTarget(Spec):
    revision_name: Name | None = None
    latest_revision: bool | None = None
    percent: int | None = Field(None, ge=0, le=100)
    tag: Name | None = None


class ServiceSpec(Spec):
    template: RevisionTemplate
    traffic: list[TrafficTarget] = []


class Service(Resource):
    GROUP: ClassVar[str] = "serving.knit.dev"
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ("serving.knative.dev",)

    kind: Literal["Service"]
    spec: ServiceSpec

    @property
    def cluster_local(self) -> bool:
        """Knative's label: reachable only from inside the platform, not from a browser."""
        return self.metadata.labels.get("networking.knative.dev/visibility") == "cluster-local"


# --- Eventing --------------------------------------------------------------------------


class KReference(Spec):
    api_version: NonEmpty
    kind: NonEmpty
    name: Name
    namespace: Name | None = None


class Destination(Spec):
    """Where events go: a reference to an addressable object, a URI, or both (then the
    URI is a path relative to the object's address), as in Knative's duck/v1 Destination.
    `audience` is the audience of the tokens sent there; a referenced object announces
    its own, so it is needed only for a bare URI whose receiver checks tokens."""

    ref: KReference | None = None
    uri: str | None = None
    audience: NonEmpty | None = None

    @model_validator(mode="after")
    def _ref_or_uri(self) -> Destination:
        if self.ref is None and not self.uri:
            raise ValueError("needs a ref, a uri, or both")
        return self


class Delivery(Spec):
    """Knative's DeliverySpec. Unset fields take the KafkaSource defaults (see eventing)."""

    retry: int | None = Field(None, ge=0)
    backoff_policy: Literal["exponential", "linear"] | None = None
    backoff_delay: timedelta | None = None  # ISO-8601, e.g. PT0.2S
    timeout: timedelta | None = None
    dead_letter_sink: Destination | None = None


class CloudEventOverrides(Spec):
    extensions: dict[str, str] = {}


class KafkaSourceSpec(Spec):
    bootstrap_servers: list[NonEmpty] = Field(min_length=1)
    topics: list[NonEmpty] = Field(min_length=1)
    consumer_group: NonEmpty | None = None
    initial_offset: Literal["earliest", "latest"] = "latest"
    consumers: int = Field(1, ge=1)
    ordering: Literal["ordered", "unordered"] = "ordered"
    sink: Destination
    ce_overrides: CloudEventOverrides | None = None
    delivery: Delivery | None = None


class KafkaSource(Resource):
    GROUP: ClassVar[str] = "sources.knit.dev"
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ("sources.knative.dev",)
    VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1")

    kind: Literal["KafkaSource"]
    spec: KafkaSourceSpec

    @property
    def consumer_group(self) -> str:
        # Knative generates a group name from the source's identity when none is given.
        return self.spec.consumer_group or f"knit-kafkasource-{self.namespace}-{self.name}"


class Subject(Spec):
    api_version: NonEmpty
    kind: NonEmpty
    name: Name
    namespace: Name | None = None


class SinkBindingSpec(Spec):
    subject: Subject
    sink: Destination
    ce_overrides: CloudEventOverrides | None = None


class SinkBinding(Resource):
    GROUP: ClassVar[str] = "sources.knit.dev"
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ("sources.knative.dev",)
    VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1")

    kind: Literal["SinkBinding"]
    spec: SinkBindingSpec


class PingSourceSpec(Spec):
    schedule: NonEmpty  # 5-field cron
    timezone: str | None = None  # IANA zone; the machine's local time when unset
    content_type: str | None = None
    data: str | None = None
    data_base64: str | None = None
    sink: Destination
    ce_overrides: CloudEventOverrides | None = None

    @model_validator(mode="after")
    def _one_kind_of_data(self) -> PingSourceSpec:
        if self.data is not None and self.data_base64 is not None:
            raise ValueError("data and dataBase64 may not both be set")
        return self


class PingSource(Resource):
    GROUP: ClassVar[str] = "sources.knit.dev"
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ("sources.knative.dev",)
    VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta2")

    kind: Literal["PingSource"]
    spec: PingSourceSpec


class BrokerSpec(Spec):
    config: KReference | None = None  # Knative's Kafka Broker config; on knit, Kafka is the runtime's
    delivery: Delivery | None = None  # the default for its Triggers


class Broker(Resource):
    """A Kafka-backed Broker: an HTTP ingress that stores CloudEvents in a topic of its own."""

    GROUP: ClassVar[str] = "eventing.knit.dev"
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ("eventing.knative.dev",)

    kind: Literal["Broker"]
    spec: BrokerSpec = BrokerSpec()

    @property
    def topic(self) -> str:
        return f"knative-broker-{self.namespace}-{self.name}"


class TriggerFilter(Spec):
    attributes: dict[str, str] = {}


class TriggerSpec(Spec):
    broker: Name
    filter: TriggerFilter | None = None
    filters: list[dict[str, Any]] = []  # checked by knit.eventing.filters when manifests load
    subscriber: Destination
    delivery: Delivery | None = None


class Trigger(Resource):
    GROUP: ClassVar[str] = "eventing.knit.dev"
    GROUP_ALIASES: ClassVar[tuple[str, ...]] = ("eventing.knative.dev",)

    kind: Literal["Trigger"]
    spec: TriggerSpec

    @property
    def consumer_group(self) -> str:
        return f"knative-trigger-{self.namespace}-{self.name}"


# --- Configuration -----------------------------------------------------------------------


class ConfigMap(Resource):
    """Kubernetes' ConfigMap; knit reads `config-autoscaler` (Knative's global autoscaler
    settings, same keys) and passes any other through to Kubernetes."""

    GROUP: ClassVar[str] = ""  # the core group: apiVersion is just "v1"

    kind: Literal["ConfigMap"]
    data: dict[str, str] = {}


KINDS: dict[str, type[Resource]] = {
    kind.__name__: kind for kind in (Service, KafkaSource, SinkBinding, PingSource, Broker, Trigger, ConfigMap)
}


def served_api_version(kind: type[Resource]) -> str:
    """The apiVersion a cluster serves a knit kind at: its CRD's storage version, the first."""
    return f"{kind.GROUP}/{kind.VERSIONS[0]}"


# What a sink may refer to: objects with an address.
ADDRESSABLE = (Service, Broker)


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def accepted_api_versions(kind: type[Resource]) -> list[str]:
    return [
        f"{group}/{version}" if group else version
        for group in (kind.GROUP, *kind.GROUP_ALIASES)
        for version in kind.VERSIONS
    ]


def same_kind(reference_api_version: str, reference_kind: str, kind: type[Resource]) -> bool:
    """Does a reference (apiVersion + kind) point at this kind, with either group name?"""
    return reference_kind == kind.__name__ and api_group(reference_api_version) in (
        kind.GROUP,
        *kind.GROUP_ALIASES,
    )


def document_kind(document: dict[str, Any]) -> type[Resource] | None:
    return KINDS.get(document.get("kind", ""))
