"""`knit autoscaler simulate`: a trace replayed through the real autoscaler."""

import argparse

import pytest

from knit.autoscaling.cli import add_parser
from knit.autoscaling.knobs import DEFAULT_CONFIG, InvalidKnob
from knit.autoscaling.simulate import OUTPUT_HEADER, simulate

STEP = [(0.0, 0.0), (30.0, 100.0), (150.0, 0.0), (400.0, 0.0)]  # 0 → 100 concurrent requests → 0


def desired_at(rows):
    return {row.seconds: row.desired_scale for row in rows}


def test_a_step_to_100_concurrent_requests_and_back_scales_up_in_panic_then_down_to_zero():
    rows = simulate(STEP, {}, DEFAULT_CONFIG)
    desired = desired_at(rows)
    assert len(rows) == 201  # one per 2s tick, 0 to 400 inclusive
    assert {desired[t] for t in range(0, 30, 2)} == {1}  # the initial instance, kept a stable window
    assert any(row.panic for row in rows if 30 <= row.seconds <= 40)  # the step trips panic mode
    assert {desired[t] for t in range(40, 150, 2)} == {2}  # 100 requests at 70 per instance
    assert desired[190] == 1  # the stable average falls below 70 within the window
    assert {desired[t] for t in range(250, 401, 2)} == {0}  # idle a stable window, then the grace period
    assert max(desired.values()) == 2


def test_with_a_low_target_the_step_is_met_within_a_few_ticks():
    rows = simulate(STEP, {"autoscaling.knit.dev/target": "10"}, DEFAULT_CONFIG)
    desired = desired_at(rows)
    assert [desired[t] for t in (30, 32, 34, 36, 38)] == [3, 8, 12, 15, 15]  # bounded by the panic average
    assert max(desired.values()) == 15  # ceil(100 / 7)


def test_instances_follow_the_decisions_and_the_output_carries_the_windows():
    rows = simulate(STEP, {}, DEFAULT_CONFIG)
    row = next(row for row in rows if row.seconds == 100)
    assert (row.ready, row.stable_concurrency, row.panic_concurrency) == (2, 100.0, 100.0)


def test_container_concurrency_is_given_as_an_annotation():
    rows = simulate(STEP, {"containerConcurrency": "1"}, DEFAULT_CONFIG)  # target 1 at 70%: 1 instance per 0.7
    assert max(desired_at(rows).values()) == 143


def test_simulating_with_a_bad_annotation_raises_naming_the_knob():
    with pytest.raises(InvalidKnob, match=r"autoscaling\.knit\.dev/max-scale: must be an integer >= 0"):
        simulate(STEP, {"autoscaling.knit.dev/max-scale": "-1"}, DEFAULT_CONFIG)


# --- The command -------------------------------------------------------------------------------


def knit(*argv):
    top = argparse.ArgumentParser(prog="knit")
    add_parser(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["autoscaler", *argv])
    return args.handler(args)


def test_the_command_prints_one_csv_line_per_tick(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("seconds,concurrency\n0,0\n30,100\n150,0\n400,0\n")
    code = knit("simulate", "--trace", str(trace), "--annotation", "target=10", "--config", "stable-window=30s")
    lines = capsys.readouterr().out.splitlines()
    assert (code, lines[0], len(lines)) == (0, OUTPUT_HEADER, 202)
    assert lines[1:3] == ["0,1,0,0,0,0", "2,1,1,0,0,0"]
    assert lines[16] == "30,5,1,1,3.333,33.333"  # a 3s panic window sees the step first


def test_the_tick_comes_from_the_config(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("seconds,concurrency\n0,5\n20,5\n")
    knit("simulate", "--trace", str(trace), "--config", "tick-interval=5s")
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["0", "5", "10", "15", "20"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "trace.csv: cannot read the trace: No such file or directory"),
        ("", 'trace.csv: the trace is empty; it needs the header "seconds,concurrency" and rows'),
        ("time,load\n0,1\n", 'trace.csv line 1: the header must be "seconds,concurrency"; got "time,load"'),
        ("seconds,concurrency\n", "trace.csv: the trace has a header but no rows"),
        ("seconds,concurrency\n0,1\n10,lots\n", 'trace.csv line 3: concurrency must be a number >= 0; got "lots"'),
        ("seconds,concurrency\n0,1\n10,-4\n", 'trace.csv line 3: concurrency must be a number >= 0; got "-4"'),
        ("seconds,concurrency\nsoon,1\n", 'trace.csv line 2: seconds must be a number >= 0; got "soon"'),
        ("seconds,concurrency\n0,1\n0,2\n", "trace.csv line 3: seconds must increase; 0 follows 0"),
        ("seconds,concurrency\n0,1,2\n", "trace.csv line 2: needs 2 values (seconds,concurrency); got 3"),
    ],
)
def test_a_missing_or_malformed_trace_gets_one_line_naming_file_line_and_problem(tmp_path, capsys, content, message):
    trace = tmp_path / "trace.csv"
    if content is not None:
        trace.write_text(content)
    code = knit("simulate", "--trace", str(trace))
    output = capsys.readouterr()
    assert (code, output.out) == (2, "")
    assert output.err == f"knit: {tmp_path}/{message}\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--annotation", "min-scale=-1"], 'knit: autoscaling.knit.dev/min-scale: must be an integer >= 0; got "-1"\n'),
        (["--annotation", "min-scale"], 'knit: --annotation takes KEY=VALUE; got "min-scale"\n'),
        (
            ["--config", "stable-windw=30s"],
            'knit: stable-windw: is not a config-autoscaler key (did you mean "stable-window"',
        ),
    ],
)
def test_bad_annotations_and_settings_get_one_line(tmp_path, capsys, option, message):
    trace = tmp_path / "trace.csv"
    trace.write_text("seconds,concurrency\n0,1\n")
    assert knit("simulate", "--trace", str(trace), *option) == 2
    assert capsys.readouterr().err.startswith(message)


def test_the_knobs_command_prints_the_docs_table(capsys):
    assert knit("knobs") == 0
    assert "| `scale-to-zero-grace-period` | `30s` | duration |" in capsys.readouterr().out
