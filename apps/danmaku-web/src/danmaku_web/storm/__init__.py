"""danmaku-storm: a bounded comment storm against the running danmaku app, measured.

Simulated people connect over Socket.IO as the page does, each from its own loopback
source address (127.0.0.2, 127.0.0.3, …), so danmaku-web's per-address limits (comments
per second, connections) apply to each of them as they would to real people: behind the
knit gateway the app counts the address the gateway appends to X-Forwarded-For, which is
the TCP peer the gateway saw, that is the simulated person's source address.

- viewers join a room (`join`) and receive its `danmaku`; `--viewers` of them, spread
  evenly over `--rooms` rooms, joined before the first comment is sent;
- posters send comments (`send {room, text}`) without joining, `--rate` per second in all,
  taking turns, so none sends faster than the app allows one address (1/s by default).

Every comment's text carries the run and its number, so a viewer knows which comment it
got and when it was sent. Each second one line: comments sent and first deliveries in that
second, their send → display latency (from the poster's `send` to the viewer's `danmaku`,
one clock, this process), and the processor's ready instances from the platform's status.
After `--seconds` of storm the tool waits at most `--drain` seconds for what is still on
its way, then prints one line of what was not counted as lost, and the summary line:

    sent N, delivered M, lost L, duplicated D, p50 X ms, p99 Y ms, processor instances peak P

- sent: `send` events emitted (one a poster could not emit, its connection gone, is not sent).
- expected deliveries: one per (viewer, comment) for each comment the app accepted (its
  ack said ok) and the processor did not reject, and each viewer of its room that stayed
  connected from before the storm to the end.
- delivered: expected deliveries that arrived (a (viewer, comment) pair counts once).
- lost: expected deliveries that had not arrived when the drain ended.
- duplicated: deliveries of a comment to a viewer that already had it.
- p50, p99: of the send → display latency of each pair's first delivery (nearest rank, in
  whole milliseconds; `-` when nothing arrived).
- processor instances peak: the most ready danmaku-processor instances the platform
  reported during the storm and drain (`-` without a status source).

Not counted as lost, and named on the line before the summary: comments the app refused in
its ack (`rate_limited` and any other code, with their counts), comments the processor
rejected (moderation's `rejected` event to the poster), sends never answered, deliveries
to a viewer of another room (stray), and viewers that dropped during the run. When the
drain ends with comments still on their way a line says so: those count as lost, and a
longer `--drain` tells late from lost. Ctrl-C stops sending and sums up at once.

Bounded: every option has limits (see `options`), connecting takes at most CONNECT_SECONDS,
the storm `--seconds`, the drain `--drain`, closing CLOSE_SECONDS; the number of comments is
`--rate` × `--seconds`, fixed in advance.

`options` and `ledger` are pure (the options and their limits; the counting and the
percentiles); `clients` (Socket.IO over source-bound connections), `status` (the platform's
status) and `cli` (the run) do the I/O.
"""
