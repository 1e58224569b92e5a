"""What the local runtime will run, worked out before anything starts (pure logic).

Each instance of a Revision is a process: the container's `command` + `args`
(with Kubernetes' `$(VAR)` expansion), in its `workingDir` (relative to the manifest's
folder), with its `env` plus what the platform injects: PORT, HOST, K_SERVICE,
K_REVISION, K_CONFIGURATION, KAFKA_BOOTSTRAP_SERVERS and, from a SinkBinding, K_SINK
and K_CE_OVERRIDES. Each KafkaSource becomes a dispatcher process.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import CONFIG_ENV, DispatcherConfig
from knit.kafka.settings import BOOTSTRAP_ENV
from knit.resources.model import Destination, KafkaSource, Probe, SinkBinding
from knit.serving.revisions import Revision

HOST = "127.0.0.1"
_VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

AddressOf = Callable[[str, str], str]  # (namespace, service name) -> base URL


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
    """A Destination as a URL: the referenced Service's address, with `uri` as a path on it."""
    if destination.ref is None:
        assert destination.uri is not None
        return destination.uri
    base = address_of(destination.ref.namespace or namespace, destination.ref.name)
    return urljoin(base + "/", destination.uri.lstrip("/")) if destination.uri else base


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


def dispatcher_config(source: KafkaSource, kafka_bootstrap: str, address_of: AddressOf) -> DispatcherConfig:
    """On the local runtime every KafkaSource reads the runtime's Kafka: the addresses in
    `bootstrapServers` are the cluster's (they name in-cluster hosts on Kubernetes)."""
    delivery = source.spec.delivery
    dead_letter = delivery.dead_letter_sink if delivery else None
    return DispatcherConfig(
        name=source.name,
        namespace=source.namespace,
        bootstrap_servers=kafka_bootstrap,
        topics=tuple(source.spec.topics),
        consumer_group=source.consumer_group,
        sink=resolve_destination(source.spec.sink, source.namespace, address_of),
        initial_offset=source.spec.initial_offset,
        ordering=source.spec.ordering,
        delivery=DeliveryPolicy.from_spec(delivery),
        dead_letter_sink=resolve_destination(dead_letter, source.namespace, address_of) if dead_letter else None,
        ce_extensions=dict(source.spec.ce_overrides.extensions) if source.spec.ce_overrides else {},
    )


def dispatcher_plan(
    source: KafkaSource, config: DispatcherConfig, port: int, base_env: Mapping[str, str]
) -> ProcessPlan:
    return ProcessPlan(
        name=f"kafkasource/{source.name}",
        argv=(sys.executable, "-m", "knit.eventing.dispatcher"),
        env={**base_env, CONFIG_ENV: config.to_json(), "PORT": str(port), "HOST": HOST},
        cwd=Path.cwd(),
        port=port,
        probe=Probe.model_validate({"httpGet": {"path": "/readyz"}}),
    )
