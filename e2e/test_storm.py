"""The app under a storm (danmaku-storm), in real browsers: the page stays usable, and the
platform dashboard shows the processor scaling out."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
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
    with KnitDev(APP_MANIFESTS, cwd=tmp_path_factory.mktemp("knit-dev"), env=os.environ.copy()) as dev:
        yield dev


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


# Records the most comments the stage ever held, from before the storm starts.
WATCH_STAGE = """() => {
  const stage = document.querySelector('[data-testid="stage"]');
  window.mostOnStage = stage.childElementCount;
  new MutationObserver(() => {
    window.mostOnStage = Math.max(window.mostOnStage, stage.childElementCount);
  }).observe(stage, { childList: true });
}"""


# Pairs of flying comments that overlap in a lane right now, the viewer's own left out.
OVERLAPS = """own => {
  const lanes = {};
  for (const element of document.querySelectorAll('[data-testid="stage"] .danmaku.scroll')) {
    if (element.textContent === own) continue;
    const box = element.getBoundingClientRect();
    (lanes[element.style.top] ||= []).push([box.left, box.right]);
  }
  let overlaps = 0;
  for (const boxes of Object.values(lanes)) {
    boxes.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < boxes.length; i++) if (boxes[i - 1][1] > boxes[i][0] + 1) overlaps += 1;
  }
  return overlaps;
}"""


def test_under_a_storm_comments_never_overlap_the_stage_is_capped_and_the_viewers_own_shows(
    browser: Browser, knit_dev: KnitDev
):
    # given a page in a room a storm of 40 comments a second is about to hit
    prefix = f"cap{uuid.uuid4().hex[:6]}"
    page = browser.new_page()
    page.goto(f"{knit_dev.url}r/{prefix}-1")
    expect(page.get_by_test_id("status")).to_have_text("connected", timeout=HANG)
    page.evaluate(WATCH_STAGE)
    storm = subprocess.Popen(
        [str(STORM), "--url", knit_dev.url, "--status", "none", "--rate", "40", "--seconds", "8",
         "--viewers", "1", "--rooms", "1", "--room-prefix", prefix],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # when the stage is full and the viewer sends a comment of their own
        expect(page.get_by_test_id("skipped")).to_be_visible(timeout=HANG)
        own = f"mine, in the storm {uuid.uuid4().hex[:6]}"
        overlaps = [page.evaluate(OVERLAPS, own)]
        page.get_by_test_id("comment-input").fill(own)
        page.get_by_test_id("send").click()
        # then theirs shows all the same, the page answers, no two others ever overlapped in a lane, and
        # the stage never held more than 80 others
        expect(page.get_by_test_id("danmaku").filter(has_text=own)).to_have_count(1, timeout=HANG)
        for _ in range(5):
            overlaps.append(page.evaluate(OVERLAPS, own))
            page.wait_for_timeout(300)
    finally:
        output, _ = storm.communicate(timeout=HANG / 1000)
    assert storm.returncode == 0, output
    assert page.evaluate("() => window.mostOnStage") <= 81  # 80, and the viewer's own on top
    assert overlaps == [0] * 6, "comments flew over each other in a lane"
    expect(page.get_by_test_id("skipped")).to_contain_text("skipped: too many at once")
