"""How the local runtime runs what the control core decided (pure logic).

Each instance of a Revision is a process: the container's `command` + `args` (with
Kubernetes' `$(VAR)` expansion), in its `workingDir` (relative to the manifest's folder),
with its `env`, the platform's K_* contract (knit.control.desired.instance_env) and PORT
and HOST. Each adapter (dispatcher, ping, the Brokers' ingress) is `python -m <module>`
with its configuration as JSON in one variable.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from knit.control.desired import AddressOf, Oidc, instance_env
from knit.host import HOST
from knit.resources.model import Probe, SinkBinding
from knit.serving.revisions import Revision

_VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


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
    env.update(PORT=str(port), HOST=HOST, **instance_env(revision, kafka_bootstrap, binding, address_of, oidc))
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
