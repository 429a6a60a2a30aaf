"""API schemas of parcels, their codes and history, tracking, webhooks and locker commands.

No schema carries a code hash or a webhook payload's code. A code appears only in
:class:`CodeIssuedPublic` (the response of the call that issued it); a tracking token only in
:class:`ParcelCreatedPublic` and :class:`TrackingLinkPublic`; a webhook secret only in
:class:`WebhookCreatedPublic`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from protocol.messages import CompartmentSize, DeviceId

ParcelStatusName = Literal[
    "created", "at_depot", "out_for_delivery", "delivered", "deposited", "picked_up", "returned"
]
CodeKind = Literal["courier", "pickup", "return"]
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Free text from a client: no control characters (PostgreSQL refuses NUL, logs hate the rest)."""
EventFilter = Annotated[
    str, StringConstraints(pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$")
]
Secret = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ParcelCreate(_In):
    """A parcel for a locker (``locker_id``) or for a home address (``address``), not both."""

    reference: Text = Field(default="", max_length=100, description="the shipper's own reference")
    size: CompartmentSize = "M"
    locker_id: DeviceId | None = None
    address: Text | None = Field(default=None, min_length=1, max_length=300)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    window_start: AwareDatetime | None = Field(default=None, description="promised window, from")
    window_end: AwareDatetime | None = Field(default=None, description="promised window, until")

    @model_validator(mode="after")
    def _one_destination(self) -> Self:
        if (self.locker_id is None) == (self.address is None):
            raise ValueError("give exactly one of locker_id and address")
        if self.address is not None and (self.lat is None or self.lon is None):
            raise ValueError("a home address needs lat and lon")
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give lat and lon together")
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("give window_start and window_end together")
        if self.window_start and self.window_end and self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class ParcelPublic(_Out):
    id: uuid.UUID
    reference: str
    status: ParcelStatusName
    size: CompartmentSize
    locker_id: str | None
    compartment: int | None
    address: str | None
    lat: float | None
    lon: float | None
    window_start: AwareDatetime | None
    window_end: AwareDatetime | None
    vehicle_id: str | None
    attempts: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    delivered_at: AwareDatetime | None
    picked_up_at: AwareDatetime | None


class ParcelsPublic(BaseModel):
    data: list[ParcelPublic]
    count: int = Field(description="parcels matching the filters, of which data is one page")


class ParcelCreatedPublic(ParcelPublic):
    tracking_token: str = Field(description="returned only here: the customer's link credential")
    tracking_path: str = Field(description="/track/{token}, for the customer")


class TransitionCreate(_In):
    to: Literal["at_depot", "out_for_delivery"]
    vehicle_id: DeviceId | None = Field(default=None, description="the van taking it out")
    reason: Text = Field(default="", max_length=200)


class AttemptCreate(_In):
    reason: Text = Field(min_length=1, max_length=200, description="why delivery failed")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class DeliveryCreate(_In):
    """The driver's scan at the door: the proof of delivery of a home parcel."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    vehicle_id: DeviceId | None = None
    note: Text = Field(default="", max_length=200)


class ParcelEventPublic(_Out):
    at: AwareDatetime
    kind: str
    from_status: str | None
    to_status: str | None
    reason: str
    source: str
    detail: dict[str, Any]


class ParcelEventsPublic(BaseModel):
    data: list[ParcelEventPublic]
    count: int


class ProofPublic(_Out):
    at: AwareDatetime
    kind: Literal["locker_pickup", "driver_scan"]
    locker_id: str | None
    compartment: int | None
    locker_event_id: int | None
    vehicle_id: str | None
    lat: float | None
    lon: float | None
    note: str


class ProofsPublic(BaseModel):
    data: list[ProofPublic]
    count: int


class CodeCreate(_In):
    kind: CodeKind
    compartment: int | None = Field(
        default=None, ge=1, le=512, description="courier only: omit to let the hub choose"
    )


class GrantPublic(_Out):
    grant_id: uuid.UUID
    kind: CodeKind
    locker_id: str
    compartment: int
    issued_at: AwareDatetime
    valid_until: AwareDatetime
    state: Literal["active", "used", "revoked", "expired", "jammed"]
    ended_at: AwareDatetime | None


class GrantsPublic(BaseModel):
    data: list[GrantPublic]
    count: int


class CodeIssuedPublic(GrantPublic):
    code: str = Field(description="the code; returned only in this response, never again")


class TrackingLinkPublic(BaseModel):
    tracking_token: str
    tracking_path: str
    expires_at: AwareDatetime


class EtaPublic(BaseModel):
    at: AwareDatetime
    source: Literal["route", "estimate"] = Field(
        description="'route': the dispatched plan's ETA for this stop; 'estimate': straight line"
    )
    stops_before: int | None = Field(
        default=None, description="stops the van makes before this one ('route' only)"
    )
    distance_km: float | None = Field(default=None, description="straight line ('estimate' only)")
    from_position_at: AwareDatetime | None = Field(
        default=None, description="time of the van's position the ETA starts from, if any"
    )
    speed_kmh: float | None = Field(default=None, description="'estimate' only")
    method: str


class TrackingEventPublic(_Out):
    at: AwareDatetime
    kind: str
    to_status: str | None


class TrackingPublic(BaseModel):
    """What a customer sees: no ids of lockers' grants, no codes, no van identity."""

    reference: str
    status: ParcelStatusName
    destination: Literal["locker", "address"]
    window_start: AwareDatetime | None
    window_end: AwareDatetime | None
    eta: EtaPublic | None
    history: list[TrackingEventPublic]


class CommandPublic(_Out):
    command_id: uuid.UUID
    locker_id: str
    name: str
    args: dict[str, Any]
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    status: Literal["sent", "executed", "refused"]
    reason: str
    acked_at: AwareDatetime | None


class CommandsPublic(BaseModel):
    data: list[CommandPublic]
    count: int


class WebhookCreate(_In):
    url: AnyHttpUrl

    @field_validator("url")
    @classmethod
    def _short_url(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > 2000:
            raise ValueError("a webhook URL is at most 2000 characters")
        return value

    events: list[EventFilter] = Field(
        default_factory=lambda: ["parcel.*"],
        min_length=1,
        max_length=50,
        description="event types, 'parcel.*' for a family or '*' for all",
    )
    secret: Secret | None = Field(
        default=None, min_length=16, max_length=200, description="omit to have one generated"
    )


class WebhookPublic(_Out):
    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    created_at: AwareDatetime


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]
    count: int


class WebhookCreatedPublic(WebhookPublic):
    secret: str = Field(description="signs deliveries; returned only in this response")


class WebhookSecretRotate(_In):
    secret: Secret | None = Field(
        default=None, min_length=16, max_length=200, description="omit to have one generated"
    )


class AttemptPublic(_Out):
    at: AwareDatetime
    status_code: int | None
    error: str
    duration_ms: float


class DeliveryPublic(_Out):
    id: int
    event_id: uuid.UUID
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: AwareDatetime
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None
    last_status_code: int | None
    last_error: str
    log: list[AttemptPublic]


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
    count: int
