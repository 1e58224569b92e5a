"""The WSGI app gunicorn serves, configured from the environment (see gunicorn_conf)."""

from danmaku_web.app import create_app

app = create_app()
