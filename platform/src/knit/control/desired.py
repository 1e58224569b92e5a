"""The control core's rules for what runs, whatever the runtime (pure logic).

From applied resources and a way to find addresses (`AddressOf`), this works out what the
platform must run and tell the processes it starts, the same on every runtime:

- the K_* contract each instance of a Revision gets (K_SINK and K_CE_OVERRIDES from its
  SinkBinding, and for sender identity K_OIDC_ISSUER, K_OIDC_JWKS, K_AUDIENCE, and with a
  SinkBinding K_OIDC_TOKEN_FILE and K_SINK_AUDIENCE);
- Destinations resolved to URLs, and the audience of tokens sent to them;
- the eventing adapters: a dispatcher per KafkaSource consumer and per Trigger, a ping
  process per PingSource, one ingress for every Broker, each with its configuration, and
  which resources cannot run now (a sink or Broker that does not exist) and why.

A runtime turns these into processes (local) or Deployments (Kubernetes); it decides nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from knit.eventing import dispatcher, identity, ingress, ping
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import DispatcherConfig
from knit.eventing.ingress import IngressConfig
from knit.eventing.ping import PingConfig
from knit.kafka.settings import BOOTSTRAP_ENV
from knit.resources.loading import Identity, destinations_of
from knit.resources.model import (
    Broker,
    Delivery,
    Destination,
    KafkaSource,
    PingSource,
    Resource,
    SinkBinding,
    Trigger,
)
from knit.serving.revisions import Revision
from knit.serving.state import Condition

AddressOf = Callable[[str, str, str], str]  # (kind, namespace, name) -> base URL
Exists = Callable[[str, str, str], bool]  # (kind, namespace, name) -> applied and not deleted

# The contract between the platform and the processes it starts, for sender identity.
ISSUER_ENV = "K_OIDC_ISSUER"  # the issuer a token must name (iss)
JWKS_ENV = "K_OIDC_JWKS"  # where the issuer's public keys are: a JWKS file path (or URL)
AUDIENCE_ENV = "K_AUDIENCE"  # the instance's own audience: tokens sent to it must name it (aud)
TOKEN_FILE_ENV = "K_OIDC_TOKEN_FILE"  # a SinkBinding subject's token for K_SINK, renewed in place
SINK_AUDIENCE_ENV = "K_SINK_AUDIENCE"  # K_SINK's audience (Knative: SinkBinding status.sinkAudience)
IDENTITY_VARIABLES = (ISSUER_ENV, JWKS_ENV, AUDIENCE_ENV, TOKEN_FILE_ENV, SINK_AUDIENCE_ENV)


@dataclass(frozen=True)
class Oidc:
    """What the platform's token issuer tells the processes it starts."""

    issuer: str
    jwks: str  # where the public keys are
    token_file: Callable[[str, str], str]  # (subject, audience) -> a file holding its token, kept fresh


def resolve_destination(destination: Destination, namespace: str, address_of: AddressOf) -> str:
    """A Destination as a URL: the referenced object's address, with `uri` as a path on it."""
    if destination.ref is None:
        assert destination.uri is not None
        return destination.uri
    ref = destination.ref
    base = address_of(ref.kind, ref.namespace or namespace, ref.name)
    return urljoin(base + "/", destination.uri.lstrip("/")) if destination.uri else base


def destination_audience(destination: Destination, namespace: str) -> str | None:
    """The audience of tokens sent to a Destination: its own `audience`, else the referenced
    object's; a bare URI has none, and then no token is sent (as in Knative)."""
    if destination.audience:
        return destination.audience
    ref = destination.ref
    if ref is None:
        return None
    return identity.audience_of(ref.kind, ref.namespace or namespace, ref.name, ref.api_version)


def _token_file(oidc: Oidc | None, subject: str, destination: Destination | None, namespace: str) -> str | None:
    audience = destination_audience(destination, namespace) if oidc and destination else None
    return oidc.token_file(subject, audience) if oidc and audience else None


def instance_env(
    revision: Revision, kafka_bootstrap: str, binding: SinkBinding | None, address_of: AddressOf, oidc: Oidc | None
) -> dict[str, str]:
    """What the platform tells every instance of a Revision, besides where to listen."""
    env = {
        "K_SERVICE": revision.service,
        "K_REVISION": revision.name,
        "K_CONFIGURATION": revision.service,
        BOOTSTRAP_ENV: kafka_bootstrap,
    }
    if binding:
        env["K_SINK"] = resolve_destination(binding.spec.sink, binding.namespace, address_of)
        if binding.spec.ce_overrides:
            env["K_CE_OVERRIDES"] = json.dumps({"extensions": binding.spec.ce_overrides.extensions})
    if oidc:
        env[ISSUER_ENV] = oidc.issuer
        env[JWKS_ENV] = oidc.jwks
        env[AUDIENCE_ENV] = identity.audience_of("Service", revision.namespace, revision.service)
        sink_audience = destination_audience(binding.spec.sink, binding.namespace) if binding else None
        if sink_audience:
            sender = identity.service_identity(revision.namespace, revision.template.spec.service_account_name)
            env[SINK_AUDIENCE_ENV] = sink_audience
            env[TOKEN_FILE_ENV] = oidc.token_file(sender, sink_audience)
    return env


def binding_for(service: str, namespace: str, bindings: Iterable[SinkBinding]) -> SinkBinding | None:
    return next(
        (b for b in bindings if (b.spec.subject.namespace or b.namespace, b.spec.subject.name) == (namespace, service)),
        None,
    )


def _delivery(
    delivery: Delivery | None, namespace: str, address_of: AddressOf, oidc: Oidc | None, subject: str
) -> dict[str, Any]:
    dead_letter = delivery.dead_letter_sink if delivery else None
    return {
        "delivery": DeliveryPolicy.from_spec(delivery),
        "dead_letter_sink": resolve_destination(dead_letter, namespace, address_of) if dead_letter else None,
        "dead_letter_sink_token_file": _token_file(oidc, subject, dead_letter, namespace),
    }


def dispatcher_config(
    source: KafkaSource, kafka_bootstrap: str, address_of: AddressOf, oidc: Oidc | None = None
) -> DispatcherConfig:
    """On the local runtime every KafkaSource reads the runtime's Kafka: the addresses in
    `bootstrapServers` are the cluster's (they name in-cluster hosts on Kubernetes)."""
    subject = identity.source_identity(source)
    return DispatcherConfig(
        name=source.name,
        namespace=source.namespace,
        bootstrap_servers=kafka_bootstrap,
        topics=tuple(source.spec.topics),
        consumer_group=source.consumer_group,
        sink=resolve_destination(source.spec.sink, source.namespace, address_of),
        initial_offset=source.spec.initial_offset,
        ordering=source.spec.ordering,
        ce_extensions=dict(source.spec.ce_overrides.extensions) if source.spec.ce_overrides else {},
        identity=subject,
        sink_token_file=_token_file(oidc, subject, source.spec.sink, source.namespace),
        **_delivery(source.spec.delivery, source.namespace, address_of, oidc, subject),
    )


def trigger_config(
    trigger: Trigger, broker: Broker, kafka_bootstrap: str, address_of: AddressOf, oidc: Oidc | None = None
) -> DispatcherConfig:
    """A Trigger's dispatcher: its own consumer group on the Broker's topic, its filter, and
    the Broker as where replies go. Delivery: the Trigger's, else the Broker's."""
    subject = identity.source_identity(trigger)
    broker_audience = identity.audience_of_resource(broker)
    return DispatcherConfig(
        name=trigger.name,
        namespace=trigger.namespace,
        bootstrap_servers=kafka_bootstrap,
        topics=(broker.topic,),
        consumer_group=trigger.consumer_group,
        sink=resolve_destination(trigger.spec.subscriber, trigger.namespace, address_of),
        initial_offset="latest",
        ordering="unordered",  # Knative's Kafka Broker default
        kind="Trigger",
        filter_attributes=dict(trigger.spec.filter.attributes) if trigger.spec.filter else None,
        filters=list(trigger.spec.filters) or None,
        reply=address_of("Broker", broker.namespace, broker.name),
        identity=subject,
        sink_token_file=_token_file(oidc, subject, trigger.spec.subscriber, trigger.namespace),
        reply_token_file=oidc.token_file(subject, broker_audience) if oidc else None,
        **_delivery(trigger.spec.delivery or broker.spec.delivery, trigger.namespace, address_of, oidc, subject),
    )


def ping_config(source: PingSource, address_of: AddressOf, oidc: Oidc | None = None) -> PingConfig:
    spec = source.spec
    subject = identity.source_identity(source)
    return PingConfig(
        name=source.name,
        namespace=source.namespace,
        schedule=spec.schedule,
        sink=resolve_destination(spec.sink, source.namespace, address_of),
        timezone=spec.timezone,
        content_type=spec.content_type,
        data=spec.data,
        data_base64=spec.data_base64,
        ce_extensions=dict(spec.ce_overrides.extensions) if spec.ce_overrides else {},
        identity=subject,
        sink_token_file=_token_file(oidc, subject, spec.sink, source.namespace),
    )


# --- the eventing adapters ---------------------------------------------------------------------

# The platform's own processes: (module run with python -m, the variable holding its configuration)
DISPATCHER = ("knit.eventing.dispatcher", dispatcher.CONFIG_ENV)
INGRESS = ("knit.eventing.ingress", ingress.CONFIG_ENV)
PING = ("knit.eventing.ping", ping.CONFIG_ENV)


@dataclass(frozen=True)
class AdapterProcess:
    """One process of an adapter: its name (log prefix), module and configuration."""

    name: str
    module: str
    config_env: str
    config: str  # JSON

    @classmethod
    def of(cls, name: str, adapter: tuple[str, str], config: Any) -> AdapterProcess:
        module, config_env = adapter
        return cls(name, module, config_env, config.to_json())


@dataclass(frozen=True)
class DesiredAdapter:
    """What one eventing resource runs; when this changes, its processes are replaced."""

    describe: str  # e.g. "KafkaSource default/feed"
    processes: tuple[AdapterProcess, ...]
    topics: tuple[str, ...]  # to create before the processes start
    what: str  # one line for the user: where it delivers


@dataclass(frozen=True)
class Eventing:
    """The desired eventing world: adapters by resource, the Brokers' ingress, and the
    resources that cannot run now with the reason (Knative: Ready False, e.g. SinkNotFound)."""

    adapters: dict[Identity, DesiredAdapter]
    ingress: IngressConfig | None
    blocked: dict[Identity, Condition]


_DEPENDENCY_CONDITIONS = {  # which condition says a named object is missing, as Knative names them
    "spec.sink": "SinkProvided",
    "spec.subscriber": "SubscriberResolved",
    "spec.delivery.deadLetterSink": "DeadLetterSinkResolved",
}


def _missing_reference(resource: Resource, exists: Exists) -> Condition | None:
    """Why a resource cannot run because something it names is not applied (or was deleted):
    the False condition (BrokerReady, SinkProvided, SubscriberResolved, DeadLetterSinkResolved)."""
    if isinstance(resource, Trigger) and not exists("Broker", resource.namespace, resource.spec.broker):
        message = f"spec.broker: no Broker {resource.spec.broker!r}; apply it (it was deleted or not applied yet)"
        return Condition("BrokerReady", "False", "BrokerDoesNotExist", message)
    for path, destination in destinations_of(resource):
        ref = destination.ref
        if ref and not exists(ref.kind, ref.namespace or resource.namespace, ref.name):
            message = f"{path}.ref: no {ref.kind} {ref.name!r}; apply it (it was deleted or not applied yet)"
            return Condition(_DEPENDENCY_CONDITIONS[path], "False", "SinkNotFound", message)
    return None


def desired_eventing(
    resources: Iterable[Resource], exists: Exists, kafka_bootstrap: str, address_of: AddressOf, oidc: Oidc | None
) -> Eventing:
    """What must run for these applied resources. A resource whose sink, dead-letter sink or
    Broker is missing runs nothing (its records wait in Kafka, its offsets stay committed) and is
    reported blocked; it runs again once what it names is applied."""
    adapters: dict[Identity, DesiredAdapter] = {}
    blocked: dict[Identity, Condition] = {}
    resources = list(resources)
    brokers = {(b.namespace, b.name): b for b in resources if isinstance(b, Broker)}
    for resource in resources:
        if not isinstance(resource, (KafkaSource, Trigger, PingSource)):
            continue
        key = (resource.kind, resource.namespace, resource.name)
        missing = _missing_reference(resource, exists)
        if missing:
            blocked[key] = missing
            continue
        if isinstance(resource, KafkaSource):
            config = dispatcher_config(resource, kafka_bootstrap, address_of, oidc)
            count = resource.spec.consumers
            processes = tuple(
                AdapterProcess.of(f"kafkasource/{resource.name}" + (f"/{n}" if count > 1 else ""), DISPATCHER, config)
                for n in range(1, count + 1)
            )
            what = f"dispatching to {config.sink}"
            adapters[key] = DesiredAdapter(resource.describe(), processes, config.topics, what)
        elif isinstance(resource, Trigger):
            broker = brokers[(resource.namespace, resource.spec.broker)]
            config = trigger_config(resource, broker, kafka_bootstrap, address_of, oidc)
            process = AdapterProcess.of(f"trigger/{resource.name}", DISPATCHER, config)
            adapters[key] = DesiredAdapter(resource.describe(), (process,), config.topics, f"subscriber {config.sink}")
        else:
            settings = ping_config(resource, address_of, oidc)
            process = AdapterProcess.of(f"pingsource/{resource.name}", PING, settings)
            what = f"{resource.spec.schedule} -> {settings.sink}"
            adapters[key] = DesiredAdapter(resource.describe(), (process,), (), what)
    routes = {f"{namespace}/{name}": broker.topic for (namespace, name), broker in sorted(brokers.items())}
    ingress_config = IngressConfig(kafka_bootstrap, routes) if routes else None
    return Eventing(adapters, ingress_config, blocked)
