"""Real parts for tests and benchmarks (harness) and the pytest fixtures built on them."""

from knit.testing.harness import EventSink, KnitDev, ReceivedEvent, RunningManifests

__all__ = ["EventSink", "KnitDev", "ReceivedEvent", "RunningManifests"]
