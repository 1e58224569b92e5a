"""Two browsers in one room: a comment typed in one flies across the other."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.e2e


def open_room(browser: Browser, url: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(url)
    expect(page.get_by_test_id("status")).to_have_text("connected", timeout=60_000)
    return page


@pytest.fixture
def room_url(app_url: str) -> str:
    return f"{app_url}/r/e2e-{uuid.uuid4().hex[:8]}"


def send(page: Page, text: str) -> None:
    page.get_by_test_id("comment-input").fill(text)
    page.get_by_test_id("send").click()


def test_a_comment_typed_in_one_page_flies_across_the_other(browser: Browser, room_url: str):
    sender, viewer = open_room(browser, room_url), open_room(browser, room_url)
    text = f"hello from A {uuid.uuid4().hex[:6]}"

    send(sender, text)

    shown = viewer.get_by_test_id("stage").get_by_test_id("danmaku").filter(has_text=text)
    expect(shown).to_have_count(1, timeout=60_000)
    expect(shown).to_have_text(text)


def test_a_comment_made_of_html_and_script_shows_as_text_and_runs_nothing(browser: Browser, room_url: str):
    sender, viewer = open_room(browser, room_url), open_room(browser, room_url)
    dialogs: list[str] = []
    for page in (sender, viewer):
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    payload = '<img src=x onerror="window.pwned=1;alert(1)"><script>window.pwned=2</script><b>bold</b>'

    send(sender, payload)

    shown = viewer.get_by_test_id("stage").get_by_test_id("danmaku").filter(has_text="<b>bold</b>")
    expect(shown).to_have_count(1, timeout=60_000)
    expect(shown).to_have_text(payload)
    assert shown.evaluate("element => element.children.length") == 0
    assert viewer.get_by_test_id("stage").locator("img, script, b").count() == 0
    assert viewer.evaluate("() => window.pwned") is None
    assert sender.evaluate("() => window.pwned") is None
    assert dialogs == []


# Each character drawn in the comment's own font, compared with a code point no font has (U+0378):
# a character drawn the same is a "tofu" box, so no installed font has it.
TOFU = """element => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const context = canvas.getContext("2d");
  context.font = `32px ${getComputedStyle(element).fontFamily}`;
  const drawn = character => {
    context.clearRect(0, 0, 48, 48);
    context.fillText(character, 4, 38);
    return context.getImageData(0, 0, 48, 48).data.join(",");
  };
  const missing = drawn("\\u0378");
  return Array.from(element.textContent).filter(character => character.trim() && drawn(character) === missing);
}"""


def test_chinese_and_japanese_comments_render_as_glyphs_not_boxes(browser: Browser, room_url: str):
    sender, viewer = open_room(browser, room_url), open_room(browser, room_url)
    text = f"弹幕来了 コメントです {uuid.uuid4().hex[:4]}"

    send(sender, text)

    shown = viewer.get_by_test_id("stage").get_by_test_id("danmaku").filter(has_text=text)
    expect(shown).to_have_count(1, timeout=60_000)
    assert shown.evaluate(TOFU) == [], "drawn as boxes: no font for them (make test installs fonts-noto-cjk)"
