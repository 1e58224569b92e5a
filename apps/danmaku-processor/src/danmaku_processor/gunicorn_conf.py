"""gunicorn settings for the processor:
`gunicorn --config python:danmaku_processor.gunicorn_conf danmaku_processor.wsgi:app`.

Listens on $HOST:$PORT (Knative sets PORT; the container image sets HOST=0.0.0.0).
"""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"
# Threads, not processes: the work is waiting on K_SINK, and one process keeps memory low
# for an app that scales out by instances.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Otherwise every gunicorn on the machine shares ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True
# Scale-down sends SIGTERM; in-flight events finish within this, the rest are redelivered.
graceful_timeout = 10
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
