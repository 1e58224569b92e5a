"""gunicorn settings: `gunicorn --config python:danmaku_web.gunicorn_conf danmaku_web.wsgi:app`."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"

# gevent holds thousands of idle WebSockets in one process; Socket.IO must use the same
# async mode as the worker, so it is set here, next to the worker class.
worker_class = "gevent"
raw_env = ["DANMAKU_WEB_ASYNC_MODE=gevent"]

# One worker: Socket.IO rooms and sessions live in this process's memory, and a polling
# client's requests must all reach the process holding its session. Scaling out needs a
# Socket.IO message queue and sticky sessions.
workers = 1

# gunicorn 27 otherwise opens a control socket at ~/.gunicorn/gunicorn.ctl, one path
# shared by every gunicorn on the machine.
control_socket_disable = True

accesslog = "-"
# Open WebSockets never finish on their own: give them a moment, then stop.
graceful_timeout = 5
