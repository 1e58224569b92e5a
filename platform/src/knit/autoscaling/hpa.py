"""The HPA decision: Kubernetes' HorizontalPodAutoscaler algorithm for cpu and memory.

desired = ceil(ready × usage / target), unless usage is within 10% of the target (then
the ready count stays). The recommendation is then stabilized as Kubernetes does: scaling
down goes only to the highest recommendation of the scale-down window (300s by default),
scaling up only to the lowest of the scale-up window (none by default). Kubernetes' rate
policies (pods or percent per period) are not modelled. Time is a parameter.
"""

from __future__ import annotations

import math
from collections import deque

from knit.autoscaling.knobs import AutoscalingSpec

TOLERANCE = 0.1  # Kubernetes' --horizontal-pod-autoscaler-tolerance


def recommend(usage: float, target: float, ready: int, tolerance: float = TOLERANCE) -> int:
    """Kubernetes' replica calculation from the average usage per ready instance."""
    ratio = usage / target
    if abs(1.0 - ratio) <= tolerance:
        return ready  # close enough: do not move for noise
    return math.ceil(ratio * ready)


class HpaAutoscaler:
    def __init__(self) -> None:
        self._recommendations: deque[tuple[float, int]] = deque()  # (time, recommendation), oldest first

    def scale(self, now: float, usage: float | None, ready: int, spec: AutoscalingSpec) -> int:
        """The desired scale for the average usage per ready instance (cpu: percent of the
        request; memory: MiB). With no instance or no usage yet, it keeps the ready count,
        as Kubernetes does not scale without metrics."""
        if usage is None or ready == 0:
            return ready
        raw = recommend(usage, spec.target, ready)
        self._recommendations.append((now, raw))
        keep = max(spec.scale_up_stabilization, spec.scale_down_stabilization)
        while self._recommendations[0][0] <= now - keep:
            self._recommendations.popleft()
        # Kubernetes' stabilizeRecommendationWithBehaviors: each window clamps one direction.
        up = min(r for t, r in self._recommendations if t > now - spec.scale_up_stabilization or t == now)
        down = max(r for t, r in self._recommendations if t > now - spec.scale_down_stabilization or t == now)
        return min(max(ready, up), down)
