"""``GET /api/v1/devices``: the device registry that ``lastmile provision`` writes (ops only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from cloud.api.deps import DeviceManager, SessionDep
from cloud.api.problems import problem_responses
from cloud.registry import DeviceState, list_devices
from protocol.topics import DeviceKind

router = APIRouter(prefix="/devices", tags=["devices"], responses=problem_responses(401, 403, 422))


class DevicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: DeviceKind
    state: DeviceState
    created_at: AwareDatetime
    rotated_at: AwareDatetime | None
    revoked_at: AwareDatetime | None


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


@router.get("", response_model=DevicesPublic)
def read_devices(
    session: SessionDep,
    caller: DeviceManager,
    kind: Annotated[DeviceKind | None, Query()] = None,
    state: Annotated[DeviceState | None, Query()] = None,
) -> DevicesPublic:
    """Every provisioned van and locker, by id; a revoked one's messages are dead-lettered."""
    data = [DevicePublic.model_validate(d) for d in list_devices(session, kind=kind, state=state)]
    return DevicesPublic(data=data, count=len(data))
