"""``/track/{token}``: the customer's view of one parcel, as a small HTML page or as JSON.

Outside ``/api/v1`` and role-free by design: the unguessable, expiring token in the path is the
credential (see :mod:`cloud.services.tracking`). It shows status, history and, while the parcel is
on its way, an ETA (the dispatched route's, with the stops before it, else a straight-line
estimate) -- never codes, grant ids or the van's identity.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from cloud.api.deps import SessionDep, SettingsDep
from cloud.api.parcel_schemas import EtaPublic, TrackingEventPublic, TrackingPublic
from cloud.api.problems import problem_responses
from cloud.services import parcels as parcels_service
from cloud.services import tracking as service

router = APIRouter(prefix="/track", tags=["tracking"], responses=problem_responses(404, 410))

CUSTOMER_EVENTS = frozenset(
    {
        "created",
        "at_depot",
        "out_for_delivery",
        "attempt_failed",
        "delivered",
        "deposited",
        "picked_up",
        "returned",
    }
)


def _view(session: SessionDep, settings: SettingsDep, token: str) -> TrackingPublic:
    now = datetime.now(UTC)
    parcel = service.parcel_for(session, token=token, now=now)
    eta = service.eta(session, parcel=parcel, now=now, speed_kmh=settings.eta_speed_kmh)
    history = [
        TrackingEventPublic.model_validate(e)
        for e in parcels_service.history(session, parcel.id)
        if e.kind in CUSTOMER_EVENTS
    ]
    return TrackingPublic(
        reference=parcel.reference,
        status=parcel.status,
        destination="locker" if parcel.locker_id else "address",
        window_start=parcel.window_start,
        window_end=parcel.window_end,
        eta=EtaPublic(
            at=eta.at,
            source=eta.source,
            stops_before=eta.stops_before,
            distance_km=eta.distance_km,
            from_position_at=eta.from_position_at,
            speed_kmh=eta.speed_kmh,
            method=eta.method,
        )
        if eta
        else None,
        history=history,
    )


def _eta_sentence(eta: EtaPublic) -> str:
    at = f"Expected around <b>{eta.at.strftime('%H:%M')} UTC</b>"
    if eta.stops_before is not None:
        stops = (
            "the van's next stop"
            if eta.stops_before == 0
            else f"{eta.stops_before} stop{'s' if eta.stops_before != 1 else ''} before yours"
        )
        return f"{at} ({stops}; {html.escape(eta.method)})."
    away = "" if eta.distance_km is None else f"{eta.distance_km:.1f} km away; "
    return f"{at} ({away}{html.escape(eta.method)})."


@router.get("/{token}/json", response_model=TrackingPublic)
def track_json(token: str, session: SessionDep, settings: SettingsDep) -> TrackingPublic:
    return _view(session, settings, token)


@router.get("/{token}", response_class=HTMLResponse)
def track_page(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """The same as ``/json``, for a person: one small page, no scripts."""
    view = _view(session, settings, token)
    rows = "".join(
        f"<li><time>{html.escape(e.at.strftime('%Y-%m-%d %H:%M'))} UTC</time> "
        f"{html.escape(e.kind.replace('_', ' '))}</li>"
        for e in view.history
    )
    eta = f"<p class=eta>{_eta_sentence(view.eta)}</p>" if view.eta else ""
    ref = f" {html.escape(view.reference)}" if view.reference else ""
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<meta name=referrer content=no-referrer>"
        f"<title>Parcel{ref}</title>"
        "<style>body{font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em}"
        ".status{font-size:1.5em}</style></head><body>"
        f"<h1>Parcel{ref}</h1>"
        f"<p class=status>{html.escape(view.status.replace('_', ' '))}</p>{eta}"
        f"<ol>{rows}</ol></body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})
