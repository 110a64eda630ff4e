"""gunicorn entry point: ``gunicorn webhooks.wsgi:app``."""

from common.logs import configure_logging
from webhooks.app import create_app

configure_logging()
app = create_app()
