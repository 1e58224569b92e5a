"""`knit autoscaler ...`: the autoscaler's commands, for knit/cli.py to register.

from knit.autoscaling.cli import add_parser
add_parser(commands)  # commands = top.add_subparsers(...); each command sets args.handler
"""

from __future__ import annotations

import argparse
import sys

from knit.autoscaling import simulate
from knit.autoscaling.knobs import knobs_markdown


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    autoscaler = subparsers.add_parser("autoscaler", help="the autoscaler's tools: replay a trace, list the knobs")
    commands = autoscaler.add_subparsers(dest="autoscaler_command", required=True)
    replay = commands.add_parser(
        "simulate",
        help="replay a traffic trace (CSV seconds,concurrency) through the autoscaler; prints CSV per tick",
        description=simulate.__doc__.split("\n\n")[1] if simulate.__doc__ else None,
    )
    simulate.add_arguments(replay)
    replay.set_defaults(handler=simulate.run)
    knobs = commands.add_parser("knobs", help="print every autoscaling annotation and setting as Markdown")
    knobs.set_defaults(handler=print_knobs)
    return autoscaler


def print_knobs(args: argparse.Namespace) -> int:
    sys.stdout.write(knobs_markdown())
    return 0
