"""The parcel lifecycle: which status may follow which, and the history every change leaves.

::

    created -> at_depot -> out_for_delivery -> delivered            (home address, driver's scan)
                   ^              |         -> deposited -> picked_up   (locker)
                   +-- failed ----+                      -> returned    (expired, courier took it)

A failed attempt sends an out-for-delivery parcel back to the depot with a reason and counts it.
Every change goes through :func:`move`, which refuses an illegal one with
:class:`IllegalTransitionError` (409, naming both states), appends a :class:`ParcelEvent` and queues
the webhook deliveries for it -- all in the caller's transaction, so history and notifications
exist exactly when the change does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cloud.models import Parcel, ParcelEvent, ParcelStatus
from cloud.services.errors import IllegalTransitionError
from cloud.services.webhooks import enqueue_event

S = ParcelStatus
TRANSITIONS: Mapping[ParcelStatus, frozenset[ParcelStatus]] = {
    S.CREATED: frozenset({S.AT_DEPOT}),
    S.AT_DEPOT: frozenset({S.OUT_FOR_DELIVERY}),
    S.OUT_FOR_DELIVERY: frozenset({S.DELIVERED, S.DEPOSITED, S.AT_DEPOT}),
    S.DEPOSITED: frozenset({S.PICKED_UP, S.RETURNED}),
    S.DELIVERED: frozenset(),
    S.PICKED_UP: frozenset(),
    S.RETURNED: frozenset(),
}
"""Legal successors of each status. ``out_for_delivery -> at_depot`` is a failed attempt."""

FINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def check(parcel: Parcel, to: ParcelStatus) -> None:
    """Raise :class:`IllegalTransitionError` unless ``parcel`` may move to ``to`` now."""
    if to not in TRANSITIONS[ParcelStatus(parcel.status)]:
        raise IllegalTransitionError(parcel_id=parcel.id, current=parcel.status, wanted=to)


def record(
    session: Session,
    parcel: Parcel,
    *,
    kind: str,
    at: datetime,
    source: str,
    reason: str = "",
    detail: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    code_grant_id: Any = None,
) -> ParcelEvent:
    """Append one history line and queue its webhooks (``parcel.<kind>``)."""
    event = ParcelEvent(
        parcel_id=parcel.id,
        at=at,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        reason=reason[:200],
        source=source[:40],
        detail=detail or {},
    )
    session.add(event)
    enqueue_event(
        session,
        event_type=f"parcel.{kind}",
        parcel=parcel,
        at=at,
        data={"reason": event.reason, **(detail or {})},
        code_grant_id=code_grant_id,
    )
    return event


def move(
    session: Session,
    parcel: Parcel,
    to: ParcelStatus,
    *,
    at: datetime,
    source: str,
    reason: str = "",
    detail: dict[str, Any] | None = None,
    kind: str | None = None,
) -> ParcelEvent:
    """Change ``parcel``'s status to ``to`` (checked) and record it; the caller commits."""
    check(parcel, to)
    before = parcel.status
    parcel.status = to
    parcel.updated_at = at
    return record(
        session,
        parcel,
        kind=kind or to.value,
        at=at,
        source=source,
        reason=reason,
        detail=detail,
        from_status=before,
        to_status=to,
    )
