"""``/parcels``: create parcels, move them along their lifecycle, issue their locker codes, and
read their status, history and proof of delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from cloud.api.deps import (
    OutboxNotifierDep,
    ParcelCreator,
    ParcelOperator,
    ParcelReader,
    SessionDep,
    SettingsDep,
)
from cloud.api.parcel_schemas import (
    AttemptCreate,
    CodeCreate,
    CodeIssuedPublic,
    DeliveryCreate,
    GrantPublic,
    GrantsPublic,
    ParcelCreate,
    ParcelCreatedPublic,
    ParcelEventPublic,
    ParcelEventsPublic,
    ParcelPublic,
    ParcelsPublic,
    ParcelStatusName,
    ProofPublic,
    ProofsPublic,
    TrackingLinkPublic,
    TransitionCreate,
)
from cloud.api.problems import problem_responses
from cloud.errors import ConflictError
from cloud.models import ParcelStatus
from cloud.services import locker_flows, tracking
from cloud.services import parcels as service
from cloud.services.codes import active_grants
from cloud.services.errors import InvalidRequestError
from cloud.services.policy import code_secrets, flow_policy
from protocol.messages import DeviceId

router = APIRouter(prefix="/parcels", tags=["parcels"], responses=problem_responses(401, 403, 422))
ParcelId = uuid.UUID


def _track_path(token: str) -> str:
    return f"/track/{token}"


@router.post(
    "",
    response_model=ParcelCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404),
)
def create_parcel(
    body: ParcelCreate, session: SessionDep, settings: SettingsDep, caller: ParcelCreator
) -> ParcelCreatedPublic:
    """A new parcel (``created``). The response holds the only copy of its tracking token."""
    created = service.create_parcel(
        session,
        new=service.NewParcel(**body.model_dump()),
        tracking_validity=timedelta(days=settings.tracking_validity_days),
    )
    public = ParcelPublic.model_validate(created.parcel)
    return ParcelCreatedPublic(
        **public.model_dump(),
        tracking_token=created.tracking_token,
        tracking_path=_track_path(created.tracking_token),
    )


@router.get("", response_model=ParcelsPublic)
def read_parcels(
    session: SessionDep,
    caller: ParcelReader,
    status_: Annotated[ParcelStatusName | None, Query(alias="status")] = None,
    locker_id: DeviceId | None = None,
    since: Annotated[AwareDatetime | None, Query(description="created at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="created before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    q: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="search: a whole parcel id, or part of a reference or a locker id",
        ),
    ] = None,
) -> ParcelsPublic:
    """Parcels, newest first, one page at a time (``limit``/``offset``; ``count`` is the total)."""
    if since is not None and until is not None and since > until:
        raise InvalidRequestError("'since' is after 'until'", loc=("query", "since"))
    rows, total = service.list_parcels(
        session,
        status=ParcelStatus(status_) if status_ else None,
        locker_id=locker_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        q=q,
    )
    return ParcelsPublic(data=[ParcelPublic.model_validate(p) for p in rows], count=total)


@router.get("/{parcel_id}", response_model=ParcelPublic, responses=problem_responses(404))
def read_parcel(parcel_id: ParcelId, session: SessionDep, caller: ParcelReader) -> ParcelPublic:
    return ParcelPublic.model_validate(service.get_parcel(session, parcel_id))


@router.get(
    "/{parcel_id}/events", response_model=ParcelEventsPublic, responses=problem_responses(404)
)
def read_history(
    parcel_id: ParcelId, session: SessionDep, caller: ParcelReader
) -> ParcelEventsPublic:
    """The parcel's history, oldest first: every transition, attempt, code issued or ended."""
    data = [ParcelEventPublic.model_validate(e) for e in service.history(session, parcel_id)]
    return ParcelEventsPublic(data=data, count=len(data))


@router.get("/{parcel_id}/proofs", response_model=ProofsPublic, responses=problem_responses(404))
def read_proofs(parcel_id: ParcelId, session: SessionDep, caller: ParcelReader) -> ProofsPublic:
    data = [ProofPublic.model_validate(p) for p in service.proofs(session, parcel_id)]
    return ProofsPublic(data=data, count=len(data))


@router.post(
    "/{parcel_id}/transitions",
    response_model=ParcelPublic,
    responses=problem_responses(404, 409),
)
def transition(
    parcel_id: ParcelId, body: TransitionCreate, session: SessionDep, caller: ParcelOperator
) -> ParcelPublic:
    """Move a parcel to ``at_depot`` or ``out_for_delivery``; an illegal move is a 409."""
    parcel = service.transition(
        session,
        parcel_id=parcel_id,
        to=ParcelStatus(body.to),
        vehicle_id=body.vehicle_id,
        reason=body.reason,
    )
    return ParcelPublic.model_validate(parcel)


@router.post(
    "/{parcel_id}/attempts", response_model=ParcelPublic, responses=problem_responses(404, 409)
)
def fail_attempt(
    parcel_id: ParcelId,
    body: AttemptCreate,
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: ParcelOperator,
) -> ParcelPublic:
    """A failed delivery attempt: back to the depot with the reason; courier code withdrawn."""
    parcel = service.fail_attempt(
        session,
        parcel_id=parcel_id,
        reason=body.reason,
        lat=body.lat,
        lon=body.lon,
        secrets=code_secrets(settings),
    )
    notify_outbox()
    return ParcelPublic.model_validate(parcel)


@router.post(
    "/{parcel_id}/delivery",
    response_model=ProofPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409),
)
def deliver(
    parcel_id: ParcelId, body: DeliveryCreate, session: SessionDep, caller: ParcelOperator
) -> ProofPublic:
    """The driver's scan at the door of a home parcel: ``delivered``, with its proof."""
    proof = service.deliver(
        session,
        parcel_id=parcel_id,
        lat=body.lat,
        lon=body.lon,
        vehicle_id=body.vehicle_id,
        note=body.note,
    )
    return ProofPublic.model_validate(proof)


@router.get("/{parcel_id}/codes", response_model=GrantsPublic, responses=problem_responses(404))
def read_codes(parcel_id: ParcelId, session: SessionDep, caller: ParcelReader) -> GrantsPublic:
    """The parcel's codes as grants: kind, compartment, validity, state -- never the code."""
    data = [GrantPublic.model_validate(g) for g in service.grants(session, parcel_id)]
    return GrantsPublic(data=data, count=len(data))


@router.post(
    "/{parcel_id}/codes",
    response_model=CodeIssuedPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409),
)
def issue_code(
    parcel_id: ParcelId,
    body: CodeCreate,
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: ParcelOperator,
) -> CodeIssuedPublic:
    """Issue a code, or resend one: a new code whose grant replaces the active one of that kind,
    which is revoked on the locker. The response holds the only copy of a courier code; pickup
    and return codes go to the webhooks as well."""
    validity = {
        "courier": settings.courier_validity_h,
        "pickup": settings.grant_validity_h,
        "return": settings.return_validity_h,
    }[body.kind]
    issued = service.issue_code(
        session,
        parcel_id=parcel_id,
        kind=body.kind,
        compartment=body.compartment,
        secrets=code_secrets(settings),
        validity=timedelta(hours=validity),
    )
    notify_outbox()
    return CodeIssuedPublic(
        **GrantPublic.model_validate(issued.grant).model_dump(), code=issued.code
    )


@router.post(
    "/{parcel_id}/codes/revoke", response_model=GrantsPublic, responses=problem_responses(404)
)
def revoke_codes(
    parcel_id: ParcelId,
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: ParcelOperator,
) -> GrantsPublic:
    """Revoke every active code of the parcel, here and on the locker (signed command)."""
    ended = service.revoke_codes(session, parcel_id=parcel_id, secrets=code_secrets(settings))
    notify_outbox()
    data = [GrantPublic.model_validate(g) for g in ended]
    return GrantsPublic(data=data, count=len(data))


@router.post(
    "/{parcel_id}/codes/expire",
    response_model=GrantsPublic,
    responses=problem_responses(404, 409),
)
def expire_pickup(
    parcel_id: ParcelId,
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: ParcelOperator,
) -> GrantsPublic:
    """Expire the pickup code now (as its validity would): the courier gets a return code."""
    parcel = service.get_parcel(session, parcel_id)
    pickup = active_grants(session, parcel, "pickup")
    if not pickup:
        raise ConflictError(f"parcel {parcel_id} has no active pickup code")
    policy = flow_policy(settings)
    now = datetime.now(UTC)
    issued = [
        locker_flows.expire_grant(session, parcel, g, policy=policy, now=now, source="api")
        for g in pickup
    ]
    session.commit()
    notify_outbox()
    data = [GrantPublic.model_validate(i.grant) for i in issued if i is not None]
    return GrantsPublic(data=data, count=len(data))


@router.post(
    "/{parcel_id}/tracking-links",
    response_model=TrackingLinkPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404),
)
def new_tracking_link(
    parcel_id: ParcelId, session: SessionDep, settings: SettingsDep, caller: ParcelCreator
) -> TrackingLinkPublic:
    """Another tracking link for the customer (earlier ones stay valid until they expire)."""
    parcel = service.get_parcel(session, parcel_id)
    now = datetime.now(UTC)
    validity = timedelta(days=settings.tracking_validity_days)
    token = tracking.new_token(session, parcel=parcel, now=now, validity=validity)
    session.commit()
    return TrackingLinkPublic(
        tracking_token=token, tracking_path=_track_path(token), expires_at=now + validity
    )
