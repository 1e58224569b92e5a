"""From `knit new` to the first event processed: how long a newcomer waits, phase by phase.

Each run, in a fresh folder: `knit new word-counter` (the processor template, from this
repository's committed templates); `make install` (a fresh venv, knit and the app installed
with pip from the package registry, pip's cache warm after the first run); `knit dev -f
manifests` until it is ready (Kafka, the gateway, the Service, its KafkaSource and Broker);
then `python -m word_counter.send` until the first result is back out of the Broker (the
Service starts from zero for it). The limit beside it, measured in the same run: the same
venv and pip install of the app's own dependencies alone, without knit (what any Flask +
CloudEvents app would wait for).

    python bench/knit_new.py            # 3 runs (about 5 minutes)
    python bench/knit_new.py --runs 5

Results: the median and range per phase, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import fmt, machine, save, spread

from knit.host import free_port

ROOT = Path(__file__).resolve().parents[1]
KNIT = ROOT / ".venv/bin/knit"
APP = "word-counter"
APP_DEPENDENCIES = ["cloudevents", "flask", "gunicorn", "requests"]
READY_SECONDS = 180


def timed(command: list[str], cwd: Path, timeout: float = 900) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.monotonic() - started


def dev_and_first_event(app: Path) -> tuple[float, float]:
    """Seconds until `knit dev` is ready, then until the first result is back."""
    kafka = free_port()
    started = time.monotonic()
    dev = subprocess.Popen(
        [str(app / ".venv/bin/knit"), "dev", "-f", "manifests", "--port", "0", "--control-port", "0",
         "--kafka-port", str(kafka)],
        cwd=app, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert dev.stdout is not None
        for line in dev.stdout:
            if line.startswith("No Service is public"):
                break
            if time.monotonic() - started > READY_SECONDS:
                sys.exit(f"knit dev was not ready in {READY_SECONDS} s")
        else:
            sys.exit(f"knit dev stopped before it was ready (exit {dev.wait()})")
        ready = time.monotonic() - started
        sent = time.monotonic()
        done = subprocess.run(
            [str(app / ".venv/bin/python"), "-m", "word_counter.send", "three words here", "--bootstrap",
             f"127.0.0.1:{kafka}", "--wait", "60"],
            cwd=app, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0 or not re.search(r"^1 of 1 results back", done.stdout, re.MULTILINE):
            sys.exit(f"no result came back:\n{done.stdout}{done.stderr}")
        return ready, time.monotonic() - sent
    finally:
        dev.terminate()
        dev.wait(30)


def one_run(folder: Path) -> dict[str, float]:
    generate = timed([str(KNIT), "new", APP, "--dir", str(folder / APP)], folder)
    install = timed(["make", "install"], folder / APP)
    ready, first_event = dev_and_first_event(folder / APP)
    limit = folder / "limit"
    limit_install = timed([sys.executable, "-m", "venv", str(limit)], folder) + timed(
        [str(limit / "bin/pip"), "install", "--quiet", "-c", str(ROOT / "constraints.txt"), *APP_DEPENDENCIES], folder
    )
    return {
        "generate": generate,
        "install": install,
        "dev_ready": ready,
        "first_event": first_event,
        "total": generate + install + ready + first_event,
        "limit_install_app_dependencies_only": limit_install,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for number in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="knit-new-bench-") as folder:
            runs.append(one_run(Path(folder)))
        print(f"run {number + 1}: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in runs[-1].items()))
    phases = {phase: spread([run[phase] for run in runs]) for phase in runs[0]}
    for phase, stats in phases.items():
        print(f"{phase:<38} {fmt(stats, 's', 2)}")
    save("knit-new", {"machine": machine(), "runs": runs, "phases": phases})


if __name__ == "__main__":
    main()
