"""``/me``: the caller's role and permissions, so a client offers only what it may do."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from cloud.api.auth import PERMISSIONS, Principal, current_principal
from cloud.api.console_schemas import MePublic
from cloud.api.problems import problem_responses

router = APIRouter(prefix="/me", tags=["auth"], responses=problem_responses(401))


@router.get("", response_model=MePublic)
async def read_me(caller: Annotated[Principal, Depends(current_principal)]) -> MePublic:
    """Any valid key may ask; the answer is what the hub will enforce anyway."""
    return MePublic(
        role=str(caller.role), permissions=sorted(str(p) for p in PERMISSIONS[caller.role])
    )
