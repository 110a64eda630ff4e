"""The module Celery loads: ``celery -A worker.main worker`` / ``celery -A worker.main beat``."""

from worker.tasks import make_app

app = make_app()
