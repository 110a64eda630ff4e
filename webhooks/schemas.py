"""Pydantic models of the ``/api/v1`` JSON API (DESIGN §4): one source of truth.

The views validate path, query and body input with these models and build every answer from
them; :func:`webhooks.openapi.openapi_document` turns the same models into the OpenAPI document.
A change here is a change of the contract, visible in ``GET /api/v1/openapi.json``.

Times are ISO 8601 with a timezone, in and out. A timestamp without an offset is refused
(400): an audit question asked in an unknown timezone has no single right answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

from models.desired import GROUPS, Change, Plan
from models.numbers import CAMPAIGN_ID, check_campaign_id
from models.statemachine import State
from models.tables import Job, Link, LinkEvent
from providers.registry import SPECS

#: Most numbers one ``POST /api/v1/links`` may carry.
MAX_NUMBERS = 10_000
#: Most declared links one ``POST /api/v1/plan`` or ``/apply`` may carry (the 256 KiB body
#: limit comes first, at about 3,000).
MAX_DESIRED = 10_000
#: Most campaigns one ``POST /api/v1/adopt`` may name.
MAX_CAMPAIGNS = 1000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

#: The providers dlcsync has adapters for; which of them are *configured* is a runtime
#: question (settings), answered by the views with a 400.
KNOWN_PROVIDERS = tuple(sorted(SPECS))


def _known_provider(value: str) -> str:
    if value not in KNOWN_PROVIDERS:
        raise ValueError(f"unknown provider; one of {', '.join(KNOWN_PROVIDERS)}")
    return value


def _iso8601(value: object) -> object:
    # Pydantic alone would also take a bare number as a Unix time; the API speaks ISO 8601.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO 8601 time") from None
    return value


def _to_utc(value: datetime) -> datetime:
    # Offsets can push a valid local time past datetime's range (year 1 or 9999).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None


ProviderName = Annotated[
    str,
    AfterValidator(_known_provider),
    WithJsonSchema({"type": "string", "enum": list(KNOWN_PROVIDERS)}),
]
#: The pattern documents the rule in the OpenAPI document; models.numbers decides it.
CampaignId = Annotated[
    str, Field(pattern=CAMPAIGN_ID.pattern, max_length=64), AfterValidator(check_campaign_id)
]
UtcTime = Annotated[AwareDatetime, BeforeValidator(_iso8601), AfterValidator(_to_utc)]
Cursor = Annotated[str, Field(max_length=64, description="opaque; from a previous next_cursor")]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]


class _Input(BaseModel):
    # An unknown parameter is refused: a typo (``?status=``) must not silently list everything.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- input -------------------------------------------------------------------------------


class LinkRequest(BaseModel):
    """Body of ``POST /api/v1/links``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    campaign_id: CampaignId
    numbers: list[str] = Field(
        min_length=1,
        max_length=MAX_NUMBERS,
        description="phone numbers, ideally E.164; each gets its own result",
    )


class LinkPath(_Input):
    provider: ProviderName
    number: str = Field(description="E.164 (`+15551234567`; `%2B` for `+` also works)")


class CampaignPath(_Input):
    provider: ProviderName
    campaign_id: CampaignId


class PageQuery(_Input):
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class LinkListQuery(PageQuery):
    provider: ProviderName | None = None
    campaign_id: CampaignId | None = None
    state: State | None = None


class LinkQuery(_Input):
    as_of: UtcTime | None = Field(
        default=None,
        description="ISO 8601 with a timezone: the state dlcsync had recorded at that time",
    )


class EventQuery(PageQuery):
    since: UtcTime | None = Field(default=None, description="recorded at or after (ISO 8601)")
    until: UtcTime | None = Field(default=None, description="recorded before (ISO 8601)")
    state: State | None = Field(default=None, description="the state the row moved to")
    provider: ProviderName | None = None
    campaign_id: CampaignId | None = None


# --- output ------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class LinkOut(BaseModel):
    provider: str
    number: str
    campaign_id: str
    state: State
    generation: int
    provider_status: str | None
    failure_reason: str | None
    updated_at: datetime
    #: Telnyx per-carrier mapping ({"tmobile": "ADDED", ...}); left out when not reported,
    #: so a link's shape stays DESIGN's for providers without it.
    carrier_mapping: dict[str, str] | None = None

    @model_serializer(mode="wrap")
    def _omit_missing_mapping(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("carrier_mapping") is None:
            data.pop("carrier_mapping", None)
        return data

    @classmethod
    def of(cls, link: Link) -> LinkOut:
        return cls(
            provider=link.provider,
            number=link.number,
            campaign_id=link.campaign_id,
            state=State(link.state),
            generation=link.generation,
            provider_status=link.provider_status,
            failure_reason=link.failure_reason,
            updated_at=link.updated_at,
            carrier_mapping=link.carrier_mapping,
        )

    @classmethod
    def as_of(cls, row: LinkEvent) -> LinkOut:
        """The link as one audit row left it."""
        state = State(row.to_state)
        failed = state in (State.FAILED, State.UNLINK_FAILED)
        return cls(
            provider=row.provider,
            number=row.number,
            campaign_id=row.campaign_id,
            state=state,
            generation=row.generation,
            provider_status=row.provider_status,
            failure_reason=row.reason if failed else None,
            updated_at=row.recorded_at,
        )


class AuditRow(BaseModel):
    id: int
    provider: str
    number: str
    campaign_id: str
    generation: int
    from_state: State | None
    to_state: State
    source: str
    provider_status: str | None
    provider_time: datetime | None
    recorded_at: datetime
    reason: str | None
    drift: bool

    @classmethod
    def of(cls, row: LinkEvent) -> AuditRow:
        assert row.id is not None
        return cls(
            id=row.id,
            provider=row.provider,
            number=row.number,
            campaign_id=row.campaign_id,
            generation=row.generation,
            from_state=State(row.from_state) if row.from_state else None,
            to_state=State(row.to_state),
            source=row.source,
            provider_status=row.provider_status,
            provider_time=row.provider_time,
            recorded_at=row.recorded_at,
            reason=row.reason,
            drift=row.drift,
        )


class LinkPage(BaseModel):
    items: list[LinkOut]
    next_cursor: str | None


class AuditPage(BaseModel):
    items: list[AuditRow]
    next_cursor: str | None


class NumberResultOut(BaseModel):
    number: str
    accepted: bool
    reason: str | None


class LinkResults(BaseModel):
    results: list[NumberResultOut]


class Counts(BaseModel):
    """Links per state, zeros included (a test keeps these fields equal to ``State``)."""

    LINK_REQUESTED: int = Field(ge=0)
    PROCESSING: int = Field(ge=0)
    COMPLETED: int = Field(ge=0)
    FAILED: int = Field(ge=0)
    UNLINK_REQUESTED: int = Field(ge=0)
    UNLINK_PROCESSING: int = Field(ge=0)
    UNLINKED: int = Field(ge=0)
    UNLINK_FAILED: int = Field(ge=0)


class CampaignSummary(BaseModel):
    provider: str
    campaign_id: str
    counts: Counts
    total: int


# --- adoption jobs and desired state (webhooks.api_desired) ------------------------------


class AdoptRequest(BaseModel):
    """Body of ``POST /api/v1/adopt``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    campaign_ids: list[CampaignId] = Field(
        default_factory=list,
        max_length=MAX_CAMPAIGNS,
        description="the campaigns to adopt; empty or left out: every campaign of the account",
    )


class JobPath(_Input):
    job_id: int = Field(ge=1, le=2**63 - 1, description="from `POST /api/v1/adopt`")


class DesiredLink(BaseModel):
    """One number that should be linked to one campaign."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    number: str = Field(max_length=40, description="E.164 (`+15551234567`)")
    campaign_id: CampaignId


class DesiredState(BaseModel):
    """Body of ``POST /api/v1/plan`` and ``POST /api/v1/apply``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    links: list[DesiredLink] = Field(
        min_length=1, max_length=MAX_DESIRED, description="one item per number"
    )
    prune: bool = Field(
        default=False,
        description=(
            "also unlink the numbers dlcsync holds linked or pending on a provider named in "
            "`links` that `links` leaves out"
        ),
    )


class JobCreated(BaseModel):
    job_id: int


class AdoptProblem(BaseModel):
    what: str
    why: str


class AdoptSummaryOut(BaseModel):
    adopted: int
    already_known: int
    drift: int
    errors: int
    error_samples: list[AdoptProblem]
    not_listed: int
    not_listed_samples: list[str]


class JobOut(BaseModel):
    id: int
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    params: dict[str, Any]
    progress: int = Field(description="numbers recorded so far")
    total: int | None = Field(description="numbers the carrier listed, once known")
    summary: AdoptSummaryOut | None = Field(description="once done")
    error: str | None = Field(description="why it failed")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobOut:
        assert job.id is not None
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,  # models.jobs writes only these
            params=job.params,
            progress=job.progress,
            total=job.total,
            summary=AdoptSummaryOut.model_validate(job.summary) if job.summary else None,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class PlanEntry(BaseModel):
    provider: str
    number: str
    campaign_id: str = Field(description="the campaign it goes to (or, to unlink, is on)")
    from_campaign_id: str | None = Field(
        description="a move: the campaign it leaves; an unlink: the campaign it is on"
    )
    index: int | None = Field(description="its position in `links` (none for an unlink)")

    @classmethod
    def of(cls, change: Change) -> PlanEntry:
        return cls(
            provider=change.provider,
            number=change.number,
            campaign_id=change.campaign_id,
            from_campaign_id=change.from_campaign,
            index=change.line,
        )


class PlanCounts(BaseModel):
    link: int
    move: int
    unlink: int
    unchanged: int


class CampaignPlanCounts(PlanCounts):
    provider: str
    campaign_id: str


class PlanOut(BaseModel):
    """What applying a desired state does (``plan``) or did (``apply``)."""

    link: list[PlanEntry]
    move: list[PlanEntry]
    unlink: list[PlanEntry]
    unchanged: list[PlanEntry]
    counts: PlanCounts
    per_campaign: list[CampaignPlanCounts]
    prune: bool

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        groups = {g: [PlanEntry.of(c) for c in getattr(plan, g)] for g in GROUPS}
        return cls(
            **groups,
            counts=PlanCounts(**{g: len(entries) for g, entries in groups.items()}),
            per_campaign=[
                CampaignPlanCounts(provider=p, campaign_id=c, **{g: n[g] for g in GROUPS})
                for (p, c), n in plan.per_campaign().items()
            ],
            prune=plan.prune,
        )
