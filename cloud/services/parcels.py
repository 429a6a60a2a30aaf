"""Parcels: creation (for a locker or an address), reading, the operator's transitions, codes.

A parcel for a locker gets its compartment when the courier's code is issued (it is then reserved
until the parcel leaves the locker); the locker's own events move it on (see
:mod:`cloud.services.locker_flows`). A parcel for an address is delivered by the driver's scan.
Every change is validated and recorded by :mod:`cloud.services.lifecycle`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ConflictError, NotFoundError
from cloud.models import (
    Locker,
    Parcel,
    ParcelEvent,
    ParcelGrant,
    ParcelStatus,
    ProofOfDelivery,
    Vehicle,
)
from cloud.services import codes
from cloud.services.codes import CodeSecrets, GrantState, IssuedCode
from cloud.services.errors import IllegalTransitionError, InvalidRequestError
from cloud.services.lifecycle import check, move, record
from cloud.services.tracking import new_token
from protocol.messages import GrantKind

HOLDING = (ParcelStatus.OUT_FOR_DELIVERY, ParcelStatus.DEPOSITED)
"""The statuses in which a parcel holds its compartment (``models.HOLDS_COMPARTMENT``)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewParcel:
    """What a parcel is created with (validated by the API schema)."""

    reference: str
    size: str
    locker_id: str | None
    address: str | None
    lat: float | None
    lon: float | None
    window_start: datetime | None
    window_end: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedParcel:
    """A new parcel and its tracking token: the only moment the token is known to the hub."""

    parcel: Parcel
    tracking_token: str


def occupied_compartments(session: Session, locker_id: str) -> set[int]:
    """Compartments reserved or filled by a parcel."""
    return {
        n
        for n in session.scalars(
            select(Parcel.compartment).where(
                Parcel.locker_id == locker_id, Parcel.status.in_(HOLDING)
            )
        )
        if n is not None
    }


def occupied_counts(session: Session) -> dict[str, int]:
    """Compartments reserved or filled by a parcel, per locker id."""
    rows = session.execute(
        select(Parcel.locker_id, func.count())
        .where(Parcel.status.in_(HOLDING), Parcel.compartment.is_not(None))
        .group_by(Parcel.locker_id)
    )
    return {locker_id: n for locker_id, n in rows if locker_id is not None}


def create_parcel(
    session: Session,
    *,
    new: NewParcel,
    tracking_validity: timedelta,
    now: Callable[[], datetime] = utcnow,
) -> CreatedParcel:
    """Create a parcel in ``created`` with its tracking link; commit. 404 for an unknown locker."""
    if new.locker_id is not None and session.get(Locker, new.locker_id) is None:
        raise NotFoundError("locker", new.locker_id)
    at = now()
    parcel = Parcel(
        id=uuid.uuid4(),
        reference=new.reference,
        status=ParcelStatus.CREATED,
        size=new.size,
        locker_id=new.locker_id,
        compartment=None,
        address=new.address,
        lat=new.lat,
        lon=new.lon,
        window_start=new.window_start,
        window_end=new.window_end,
        vehicle_id=None,
        attempts=0,
        created_at=at,
        updated_at=at,
        delivered_at=None,
        picked_up_at=None,
    )
    session.add(parcel)
    session.flush()
    token = new_token(session, parcel=parcel, now=at, validity=tracking_validity)
    record(session, parcel, kind="created", at=at, source="api", to_status=ParcelStatus.CREATED)
    session.commit()
    return CreatedParcel(parcel=parcel, tracking_token=token)


def get_parcel(session: Session, parcel_id: uuid.UUID) -> Parcel:
    parcel = session.get(Parcel, parcel_id)
    if parcel is None:
        raise NotFoundError("parcel", parcel_id)
    return parcel


def list_parcels(
    session: Session,
    *,
    status: ParcelStatus | None,
    locker_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
    q: str | None = None,
) -> tuple[list[Parcel], int]:
    """Parcels created in ``[since, until)``, newest first, with the total matching count.

    ``q`` (the dashboard's search box) is a whole parcel id, or part of a reference or a locker id,
    case-insensitive; LIKE's wildcards in it are taken literally."""
    conditions = []
    if q:
        text = q.strip()
        try:
            conditions.append(Parcel.id == uuid.UUID(text))
        except ValueError:
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(
                or_(
                    Parcel.reference.ilike(f"%{escaped}%", escape="\\"),
                    Parcel.locker_id.ilike(f"%{escaped}%", escape="\\"),
                )
            )
    if status is not None:
        conditions.append(Parcel.status == status)
    if locker_id is not None:
        conditions.append(Parcel.locker_id == locker_id)
    if since is not None:
        conditions.append(Parcel.created_at >= since)
    if until is not None:
        conditions.append(Parcel.created_at < until)
    total = session.scalar(select(func.count()).select_from(Parcel).where(*conditions)) or 0
    rows = session.scalars(
        select(Parcel)
        .where(*conditions)
        .order_by(Parcel.created_at.desc(), Parcel.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def history(session: Session, parcel_id: uuid.UUID) -> list[ParcelEvent]:
    get_parcel(session, parcel_id)
    return list(
        session.scalars(
            select(ParcelEvent)
            .where(ParcelEvent.parcel_id == parcel_id)
            .order_by(ParcelEvent.at, ParcelEvent.id)
        )
    )


def proofs(session: Session, parcel_id: uuid.UUID) -> list[ProofOfDelivery]:
    get_parcel(session, parcel_id)
    return list(
        session.scalars(
            select(ProofOfDelivery)
            .where(ProofOfDelivery.parcel_id == parcel_id)
            .order_by(ProofOfDelivery.at)
        )
    )


def grants(session: Session, parcel_id: uuid.UUID) -> list[ParcelGrant]:
    get_parcel(session, parcel_id)
    return list(
        session.scalars(
            select(ParcelGrant)
            .where(ParcelGrant.parcel_id == parcel_id)
            .order_by(ParcelGrant.issued_at)
        )
    )


# -- the operator's transitions -------------------------------------------------------------------

LOCKER_ONLY = {ParcelStatus.DEPOSITED, ParcelStatus.PICKED_UP, ParcelStatus.RETURNED}


def _commit(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(f"{what} conflicted with a concurrent change; try again") from None


def transition(
    session: Session,
    *,
    parcel_id: uuid.UUID,
    to: ParcelStatus,
    vehicle_id: str | None,
    reason: str,
    now: Callable[[], datetime] = utcnow,
) -> Parcel:
    """``at_depot`` or ``out_for_delivery`` (optionally on van ``vehicle_id``); commit.

    The locker's statuses come only from the locker's events, and ``delivered`` only with a proof
    (:func:`deliver`): asking for them here is a 409 like any illegal move.
    """
    parcel = get_parcel(session, parcel_id)
    check(parcel, to)  # names both states
    if to in LOCKER_ONLY or to == ParcelStatus.DELIVERED:
        via = "the locker's event" if to in LOCKER_ONLY else "POST .../delivery with the scan"
        raise ConflictError(f"parcel {parcel.id} goes from {parcel.status} to {to} only by {via}")
    if to == ParcelStatus.AT_DEPOT and parcel.status == ParcelStatus.OUT_FOR_DELIVERY:
        raise ConflictError(
            f"parcel {parcel.id} goes from {parcel.status} to {to} only as a failed attempt "
            "(POST .../attempts with a reason)"
        )
    detail: dict[str, object] = {}
    if vehicle_id is not None:
        if session.get(Vehicle, vehicle_id) is None:
            raise NotFoundError("vehicle", vehicle_id)
        parcel.vehicle_id = vehicle_id
        detail["vehicle_id"] = vehicle_id
    move(session, parcel, to, at=now(), source="api", reason=reason, detail=detail)
    _commit(session, f"moving parcel {parcel.id}")
    return parcel


def fail_attempt(
    session: Session,
    *,
    parcel_id: uuid.UUID,
    reason: str,
    lat: float | None,
    lon: float | None,
    secrets: CodeSecrets,
    now: Callable[[], datetime] = utcnow,
) -> Parcel:
    """A delivery attempt failed: back to the depot, counted, its courier code withdrawn."""
    parcel = get_parcel(session, parcel_id)
    if parcel.status != ParcelStatus.OUT_FOR_DELIVERY:
        raise IllegalTransitionError(
            parcel_id=parcel.id,
            current=parcel.status,
            wanted=f"{ParcelStatus.AT_DEPOT} (a failed attempt needs it out_for_delivery)",
        )
    at = now()
    for g in codes.active_grants(session, parcel):
        codes.end(
            session, parcel, g, state=GrantState.REVOKED, now=at, source="api", secrets=secrets
        )
    parcel.attempts += 1
    parcel.compartment = None
    move(
        session,
        parcel,
        ParcelStatus.AT_DEPOT,
        at=at,
        source="api",
        reason=reason,
        detail={"attempt": parcel.attempts, "lat": lat, "lon": lon},
        kind="attempt_failed",
    )
    _commit(session, f"failing parcel {parcel.id}")
    return parcel


def deliver(
    session: Session,
    *,
    parcel_id: uuid.UUID,
    lat: float,
    lon: float,
    vehicle_id: str | None,
    note: str,
    now: Callable[[], datetime] = utcnow,
) -> ProofOfDelivery:
    """The driver scanned the parcel at the door: ``delivered`` with its proof."""
    parcel = get_parcel(session, parcel_id)
    check(parcel, ParcelStatus.DELIVERED)
    if parcel.locker_id is not None:
        raise ConflictError(
            f"parcel {parcel.id} goes to locker {parcel.locker_id}: it is delivered by deposit"
        )
    at = now()
    parcel.delivered_at = at
    proof = ProofOfDelivery(
        parcel_id=parcel.id,
        at=at,
        kind="driver_scan",
        locker_id=None,
        compartment=None,
        locker_event_id=None,
        vehicle_id=vehicle_id or parcel.vehicle_id,
        lat=lat,
        lon=lon,
        note=note[:200],
    )
    session.add(proof)
    move(
        session,
        parcel,
        ParcelStatus.DELIVERED,
        at=at,
        source="driver",
        detail={"lat": lat, "lon": lon, "vehicle_id": proof.vehicle_id},
    )
    _commit(session, f"delivering parcel {parcel.id}")
    return proof


# -- codes ----------------------------------------------------------------------------------------


SIZE_ORDER = {"S": 0, "M": 1, "L": 2}


def choose_compartment(
    session: Session,
    locker: Locker,
    wanted: int | None,
    *,
    size: str = "M",
    exclude: frozenset[int] = frozenset(),
) -> int:
    """``wanted`` if free, else the free compartment that fits ``size`` most snugly (the smallest
    size at least as big, then the lowest number), once the locker has reported its sizes; without
    sizes, the lowest free number. ``exclude`` (a jammed door) is never chosen."""
    occupied = occupied_compartments(session, locker.id) | exclude
    if wanted is not None:
        if not 1 <= wanted <= locker.compartments:
            raise InvalidRequestError(
                f"locker {locker.id} has compartments 1..{locker.compartments}, not {wanted}",
                loc=("body", "compartment"),
            )
        if wanted in occupied:
            raise ConflictError(f"compartment {wanted} of locker {locker.id} is occupied")
        return wanted
    free = [n for n in range(1, locker.compartments + 1) if n not in occupied]
    sizes = locker.sizes if locker.sizes and len(locker.sizes) == locker.compartments else None
    if sizes is not None:
        need = SIZE_ORDER.get(size, 1)
        fitting = [(SIZE_ORDER.get(sizes[n - 1], 1), n) for n in free]
        fitting = [f for f in fitting if f[0] >= need]
        if not fitting:
            raise ConflictError(f"locker {locker.id} has no free compartment of size {size} or up")
        return min(fitting)[1]
    if not free:
        raise ConflictError(f"locker {locker.id} has no free compartment")
    return free[0]


CODE_STATUS: dict[GrantKind, ParcelStatus] = {
    "courier": ParcelStatus.OUT_FOR_DELIVERY,
    "pickup": ParcelStatus.DEPOSITED,
    "return": ParcelStatus.DEPOSITED,
}


def issue_code(
    session: Session,
    *,
    parcel_id: uuid.UUID,
    kind: GrantKind,
    compartment: int | None,
    secrets: CodeSecrets,
    validity: timedelta,
    now: Callable[[], datetime] = utcnow,
) -> IssuedCode:
    """Issue (or resend: the active code of ``kind`` is revoked on the locker) a code; commit.

    A courier code needs the parcel out for delivery and reserves a compartment (``compartment``
    or the first free one); pickup and return codes need it deposited and keep its compartment.
    The code is in the result only: the caller hands it to the one who needs it.
    """
    parcel = get_parcel(session, parcel_id)
    if parcel.locker_id is None:
        raise ConflictError(f"parcel {parcel.id} goes to an address: it has no locker codes")
    needed = CODE_STATUS[kind]
    if parcel.status != needed:
        raise ConflictError(
            f"parcel {parcel.id} is {parcel.status}; a {kind} code needs it {needed}"
        )
    at = now()
    previous = codes.active_grants(session, parcel, kind)
    for g in previous:
        codes.end(
            session, parcel, g, state=GrantState.REVOKED, now=at, source="api", secrets=secrets
        )
    if kind == "courier":
        if compartment is None and parcel.compartment is not None:
            number = parcel.compartment
        else:
            locker = session.get(Locker, parcel.locker_id)
            assert locker is not None  # FK
            parcel.compartment = None
            session.flush()
            number = choose_compartment(session, locker, compartment, size=parcel.size)
        parcel.compartment = number
    else:
        assert parcel.compartment is not None  # deposited
        number = parcel.compartment
    issued = codes.issue(
        session,
        parcel,
        kind=kind,
        compartment=number,
        secrets=secrets,
        validity=validity,
        now=at,
        source="api",
        notify=kind != "courier",
    )
    _commit(session, f"the compartment of parcel {parcel.id}")
    return issued


def revoke_codes(
    session: Session,
    *,
    parcel_id: uuid.UUID,
    secrets: CodeSecrets,
    now: Callable[[], datetime] = utcnow,
) -> list[ParcelGrant]:
    """Revoke every active code of a parcel, on the hub and on the locker; commit."""
    parcel = get_parcel(session, parcel_id)
    at = now()
    ended = codes.active_grants(session, parcel)
    for g in ended:
        codes.end(
            session, parcel, g, state=GrantState.REVOKED, now=at, source="api", secrets=secrets
        )
    session.commit()
    return ended
