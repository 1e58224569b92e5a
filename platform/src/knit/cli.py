"""The `knit` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from knit.kafka.embedded import EmbeddedBroker
from knit.kafka.settings import BOOTSTRAP_ENV, KafkaUnavailable, wait_until_reachable
from knit.resources.loading import InvalidManifests, load_manifests
from knit.runtimes.local.processes import LogSink, ProcessFailed
from knit.runtimes.local.runtime import LocalRuntime

STATE_DIR = Path(".knit")


def _fail(message: str, code: int = 1) -> int:
    print(f"knit: {message}", file=sys.stderr)
    return code


async def _run_until_stopped(runtime: LocalRuntime, kafka_note: str) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    starting = asyncio.create_task(runtime.start())
    try:
        await asyncio.wait({starting, asyncio.create_task(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises if a process failed to start
            urls = runtime.public_urls()
            print("\nknit dev is ready.", flush=True)
            for name, url in urls.items():
                print(f"  {name:<20} {url}")
            print(f"  {'kafka':<20} {kafka_note}")
            if urls:
                print(f"\nOpen {next(iter(urls.values()))} — Ctrl-C stops everything.\n", flush=True)
            await stopping.wait()
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, ProcessFailed):
            await starting
        print("knit dev: stopping", flush=True)
        await runtime.stop()


def dev(args: argparse.Namespace) -> int:
    try:
        manifests = load_manifests(args.filename)
    except InvalidManifests as error:
        return _fail("the manifests have problems, nothing was started:\n  " + "\n  ".join(error.problems), 2)

    broker: EmbeddedBroker | None = None
    external = os.environ.get(BOOTSTRAP_ENV)
    try:
        if external:
            wait_until_reachable(external, time.monotonic() + args.kafka_timeout)
            bootstrap, kafka_note = external, f"{external} (from {BOOTSTRAP_ENV})"
        else:
            log_path = STATE_DIR / "logs" / "kafka.log"
            broker = EmbeddedBroker(log_path, port=args.kafka_port)
            bootstrap = broker.start()
            kafka_note = f"{bootstrap} (embedded, memory only; log: {log_path})"
    except (KafkaUnavailable, ValueError) as error:
        return _fail(str(error))

    try:
        runtime = LocalRuntime(manifests, bootstrap, LogSink(), ready_timeout=args.ready_timeout)
        asyncio.run(_run_until_stopped(runtime, kafka_note))
    except (ProcessFailed, ValueError) as error:
        return _fail(str(error))
    finally:
        if broker:
            broker.stop()
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="knit", description="Knative's model made small.")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("dev", help="run manifests on this machine: Kafka, every Service, every KafkaSource")
    run.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        type=Path,
        help="a manifest file or a folder of them (repeatable)",
    )
    run.add_argument(
        "--kafka-port", type=int, default=0, help="port of the embedded Kafka broker (default: a free one)"
    )
    run.add_argument(
        "--kafka-timeout", type=float, default=5.0, help=f"seconds to wait for the broker named by {BOOTSTRAP_ENV}"
    )
    run.add_argument(
        "--ready-timeout", type=float, default=60.0, help="seconds each process has to pass its readiness check"
    )
    run.set_defaults(handler=dev)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
