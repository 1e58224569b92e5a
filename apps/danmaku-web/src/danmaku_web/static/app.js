// The danmaku page: joins the room named in the URL, flies the room's comments across
// the stage, and sends new ones. Comment text reaches the DOM only through textContent,
// never as HTML, so a comment can never become markup or script.
(() => {
  "use strict";

  const LANE_PX = 44; // fits one line of the large size
  const SCROLL_MS = 8000; // a comment crosses the stage in this time; speed is the same for all
  const HOLD_MS = 4000; // top and bottom comments stay this long
  const GAP_PX = 24; // space between two comments in one lane
  const ACK_TIMEOUT_MS = 10000;
  const REMEMBERED_IDS = 1000;
  const HISTORY_STAGGER_MS = 300;

  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const stage = byTestId("stage");
  const input = byTestId("comment-input");
  const color = byTestId("color");
  const mode = byTestId("mode");
  const size = byTestId("size");
  const status = byTestId("status");
  const notice = byTestId("notice");
  const room = document.body.dataset.room;

  // Each lane holds the time it can take the next comment; lanes fill from the top
  // (scroll, top) or from the bottom (bottom).
  const lanes = { scroll: [], top: [], bottom: [] };
  // A comment can arrive twice: in the join history and live, around the moment of joining.
  const shown = new Set();

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function showNotice(message, code = "") {
    notice.textContent = message;
    notice.dataset.code = code;
  }

  function takeLane(kind, now, busyFor) {
    const free = lanes[kind];
    const count = Math.max(1, Math.floor(stage.clientHeight / LANE_PX));
    free.length = count;
    let lane = 0;
    for (let i = 0; i < count; i++) {
      if (!(free[i] > now)) { lane = i; break; } // an empty or free lane: take it
      if (free[i] < free[lane]) lane = i; // all busy: the one free soonest overlaps least
    }
    free[lane] = now + busyFor;
    return lane;
  }

  function remember(id) {
    shown.add(id);
    if (shown.size > REMEMBERED_IDS) shown.delete(shown.values().next().value);
  }

  function show(comment) {
    if (shown.has(comment.id)) return;
    remember(comment.id);
    const element = document.createElement("div");
    element.className = `danmaku ${comment.mode} size-${comment.size}`;
    element.dataset.testid = "danmaku";
    element.dataset.id = comment.id;
    element.textContent = comment.text;
    element.style.color = comment.color;
    if (comment.nick) element.title = comment.nick;
    element.addEventListener("animationend", () => element.remove());
    stage.append(element);

    const now = performance.now();
    if (comment.mode === "scroll") {
      const width = element.offsetWidth;
      const speed = stage.clientWidth / SCROLL_MS; // px per ms
      // The lane is free again once this comment's tail (plus a gap) is on stage.
      element.style.top = `${takeLane("scroll", now, (width + GAP_PX) / speed) * LANE_PX}px`;
      element.style.setProperty("--from", `${stage.clientWidth}px`);
      element.style.setProperty("--to", `${-width}px`);
      element.style.setProperty("--duration", `${(stage.clientWidth + width) / speed}ms`);
    } else {
      const lane = takeLane(comment.mode, now, HOLD_MS);
      element.style[comment.mode] = `${lane * LANE_PX}px`;
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
        ack.history.forEach((comment, i) => setTimeout(() => show(comment), i * HISTORY_STAGGER_MS));
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
  socket.on("danmaku", show);
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
        if (input.value === text) input.value = ""; // keep whatever was typed meanwhile
      }
    });
  });
})();
