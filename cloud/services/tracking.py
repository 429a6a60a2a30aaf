"""Customer tracking links: an unguessable, expiring token is the only credential.

The token is 32 random bytes (256 bits, URL-safe base64); the hub keeps only its SHA-256, so a
leaked database lists no working links. A plain hash suffices (no key): the token has full entropy,
nothing to brute-force.

The ETA comes from the planner when the parcel's stop is on a dispatched route (refreshed from the
van's live position, with the number of stops before it); otherwise, while out for delivery, it is
the straight-line distance from the assigned van's latest position at a typical urban speed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import Parcel, ParcelStatus, PositionRow, TrackingToken
from cloud.services.errors import TrackingExpiredError
from cloud.services.route_eta import route_eta

TOKEN_BYTES = 32
EARTH_RADIUS_KM = 6371.0088
ETA_METHOD = (
    "straight-line distance from the van's latest position at a typical speed "
    "(the parcel is on no dispatched route)"
)
ROUTE_REFRESHED = "the van's planned route, refreshed from its latest position"
ROUTE_PLANNED = "the van's planned route, as dispatched (no position from the van yet today)"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(session: Session, *, parcel: Parcel, now: datetime, validity: timedelta) -> str:
    """A new link for ``parcel`` (stored hashed; the caller commits). Returns the token."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        TrackingToken(
            token_hash=_digest(token),
            parcel_id=parcel.id,
            created_at=now,
            expires_at=now + validity,
        )
    )
    return token


def parcel_for(session: Session, *, token: str, now: datetime) -> Parcel:
    """The parcel of a live token; :class:`NotFoundError` if unknown, a subclass if expired."""
    digest = _digest(token)
    row = session.get(TrackingToken, digest)
    # The primary-key lookup found the row by its digest; compare again in constant time so a
    # database collation quirk could never match a different token.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise NotFoundError("tracking link", "(unknown)")
    if row.expires_at <= now:
        raise TrackingExpiredError()
    parcel = session.get(Parcel, row.parcel_id)
    assert parcel is not None  # FK
    return parcel


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass(frozen=True, slots=True)
class Eta:
    """What the customer is told. ``source`` says which estimate: ``route`` (the dispatched
    plan's, with ``stops_before``) or ``estimate`` (straight line, with distance and speed)."""

    at: datetime
    method: str
    source: Literal["route", "estimate"]
    from_position_at: datetime | None
    distance_km: float | None = None
    speed_kmh: float | None = None
    stops_before: int | None = None


#: Statuses in which a parcel's stop on a dispatched route is still ahead of the van.
ON_ITS_WAY = frozenset({ParcelStatus.AT_DEPOT, ParcelStatus.OUT_FOR_DELIVERY})


def eta(session: Session, *, parcel: Parcel, now: datetime, speed_kmh: float) -> Eta | None:
    """The planner's ETA when the parcel's stop is on a dispatched route
    (:mod:`cloud.services.route_eta`), else the straight-line estimate while out for delivery
    on a van with a known position and a known destination; None otherwise."""
    if parcel.status in ON_ITS_WAY:
        planned = route_eta(session, parcel=parcel, now=now)
        if planned is not None:
            return Eta(
                at=planned.at,
                method=ROUTE_REFRESHED if planned.refreshed else ROUTE_PLANNED,
                source="route",
                from_position_at=planned.from_position_at,
                stops_before=planned.stops_before,
            )
    if (
        parcel.status != ParcelStatus.OUT_FOR_DELIVERY
        or parcel.vehicle_id is None
        or parcel.lat is None
        or parcel.lon is None
    ):
        return None
    position = session.scalars(
        select(PositionRow)
        .where(PositionRow.vehicle_id == parcel.vehicle_id)
        .order_by(PositionRow.t.desc())
        .limit(1)
    ).first()
    if position is None:
        return None
    km = haversine_km(position.lat, position.lon, parcel.lat, parcel.lon)
    return Eta(
        at=now + timedelta(hours=km / speed_kmh),
        method=ETA_METHOD,
        source="estimate",
        from_position_at=position.t,
        distance_km=round(km, 3),
        speed_kmh=speed_kmh,
    )
