"""The hub's side of the locker flows: what each locker event means for a parcel.

Applied by :class:`cloud.flows.ParcelFlows` to stored ``locker_events`` rows, each exactly once
(``locker_events_applied``), in id order, in one transaction per batch:

- ``deposited`` -- the courier closed the door: the parcel is ``deposited`` and the customer's
  pickup code is issued (its grant to the locker, the code to the webhook). A deposit made with an
  offline courier code carries no grant: it is matched to the oldest parcel out for delivery to
  that locker, whose courier grant is then revoked.
- ``picked_up`` -- the proof of delivery (time, locker, compartment, the event itself).
- ``returned`` -- the courier took an expired parcel back.
- ``unlock_not_opened`` -- the door never opened (jam, or someone walked away): the spent code is
  reissued; a courier's to another free compartment if there is one.
- ``command_executed`` / ``command_refused`` -- the answer to a remote command.

:func:`expire_due` ends codes whose validity has passed: an uncollected parcel gets a return code
for the courier.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ConflictError
from cloud.models import (
    Locker,
    LockerCommand,
    LockerEventApplied,
    LockerEventRow,
    Parcel,
    ParcelGrant,
    ParcelStatus,
    ProofOfDelivery,
)
from cloud.services import codes
from cloud.services.codes import CodeSecrets, GrantState
from cloud.services.commands import CommandStatus
from cloud.services.lifecycle import move, record
from cloud.services.parcels import choose_compartment

log = logging.getLogger(__name__)

FLOW_KINDS = (
    "deposited",
    "picked_up",
    "returned",
    "unlock_not_opened",
    "command_executed",
    "command_refused",
)


@dataclass(frozen=True, slots=True)
class FlowPolicy:
    secrets: CodeSecrets
    pickup_validity: timedelta
    return_validity: timedelta
    courier_validity: timedelta


@dataclass
class FlowResult:
    applied: int = 0
    unmatched: int = 0
    codes_issued: int = 0


def pending_events(session: Session, *, limit: int) -> list[LockerEventRow]:
    applied = select(LockerEventApplied.event_id).where(
        LockerEventApplied.event_id == LockerEventRow.id
    )
    return list(
        session.scalars(
            select(LockerEventRow)
            .where(LockerEventRow.kind.in_(FLOW_KINDS), ~applied.exists())
            .order_by(LockerEventRow.id)
            .limit(limit)
        )
    )


def apply_events(
    session: Session, events: Sequence[LockerEventRow], *, policy: FlowPolicy, now: datetime
) -> FlowResult:
    """Apply ``events`` in the caller's transaction and mark them applied."""
    result = FlowResult()
    for ev in events:
        session.add(LockerEventApplied(event_id=ev.id, applied_at=now))
        try:
            # One savepoint per event: an event the data refuses (say, a deposit into a
            # compartment another parcel holds) is counted and skipped, never a poison batch.
            with session.begin_nested():
                handled = _apply(session, ev, policy=policy, result=result)
        except IntegrityError as err:
            log.warning("locker event %s (%s) refused by the database: %s", ev.id, ev.kind, err)
            handled = False
        result.applied += 1
        if not handled:
            result.unmatched += 1
            log.info("locker event %s (%s of %s) matches no parcel", ev.id, ev.kind, ev.locker_id)
    return result


def _grant_of(session: Session, ev: LockerEventRow) -> tuple[ParcelGrant, Parcel] | None:
    if ev.grant_id is None:
        return None
    grant = session.get(ParcelGrant, ev.grant_id)
    if grant is None or grant.locker_id != ev.locker_id:
        return None
    parcel = session.get(Parcel, grant.parcel_id)
    assert parcel is not None  # FK
    return grant, parcel


def _apply(session: Session, ev: LockerEventRow, *, policy: FlowPolicy, result: FlowResult) -> bool:
    if ev.kind in ("command_executed", "command_refused"):
        return _ack(session, ev)
    found = _grant_of(session, ev)
    if ev.kind == "deposited":
        return _deposited(session, ev, found, policy=policy, result=result)
    if found is None:
        return False
    grant, parcel = found
    source = f"locker:{ev.locker_id}"
    where = {"locker_id": ev.locker_id, "compartment": ev.compartment, "locker_event_id": ev.id}
    if ev.kind == "picked_up" and grant.kind == "pickup":
        if parcel.status != ParcelStatus.DEPOSITED:
            return False
        _use(grant, ev.at)
        parcel.picked_up_at = ev.at
        parcel.delivered_at = ev.at
        session.add(
            ProofOfDelivery(
                parcel_id=parcel.id,
                at=ev.at,
                kind="locker_pickup",
                locker_id=ev.locker_id,
                compartment=ev.compartment,
                locker_event_id=ev.id,
                vehicle_id=None,
                lat=parcel.lat,
                lon=parcel.lon,
                note="",
            )
        )
        _end_others(session, parcel, at=ev.at, policy=policy)
        move(session, parcel, ParcelStatus.PICKED_UP, at=ev.at, source=source, detail=where)
        return True
    if ev.kind == "returned" and grant.kind == "return":
        if parcel.status != ParcelStatus.DEPOSITED:
            return False
        _use(grant, ev.at)
        _end_others(session, parcel, at=ev.at, policy=policy)
        move(session, parcel, ParcelStatus.RETURNED, at=ev.at, source=source, detail=where)
        return True
    if ev.kind == "unlock_not_opened":
        return _jammed(session, ev, grant, parcel, policy=policy, result=result)
    return False


def _use(grant: ParcelGrant, at: datetime) -> None:
    grant.state = GrantState.USED
    grant.ended_at = at


def _end_others(session: Session, parcel: Parcel, *, at: datetime, policy: FlowPolicy) -> None:
    """The parcel has left its compartment: any other live code of it is withdrawn."""
    for g in codes.active_grants(session, parcel):
        codes.end(
            session,
            parcel,
            g,
            state=GrantState.REVOKED,
            now=at,
            source="hub",
            secrets=policy.secrets,
            reason="the parcel left its compartment",
        )


def _deposited(
    session: Session,
    ev: LockerEventRow,
    found: tuple[ParcelGrant, Parcel] | None,
    *,
    policy: FlowPolicy,
    result: FlowResult,
) -> bool:
    offline = found is None
    if found is not None:
        grant, parcel = found
        if grant.kind != "courier":
            return False
        _use(grant, ev.at)
    else:
        # An offline courier code: the locker chose the compartment; the oldest parcel on its
        # way to this locker is the one the courier put in.
        candidate = session.scalars(
            select(Parcel)
            .where(
                Parcel.locker_id == ev.locker_id,
                Parcel.status == ParcelStatus.OUT_FOR_DELIVERY,
            )
            .order_by(Parcel.updated_at, Parcel.id)
            .limit(1)
        ).first()
        if candidate is None or ev.compartment is None:
            return False
        parcel = candidate
        for g in codes.active_grants(session, parcel, "courier"):
            codes.end(
                session,
                parcel,
                g,
                state=GrantState.REVOKED,
                now=ev.at,
                source="hub",
                secrets=policy.secrets,
                reason="deposited with an offline courier code",
            )
    if parcel.status != ParcelStatus.OUT_FOR_DELIVERY or ev.compartment is None:
        return False
    parcel.compartment = ev.compartment  # what the locker reports is where the parcel is
    move(
        session,
        parcel,
        ParcelStatus.DEPOSITED,
        at=ev.at,
        source=f"locker:{ev.locker_id}",
        detail={
            "locker_id": ev.locker_id,
            "compartment": ev.compartment,
            "locker_event_id": ev.id,
            "offline_courier_code": offline,
        },
    )
    codes.issue(
        session,
        parcel,
        kind="pickup",
        compartment=ev.compartment,
        secrets=policy.secrets,
        validity=policy.pickup_validity,
        now=ev.at,
        source="hub",
        notify=True,
    )
    result.codes_issued += 1
    return True


def _jammed(
    session: Session,
    ev: LockerEventRow,
    grant: ParcelGrant,
    parcel: Parcel,
    *,
    policy: FlowPolicy,
    result: FlowResult,
) -> bool:
    if grant.state not in (GrantState.ACTIVE, GrantState.USED):
        return False
    grant.state = GrantState.JAMMED
    grant.ended_at = ev.at
    record(
        session,
        parcel,
        kind="compartment_not_opened",
        at=ev.at,
        source=f"locker:{ev.locker_id}",
        detail={"compartment": ev.compartment, "grant_id": str(grant.grant_id)},
    )
    number = grant.compartment
    validity = grant.valid_until - ev.at
    if grant.kind == "courier":
        if parcel.status != ParcelStatus.OUT_FOR_DELIVERY:
            return True
        locker = session.get(Locker, ev.locker_id)
        assert locker is not None  # FK
        parcel.compartment = None
        session.flush()
        with contextlib.suppress(ConflictError):  # no other that fits: the same one again
            number = choose_compartment(
                session, locker, None, size=parcel.size, exclude=frozenset({number})
            )
        parcel.compartment = number
        validity = max(validity, policy.courier_validity)
    elif parcel.status != ParcelStatus.DEPOSITED:
        return True
    codes.issue(
        session,
        parcel,
        kind=grant.kind,  # type: ignore[arg-type]
        compartment=number,
        secrets=policy.secrets,
        validity=max(validity, timedelta(hours=1)),
        now=ev.at,
        source="hub",
        notify=True,
    )
    result.codes_issued += 1
    return True


def _ack(session: Session, ev: LockerEventRow) -> bool:
    """Commands are answered by events (also on ``cmd/ack``); the command row keeps the answer."""
    if ev.command_id is None:
        return False
    row = session.get(LockerCommand, ev.command_id)
    if row is None or row.locker_id != ev.locker_id:
        return False
    row.status = CommandStatus.EXECUTED if ev.kind == "command_executed" else CommandStatus.REFUSED
    row.reason = ev.reason[:200]
    row.acked_at = ev.at
    return True


def expire_due(session: Session, *, policy: FlowPolicy, now: datetime, limit: int = 100) -> int:
    """End active codes past their validity; an uncollected parcel gets a return code."""
    due = session.scalars(
        select(ParcelGrant)
        .where(ParcelGrant.state == GrantState.ACTIVE, ParcelGrant.valid_until <= now)
        .order_by(ParcelGrant.valid_until)
        .limit(limit)
    ).all()
    for grant in due:
        parcel = session.get(Parcel, grant.parcel_id)
        assert parcel is not None  # FK
        expire_grant(session, parcel, grant, policy=policy, now=now, source="hub")
    return len(due)


def expire_grant(
    session: Session,
    parcel: Parcel,
    grant: ParcelGrant,
    *,
    policy: FlowPolicy,
    now: datetime,
    source: str,
) -> codes.IssuedCode | None:
    """Expire ``grant``; an expired pickup code means the courier takes the parcel back."""
    codes.end(
        session,
        parcel,
        grant,
        state=GrantState.EXPIRED,
        now=now,
        source=source,
        secrets=policy.secrets,
    )
    if grant.kind != "pickup" or parcel.status != ParcelStatus.DEPOSITED:
        return None
    return codes.issue(
        session,
        parcel,
        kind="return",
        compartment=grant.compartment,
        secrets=policy.secrets,
        validity=policy.return_validity,
        now=now,
        source=source,
        notify=True,
    )
