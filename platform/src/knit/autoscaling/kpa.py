"""The KPA decision: Knative's pkg/autoscaler/scaling/autoscaler.go as one method.

`KpaAutoscaler.scale` takes what was observed (the stable and panic averages of the
scaling metric, summed over instances), how many instances are ready and the spec, and
returns the desired scale. Its only state is the panic mode (when it last saw the panic
threshold crossed, and the most instances it asked for since) and the scale-down-delay
window. Time is a parameter, so a trace replays exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from knit.autoscaling.knobs import AutoscalingSpec
from knit.autoscaling.metrics import MaxWindow


@dataclass(frozen=True)
class ScaleResult:
    desired: int
    excess_burst_capacity: int  # spare requests the ready instances can take beyond target-burst-capacity; <0: too few
    panic: bool
    stable_value: float
    panic_value: float


class KpaAutoscaler:
    def __init__(self, now: float = 0.0, ready: int = 0) -> None:
        # As Knative: an autoscaler (re)started with more than one instance up starts in panic,
        # so it holds the current scale until its windows have data again instead of scaling down.
        self._panic_since: float | None = now if ready > 1 else None
        self._max_panic = ready
        self._delay: MaxWindow | None = None

    def scale(
        self,
        now: float,
        observed_stable: float,
        observed_panic: float,
        ready: int,
        spec: AutoscalingSpec,
        reachable: bool = True,
    ) -> ScaleResult:
        """The desired scale for the metric averages observed at `now`.

        `reachable`: the Revision has traffic routed to it. When it has none, nothing holds
        back a scale down (maxScaleDown is 0).
        """
        ready_pods = max(1, ready)  # 0 ready counts as 1, so the rates below still allow growth
        # Growth is bounded by a rate, but always allows at least one more instance (ceil).
        max_scale_up = math.ceil(spec.max_scale_up_rate * ready_pods)
        max_scale_down = math.floor(ready_pods / spec.max_scale_down_rate) if reachable else 0

        stable_pods = math.ceil(observed_stable / spec.target_value)
        panic_pods = math.ceil(observed_panic / spec.target_value)
        desired_stable = min(max(stable_pods, max_scale_down), max_scale_up)
        desired_panic = min(max(panic_pods, max_scale_down), max_scale_up)
        if spec.activation_scale > 1:  # any traffic at all asks for at least activation-scale instances
            if stable_pods > 0:
                desired_stable = max(desired_stable, spec.activation_scale)
            if panic_pods > 0:
                desired_panic = max(desired_panic, spec.activation_scale)

        over_threshold = panic_pods / ready_pods >= spec.panic_threshold
        if over_threshold:
            self._panic_since = now  # entering, or still over: panic lasts a stable window from here
        elif self._panic_since is not None and self._panic_since + spec.stable_window < now:
            # The surge has had a whole stable window to show in the stable average: back to stable mode.
            self._panic_since, self._max_panic = None, 0

        desired = desired_stable
        if self._panic_since is not None:
            # Provision for whichever window asks more, and never scale down while in panic.
            self._max_panic = max(self._max_panic, desired_stable, desired_panic)
            desired = self._max_panic

        if spec.scale_down_delay > 0:
            # Scale down only to the largest decision of the last scale-down-delay seconds.
            if self._delay is None or self._delay.duration != spec.scale_down_delay:
                self._delay = MaxWindow(spec.scale_down_delay)
            self._delay.record(now, desired)
            desired = int(self._delay.current(now) or 0)  # never None: it holds the value just recorded

        return ScaleResult(
            desired=desired,
            excess_burst_capacity=excess_burst_capacity(ready, observed_panic, spec),
            panic=self._panic_since is not None,
            stable_value=observed_stable,
            panic_value=observed_panic,
        )


def excess_burst_capacity(ready: int, observed_panic: float, spec: AutoscalingSpec) -> int:
    """Knative's EBC = total capacity − target-burst-capacity − requests in flight (panic average).

    Negative: the ready instances cannot take the wanted burst, so the activator should stay
    in the request path. Target-burst-capacity 0 gives 0 and -1 (unlimited) gives -1.
    """
    if spec.target_burst_capacity == 0:
        return 0
    if spec.target_burst_capacity < 0:
        return -1
    return math.floor(ready * spec.target - spec.target_burst_capacity - observed_panic)
