"""The common interface of provider adapters, and the errors they raise.

One module per provider (``plivo.py``, ``telnyx.py``) implements :class:`ProviderClient`
(API calls over a shared ``httpx.Client``) and :class:`CallbackHandler` (signature check and
parsing of the provider's status callbacks). Everything provider-specific stays there:
wire formats, number formats, status tables, error bodies.

Provider statuses are mapped onto a direction-neutral :class:`~models.statemachine.Signal`;
``signal=None`` means the status is unknown and is never guessed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol

import httpx

from models.statemachine import Direction, Signal

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)


class ProviderError(Exception):
    """Base of every error an adapter raises. ``str(err)`` is meant for people."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TemporaryProviderError(ProviderError):
    """Worth retrying later: timeouts, connection errors, 408, 409, 429, 5xx."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message, status=status, code=code)
        #: Seconds the provider asked us to wait (Retry-After, x-ratelimit-reset).
        self.retry_after = retry_after
        #: The request may have reached the provider (check with a GET before resending).
        self.timed_out = timed_out


class MalformedResponse(TemporaryProviderError):
    """The provider answered 2xx with something we cannot understand (bad JSON, no fields)."""


class PermanentProviderError(ProviderError):
    """Retrying will not help: other 4xx, with the provider's error text and code."""


class CredentialsRejected(PermanentProviderError):
    """401/403: the provider refused our credentials."""


class NotLinked(ProviderError):
    """The number is not linked to the campaign (404, Plivo's "not linked" error)."""


class VerificationError(Exception):
    """A callback's signature is missing, malformed, wrong or outside its time window."""


class CallbackParseError(Exception):
    """A correctly signed callback whose body cannot be understood."""


@dataclass(frozen=True)
class NumberStatus:
    """What the provider says about one number (from link/unlink/get/list answers)."""

    number: str  # E.164
    campaign_id: str | None
    provider_status: str
    signal: Signal | None
    direction: Direction | None = None
    provider_time: datetime | None = None
    reason: str | None = None
    #: A failure that one more attempt cures (Telnyx: the campaign was dormant, and the
    #: failed assignment reactivated it).
    retry_once: bool = False
    #: Per-carrier mapping statuses when the provider reports them (Telnyx), sorted pairs.
    carrier_mapping: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class CampaignInfo:
    """What a provider says about a campaign, for the pre-flight checks before a link.

    ``None`` in a field means the provider did not say: a check never guesses from it.
    """

    campaign_id: str
    #: False when the provider does not know the campaign (it answered 404).
    exists: bool = True
    #: The provider's status text, e.g. ``ACTIVE`` or ``MNO_PROVISIONED/ACTIVE``.
    status: str | None = None
    #: False when the status says the campaign cannot take numbers now; then ``why`` says why.
    can_take_numbers: bool | None = None
    why: str | None = None
    number_pooling: bool | None = None
    usecase: str | None = None

    @property
    def sole_proprietor(self) -> bool | None:
        return None if self.usecase is None else self.usecase.upper() == "SOLE_PROPRIETOR"


@dataclass(frozen=True)
class CallbackRequest:
    """A webhook request as received, before trusting anything in it."""

    method: str
    #: The public URL the provider called: PUBLIC_URL + path + "?" + query string, if any.
    url: str
    headers: Mapping[str, str]  # case-insensitive lookups are the handler's job
    body: bytes
    content_type: str = ""
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackEvent:
    """A verified and parsed callback."""

    dedupe_key: str
    #: False for valid events that are not about number assignment (answered 200, ignored).
    relevant: bool
    number: str | None = None  # E.164
    campaign_id: str | None = None
    provider_status: str = ""
    signal: Signal | None = None
    direction: Direction | None = None
    event_id: str | None = None
    provider_time: datetime | None = None
    reason: str | None = None
    ignore_reason: str | None = None
    #: As :attr:`NumberStatus.retry_once`.
    retry_once: bool = False
    #: Every id the callback names the campaign by (Telnyx: ``campaignId`` and
    #: ``tcrCampaignId``), ``campaign_id`` among them.
    campaign_ids: tuple[str, ...] = ()

    def campaign_for(self, link_campaign: str | None) -> str | None:
        """The campaign as the link knows it: the link's own id when the callback names the
        campaign by any of its ids, else ``campaign_id`` (then it is another campaign)."""
        if link_campaign is not None and link_campaign in self.campaign_ids:
            return link_campaign
        return self.campaign_id


class RateLimiter(Protocol):
    """Shared per-account limiter (issue: reconciliation). ``acquire`` blocks until allowed."""

    def acquire(self) -> None: ...

    def penalize(self, seconds: float) -> None:
        """The provider said to slow down (429, Retry-After, x-ratelimit-reset)."""


class NoLimit:
    def acquire(self) -> None:
        return None

    def penalize(self, seconds: float) -> None:
        return None


class ProviderClient(ABC):
    """API operations. Numbers are E.164 in and out; conversion happens inside."""

    name: ClassVar[str]
    #: Whether one request can link many numbers (Plivo) or one per request (Telnyx).
    batch_link: ClassVar[bool] = False
    #: Whether the provider moves a number to another campaign in one call (Telnyx PUT).
    supports_move: ClassVar[bool] = False
    #: Records per page :meth:`list_campaign` asks for (the worker prices a listing with it).
    page_size: int

    @abstractmethod
    def link(self, campaign_id: str, numbers: list[str]) -> list[NumberStatus]: ...

    @abstractmethod
    def unlink(self, campaign_id: str, number: str) -> NumberStatus: ...

    @abstractmethod
    def get(self, campaign_id: str, number: str) -> NumberStatus:
        """Raises :class:`NotLinked` when the number is not linked to that campaign."""

    @abstractmethod
    def list_campaign(self, campaign_id: str) -> list[NumberStatus]:
        """All numbers of a campaign, every page."""

    # Optional capabilities: a provider without them still links, unlinks and polls.

    def list_account(self) -> list[NumberStatus]:
        """Every linked (or pending) number of the account, every page, with its campaign.

        List endpoints only (``dlcsync adopt``): never a request per number. Without it,
        adoption needs the campaigns named.
        """
        raise PermanentProviderError(
            f"{self.name}: cannot list the whole account; name the campaigns"
        )

    def campaign(self, campaign_id: str) -> CampaignInfo:
        """The campaign's status, pooling and use case (``exists=False`` on a 404).

        Without it nothing is known (every field ``None``), so the pre-flight checks only
        apply the operator's own number caps.
        """
        return CampaignInfo(campaign_id)

    def move(self, number: str, from_campaign: str, to_campaign: str) -> NumberStatus:
        raise NotImplementedError(f"{self.name} cannot move a number in one call")


class Trust(StrEnum):
    """What a verified signature vouches for."""

    #: The signature covers what the callback says: its body may be applied.
    BODY = "body"
    #: Only the sender is authentic (Plivo V2 signs the URL and nonce, not the body): the
    #: callback is a hint to poll its number, and nothing in its body is applied.
    SENDER = "sender"


class CallbackHandler(ABC):
    name: ClassVar[str]
    #: Request headers that carry signatures: stored as digests, never in clear (whoever
    #: reads the inbox must not be able to replay them).
    signature_headers: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def verify(self, request: CallbackRequest, now: float | None = None) -> Trust:
        """Raise :class:`VerificationError` unless the request is authentic; else say what
        the signature vouches for. Never raises anything else."""

    def nonce(self, request: CallbackRequest) -> str | None:
        """The signature's single-use nonce, for providers whose signatures carry no time
        (a nonce seen again with another request is refused). ``None``: nothing to check."""
        return None

    @abstractmethod
    def parse(self, request: CallbackRequest) -> CallbackEvent:
        """Raise :class:`CallbackParseError` when the body cannot be understood. Never else."""
