"""Parcels and their pickup codes.

A code exists in plaintext only in the response to the request that created it. The hub stores the
keyed hash (``protocol.codes.hash_code`` under the locker's derived key) and sends that hash to the
locker in a :class:`~protocol.messages.Grant`, written to the outbox in the same transaction as the
parcel: either both exist or neither does, and the dispatcher delivers the grant even if the broker
was down when the parcel was created.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ConflictError, NotFoundError
from cloud.models import Locker, OutboundMessage, Parcel, ParcelStatus
from cloud.services.errors import InvalidRequestError
from protocol.codec import encode
from protocol.codes import derive_locker_key, hash_code, new_code
from protocol.messages import Grant
from protocol.topics import Channel, locker_topic


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CreatedParcel:
    """A new parcel and its code: the only moment the code is known to the hub."""

    parcel: Parcel
    code: str


def occupied_compartments(session: Session, locker_id: str) -> set[int]:
    return set(
        session.scalars(
            select(Parcel.compartment).where(
                Parcel.locker_id == locker_id, Parcel.status == ParcelStatus.AWAITING_PICKUP
            )
        )
    )


def occupied_counts(session: Session) -> dict[str, int]:
    """Parcels awaiting pickup per locker id."""
    rows = session.execute(
        select(Parcel.locker_id, func.count())
        .where(Parcel.status == ParcelStatus.AWAITING_PICKUP)
        .group_by(Parcel.locker_id)
    )
    return {locker_id: count for locker_id, count in rows}


def _choose_compartment(session: Session, locker: Locker, wanted: int | None) -> int:
    occupied = occupied_compartments(session, locker.id)
    if wanted is not None:
        if not 1 <= wanted <= locker.compartments:
            raise InvalidRequestError(
                f"locker {locker.id} has compartments 1..{locker.compartments}, not {wanted}",
                loc=("body", "compartment"),
            )
        if wanted in occupied:
            raise ConflictError(f"compartment {wanted} of locker {locker.id} is occupied")
        return wanted
    for number in range(1, locker.compartments + 1):
        if number not in occupied:
            return number
    raise ConflictError(f"locker {locker.id} has no free compartment")


def create_parcel(
    session: Session,
    *,
    locker_id: str,
    compartment: int | None,
    master_secret: bytes,
    code_digits: int,
    validity: timedelta,
    now: Callable[[], datetime] = utcnow,
) -> CreatedParcel:
    """Create a parcel awaiting pickup, its code, and the grant for the locker; commit.

    Raises :class:`NotFoundError` for an unknown locker, :class:`InvalidRequestError` for a
    compartment the locker does not have, and :class:`ConflictError` when the compartment (or every
    compartment) is taken, including by a request that won a race for it.
    """
    locker = session.get(Locker, locker_id)
    if locker is None:
        raise NotFoundError("locker", locker_id)
    number = _choose_compartment(session, locker, compartment)
    code = new_code(code_digits)
    code_hash = hash_code(derive_locker_key(master_secret, locker_id), code)
    created = now()
    parcel = Parcel(
        id=uuid.uuid4(),
        locker_id=locker_id,
        compartment=number,
        status=ParcelStatus.AWAITING_PICKUP,
        code_hash=code_hash,
        grant_id=uuid.uuid4(),
        created_at=created,
        valid_until=created + validity,
        picked_up_at=None,
    )
    grant = Grant(
        locker_id=locker_id,
        grant_id=parcel.grant_id,
        compartment=number,
        code_hash=code_hash,
        kind="pickup",
        valid_from=created,
        valid_until=parcel.valid_until,
        single_use=True,
    )
    session.add(parcel)
    session.add(
        OutboundMessage(
            topic=locker_topic(locker_id, Channel.GRANTS),
            payload=encode(grant),
            qos=1,
            retain=False,
            created_at=created,
            sent_at=None,
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            f"compartment {number} of locker {locker_id} was just taken; try again"
        ) from None
    return CreatedParcel(parcel=parcel, code=code)


def get_parcel(session: Session, parcel_id: uuid.UUID) -> Parcel:
    parcel = session.get(Parcel, parcel_id)
    if parcel is None:
        raise NotFoundError("parcel", parcel_id)
    return parcel
