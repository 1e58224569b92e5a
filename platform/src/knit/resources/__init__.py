"""The resource model (Knative-shaped) and loading it from YAML manifests."""

from knit.resources.loading import InvalidManifests, Manifests, read_manifests
from knit.resources.model import (
    Destination,
    KafkaSource,
    KReference,
    Resource,
    Service,
    SinkBinding,
)

__all__ = [
    "Destination",
    "InvalidManifests",
    "KReference",
    "KafkaSource",
    "Manifests",
    "Resource",
    "Service",
    "SinkBinding",
    "read_manifests",
]
