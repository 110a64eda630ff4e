"""gunicorn entry point: ``gunicorn webhooks.wsgi:app``.

Settings the web process cannot run with (a blank or short ``API_TOKEN``) stop it with one
line on stderr and gunicorn's "app failed to load" exit, not a traceback per worker.
"""

import sys

from common.logs import configure_logging
from webhooks.app import create_app
from webhooks.auth import ConfigurationError

configure_logging()
try:
    app = create_app()
except ConfigurationError as exc:
    print(f"dlcsync web: cannot start: {exc}", file=sys.stderr, flush=True)
    sys.exit(4)  # gunicorn's APP_LOAD_ERROR: the arbiter stops instead of respawning
