// The danmaku page: joins the room named in the URL, flies the room's comments across
// the stage, and sends new ones. Comment text reaches the DOM only through textContent,
// never as HTML, so a comment can never become markup or script. The viewer can pause,
// clear and hide the comments (P, C, H), and set their opacity and speed, which this
// browser keeps; with prefers-reduced-motion, comments fade in place instead of flying.
(() => {
  "use strict";

  const LANE_PX = 44; // fits one line of the large size
  // A comment crosses the stage in this time, whatever its length, at the viewer's speed.
  const CROSSING_MS = { slow: 12000, normal: 8000, fast: 5000 };
  const HOLD_MS = 4000; // top and bottom comments stay this long
  const GAP_PX = 24; // space between two comments in one lane
  const ACK_TIMEOUT_MS = 10000;
  const REMEMBERED_IDS = 1000;
  const HISTORY_STAGGER_MS = 300;
  const MAX_HELD = 200; // comments kept while paused; older ones are dropped past this
  // A comment shows only in a free lane, never over another: when every lane is busy it is
  // skipped (and counted), as danmaku players keep the stage readable. MAX_ON_STAGE bounds the
  // stage whatever the lanes hold (a storm of hundreds stalls the page). The viewer's own
  // comments always show (their ack, which names them, comes before they do).
  const MAX_ON_STAGE = 80;
  const SETTINGS_KEY = "danmaku.viewer";
  const DEFAULTS = { opacity: 100, speed: "normal", hidden: false };

  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const stage = byTestId("stage");
  const input = byTestId("comment-input");
  const color = byTestId("color");
  const mode = byTestId("mode");
  const size = byTestId("size");
  const status = byTestId("status");
  const notice = byTestId("notice");
  const pauseButton = byTestId("pause");
  const hideButton = byTestId("hide");
  const opacityInput = byTestId("opacity");
  const speedSelect = byTestId("speed");
  const room = document.body.dataset.room;
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  // Each lane holds the last comment placed in it, which says when the lane is free; lanes
  // fill from the top (scroll, top) or from the bottom (bottom).
  const lanes = { scroll: [], top: [], bottom: [] };
  // A comment can arrive twice: in the join history and live, around the moment of joining.
  const shown = new Set();
  // While paused, arriving comments wait here.
  const pause = { on: false, held: [], dropped: 0 };
  const skipped = byTestId("skipped");
  let skippedCount = 0;
  const mine = new Set(); // ids of this page's comments, acknowledged and not shown yet
  const settings = loadSettings();

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function showNotice(message, code = "") {
    notice.textContent = message;
    notice.dataset.code = code;
  }

  // What this browser kept, each value checked: anything else there is ignored.
  function loadSettings() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(SETTINGS_KEY)) || {};
    } catch {
      // unreadable or not allowed: the defaults
    }
    const opacity = Number(saved.opacity);
    return {
      opacity: Number.isInteger(opacity) && opacity >= 10 && opacity <= 100 ? opacity : DEFAULTS.opacity,
      speed: Object.hasOwn(CROSSING_MS, saved.speed) ? saved.speed : DEFAULTS.speed,
      hidden: saved.hidden === true,
    };
  }

  function applySettings() {
    opacityInput.value = String(settings.opacity);
    speedSelect.value = settings.speed;
    stage.style.setProperty("--danmaku-opacity", String(settings.opacity / 100));
    stage.classList.toggle("hidden", settings.hidden);
    hideButton.setAttribute("aria-pressed", String(settings.hidden));
    hideButton.textContent = settings.hidden ? "Show" : "Hide";
    try {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
    } catch {
      // storage full or not allowed: the settings hold for this page only
    }
  }

  function togglePause() {
    pause.on = !pause.on;
    stage.classList.toggle("paused", pause.on);
    pauseButton.setAttribute("aria-pressed", String(pause.on));
    if (!pause.on) {
      const held = pause.held.splice(0);
      pause.dropped = 0;
      held.forEach(show);
    }
    showPauseState();
  }

  function showPauseState() {
    if (!pause.on) {
      pauseButton.textContent = "Pause";
    } else {
      const dropped = pause.dropped ? `, ${pause.dropped} dropped` : "";
      pauseButton.textContent = `Resume (${pause.held.length} waiting${dropped})`;
    }
  }

  function clearStage() {
    stage.querySelectorAll(".danmaku").forEach((element) => element.remove());
    for (const placed of Object.values(lanes)) placed.length = 0;
    pause.held.length = 0;
    pause.dropped = 0;
    showPauseState();
  }

  // How much of a lane its last comment still takes, in px (0: free). A flying comment takes
  // it until its tail, plus a gap, is on stage, read from where the comment really is (so a
  // page that stalls cannot make two overlap); a comment that stays takes it until it is gone.
  function taken(element, stageRight) {
    if (!element || !element.isConnected) return 0;
    if (!element.classList.contains("scroll")) return Infinity;
    return Math.max(0, element.getBoundingClientRect().right + GAP_PX - stageRight);
  }

  // The first free lane for `element`, or -1 when all are taken; with `anyway`, the least taken.
  function takeLane(kind, element, anyway) {
    const placed = lanes[kind];
    const count = Math.max(1, Math.floor(stage.clientHeight / LANE_PX));
    placed.length = count;
    const stageRight = stage.getBoundingClientRect().right;
    let lane = 0;
    let least = Infinity;
    for (let i = 0; i < count && least > 0; i++) {
      const left = taken(placed[i], stageRight);
      if (left < least) [lane, least] = [i, left];
    }
    if (least > 0 && !anyway) return -1;
    placed[lane] = element;
    return lane;
  }

  function skip() {
    skippedCount += 1;
    skipped.hidden = false;
    skipped.textContent = `${skippedCount} skipped: too many at once`;
  }

  function remember(id) {
    shown.add(id);
    if (shown.size > REMEMBERED_IDS) shown.delete(shown.values().next().value);
  }

  function arrive(comment) {
    if (shown.has(comment.id)) return;
    remember(comment.id);
    if (!pause.on) {
      show(comment);
      return;
    }
    pause.held.push(comment);
    if (pause.held.length > MAX_HELD) {
      pause.held.shift();
      pause.dropped += 1;
    }
    showPauseState();
  }

  function show(comment) {
    const own = mine.delete(comment.id);
    if (stage.childElementCount >= MAX_ON_STAGE && !own) {
      skip();
      return;
    }
    // With reduced motion, a scrolling comment fades in and out in a lane of its own.
    const still = comment.mode === "scroll" && reducedMotion.matches;
    const element = document.createElement("div");
    element.className = `danmaku ${still ? "still" : comment.mode} size-${comment.size}`;
    element.dataset.testid = "danmaku";
    element.dataset.id = comment.id;
    element.textContent = comment.text;
    element.style.color = comment.color;
    if (comment.nick) element.title = comment.nick;
    element.addEventListener("animationend", () => element.remove());
    stage.append(element);

    const flies = comment.mode === "scroll" && !still;
    // scroll, top or bottom (the server checks); every comment flies at the same speed, so
    // none catches up with the one ahead in its lane.
    const lane = takeLane(comment.mode, element, own);
    if (lane < 0) {
      element.remove();
      skip();
      return;
    }
    element.style[comment.mode === "bottom" ? "bottom" : "top"] = `${lane * LANE_PX}px`;
    if (flies) {
      const width = element.offsetWidth;
      const speed = stage.clientWidth / CROSSING_MS[settings.speed]; // px per ms
      element.style.setProperty("--from", `${stage.clientWidth}px`);
      element.style.setProperty("--to", `${-width}px`);
      element.style.setProperty("--duration", `${(stage.clientWidth + width) / speed}ms`);
    } else {
      element.style.setProperty("--duration", `${HOLD_MS}ms`);
    }
  }

  const socket = io();

  socket.on("connect", () => {
    setStatus("joining", "joining…");
    socket.timeout(ACK_TIMEOUT_MS).emit("join", { room }, (error, ack) => {
      if (error) {
        setStatus("offline", "no answer");
        showNotice("the server did not answer the join; reload the page to try again", "timeout");
      } else if (!ack.ok) {
        setStatus("offline", "not joined");
        showNotice(ack.error.message, ack.error.code);
      } else {
        setStatus("connected", "connected");
        ack.history.forEach((comment, i) => setTimeout(() => arrive(comment), i * HISTORY_STAGGER_MS));
      }
    });
  });
  socket.on("disconnect", () => setStatus("offline", "offline, reconnecting…"));
  socket.on("connect_error", (error) => {
    setStatus("offline", "offline, reconnecting…");
    // A refusal says why (e.g. too many connections from this address); a network error does not.
    const refusal = error && error.data && error.data.error;
    if (refusal) showNotice(refusal.message, refusal.code);
  });
  socket.on("danmaku", arrive);
  socket.on("rejected", (rejection) => showNotice(`rejected: ${rejection.message}`, rejection.code));

  document.querySelector("form.composer").addEventListener("submit", (event) => {
    event.preventDefault();
    if (status.dataset.state !== "connected") {
      showNotice("not connected yet: wait until the status says connected", "not_connected");
      return;
    }
    const text = input.value;
    const comment = { room, text, color: color.value.toUpperCase(), mode: mode.value, size: size.value };
    socket.timeout(ACK_TIMEOUT_MS).emit("send", comment, (error, ack) => {
      if (error) {
        showNotice("the server did not answer within 10 s; send again", "timeout");
      } else if (!ack.ok) {
        showNotice(ack.error.message, ack.error.code);
      } else {
        showNotice("");
        if (mine.size < REMEMBERED_IDS) mine.add(ack.id);
        if (input.value === text) input.value = ""; // keep whatever was typed meanwhile
      }
    });
  });

  applySettings();
  pauseButton.addEventListener("click", togglePause);
  byTestId("clear").addEventListener("click", clearStage);
  hideButton.addEventListener("click", () => {
    settings.hidden = !settings.hidden;
    applySettings();
  });
  opacityInput.addEventListener("input", () => {
    settings.opacity = Number(opacityInput.value);
    applySettings();
  });
  speedSelect.addEventListener("change", () => {
    settings.speed = speedSelect.value;
    applySettings();
  });
  // Single-key shortcuts, except while typing a comment (Escape leaves the comment box) or
  // holding a modifier.
  const SHORTCUTS = { p: togglePause, c: clearStage, h: () => hideButton.click() };
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && event.target === input) {
      input.blur();
      return;
    }
    const field = "input, select, textarea, [contenteditable]";
    const typing = event.target instanceof Element && event.target.closest(field);
    const action = SHORTCUTS[event.key.toLowerCase()];
    if (typing || event.ctrlKey || event.metaKey || event.altKey || !action) return;
    event.preventDefault();
    action();
  });
})();
