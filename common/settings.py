"""Typed settings: the only place that reads the environment (DESIGN §3).

Every composition root (`create_app`, `create_celery`, the CLI) builds one `Settings` and
passes plain values down. Secrets are `SecretStr`, so a repr or a log line never shows them.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Standard Webhooks secrets are "whsec_" + base64 of the key.
EVENT_SECRET_PREFIX = "whsec_"

DEFAULT_SQLITE_URL = f"sqlite:///{Path('var/dlcsync.db').resolve()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str = Field(default=DEFAULT_SQLITE_URL)
    redis_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"

    plivo_auth_id: str | None = None
    plivo_auth_token: SecretStr | None = None
    plivo_api_url: str = "https://api.plivo.com"

    telnyx_api_key: SecretStr | None = None
    telnyx_public_key: str | None = None
    telnyx_api_url: str = "https://api.telnyx.com"

    api_token: SecretStr | None = None
    #: Signs the dashboard's session cookie; never derived from ``api_token`` (DESIGN §3).
    secret_key: SecretStr | None = None
    alert_urls: str | None = None

    poll_interval_seconds: int = Field(default=60, gt=0)
    stuck_after_seconds: int = Field(default=259200, gt=0)
    drift_check_seconds: int = Field(default=86400, gt=0)
    sweep_seconds: int = Field(default=30, gt=0)
    #: Processed inbox rows older than this are deleted: the window of webhook dedup.
    inbox_retention_days: int = Field(default=30, gt=0)
    plivo_rate_limit_per_second: float = Field(default=50, gt=0)
    telnyx_rate_limit_per_second: float = Field(default=2, gt=0)

    #: Outbound events (Standard Webhooks): space-separated receiver URLs and their secret.
    event_webhook_urls: str | None = None
    event_webhook_secret: SecretStr | None = None

    @field_validator("public_url", "plivo_api_url", "telnyx_api_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator(
        "redis_url", "plivo_auth_id", "telnyx_public_key", "alert_urls", "event_webhook_urls"
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _event_secret_when_urls(self) -> Settings:
        if not self.event_webhook_url_list:
            return self
        secret = self.event_webhook_secret.get_secret_value() if self.event_webhook_secret else ""
        if not secret:
            raise ValueError("EVENT_WEBHOOK_SECRET is required when EVENT_WEBHOOK_URLS is set")
        if not secret.startswith(EVENT_SECRET_PREFIX):
            raise ValueError("EVENT_WEBHOOK_SECRET must start with 'whsec_' (Standard Webhooks)")
        try:
            key = base64.b64decode(secret[len(EVENT_SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError(
                "EVENT_WEBHOOK_SECRET: the part after 'whsec_' is not base64"
            ) from None
        if len(key) < 24:
            raise ValueError("EVENT_WEBHOOK_SECRET: the key is shorter than 24 bytes")
        for url in self.event_webhook_url_list:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"EVENT_WEBHOOK_URLS: {url[:60]!r} is not an http(s) URL")
        return self

    @property
    def event_webhook_url_list(self) -> list[str]:
        return (self.event_webhook_urls or "").split()

    @field_validator("secret_key")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @property
    def public_url_is_https(self) -> bool:
        return self.public_url.lower().startswith("https://")

    @property
    def poll_backoff_cap_seconds(self) -> int:
        """Longest wait between polls of a pending link: 30 poll intervals (30 min at 60 s)."""
        return 30 * self.poll_interval_seconds

    @property
    def alert_url_list(self) -> list[str]:
        return (self.alert_urls or "").split()
