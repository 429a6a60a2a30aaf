"""Signed, expiring routes: the hub signs each :class:`~protocol.messages.Route` for one van, the
van checks it before it keeps it.

The machinery is the commands' (:func:`protocol.commands.signature_of`,
:func:`protocol.commands.check_signed`): one canonical form, one MAC, one order of checks. What
differs:

- the key. :func:`derive_route_key` derives it from the van's command key under its own label, so
  a route signature can never pass as a command's nor the other way round (the signed bytes also
  carry ``type``), and a van needs no second secret: the command key it already has is enough;
- the lifetime. A route lives for a shift (:data:`MAX_ROUTE_LIFETIME`), not minutes;
- replay. A route is retained and redelivered on every reconnect, so there is no nonce: instead a
  van keeps a :class:`RouteMark` of the newest route it ever accepted and refuses anything not
  newer as ``stale``, so a replayed old (validly signed) route cannot roll the plan back. The
  route in force, delivered again, is accepted again (the broker's retained copy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from protocol.codes import derive_key
from protocol.commands import (
    MAX_CLOCK_SKEW,
    CommandError,
    check_signed,
    derive_command_key,
    signature_of,
    uuid_field_of,
)
from protocol.messages import Route, RouteStop
from protocol.topics import DeviceKind

ROUTE_KEY_LABEL = "vehicle-route-key"
MAX_ROUTE_LIFETIME = timedelta(hours=48)
"""Longest ``expires_at - issued_at`` a van accepts: a plan dispatched the evening before, for a
long shift, plus the margin."""
ROUTE_GRACE = timedelta(hours=2)
"""How long after the end of its shift the hub lets a route live (a van running late keeps it)."""
MIN_ROUTE_LIFETIME = timedelta(hours=1)
"""The least a dispatched route lives, so a plan for a day already over still reaches the van and
is acknowledged instead of being born expired."""


def derive_route_key(command_key: bytes, vehicle_id: str) -> bytes:
    """The key that signs routes for ``vehicle_id``, from that van's command key (its own label)."""
    return derive_key(command_key, ROUTE_KEY_LABEL, vehicle_id)


def hub_route_key(master_secret: bytes, vehicle_id: str) -> bytes:
    """The hub's way to the same key: the van's command key of the master secret, then the route
    key of that."""
    command_key = derive_command_key(master_secret, vehicle_id, kind=DeviceKind.VEHICLE)
    return derive_route_key(command_key, vehicle_id)


def route_expiry(*, issued_at: datetime, shift_end: datetime) -> datetime:
    """``shift_end`` + :data:`ROUTE_GRACE`, kept between :data:`MIN_ROUTE_LIFETIME` and
    :data:`MAX_ROUTE_LIFETIME` after ``issued_at``."""
    lo, hi = issued_at + MIN_ROUTE_LIFETIME, issued_at + MAX_ROUTE_LIFETIME
    return min(max(shift_end + ROUTE_GRACE, lo), hi)


class RouteStale(CommandError):
    """Validly signed, but not newer than the newest route this van accepted (a replay)."""

    reason = "stale"


@dataclass(frozen=True, slots=True)
class RouteMark:
    """The newest route a van ever accepted. Kept durably beside the route, and kept when the route
    itself is dropped (expired), so freshness survives restarts and expiry alike."""

    route_id: UUID
    issued_at: datetime

    @classmethod
    def of(cls, route: Route) -> RouteMark:
        return cls(route_id=route.route_id, issued_at=route.issued_at)


def sign_route(
    *,
    key: bytes,
    device_id: str,
    route_id: UUID,
    plan_id: UUID,
    stops: Iterable[RouteStop],
    issued_at: datetime,
    expires_at: datetime,
) -> Route:
    """A route for ``device_id`` signed with ``key`` (:func:`derive_route_key`)."""
    if len(key) < 16:
        raise ValueError("the route key must be at least 16 bytes")
    if expires_at <= issued_at:
        raise ValueError("a route must expire after it is issued")
    unsigned = Route(
        device_id=device_id,
        route_id=route_id,
        plan_id=plan_id,
        stops=tuple(stops),
        issued_at=issued_at,
        expires_at=expires_at,
        signature="0" * 64,
    )
    return unsigned.model_copy(update={"signature": signature_of(key, unsigned.model_dump())})


def verify_route(
    route: Route,
    *,
    key: bytes,
    device_id: str,
    now: datetime,
    newest: RouteMark | None,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> Route:
    """Return ``route`` if this van may put it in force now.

    Raises (checked in this order) :class:`~protocol.commands.WrongDevice`,
    :class:`~protocol.commands.BadSignature`, :class:`~protocol.commands.CommandNotYetValid`,
    :class:`~protocol.commands.CommandExpired` or :class:`RouteStale` (issued no later than
    ``newest``, unless it is that very route again)."""
    rid = route.route_id
    check_signed(
        route,
        ident=rid,
        key=key,
        device_id=device_id,
        now=now,
        max_skew=max_skew,
        max_lifetime=MAX_ROUTE_LIFETIME,
        what="route",
    )
    if newest is not None and RouteMark.of(route) != newest and route.issued_at <= newest.issued_at:
        raise RouteStale(
            rid,
            f"issued at {route.issued_at.isoformat()}, not after route {newest.route_id} "
            f"issued at {newest.issued_at.isoformat()}",
            what="route",
        )
    return route


def route_id_of(payload: bytes) -> UUID | None:
    """The ``route_id`` of a payload that is not a valid route, if readable. Never raises."""
    return uuid_field_of(payload, "route_id")


def is_unsigned(payload: bytes) -> bool:
    """True for a JSON object without a ``signature`` (a hub from before routes were signed), so
    the van can say ``unsigned`` rather than ``malformed``. Never raises."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(body, dict) and "signature" not in body
