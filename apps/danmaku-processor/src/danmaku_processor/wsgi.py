"""The WSGI entry point gunicorn serves: `danmaku_processor.wsgi:app`."""

from danmaku_processor.app import create_app

app = create_app()
