// The page: joins a room (?room=NAME, else the one in the form), shows each message of the room as
// it comes back from Kafka, and sends new ones. Message text reaches the page only through
// textContent, never as HTML, so a message can never become markup or script.
(() => {
  "use strict";

  const ACK_TIMEOUT_MS = 10000;
  const REMEMBERED_IDS = 500; // delivery is at least once: an id already shown is not shown again

  const byId = (id) => document.getElementById(id);
  const [roomForm, messageForm, list] = [byId("room-form"), byId("message-form"), byId("messages")];
  const [status, notice] = [byId("status"), byId("notice")];
  const shown = new Set();
  let room = new URLSearchParams(location.search).get("room") || roomForm.elements.room.value;

  const socket = io();

  // Emits with an acknowledgement; `then` gets it when ok, else the notice says why not.
  function call(event, data, then) {
    socket.timeout(ACK_TIMEOUT_MS).emit(event, data, (timedOut, ack) => {
      if (timedOut) notice.textContent = "The server did not answer in time; try again.";
      else if (!ack.ok) notice.textContent = ack.error.message;
      else {
        notice.textContent = "";
        then(ack);
      }
    });
  }

  function join(name) {
    call("join", { room: name }, (ack) => {
      if (ack.room !== room) list.replaceChildren();
      room = roomForm.elements.room.value = ack.room;
      history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
    });
  }

  function show(message) {
    if (message.room !== room || shown.has(message.id)) return;
    shown.add(message.id);
    if (shown.size > REMEMBERED_IDS) shown.delete(shown.values().next().value);
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.dateTime = new Date(message.ts).toISOString();
    time.textContent = new Date(message.ts).toLocaleTimeString();
    item.append(time, " ", message.text);
    list.append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  // A reconnection is a new session, in no room yet: join again.
  socket.on("connect", () => {
    status.textContent = "connected";
    join(room);
  });
  socket.on("disconnect", () => (status.textContent = "reconnecting…"));
  socket.on("posted", show);

  roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    join(roomForm.elements.room.value.trim());
  });
  messageForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = messageForm.elements.text;
    call("send", { room, text: input.value }, () => (input.value = ""));
  });
})();
