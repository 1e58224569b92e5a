"""danmaku-processor: turns `dev.danmaku.comment.submitted` CloudEvents into published or
rejected ones for K_SINK.

`moderation` and `wordlist` hold the word filter, `processing` the decision for one
event (all pure logic); `sink` delivers results over HTTP; `auth` admits only senders
with the platform's token (see danmaku_events.auth); `app` and `routes` are the
Flask service; `bodyread` reads request bodies within a deadline and a size limit;
`wsgi` and `gunicorn_conf` serve it.
"""
