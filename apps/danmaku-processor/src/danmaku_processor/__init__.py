"""danmaku-processor: turns `dev.danmaku.comment.submitted` CloudEvents into published or
rejected ones for K_SINK.

`moderation` and `wordlist` hold the word filter, `processing` the decision for one
event (all pure logic); `sink` delivers results over HTTP; `app` and `routes` are the
Flask service; `wsgi` and `gunicorn_conf` serve it.
"""
