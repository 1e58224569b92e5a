#!/usr/bin/env python3
"""A real Apache Kafka 4.x broker for tests: one node in KRaft mode (broker and controller in
one JVM) on 127.0.0.1, started from the jars `make kafka-broker` copied out of Maven Central
into .kafka/lib (platform/apache-kafka/pom.xml pins them), on the machine's Java 17+.

    python platform/apache-kafka/apache_kafka.py run -- pytest -m integration platform/tests/test_dispatcher.py
    python platform/apache-kafka/apache_kafka.py serve        # prints the bootstrap address, runs until Ctrl-C

`run` starts the broker, runs the command with KAFKA_BOOTSTRAP_SERVERS set to it, stops the
broker and exits with the command's exit code. From Python: `with ApacheKafka() as kafka:`.

In a container (the image knit/kafka:dev, manifests/platform/kafka.yaml) the same settings serve
the cluster: `container` formats a data dir that is not formatted yet, then becomes the broker
(exec, so the JVM gets the container's signals and logs to its stdout); `ready` is its probe.

Every start is from scratch: a fresh temporary data dir, formatted as `kafka-storage format`
does (kafka.tools.StorageTool), then `kafka.Kafka server.properties`; ready once a Metadata
request lists the broker (it has registered with its controller and serves clients). stop()
sends SIGTERM (a controlled shutdown), kills after a timeout and removes the data dir. The
JVM's log goes to .kafka/logs/broker.log, whose path is printed whenever something fails.

Standard library only, so any Python 3.11+ runs it, the repo's .venv or not.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository
LIB = ROOT / ".kafka" / "lib"
HEAP = "512m"  # the JVM's -Xmx unless --heap says otherwise
LOG_FILE = ROOT / ".kafka" / "logs" / "broker.log"
HOST = "127.0.0.1"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

# A one-node cluster's needs (internal topics with one replica) and knit's embedded Tansu
# broker's behaviour (topics created on first use, with 4 partitions), plus no wait before a
# consumer group's first rebalance (Apache's default is 3 s). With no wait, a kafka-python
# consumer's first JoinGroup often completes before it has its topics' metadata: it is
# assigned nothing, then rejoins a few ms later. Real clusters do that too; Tansu never does.
# `--override group.initial.rebalance.delay.ms=3000` restores the default.
TEST_SETTINGS = {
    "num.partitions": "4",
    "auto.create.topics.enable": "true",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}


class KafkaNotReady(RuntimeError):
    """The broker could not be started; the message says why and where its log is."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64 without padding,
    never starting with '-' (it would read as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def metadata_lists_broker(port: int, timeout: float = 1.0) -> bool:
    """Send a Metadata v4 request (the oldest version Kafka 4 still answers) for no topics and
    say whether the answer lists a broker on `port`."""
    client_id = b"apache_kafka.py"
    # header v1: api_key 3 (Metadata), api_version 4, correlation id, client id; body: topics = [], no auto-create
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">ib", 0, 0)
    with socket.create_connection((HOST, port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">i", len(request)) + request)
        reply = conn.makefile("rb")
        (size,) = struct.unpack(">i", reply.read(4))
        body = reply.read(size)
    _correlation_id, _throttle_ms, brokers = struct.unpack_from(">iii", body)
    offset = 12
    for _ in range(brokers):  # node_id int32, host string, port int32, rack nullable string
        _node_id, host_length = struct.unpack_from(">ih", body, offset)
        offset += 6 + host_length
        broker_port, rack_length = struct.unpack_from(">ih", body, offset)
        offset += 6 + max(rack_length, 0)
        if broker_port == port:
            return True
    return False


def server_properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    listen_host: str = HOST,
    advertised_host: str = HOST,
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """server.properties of a one-node KRaft cluster (broker and controller in one JVM): clients on
    listen_host:port, told to come back at advertised_host:port; the controller only on 127.0.0.1
    (nothing but this node talks to it); the data in data_dir/logs; TEST_SETTINGS, then overrides."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{listen_host}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{advertised_host}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        **TEST_SETTINGS,
        **(overrides or {}),
    }


def write_properties(path: Path, properties: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def java_command(
    main_class: str, *args: str, lib: Path = LIB, heap: str = HEAP, log_file: Path | str = LOG_FILE
) -> list[str]:
    """The JVM's command line for one of Kafka's main classes; log_file "-" logs to stdout."""
    java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
    return [
        str(java),
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2.xml'}",
        f"-Dkafka.log.file={log_file}",
        "-cp",
        f"{lib}/*",
        main_class,
        *args,
    ]


def format_command(config: Path, lib: Path = LIB, heap: str = HEAP, log_file: Path | str = LOG_FILE) -> list[str]:
    """`kafka-storage format` of config's log.dirs, with a new cluster id."""
    return java_command("kafka.tools.StorageTool", "format", "--config", str(config), "--cluster-id", new_cluster_id(),
                        lib=lib, heap=heap, log_file=log_file)  # fmt: skip


def kafka_version(lib: Path = LIB) -> str | None:
    """Kafka's version, from the jar's name; None when lib has no Kafka."""
    jars = sorted(lib.glob("kafka_2.13-*.jar"))
    return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else None


def _die_with_parent() -> None:
    """Linux: SIGTERM the broker when the process that started it dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ApacheKafka:
    """One KRaft broker+controller on 127.0.0.1; port 0 picks free ports."""

    def __init__(
        self,
        port: int = 0,
        controller_port: int = 0,
        lib: Path = LIB,
        log_file: Path = LOG_FILE,
        heap: str = HEAP,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.lib = lib
        self.log_file = log_file
        self.heap = heap
        self.overrides = overrides or {}  # server.properties settings on top of TEST_SETTINGS
        self.crashed: int | None = None  # the exit code, if the broker stopped before stop()
        self._process: subprocess.Popen[bytes] | None = None
        self._data: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def version(self) -> str | None:
        """Kafka's version, from the jar's name; None when .kafka/lib has no Kafka."""
        return kafka_version(self.lib)

    def server_properties(self) -> dict[str, str]:
        assert self._data is not None
        return server_properties(self.port, self.controller_port, self._data, overrides=self.overrides)

    def _java(self, main_class: str, *args: str) -> list[str]:
        return java_command(main_class, *args, lib=self.lib, heap=self.heap, log_file=self.log_file)

    def start(self, timeout: float = 60.0) -> str:
        """Format a fresh data dir, start the broker, wait until it serves; its bootstrap address."""
        deadline = time.monotonic() + timeout
        if self.version is None:
            raise KafkaNotReady(f"no Apache Kafka jars in {self.lib}: run `make kafka-broker` first")
        self._data = Path(tempfile.mkdtemp(prefix="apache-kafka-"))
        config = self._data / "server.properties"
        write_properties(config, self.server_properties())
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.write_bytes(b"")
        try:
            with open(self.log_file, "ab") as log:
                storage = format_command(config, self.lib, self.heap, self.log_file)
                formatted = subprocess.run(storage, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           timeout=timeout, check=False)  # fmt: skip
                if formatted.returncode != 0:
                    raise KafkaNotReady(f"formatting the data dir failed (exit {formatted.returncode})")
                self._process = subprocess.Popen(
                    self._java("kafka.Kafka", str(config)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C goes to the command under test; we stop the broker after it
                    preexec_fn=_die_with_parent,
                )
            self._wait_until_serving(deadline)
        except BaseException as error:
            self.stop()
            if isinstance(error, subprocess.TimeoutExpired):
                raise KafkaNotReady(f"formatting the data dir took over {timeout:.0f}s; log: {self.log_file}") from None
            if isinstance(error, FileNotFoundError):
                raise KafkaNotReady(
                    f"{error.filename} not found: Kafka 4 needs Java 17+ (on PATH or in JAVA_HOME)"
                ) from None
            if isinstance(error, KafkaNotReady):
                raise KafkaNotReady(f"Apache Kafka did not start: {error}; log: {self.log_file}") from None
            raise
        return self.bootstrap_servers

    def _wait_until_serving(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            with contextlib.suppress(OSError, struct.error):
                if metadata_lists_broker(self.port):
                    return
            if self._process.poll() is not None:
                raise KafkaNotReady(f"the JVM exited with {self._process.returncode} while starting")
            if time.monotonic() > deadline:
                raise KafkaNotReady(f"no broker answered a Metadata request at {self.bootstrap_servers} in time")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after `timeout`, then remove the data dir."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is not None:
                self.crashed = process.returncode
            else:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None

    def wait(self) -> int:
        """Until the broker exits by itself; its exit code."""
        return self._process.wait() if self._process else 1

    def __enter__(self) -> ApacheKafka:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_command(command: list[str], bootstrap_servers: str) -> int:
    """Run `command` with KAFKA_BOOTSTRAP_SERVERS set; if we are interrupted, stop it first."""
    child = subprocess.Popen(command, env={**os.environ, BOOTSTRAP_ENV: bootstrap_servers})
    try:
        return child.wait()
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def log_errors(log_file: Path, limit: int = 8) -> str:
    """The log's first ERROR/FATAL lines with the exception message after each, else its tail."""
    try:
        lines = log_file.read_text(errors="replace").splitlines(True)
    except OSError:
        return ""
    picked = []
    for n, line in enumerate(lines):
        if "] ERROR " in line or "] FATAL " in line:
            picked += [line, *(lines[n + 1 : n + 2] if n + 1 < len(lines) and not lines[n + 1].startswith("[") else [])]
    return "".join(picked[:limit] or lines[-limit:])


def say(message: str) -> None:
    print(f"apache_kafka: {message}", file=sys.stderr, flush=True)


def become_broker(args: argparse.Namespace) -> int:
    """`container`: write data_dir/server.properties (each start, so changed settings apply), format
    data_dir unless it is formatted already (a restarted container keeps its topics), then exec
    the broker: the JVM takes this process's place, gets SIGTERM (a controlled shutdown) itself
    and logs to stdout. Returns only when it cannot start."""
    version = kafka_version(args.lib)
    if version is None:
        say(f"no Apache Kafka jars in {args.lib}")
        return 1
    data = args.data_dir.resolve()
    (data / "logs").mkdir(parents=True, exist_ok=True)
    config = data / "server.properties"
    properties = server_properties(args.port, args.controller_port, data, args.listen_host, args.advertised_host,
                                   dict(args.override))  # fmt: skip
    write_properties(config, properties)
    # Formatted: meta.properties holds the cluster id (format --ignore-formatted would refuse a new one).
    if not (data / "logs" / "meta.properties").exists():
        formatted = subprocess.run(format_command(config, args.lib, args.heap, log_file="-"), stdin=subprocess.DEVNULL,
                                   timeout=args.timeout, check=False)  # fmt: skip
        if formatted.returncode != 0:
            say(f"formatting {data} failed (exit {formatted.returncode})")
            return 1
    say(f"Apache Kafka {version} (KRaft, one node): clients on {args.listen_host}:{args.port}, advertised as "
        f"{args.advertised_host}:{args.port}; data in {data}")  # fmt: skip
    java = java_command("kafka.Kafka", str(config), lib=args.lib, heap=args.heap, log_file="-")
    sys.stdout.flush()
    os.execvp(java[0], java)


def override(setting: str) -> tuple[str, str]:
    key, equals, value = setting.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"{setting!r} is not KEY=VALUE")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="start the broker, run a command against it, stop the broker")
    serve = actions.add_parser("serve", help="start the broker, print its address, run until Ctrl-C or SIGTERM")
    container = actions.add_parser("container", help="in a container: format DATA_DIR if new, then become the broker")
    ready = actions.add_parser("ready", help="exit 0 when a broker on 127.0.0.1:PORT serves clients (a probe)")
    for action in (run, serve):
        action.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
        action.add_argument("--controller-port", type=int, default=0, help="controller port (default: a free one)")
        action.add_argument("--timeout", type=float, default=90, help="seconds to wait for the broker to start")
        action.add_argument("--log-file", type=Path, default=LOG_FILE, help=f"the broker's log (default: {LOG_FILE})")
    for action in (run, serve, container):
        action.add_argument("--heap", default=HEAP, help=f"the JVM's -Xmx (default: {HEAP})")
        action.add_argument("--lib", type=Path, default=LIB, help=f"the Kafka jars (default: {LIB})")
        action.add_argument(
            "--override",
            type=override,
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a server.properties setting on top of the test settings (repeatable)",
        )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    container.add_argument("--data-dir", type=Path, required=True, help="the broker's data (kept across restarts)")
    container.add_argument("--advertised-host", required=True, help="the host name clients are told to connect to")
    container.add_argument("--listen-host", default="0.0.0.0", help="where clients connect (default: 0.0.0.0)")
    container.add_argument("--port", type=int, default=9092, help="client port (default: 9092)")
    container.add_argument("--controller-port", type=int, default=9093,
                           help=f"controller port, on {HOST} only (default: 9093)")  # fmt: skip
    container.add_argument("--timeout", type=float, default=90, help="seconds the storage format may take")
    ready.add_argument("--port", type=int, default=9092, help="client port (default: 9092)")
    ready.add_argument("--timeout", type=float, default=1, help="seconds to wait for the answer (default: 1)")
    args = parser.parse_args(argv)
    if args.action == "container":
        return become_broker(args)
    if args.action == "ready":
        with contextlib.suppress(OSError, struct.error):
            if metadata_lists_broker(args.port, args.timeout):
                return 0
        say(f"no broker serves on {HOST}:{args.port} yet")
        return 1
    command = getattr(args, "command", [])
    command = command[1:] if command[:1] == ["--"] else command
    if args.action == "run" and not command:
        parser.error("run needs a command: apache_kafka.py run -- COMMAND [ARGS...]")

    # SIGTERM (e.g. from CI) unwinds like Ctrl-C does, so the broker is always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    broker = ApacheKafka(args.port, args.controller_port, lib=args.lib, log_file=args.log_file.resolve(),
                         heap=args.heap, overrides=dict(args.override))  # fmt: skip
    began = time.monotonic()
    try:
        broker.start(args.timeout)
    except KafkaNotReady as error:
        say(str(error))
        sys.stderr.write(log_errors(broker.log_file))
        return 1
    took = time.monotonic() - began
    say(f"Apache Kafka {broker.version} (KRaft) at {broker.bootstrap_servers}, ready in {took:.1f}s")
    say(f"its log: {broker.log_file}")
    code = 1
    try:
        if args.action == "serve":
            print(broker.bootstrap_servers, flush=True)
            code = broker.wait()  # returns only if the broker dies
        else:
            code = run_command(command, broker.bootstrap_servers)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    finally:
        stopping = time.monotonic()
        broker.stop()
        if broker.crashed is not None:
            say(f"the broker stopped on its own (exit {broker.crashed}); log: {broker.log_file}")
            code = code or 1
        else:
            say(f"stopped the broker in {time.monotonic() - stopping:.1f}s")
    if code != 0:
        say(f"exit {code}; the broker's log: {broker.log_file}")
    return code


if __name__ == "__main__":
    sys.exit(main())
