"""The README's screenshots, taken from the real thing: `knit dev` runs the app, danmaku-storm
sends a storm into one room, and Chromium (driven by Playwright) photographs that room's stage
and the platform dashboard with the processor scaled out.

    make screenshots        # writes docs/images/stage-storm.png and docs/images/dashboard.png

Bounded: the storm lasts STORM_SECONDS, and every wait ends within WAIT_MS or fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from knit.testing.harness import KnitDev

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))
from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser the tests use)

STORM = Path(sys.executable).with_name("danmaku-storm")
STORM_SECONDS = 40
WAIT_MS = 30_000
VIEWPORT = {"width": 1100, "height": 620}
# What people in the room say, on top of the storm's numbered comments: (text, colour, mode, size).
COMMENTS = [
    ("弹幕来了！", "#FFD166", "top", "large"),
    ("コメントが流れる", "#FFFFFF", "scroll", "normal"),
    ("the processor just scaled out", "#7BDFF2", "scroll", "normal"),
    ("前方高能", "#EF476F", "scroll", "large"),
    ("hello from room storm-1", "#B2F7EF", "bottom", "small"),
]


def say(page, text: str, color: str, mode: str, size: str) -> None:
    page.get_by_test_id("comment-input").fill(text)
    page.get_by_test_id("color").evaluate("(input, value) => { input.value = value; }", color.lower())
    page.get_by_test_id("mode").select_option(mode)
    page.get_by_test_id("size").select_option(size)
    page.get_by_test_id("send").click()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="knit-screenshots-") as folder,
        KnitDev(ROOT / "manifests" / "app", cwd=Path(folder), env=os.environ.copy()) as dev,
    ):
        storm = subprocess.Popen(
            [str(STORM), "--url", str(dev.url), "--control", str(dev.control), "--status", "local",
             "--rate", "40", "--seconds", str(STORM_SECONDS), "--viewers", "4", "--rooms", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with sync_playwright() as playwright:
                executable = {"executable_path": str(CHROMIUM)} if CHROMIUM.exists() else {}
                browser = playwright.chromium.launch(args=CHROMIUM_ARGS, **executable)
                stage = browser.new_page(viewport=VIEWPORT)
                stage.goto(f"{dev.url}r/storm-1")
                expect(stage.get_by_test_id("status")).to_have_text("connected", timeout=WAIT_MS)
                dashboard = browser.new_page(viewport=VIEWPORT)
                dashboard.goto(str(dev.dashboard))
                processor = dashboard.locator('[data-testid="revision"][data-name="danmaku-processor-00001"]')
                expect(processor).to_have_attribute("data-actual", re.compile("[3-5]"), timeout=WAIT_MS)  # scaled out
                for comment in COMMENTS:
                    say(stage, *comment)
                    stage.wait_for_timeout(400)  # spread out, as people type
                expect(stage.get_by_test_id("danmaku").filter(has_text="前方高能")).to_have_count(1, timeout=WAIT_MS)
                stage.wait_for_timeout(1500)  # let the last ones fly in
                stage.screenshot(path=out / "stage-storm.png")
                dashboard.wait_for_timeout(1500)  # the next second's chart
                dashboard.screenshot(path=out / "dashboard.png", full_page=True)
                browser.close()
        finally:
            storm.terminate()
            storm.wait(timeout=30)
    print(f"wrote {out / 'stage-storm.png'} and {out / 'dashboard.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images")
