"""From a request's Host to a Revision: Knative's host names, percent splits and tags.

A Service is reached at `{service}.{namespace}.{domain}` and each tag at
`{tag}-{service}.{namespace}.{domain}` (local domain: `localhost`, which browsers and
curl resolve to 127.0.0.1). A split picks Revisions by smooth weighted round robin, so
over any run of requests each Revision gets its share to within one request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_DOMAIN = "localhost"


@dataclass
class Split:
    """Percentages over Revisions; `pick` spreads requests exactly in that proportion."""

    weights: dict[str, int]
    _current: dict[str, int] = field(default_factory=dict)

    def pick(self) -> str | None:
        if not self.weights:
            return None
        total = sum(self.weights.values())
        for revision, weight in self.weights.items():
            self._current[revision] = self._current.get(revision, 0) + weight
        chosen = max(self.weights, key=lambda revision: self._current[revision])
        self._current[chosen] -= total
        return chosen


@dataclass(frozen=True)
class RouteEntry:
    service: str
    namespace: str
    split: Split
    cluster_local: bool = False
    not_ready: str = ""  # why the Route has no Revision to send to yet, for the 503


class RouteTable:
    """Host names to routes. Rebuilt by the runtime whenever a Route changes."""

    def __init__(self, domain: str = DEFAULT_DOMAIN) -> None:
        self.domain = domain
        self._hosts: dict[str, RouteEntry] = {}
        self._services: dict[tuple[str, str], RouteEntry] = {}

    def host_of(self, service: str, namespace: str, tag: str | None = None) -> str:
        return f"{tag + '-' if tag else ''}{service}.{namespace}.{self.domain}"

    def set_route(
        self,
        service: str,
        namespace: str,
        split: Mapping[str, int],
        tags: Mapping[str, str],
        cluster_local: bool,
        not_ready: str = "",
    ) -> None:
        for host in [h for h, e in self._hosts.items() if (e.service, e.namespace) == (service, namespace)]:
            del self._hosts[host]
        previous = self._services.get((namespace, service))
        if previous and previous.split.weights == dict(split) and previous.not_ready == not_ready:
            entry = previous  # keep the round robin's position
        else:
            entry = RouteEntry(service, namespace, Split(dict(split)), cluster_local, not_ready)
        self._services[(namespace, service)] = entry
        if cluster_local:
            return
        self._hosts[self.host_of(service, namespace)] = entry
        for tag, revision in tags.items():
            self._hosts[self.host_of(service, namespace, tag)] = RouteEntry(
                service, namespace, Split({revision: 100}), cluster_local
            )

    def remove_service(self, service: str, namespace: str) -> None:
        self._services.pop((namespace, service), None)
        for host in [h for h, e in self._hosts.items() if (e.service, e.namespace) == (service, namespace)]:
            del self._hosts[host]

    def match(self, host: str) -> RouteEntry | None:
        """The route for a Host header (any port stripped), or None."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return self._hosts.get(name.lower().rstrip("."))

    def service_route(self, service: str, namespace: str) -> RouteEntry | None:
        """The Service's default route, for its cluster-local address."""
        return self._services.get((namespace, service))

    def known_hosts(self) -> list[str]:
        return sorted(self._hosts)

    def hosts(self) -> dict[str, RouteEntry]:
        """Every public host name and its route (tags included)."""
        return dict(self._hosts)


CLUSTER_DOMAIN = "svc.cluster.local"


def cluster_local_service(host: str) -> tuple[str, str] | None:
    """(service, namespace) from a cluster-local host name, as Kubernetes' DNS gives it:
    `{service}.{namespace}`, `….svc` or `….svc.cluster.local` (any port stripped)."""
    name = host.rsplit(":", 1)[0].lower().rstrip(".")
    for suffix in ("." + CLUSTER_DOMAIN, ".svc", ""):
        if name.endswith(suffix):
            parts = name.removesuffix(suffix).split(".") if suffix else name.split(".")
            if len(parts) == 2 and all(parts):
                return parts[0], parts[1]
    return None
