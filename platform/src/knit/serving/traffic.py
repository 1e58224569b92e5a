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


def edit_traffic(
    current: Sequence[TrafficTarget], split: Sequence[str] = (), tags: Sequence[str] = (), untags: Sequence[str] = ()
) -> list[TrafficTarget]:
    """A traffic block changed as `kn service update` changes it.

    `split`: `REF=PERCENT` entries that replace every percent (REF is a Revision name,
    `@latest`, or a tag); `tags`: `REF=TAG` entries (REF a Revision name or `@latest`);
    `untags`: tags to remove. A target left with no percent and no tag is dropped.
    Raises ValueError for an entry that is not of its form.
    """
    targets = [t.model_dump(by_alias=True, exclude_none=True) for t in current] or [
        {"latestRevision": True, "percent": 100}
    ]

    def ref_of(target: dict) -> str:
        return "@latest" if target.get("latestRevision") or "revisionName" not in target else target["revisionName"]

    def pair(entry: str, form: str) -> tuple[str, str]:
        ref, sep, value = entry.partition("=")
        if not sep or not ref or not value:
            raise ValueError(f"{entry!r} must be of the form {form}")
        return ref, value

    def target_for(ref: str, **fields: object) -> dict:
        return {"latestRevision": True, **fields} if ref == "@latest" else {"revisionName": ref, **fields}

    for tag in untags:
        if not any(t.get("tag") == tag for t in targets):
            raise ValueError(f"no target has the tag {tag!r}")
        for target in targets:
            if target.get("tag") == tag:
                del target["tag"]
    for entry in tags:
        ref, tag = pair(entry, "REF=TAG")
        untagged = next((t for t in targets if ref_of(t) == ref and "tag" not in t), None)
        if untagged is not None:
            untagged["tag"] = tag
        else:
            targets.append(target_for(ref, tag=tag))
    if split:
        for target in targets:
            target["percent"] = 0
        for entry in split:
            ref, value = pair(entry, "REF=PERCENT")
            if not value.isdigit():
                raise ValueError(f"traffic entry {entry!r}: the percent must be a whole number from 0 to 100")
            target = next((t for t in targets if t.get("tag") == ref), None) or next(
                (t for t in targets if ref_of(t) == ref and "tag" not in t), None
            )
            if target is None:
                target = target_for(ref)
                targets.append(target)
            target["percent"] = int(value)
    kept = [t for t in targets if t.get("percent") or t.get("tag")]
    return [TrafficTarget.model_validate(t) for t in kept]
