"""Replay a traffic trace through the real `RevisionScaler`: what would the autoscaler do?

`knit autoscaler simulate --trace FILE [--annotation key=value ...] [--config key=value ...]`
reads a CSV trace with the header `seconds,concurrency` (each row's value holds until the
next row; the last row ends the trace), feeds one sample per second to the Revision's
windows, decides every tick (config `tick-interval`, 2s) and prints one CSV line per tick:
`seconds,desired_scale,ready,panic,stable_concurrency,panic_concurrency` (panic is 1 or 0).

The model around the scaler is the simplest one: the Revision is routable, instances are
ready as soon as they are asked for, and a request arriving while none is ready pokes the
autoscaler at once, as the activator does. With `metric: rps` the trace's second column is
read as requests per second. The Revision's containerConcurrency is 0 unless given as
`--annotation containerConcurrency=N`. Annotation names without a prefix get
`autoscaling.knit.dev/`.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from knit.autoscaling.knobs import PREFIX, AutoscalerConfig, InvalidKnob, parse_annotations, parse_config
from knit.autoscaling.scaler import RevisionScaler

HEADER = ("seconds", "concurrency")
OUTPUT_HEADER = "seconds,desired_scale,ready,panic,stable_concurrency,panic_concurrency"
CONTAINER_CONCURRENCY = "containerConcurrency"


class InvalidTrace(ValueError):
    """The trace file cannot be read; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class SimRow:
    seconds: float
    desired_scale: int
    ready: int  # instances ready when the decision was made
    panic: bool
    stable_concurrency: float
    panic_concurrency: float

    def csv(self) -> str:
        values = (self.seconds, self.desired_scale, self.ready, int(self.panic), self.stable_concurrency,
                  self.panic_concurrency)  # fmt: skip
        return ",".join(_number(value) for value in values)


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def simulate(
    trace_rows: Iterable[tuple[float, float]],
    annotations: Mapping[str, str],
    config: AutoscalerConfig,
    tick: float = 2.0,
) -> list[SimRow]:
    """One row per tick from the first trace row's time to the last's.

    `annotations` may hold `containerConcurrency` beside the autoscaling annotations.
    Raises InvalidKnob for a bad annotation.
    """
    trace = sorted(trace_rows)
    if not trace:
        return []
    annotations = dict(annotations)
    container_concurrency = _container_concurrency(annotations.pop(CONTAINER_CONCURRENCY, "0"))
    spec = parse_annotations(annotations, container_concurrency, config)
    start, end = trace[0][0], trace[-1][0]
    scaler = RevisionScaler(spec, start)
    rows: list[SimRow] = []
    ready, owed_requests, row, second = 0, 0.0, 0, start
    for step in range(math.floor((end - start) / tick + 1e-9) + 1):
        now = start + step * tick
        while second <= now:  # the seconds of traffic up to this tick
            while row + 1 < len(trace) and trace[row + 1][0] <= second:
                row += 1
            value = trace[row][1]
            # Whole requests for the rps window, carrying fractions over so the rate is kept.
            owed_requests += value
            requests = int(owed_requests)
            owed_requests -= requests
            if ready == 0 and value > 0:  # the activator pokes the autoscaler at once
                scaler.poke(second)
                ready = scaler.decide(second, ready, routable=True).desired
            scaler.record_traffic(second, value, requests)
            second += 1
        decision = scaler.decide(now, ready, routable=True)
        rows.append(SimRow(now, decision.desired, ready, decision.panic, decision.stable_value, decision.panic_value))
        ready = decision.desired  # instances are ready as soon as they are asked for
    return rows


def _container_concurrency(text: str) -> int:
    if not text.strip().isascii() or not text.strip().isdigit():
        raise InvalidKnob(CONTAINER_CONCURRENCY, f'must be an integer >= 0; got "{text}"')
    return int(text)


def read_trace(path: Path) -> list[tuple[float, float]]:
    """The trace's (seconds, value) rows. Raises InvalidTrace naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidTrace(f"{path}: cannot read the trace: {error.strerror or error}") from None
    rows: list[tuple[float, float]] = []
    lines = csv.reader(text.splitlines())
    for number, fields in enumerate(lines, start=1):
        if not fields or all(not field.strip() for field in fields):
            continue
        where = f"{path} line {number}"
        if number == 1:
            if tuple(field.strip() for field in fields) != HEADER:
                raise InvalidTrace(f'{where}: the header must be "{",".join(HEADER)}"; got "{",".join(fields)}"')
            continue
        if len(fields) != 2:
            raise InvalidTrace(f"{where}: needs 2 values (seconds,concurrency); got {len(fields)}")
        seconds, value = (_float(field) for field in fields)
        if seconds is None or seconds < 0:
            raise InvalidTrace(f'{where}: seconds must be a number >= 0; got "{fields[0].strip()}"')
        if value is None or value < 0:
            raise InvalidTrace(f'{where}: concurrency must be a number >= 0; got "{fields[1].strip()}"')
        if rows and seconds <= rows[-1][0]:
            raise InvalidTrace(f"{where}: seconds must increase; {seconds:g} follows {rows[-1][0]:g}")
        rows.append((seconds, value))
    if not text.strip():
        raise InvalidTrace(f'{path}: the trace is empty; it needs the header "{",".join(HEADER)}" and rows')
    if not rows:
        raise InvalidTrace(f"{path}: the trace has a header but no rows")
    return rows


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- The command -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trace", required=True, type=Path, metavar="FILE", help="CSV with the header seconds,concurrency"
    )
    parser.add_argument(
        "--annotation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Revision annotation, e.g. target=10 or autoscaling.knative.dev/window=30s; also "
        "containerConcurrency=N (repeatable)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config-autoscaler setting, e.g. scale-to-zero-grace-period=10s (repeatable)",
    )


def _pairs(items: Sequence[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ValueError(f'{option} takes KEY=VALUE; got "{item}"')
        pairs[key.strip()] = value.strip()
    return pairs


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The command's handler: prints the CSV, or one line saying what is wrong (exit code 2)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        annotations = {
            key if "/" in key or key == CONTAINER_CONCURRENCY else PREFIX + key: value
            for key, value in _pairs(args.annotation, "--annotation").items()
        }
        config = parse_config(_pairs(args.config, "--config"))
        rows = simulate(read_trace(args.trace), annotations, config, tick=config.tick_interval)
    except (InvalidTrace, InvalidKnob, ValueError) as error:
        print(f"knit: {error}", file=err)
        return 2
    print(OUTPUT_HEADER, file=out)
    for row in rows:
        print(row.csv(), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="knit autoscaler simulate", description="Replay a traffic trace through the autoscaler."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
