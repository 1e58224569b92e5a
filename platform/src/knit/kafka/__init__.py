"""Kafka for the platform: the embedded broker and the client settings every member uses."""
