"""Two browsers in one room: a comment typed in one flies across the other; the viewer's controls."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.e2e


def open_room(browser: Browser, url: str, **context_options) -> Page:
    page = browser.new_context(**context_options).new_page()
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


def comments(page: Page, text: str):
    return page.get_by_test_id("stage").get_by_test_id("danmaku").filter(has_text=text)


def set_range(page: Page, test_id: str, value: int) -> None:
    page.get_by_test_id(test_id).evaluate(
        "(input, value) => { input.value = value; input.dispatchEvent(new Event('input')); }", str(value)
    )


def test_opacity_speed_and_hiding_are_kept_across_a_reload(browser: Browser, room_url: str):
    viewer = open_room(browser, room_url)
    set_range(viewer, "opacity", 40)
    viewer.get_by_test_id("speed").select_option("fast")
    viewer.get_by_test_id("hide").click()

    viewer.reload()
    expect(viewer.get_by_test_id("status")).to_have_text("connected", timeout=60_000)
    expect(viewer.get_by_test_id("opacity")).to_have_value("40")
    expect(viewer.get_by_test_id("speed")).to_have_value("fast")
    expect(viewer.get_by_test_id("hide")).to_have_attribute("aria-pressed", "true")

    text = f"hidden but there {uuid.uuid4().hex[:6]}"
    send(viewer, text)
    shown = comments(viewer, text)
    expect(shown).to_have_count(1, timeout=60_000)
    expect(shown).to_be_hidden()  # it arrived, and flies unseen
    viewer.get_by_test_id("hide").click()
    expect(shown).to_be_visible()
    assert shown.evaluate("element => getComputedStyle(element).opacity") == "0.4"
    # Fast: it crosses the stage in 5 s, whatever its width.
    crossing = shown.evaluate(
        """element => parseFloat(getComputedStyle(element).animationDuration) * 1000
             * element.parentElement.clientWidth / (element.parentElement.clientWidth + element.offsetWidth)"""
    )
    assert round(crossing) == 5000


def test_pausing_holds_new_comments_and_resuming_shows_them(browser: Browser, room_url: str):
    sender, viewer = open_room(browser, room_url), open_room(browser, room_url)
    before = f"before the pause {uuid.uuid4().hex[:6]}"
    send(sender, before)
    expect(comments(viewer, before)).to_have_count(1, timeout=60_000)

    viewer.get_by_test_id("comment-input").press("Escape")  # out of the comment box, where shortcuts work
    viewer.keyboard.press("p")
    pause = viewer.get_by_test_id("pause")
    expect(pause).to_have_attribute("aria-pressed", "true")
    assert comments(viewer, before).evaluate("element => getComputedStyle(element).animationPlayState") == "paused"
    during = f"during the pause {uuid.uuid4().hex[:6]}"
    send(sender, during)
    expect(pause).to_have_text("Resume (1 waiting)", timeout=60_000)
    expect(comments(viewer, during)).to_have_count(0)

    pause.click()
    expect(pause).to_have_text("Pause")
    expect(comments(viewer, during)).to_have_count(1)
    assert comments(viewer, before).evaluate("element => getComputedStyle(element).animationPlayState") == "running"


def test_shortcuts_do_nothing_while_typing_and_clear_empties_the_stage(browser: Browser, room_url: str):
    viewer = open_room(browser, room_url)
    text = f"cheap cheap {uuid.uuid4().hex[:6]}"
    viewer.get_by_test_id("comment-input").press_sequentially(text)  # a "p", an "h" and "c"s, typed
    expect(viewer.get_by_test_id("comment-input")).to_have_value(text)
    expect(viewer.get_by_test_id("pause")).to_have_attribute("aria-pressed", "false")
    expect(viewer.get_by_test_id("hide")).to_have_attribute("aria-pressed", "false")
    viewer.get_by_test_id("send").click()
    expect(comments(viewer, text)).to_have_count(1, timeout=60_000)

    viewer.get_by_test_id("comment-input").press("Escape")
    viewer.keyboard.press("c")
    expect(viewer.get_by_test_id("stage").get_by_test_id("danmaku")).to_have_count(0)


def test_with_reduced_motion_a_comment_fades_in_place(browser: Browser, room_url: str):
    viewer = open_room(browser, room_url, reduced_motion="reduce")
    text = f"no flying {uuid.uuid4().hex[:6]}"
    send(viewer, text)
    shown = comments(viewer, text)
    expect(shown).to_have_count(1, timeout=60_000)
    assert shown.evaluate("element => getComputedStyle(element).animationName") == "danmaku-fade"
    place = "element => element.getBoundingClientRect().left"
    first = shown.evaluate(place)
    viewer.wait_for_timeout(300)
    assert shown.evaluate(place) == first


def test_on_a_phone_sized_screen_nothing_overflows_and_a_comment_can_be_sent(browser: Browser, room_url: str):
    phone = open_room(browser, room_url, viewport={"width": 360, "height": 640})
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 360
    for test_id in ("comment-input", "send", "pause", "opacity"):
        expect(phone.get_by_test_id(test_id)).to_be_in_viewport()
    text = f"from a phone {uuid.uuid4().hex[:6]}"
    send(phone, text)
    expect(comments(phone, text)).to_have_count(1, timeout=60_000)


@pytest.mark.parametrize("kept", ['{"opacity": 5000, "speed": "warp", "hidden": "yes"}', "not json {"])
def test_settings_kept_in_a_bad_shape_are_ignored_for_the_defaults(browser: Browser, room_url: str, kept: str):
    context = browser.new_context()
    context.add_init_script(f"localStorage.setItem('danmaku.viewer', {kept!r})")
    viewer = context.new_page()
    viewer.goto(room_url)
    expect(viewer.get_by_test_id("opacity")).to_have_value("100")
    assert viewer.get_by_test_id("stage").evaluate("stage => stage.style.getPropertyValue('--danmaku-opacity')") == "1"
    expect(viewer.get_by_test_id("speed")).to_have_value("normal")
    expect(viewer.get_by_test_id("hide")).to_have_attribute("aria-pressed", "false")
