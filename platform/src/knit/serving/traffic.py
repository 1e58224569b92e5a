"""Traffic: a Service's `spec.traffic` resolved into a Route, as Knative's route/traffic.

Each target names a Revision (`revisionName`) or follows the latest ready one
(`latestRevision: true`); `percent` splits the Service's URL between targets; a `tag`
gives its target a URL of its own (`<tag>-<service>.<namespace>.<domain>`), whatever its
percent. No traffic block means 100% to the latest ready Revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from knit.resources.model import TrafficTarget

Problem = tuple[str, str]  # (field path, message)


@dataclass(frozen=True)
class RouteTarget:
    revision: str | None  # None: follows the latest ready Revision, and there is none yet
    percent: int
    tag: str | None = None
    latest: bool = False


@dataclass(frozen=True)
class Route:
    targets: tuple[RouteTarget, ...]

    @property
    def split(self) -> dict[str, int]:
        """Percent of the Service's URL per Revision (targets naming one Revision merged)."""
        shares: dict[str, int] = {}
        for target in self.targets:
            if target.revision and target.percent:
                shares[target.revision] = shares.get(target.revision, 0) + target.percent
        return shares

    @property
    def tags(self) -> dict[str, str]:
        return {t.tag: t.revision for t in self.targets if t.tag and t.revision}

    @property
    def revisions(self) -> set[str]:
        """Every Revision the Route can send a request to (the "routable" ones)."""
        return {t.revision for t in self.targets if t.revision and (t.percent or t.tag)}


def static_problems(traffic: Sequence[TrafficTarget]) -> list[Problem]:
    """What is wrong with a traffic block on its own (no Revisions needed to tell)."""
    problems: list[Problem] = []
    tags: dict[str, int] = {}
    for index, target in enumerate(traffic):
        here = f"spec.traffic[{index}]"
        if target.revision_name and target.latest_revision:
            problems.append((f"{here}.latestRevision", "may not be true when revisionName is set"))
        if target.latest_revision is False and not target.revision_name:
            problems.append((f"{here}.revisionName", "is required when latestRevision is false"))
        if target.tag:
            if target.tag in tags:
                problems.append((f"{here}.tag", f"{target.tag!r} is also the tag of spec.traffic[{tags[target.tag]}]"))
            tags.setdefault(target.tag, index)
    total = sum(target.percent or 0 for target in traffic)
    if traffic and total != 100:
        problems.append(("spec.traffic", f"percents must add up to 100; they add up to {total}"))
    return problems


def resolve(traffic: Sequence[TrafficTarget], revisions: Sequence[str], latest_ready: str | None) -> Route:
    """The Route for a traffic block, given the Service's Revisions (oldest first) and the
    latest ready one. Raises InvalidTraffic when a target names an unknown Revision."""
    if not traffic:
        return Route((RouteTarget(latest_ready, 100, latest=True),))
    known = ", ".join(revisions) or "none"
    unknown = [
        (f"spec.traffic[{i}].revisionName", f"no Revision {t.revision_name!r}; this Service has {known}")
        for i, t in enumerate(traffic)
        if t.revision_name and t.revision_name not in revisions
    ]
    if unknown:
        raise InvalidTraffic(unknown)
    return Route(
        tuple(
            RouteTarget(
                revision=target.revision_name or latest_ready,
                percent=target.percent or 0,
                tag=target.tag,
                latest=not target.revision_name,
            )
            for target in traffic
        )
    )


class InvalidTraffic(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
