"""The local runtime: every container a real process on 127.0.0.1, Kafka embedded."""
