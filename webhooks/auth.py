"""The ``/api/v1`` bearer check: ``Authorization: Bearer $API_TOKEN``.

Without ``API_TOKEN`` the API refuses every request (DESIGN §3): there is no anonymous mode.
Tokens are compared with :func:`hmac.compare_digest`, on bytes so that any header value
(non-ASCII included) is merely wrong, never an error.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorized(authorization: str | None, api_token: SecretStr | None) -> bool:
    expected = api_token.get_secret_value() if api_token is not None else ""
    given = bearer_token(authorization)
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


#: DESIGN §3: an ``API_TOKEN`` that is set has at least this many characters.
MIN_API_TOKEN_LENGTH = 32


_HOW = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class ConfigurationError(Exception):
    """The web process cannot start with these settings. The message is one line, for people."""


def check_api_token(api_token: SecretStr | None) -> None:
    """Refuse a set-but-weak ``API_TOKEN`` (unset keeps its meaning: API and dashboard closed).

    A blank or short token is a mistake (an empty ``API_TOKEN=`` line, a placeholder), and a
    short one can be guessed; failing at start says so instead of serving a weak login.
    """
    if api_token is None:
        return
    token = api_token.get_secret_value()
    if not token.strip():
        raise ConfigurationError(
            "API_TOKEN is set but blank: unset it to close the API and the dashboard, or set "
            f"it to a random value of at least {MIN_API_TOKEN_LENGTH} characters ({_HOW})"
        )
    if len(token) < MIN_API_TOKEN_LENGTH:
        raise ConfigurationError(
            f"API_TOKEN is too short ({len(token)} characters): use a random value of at least "
            f"{MIN_API_TOKEN_LENGTH} characters ({_HOW})"
        )
