"""Sandbox configuration: every switch, with defaults, partial updates and validation."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PLIVO_AUTH_ID = "MASANDBOX0000000000A"
DEFAULT_PLIVO_AUTH_TOKEN = "sandbox-plivo-auth-token"
DEFAULT_TELNYX_API_KEY = "KEYSANDBOX0000000000000000000000"
# 32-byte Ed25519 seed (hex). Fixed by default so the public key is stable between runs.
DEFAULT_TELNYX_SEED = "5a" * 32

# Keys that only make sense when the server starts (not changeable at runtime).
STARTUP_ONLY = frozenset({"host", "port", "callback_workers"})


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type/range."""


@dataclass
class SandboxConfig:
    """All sandbox switches. Every field except ``STARTUP_ONLY`` can be changed at runtime
    through ``POST /_sandbox/config`` (partial updates)."""

    # --- server ---
    host: str = "127.0.0.1"
    port: int = 8900  # 0 picks a free port
    # --- accounts ---
    plivo_auth_id: str = DEFAULT_PLIVO_AUTH_ID
    plivo_auth_token: str = DEFAULT_PLIVO_AUTH_TOKEN
    telnyx_api_key: str = DEFAULT_TELNYX_API_KEY
    telnyx_seed: str = DEFAULT_TELNYX_SEED
    # --- lifecycle ---
    seed: int = 0
    delay: float = 2.0  # seconds from request to COMPLETED/ASSIGNED/FAILED/unlinked
    link_failure_ratio: float = 0.0
    unlink_failure_ratio: float = 0.0
    link_failure_reason: str = "Phone number is not associated with a messaging profile"
    unlink_failure_reason: str = "Number removal was rejected by the carrier"
    # --- list paging ---
    plivo_max_limit: int = 20
    telnyx_max_records_per_page: int = 100
    # Serve at most this many per page whatever was asked (0: as asked): a provider that caps
    # ``limit``/``recordsPerPage`` below the request, so a short page is not the last one.
    plivo_page_cap: int = 0
    telnyx_page_cap: int = 0
    # --- callbacks ---
    callbacks_enabled: bool = True
    telnyx_webhook_url: str | None = None
    telnyx_campaign_webhooks: dict[str, str] = field(default_factory=dict)
    telnyx_status_updates: bool = False
    plivo_created_callbacks: bool = True
    callback_drop_ratio: float = 0.0
    callback_duplicate_ratio: float = 0.0
    callback_delay: float = 0.0  # each delivery waits uniform(0, callback_delay) seconds
    callback_reorder_window: int = 0  # >1: hold this many callbacks, then send them shuffled
    callback_reorder_hold: float = 1.0  # ... or whatever is held after this many seconds
    callback_bad_signature_ratio: float = 0.0
    callback_timeout: float = 5.0
    plivo_callback_retries: int = 3
    telnyx_callback_retries: int = 5
    callback_retry_intervals: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    callback_workers: int = 8
    # --- faults (applied to provider API requests only, never to /_sandbox/) ---
    fault_providers: list[str] = field(default_factory=lambda: ["plivo", "telnyx"])
    rate_429_ratio: float = 0.0
    retry_after: int = 1  # seconds, in Retry-After (and x-ratelimit-reset) of injected 429s
    error_5xx_ratio: float = 0.0
    error_5xx_status: int = 503
    hang_ratio: float = 0.0
    hang_seconds: float = 30.0
    hang_mode: str = "answer"  # "answer" (late response) or "close" (drop the connection)
    unknown_status_ratio: float = 0.0
    unknown_status_value: str = "MYSTERY_STATUS"
    malformed_json_ratio: float = 0.0
    # --- per-account rate limits (sliding window); limit 0 disables ---
    plivo_rate_limit: int = 300
    plivo_rate_window: float = 5.0
    telnyx_rate_limit: int = 20
    telnyx_rate_window: float = 1.0
    # --- Telnyx per-carrier mapping: number (or "*") -> carrier whose mapping FAILED
    # ("tmobile", "non_tmobile" or "att"); every other mapping of an assigned number is ADDED.
    telnyx_mapping_failures: dict[str, str] = field(default_factory=dict)
    # --- outbound event receiver (POST /_sandbox/events) ---
    event_secret: str | None = None  # "whsec_..."; unset: every event is refused (401)
    event_refuse_ratio: float = 0.0  # share of valid events answered 503 (to test retries)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def copy(self) -> SandboxConfig:
        return dataclasses.replace(
            self,
            telnyx_campaign_webhooks=dict(self.telnyx_campaign_webhooks),
            telnyx_mapping_failures=dict(self.telnyx_mapping_failures),
            callback_retry_intervals=list(self.callback_retry_intervals),
            fault_providers=list(self.fault_providers),
        )

    def updated(self, changes: dict[str, Any], *, runtime: bool = True) -> SandboxConfig:
        """A validated copy with ``changes`` applied. Raises ConfigError."""
        new = self.copy()
        hints = typing.get_type_hints(SandboxConfig)
        for key, value in changes.items():
            if key not in hints:
                raise ConfigError(f"unknown config key {key!r}")
            if runtime and key in STARTUP_ONLY:
                raise ConfigError(f"{key!r} can only be set at startup")
            setattr(new, key, _coerce(key, hints[key], value))
        new.validate()
        return new

    def validate(self) -> None:
        for name in (
            "link_failure_ratio",
            "unlink_failure_ratio",
            "callback_drop_ratio",
            "callback_duplicate_ratio",
            "callback_bad_signature_ratio",
            "rate_429_ratio",
            "error_5xx_ratio",
            "hang_ratio",
            "unknown_status_ratio",
            "malformed_json_ratio",
            "event_refuse_ratio",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1")
        for name in (
            "delay",
            "callback_delay",
            "callback_reorder_hold",
            "hang_seconds",
            "plivo_rate_window",
            "telnyx_rate_window",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.callback_timeout <= 0:
            raise ConfigError("callback_timeout must be > 0")
        for name in (
            "plivo_rate_limit",
            "telnyx_rate_limit",
            "plivo_callback_retries",
            "telnyx_callback_retries",
            "callback_reorder_window",
            "retry_after",
            "plivo_page_cap",
            "telnyx_page_cap",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.callback_workers < 1:
            raise ConfigError("callback_workers must be >= 1")
        if self.plivo_max_limit < 1 or self.telnyx_max_records_per_page < 1:
            raise ConfigError("page size limits must be >= 1")
        carriers = {"tmobile", "non_tmobile", "att"}
        if not set(self.telnyx_mapping_failures.values()) <= carriers:
            raise ConfigError(f"telnyx_mapping_failures carriers must be among {sorted(carriers)}")
        if self.event_secret is not None and not self.event_secret.startswith("whsec_"):
            raise ConfigError("event_secret must start with 'whsec_'")
        if any(x < 0 for x in self.callback_retry_intervals):
            raise ConfigError("callback_retry_intervals must be >= 0")
        if self.hang_mode not in ("answer", "close"):
            raise ConfigError("hang_mode must be 'answer' or 'close'")
        if not 500 <= self.error_5xx_status <= 599:
            raise ConfigError("error_5xx_status must be a 5xx code")
        if any(p not in ("plivo", "telnyx") for p in self.fault_providers):
            raise ConfigError("fault_providers holds 'plivo' and/or 'telnyx'")
        if (
            len(self.plivo_auth_id) != 20
            or self.plivo_auth_id[:2] not in ("MA", "SA")
            or not self.plivo_auth_id.isalnum()
        ):
            raise ConfigError("plivo_auth_id must be 20 letters/digits starting MA or SA")
        try:
            seed = bytes.fromhex(self.telnyx_seed)
        except ValueError as exc:
            raise ConfigError("telnyx_seed must be hex") from exc
        if len(seed) != 32:
            raise ConfigError("telnyx_seed must be 32 bytes (64 hex digits)")


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, args[0], value)
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list")
        return [_coerce(key, inner, v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be an object")
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ConfigError(f"{key} must be a boolean")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key} must be an integer")
        try:
            f = float(value)
        except ValueError as exc:
            raise ConfigError(f"{key} must be an integer") from exc
        if f != int(f):
            raise ConfigError(f"{key} must be an integer")
        return int(f)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key} must be a number")
        try:
            return float(value)
        except ValueError as exc:
            raise ConfigError(f"{key} must be a number") from exc
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string")
        return value
    return value
