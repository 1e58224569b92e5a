"""One Revision's autoscaler: what the runtime calls every tick.

`RevisionScaler` feeds the observations (traffic from the data plane, usage for hpa) into
their windows, asks the class's decision (KPA or HPA), then applies, in Knative's order
(kpa/scaler.go), the bounds (min-scale and the schedule while routable, initial-scale until
reached once, max-scale) and the scale-to-zero rules. It stays pure: the runtime passes the
time, the ready count and whether traffic is routed to the Revision, and acts on `desired`.

The Revision's activity follows Knative's PodAutoscaler `Active` condition:

- activating: instances are wanted but fewer than needed are ready yet;
- active: enough instances are ready;
- inactive: the autoscaler decided it wants none (the decision to scale to zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from knit.autoscaling.hpa import HpaAutoscaler
from knit.autoscaling.knobs import HPA, AutoscalingSpec
from knit.autoscaling.kpa import KpaAutoscaler
from knit.autoscaling.metrics import MetricWindow

Activity = Literal["activating", "active", "inactive"]


@dataclass(frozen=True)
class Decision:
    desired: int  # instances the runtime should run now
    reason: str  # the rule that settled `desired`, for logs and `knit` output
    panic: bool
    stable_value: float  # kpa: the scaling metric averaged over the stable window (summed over instances)
    panic_value: float  # kpa: ... over the panic window; hpa: both are the usage per instance
    recommended: int  # what the class's decision asked for, before bounds and scale-to-zero rules
    excess_burst_capacity: int  # < 0: keep the activator in the request path
    activity: Activity


class RevisionScaler:
    def __init__(self, spec: AutoscalingSpec, now: float, ready: int = 0) -> None:
        self.spec = spec
        self._window = MetricWindow(spec.stable_window, spec.panic_window)
        self._kpa = KpaAutoscaler(now, ready)
        self._hpa = HpaAutoscaler()
        self._usage: tuple[float, float] | None = None  # (cpu percent, memory MiB) per ready instance
        self._poked = False  # a request waits at zero: ask for instances until one is ready
        self._initialized = False  # initial-scale was reached once
        # A Revision starting at initial-scale 0 begins as Knative's: inactive, with nothing to keep.
        self.activity: Activity = "activating" if spec.initial_scale > 0 else "inactive"
        self._since = now  # when `activity` last changed

    # --- Observations -------------------------------------------------------------------------

    def record_traffic(self, now: float, concurrency: float, requests: int) -> None:
        """One second of traffic, summed over instances: average concurrency and requests started."""
        self._window.record(now, requests if self.spec.metric == "rps" else concurrency)

    def record_usage(self, now: float, cpu_percent: float, memory_mib: float) -> None:
        """Average usage per ready instance (hpa): cpu in percent of the request, memory in MiB."""
        self._usage = (cpu_percent, memory_mib)

    def poke(self, now: float) -> None:
        """A request arrived for the Revision while it has no ready instance.

        As Knative's activator, which reports such a request to the autoscaler at once: it
        counts as traffic, and until an instance is ready the Revision asks for at least
        max(1, activation-scale). The runtime should call `decide` right away rather than
        wait for the next tick.
        """
        self._window.record(now, 1.0)
        self._poked = True

    # --- The decision -------------------------------------------------------------------------

    def decide(self, now: float, ready: int, routable: bool) -> Decision:
        spec = self.spec
        if ready > 0:
            self._poked = False
        if spec.autoscaler_class == HPA:
            usage = None if self._usage is None else self._usage[0 if spec.metric == "cpu" else 1]
            recommended = self._hpa.scale(now, usage, ready, spec)
            panic, stable_value, panic_value = False, usage or 0.0, usage or 0.0
            burst = 0  # the hpa class keeps no activator in the path
            reason = (
                f"hpa: {spec.metric} {usage if usage is not None else 'unknown'} per instance, target {spec.target:g}"
            )
        else:
            stable_value, panic_value = self._window.stable_average(now), self._window.panic_average(now)
            result = self._kpa.scale(now, stable_value, panic_value, ready, spec, reachable=routable)
            recommended, panic, burst = result.desired, result.panic, result.excess_burst_capacity
            mode = "panic" if panic else "stable"
            reason = (
                f"kpa ({mode}): {spec.metric} {stable_value:g} stable, {panic_value:g} panic, "
                f"target {spec.target_value:g} per instance"
            )
        desired = recommended
        if self._poked and ready == 0:
            desired = max(desired, 1, spec.activation_scale)
            reason = "a request waits for an instance (activating from zero)"

        # Bounds, as Knative's scaler: min-scale holds only while the Revision is routable
        # (a Revision no route sends traffic to may scale to zero); the schedule raises it;
        # initial-scale holds until reached once; max-scale wins over all of them.
        minimum, low_reason = (spec.min_scale, f"min-scale {spec.min_scale}") if routable else (0, "")
        scheduled = spec.schedule.min_scale(now) if routable else 0
        if scheduled > minimum:
            minimum, low_reason = scheduled, f"scheduled min-scale {scheduled}"
        if not self._initialized and spec.initial_scale > minimum:
            minimum, low_reason = spec.initial_scale, f"initial-scale {spec.initial_scale} not reached yet"
        if spec.autoscaler_class == HPA and minimum < 1:
            minimum, low_reason = 1, "class hpa never scales to zero"
        if desired < minimum:
            desired, reason = minimum, low_reason
        if 0 < spec.max_scale < desired:
            desired, reason = spec.max_scale, f"max-scale {spec.max_scale}"

        wanted = desired  # what the Active condition is computed from (Knative's `want`)
        if desired == 0:
            desired, reason, wanted = self._scale_to_zero(now, ready)
        self._update_activity(now, wanted, ready, minimum)

        return Decision(
            desired=desired,
            reason=reason,
            panic=panic,
            stable_value=stable_value,
            panic_value=panic_value,
            recommended=recommended,
            excess_burst_capacity=burst,
            activity=self.activity,
        )

    def _scale_to_zero(self, now: float, ready: int) -> tuple[int, str, int | None]:
        """Knative's handleScaleToZero: (desired, reason, want for the Active condition; None keeps it).

        Knative scales to zero only when it is enabled, and the last instance goes in two steps:
        - an active Revision whose autoscaler wants 0 is first marked inactive (the decision to
          go to zero), but only once it has been active for a stable window, so an instance
          started for a request is not stopped at once; until then it keeps 1;
        - an inactive Revision keeps its last instance for max(scale-to-zero-grace-period,
          scale-to-zero-pod-retention-period) after that decision, then goes to 0. Knative may
          end the grace period early once its activator has been in the path for that long (it
          waits for network programming); knit's gateway needs none, so knit keeps the grace
          period whole: the last instance lingers to take a burst just after going idle.
        A Revision still activating keeps 1 too: Knative waits for its first instance.
        """
        spec = self.spec
        if not spec.enable_scale_to_zero:
            return 1, "scale to zero is disabled (enable-scale-to-zero)", 1
        if ready == 0 and self.activity != "activating":
            return 0, "no traffic: scaled to zero", 0
        if self.activity == "activating":
            return 1, "waiting for the first instance before scaling to zero", None
        if self.activity == "active":
            if now - self._since < spec.stable_window:
                left = spec.stable_window - (now - self._since)
                return 1, f"no traffic, but active for less than the stable window ({left:g}s left)", 1
            return 1, "no traffic: decided to scale to zero; keeping the last instance for now", 0
        keep = max(spec.scale_to_zero_grace_period, spec.scale_to_zero_pod_retention_period)
        if now - self._since < keep:
            rule = (
                "scale-to-zero-grace-period"
                if spec.scale_to_zero_grace_period >= spec.scale_to_zero_pod_retention_period
                else "scale-to-zero-pod-retention-period"
            )
            return 1, f"no traffic: keeping the last instance for {rule} ({keep - (now - self._since):g}s left)", 0
        return 0, "no traffic: scaled to zero", 0

    def _update_activity(self, now: float, wanted: int | None, ready: int, minimum: int) -> None:
        """Knative's computeActiveCondition, and whether initial-scale has been reached."""
        # Ready instances needed to count as active: initial-scale until reached once, then 1.
        needed = max(minimum, 1 if self._initialized else self.spec.initial_scale, 1)
        if ready >= needed:
            self._initialized = True
        if wanted is None:
            return
        if wanted == 0:
            activity: Activity = "inactive"
        elif ready < needed:
            activity = "activating"
        else:
            activity = "active"
        if activity != self.activity:
            self.activity, self._since = activity, now
