"""Every `knit new` template as a user gets it: generated into an empty folder, then its own
`make test` out of the box (a fresh .venv, knit installed from the clone, pip from the package
registry), which runs its unit tests and an integration test under `knit dev` (or knit's local
runtime) with a real Kafka broker that sees an event go through. Slow (a venv per template):
`make test-templates`, not `make test`; the templates' rendering and updates are in
platform/tests/test_new.py."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from knit.new import TEMPLATES, create

SUMMARY = re.compile(r"^=+ (.*) in [\d.]+s", re.MULTILINE)


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_generated_app_passes_its_own_tests_out_of_the_box(knit_templates, tmp_path, template):
    started = time.monotonic()
    app = create(f"my-{template}", template, tmp_path / f"my-{template}", source=knit_templates).path
    generated = time.monotonic()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("KAFKA_", "VIRTUAL_ENV"))}
    done = subprocess.run(["make", "test"], cwd=app, env=env, capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    summary = SUMMARY.findall(output)[-1]
    assert "passed" in summary and not re.search(r"failed|error|skipped|deselected", summary), summary
    print(f"{template}: generated in {generated - started:.1f} s; make test (install + tests) "
          f"{time.monotonic() - generated:.1f} s: {summary}")  # fmt: skip
