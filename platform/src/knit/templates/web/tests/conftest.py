"""knit's pytest fixtures: `kafka_bootstrap` (a real Kafka broker for the session) and
`event_sink` (a real HTTP server that records the CloudEvents sent to it)."""

pytest_plugins = ["knit.testing.fixtures"]
