"""The docs show the knobs as the code defines them: one definition, printed twice."""

from pathlib import Path

from knit.autoscaling.knobs import knobs_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_the_serving_docs_list_every_autoscaling_knob_as_defined():
    assert knobs_markdown().strip() in (ROOT / "docs" / "serving.md").read_text()
