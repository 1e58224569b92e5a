"""What the local runtime will run, worked out before anything starts (pure logic).

Each instance of a Revision is a process: the container's `command` + `args`
(with Kubernetes' `$(VAR)` expansion), in its `workingDir` (relative to the manifest's
folder), with its `env` plus what the platform injects: PORT, HOST, K_SERVICE,
K_REVISION, K_CONFIGURATION, KAFKA_BOOTSTRAP_SERVERS and, from a SinkBinding, K_SINK
and K_CE_OVERRIDES. Each KafkaSource and Trigger becomes a dispatcher process, each
PingSource a ping process, and the Brokers share one ingress process.

Sender identity (see knit.eventing.identity): every instance learns how to verify the
tokens sent to it (K_OIDC_ISSUER, K_OIDC_JWKS, K_AUDIENCE); a SinkBinding's subject also
gets the file of its token for K_SINK (K_OIDC_TOKEN_FILE, K_SINK_AUDIENCE); dispatchers
and ping processes get token files for their sink, dead-letter sink and reply address.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from knit.eventing import identity
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import DispatcherConfig
from knit.eventing.ping import PingConfig
from knit.kafka.settings import BOOTSTRAP_ENV
from knit.resources.model import Broker, Delivery, Destination, KafkaSource, PingSource, Probe, SinkBinding, Trigger
from knit.serving.revisions import Revision

HOST = "127.0.0.1"
_VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

AddressOf = Callable[[str, str, str], str]  # (kind, namespace, name) -> base URL

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


@dataclass(frozen=True)
class ProcessPlan:
    name: str  # what log lines are prefixed with
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    port: int
    probe: Probe | None


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' rule for command and args: $(VAR) becomes VAR's value when VAR is set,
    stays as written when not; $$ escapes a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE_REFERENCE.sub(replace, text)


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


def binding_for(service: str, namespace: str, bindings: Iterable[SinkBinding]) -> SinkBinding | None:
    return next(
        (b for b in bindings if (b.spec.subject.namespace or b.namespace, b.spec.subject.name) == (namespace, service)),
        None,
    )


def instance_plan(
    name: str,
    revision: Revision,
    folder: Path,
    port: int,
    kafka_bootstrap: str,
    binding: SinkBinding | None,
    address_of: AddressOf,
    base_env: Mapping[str, str],
    oidc: Oidc | None = None,
) -> ProcessPlan:
    """How to run one instance of a Revision; `folder` is where its Service's manifest lives."""
    container = revision.template.spec.container
    env: dict[str, str] = {var.name: var.value for var in container.env}
    env.update(
        PORT=str(port),
        HOST=HOST,
        K_SERVICE=revision.service,
        K_REVISION=revision.name,
        K_CONFIGURATION=revision.service,
        **{BOOTSTRAP_ENV: kafka_bootstrap},
    )
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
    argv = [expand_references(part, env) for part in (*container.command, *container.args)]
    if not argv:
        raise ValueError(
            f"Revision {revision.name}: the local runtime runs a container's command + args, and this "
            "container has neither; add `command` (the image's entrypoint is not known locally)"
        )
    cwd = (folder / container.working_dir).resolve() if container.working_dir else folder
    return ProcessPlan(
        name=name,
        argv=tuple(argv),
        env={**base_env, **env},
        cwd=cwd,
        port=port,
        probe=container.readiness_probe,
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


def adapter_plan(name: str, module: str, config_env: str, config_json: str, port: int,
                 base_env: Mapping[str, str]) -> ProcessPlan:  # fmt: skip
    """A platform process (dispatcher, ingress, ping): `python -m <module>` with its
    configuration as JSON in the environment and /readyz on `port`."""
    return ProcessPlan(
        name=name,
        argv=(sys.executable, "-m", module),
        env={**base_env, config_env: config_json, "PORT": str(port), "HOST": HOST},
        cwd=Path.cwd(),
        port=port,
        probe=Probe.model_validate({"httpGet": {"path": "/readyz"}}),
    )
