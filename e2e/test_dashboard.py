"""The platform dashboard under `knit dev`, in a real browser, while a storm runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from knit.testing.harness import KnitDev

pytestmark = pytest.mark.e2e

APP_MANIFESTS = Path(__file__).resolve().parents[1] / "manifests" / "app"
STORM = Path(sys.executable).with_name("danmaku-storm")
HANG = 60_000  # ms; only a hang waits this long


@pytest.fixture(scope="module")
def knit_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnitDev]:
    dev = KnitDev(APP_MANIFESTS, cwd=tmp_path_factory.mktemp("knit-dev"), env=os.environ.copy())
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.stop()


def test_the_dashboard_lists_the_services_and_sources_and_shows_the_processor_scaling_out(
    browser: Browser, knit_dev: KnitDev
):
    # given the dashboard open, as knit dev's banner names it
    assert knit_dev.dashboard and knit_dev.dashboard.startswith("http://dashboard.knit.localhost:")
    page = browser.new_page()
    page.goto(knit_dev.dashboard)
    expect(page.get_by_test_id("live")).to_have_text("live", timeout=HANG)
    services = page.get_by_test_id("service")
    expect(services).to_have_count(2)
    expect(services.nth(0)).to_have_attribute("data-name", "danmaku-processor")
    expect(services.nth(1)).to_have_attribute("data-name", "danmaku-web")
    expect(page.get_by_test_id("source").filter(has_text="default/danmaku-comments")).to_contain_text("KafkaSource")
    processor = page.locator('[data-testid="revision"][data-name="danmaku-processor-00001"]')

    # when a storm of 20 comments a second runs for 10 s
    storm = subprocess.run(
        [str(STORM), "--url", knit_dev.url, "--control", knit_dev.control, "--status", "local",
         "--rate", "20", "--seconds", "10", "--viewers", "2", "--rooms", "2", "--drain", "20"],
        capture_output=True, text=True, timeout=HANG / 1000,
    )  # fmt: skip
    assert storm.returncode == 0, storm.stdout + storm.stderr

    # then the dashboard saw the processor at more than one instance, and charts them
    assert int(processor.get_attribute("data-peak")) >= 2, storm.stdout
    chart = processor.locator("img.chart")
    expect(chart).to_have_js_property("complete", True)
    assert chart.evaluate("image => image.naturalWidth") == 300
