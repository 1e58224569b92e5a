"""danmaku-web: the page, Socket.IO rooms, the HTTP API, and the sink for processed comments.

Accepted comments go to Kafka (`publisher`); the processor's verdicts come back to
`POST /events` (`sink`) and out to the browsers in the room (`sockets`). The factory is
`danmaku_web.app.create_app`. This module imports nothing: gunicorn loads
`danmaku_web.gunicorn_conf` before its gevent worker monkey-patches, and anything
imported then (Kafka's client among it) would keep blocking sockets.
"""
