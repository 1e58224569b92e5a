"""Autoscaling: Knative's KPA and Kubernetes' HPA decisions as pure logic.

- `knobs`: every annotation and config-autoscaler setting, defined once, and their parsing;
- `metrics`: the windows and the meter the decisions observe;
- `kpa`, `hpa`: one decision each; `schedule`: timed min-scale;
- `scaler`: one Revision's decision every tick, bounds and scale to zero included;
- `simulate`, `cli`: replay a trace through it.

No network, process or event-loop code here: the runtime passes the time and acts on the result.
"""
