"""Where Kafka is and how every client of it is configured."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

# Tansu completes a group join only after about half the session timeout, so the
# 45 s default means ~23 s before the first assignment. Both brokers accept these.
#
# Tansu also answers a fetch only when fetch_max_wait_ms has passed, even when records
# arrived meanwhile (Apache Kafka answers at once), which put ~130 ms (p50) between produce
# and consume at the 500 ms default; 10 ms costs a few idle fetches a second.
CONSUMER_GROUP_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_max_wait_ms": 10}


class KafkaUnavailable(RuntimeError):
    """No broker answered at the configured address."""


def parse_bootstrap_servers(value: str) -> list[tuple[str, int]]:
    """'host:port,host:port' -> [(host, port), ...]; ValueError says which entry is wrong."""
    servers = []
    for entry in (part.strip() for part in value.split(",")):
        host, _, port = entry.rpartition(":")
        if not entry or not host or not port.isdigit():
            raise ValueError(f"{BOOTSTRAP_ENV} entry {entry!r} is not host:port (in {value!r})")
        servers.append((host.strip("[]"), int(port)))
    return servers


def wait_until_reachable(bootstrap_servers: str, deadline: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait until one of the servers accepts a TCP connection, or raise KafkaUnavailable."""
    servers = parse_bootstrap_servers(bootstrap_servers)
    while True:
        for host, port in servers:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                pass
        if not alive() or time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"no Kafka broker answered at {bootstrap_servers}: start one there, "
                f"or unset {BOOTSTRAP_ENV} to let knit start its embedded broker"
            )
        time.sleep(0.02)
