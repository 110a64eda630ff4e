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
