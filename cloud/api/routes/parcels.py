"""``/parcels``: put a parcel in a locker (and get its pickup code, once), follow its status."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, status

from cloud.api.deps import (
    OutboxNotifierDep,
    ParcelCreator,
    ParcelReader,
    SessionDep,
    SettingsDep,
)
from cloud.api.problems import problem_responses
from cloud.api.schemas import ParcelCreate, ParcelCreatedPublic, ParcelPublic
from cloud.services import parcels as service

router = APIRouter(prefix="/parcels", tags=["parcels"], responses=problem_responses(401, 403, 422))


@router.post(
    "",
    response_model=ParcelCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409),
)
def create_parcel(
    body: ParcelCreate,
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: ParcelCreator,
) -> ParcelCreatedPublic:
    """Reserve a compartment and send the locker a grant. The response holds the only copy of the
    code: store it or hand it to the recipient now, the hub cannot show it again."""
    created = service.create_parcel(
        session,
        locker_id=body.locker_id,
        compartment=body.compartment,
        master_secret=settings.code_master_secret.get_secret_value().encode(),
        code_digits=settings.code_digits,
        validity=timedelta(hours=settings.grant_validity_h),
    )
    notify_outbox()
    public = ParcelPublic.model_validate(created.parcel)
    return ParcelCreatedPublic(**public.model_dump(), code=created.code)


@router.get("/{parcel_id}", response_model=ParcelPublic, responses=problem_responses(404))
def read_parcel(parcel_id: uuid.UUID, session: SessionDep, caller: ParcelReader) -> ParcelPublic:
    return ParcelPublic.model_validate(service.get_parcel(session, parcel_id))
