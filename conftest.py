"""Fixtures every test folder shares (a real Kafka broker among them)."""

pytest_plugins = ["knit.testing.fixtures"]
