"""The demo's simulated desk: parcels run the whole locker flow through the real API and lockers.

Every ~20 s a parcel is created for a locker, sent out for delivery, and its courier code typed on
that locker's keypad (the simulated people open and shut the door). The hub then issues the pickup
code, which reaches the desk only the way it reaches a real customer: through a signed webhook to
the desk's own receiver on loopback. The customer types it a little later -- except now and then,
when nobody comes: ops expire the code, the courier gets a return code by webhook and takes the
parcel back. Each parcel rides one of the demo's vans and is promised a delivery window, which it
sometimes misses; now and then a home parcel goes out too, and the first attempt sometimes fails
(nobody home) before a second one succeeds -- so ``GET /api/v1/kpis`` has something to say.

The day starts with :class:`Morning`: home parcels with coordinates around each depot and a few
for each locker, left at the depot for the dispatcher (:mod:`cloud.demo_routes`) to plan through
``POST /plans/from-hub``; the flow above starts once they are planned, so it cannot race them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloud.services.webhooks import SIGNATURE_HEADER, verify
from locker.keypad import SimKeypad

log = logging.getLogger(__name__)

CODE_EVENTS = ("parcel.pickup_code_issued", "parcel.return_code_issued")


class _Api:
    def __init__(self, *, base: str, key: str) -> None:
        self._base = base
        self._key = key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(  # noqa: S310 - our own loopback API, http only
            f"{self._base}/api/v1{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our loopback API
            return dict(json.loads(resp.read()))


@contextlib.contextmanager
def webhook_inbox(
    loop: asyncio.AbstractEventLoop, secret: str
) -> Iterator[tuple[str, asyncio.Queue[dict[str, Any]]]]:
    """A loopback HTTP receiver that checks each signature and queues the verified code events."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify(secret, body, self.headers.get(SIGNATURE_HEADER, ""))
            self.send_response(204 if ok else 401)
            self.end_headers()
            if not ok:
                log.warning("demo desk: a webhook with a bad signature was refused")
                return
            event = json.loads(body)
            if event.get("type") in CODE_EVENTS and "code" in event.get("data", {}):
                loop.call_soon_threadsafe(inbox.put_nowait, event)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-webhooks", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", inbox
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Morning:
    """The parcels the day starts with: ``homes`` home deliveries around each depot and
    ``per_locker`` parcels for each locker, all left at the depot for the planner."""

    depots: Mapping[str, tuple[float, float]]
    homes: Mapping[str, int]  # depot -> how many home parcels
    lockers: tuple[str, ...]
    ready: asyncio.Event
    planned: asyncio.Event  # set by the dispatcher: the desk's other parcels may flow now
    per_locker: int = 2


def morning_parcels(client: _Api, morning: Morning, rng: random.Random) -> int:
    """Create the morning's parcels and move them to the depot (not out: the plan does that).
    Home parcels lie on the streets within ~350 m of their depot, each promised a window that
    closes 20 to 60 minutes from now."""
    now = datetime.now(UTC)
    made = 0

    def at_depot(body: dict[str, Any]) -> None:
        nonlocal made
        end = now + timedelta(minutes=rng.uniform(20, 60))
        window = {
            "window_start": (now - timedelta(hours=1)).isoformat(),
            "window_end": end.isoformat(),
        }
        parcel = client.call("POST", "/parcels", {**body, **window})
        client.call("POST", f"/parcels/{parcel['id']}/transitions", {"to": "at_depot"})
        made += 1

    for depot, (lat, lon) in morning.depots.items():
        for k in range(morning.homes.get(depot, 0)):
            at_depot(
                {
                    "address": f"{depot.title()} street {k + 1}",
                    "lat": round(lat + rng.uniform(-0.003, 0.003), 6),
                    "lon": round(lon + rng.uniform(-0.005, 0.005), 6),
                    "size": rng.choice(("S", "M", "L")),
                }
            )
    for locker_id in morning.lockers:
        for _ in range(morning.per_locker):
            at_depot({"locker_id": locker_id, "size": rng.choice(("S", "M"))})
    return made


async def run_desk(
    *,
    api: str,
    api_key: str,
    keypads: dict[str, SimKeypad],
    rng: random.Random,
    expire_share: float = 0.2,
    vans: tuple[str, ...] = (),
    home_share: float = 0.3,
    morning: Morning | None = None,
) -> None:
    """Run the desk until cancelled (its tasks in one task group). ``morning``: first leave the
    day's parcels at the depots for the dispatcher to plan, then set its ``ready`` event."""
    client = _Api(base=api, key=api_key)
    secret = "whsec_" + secrets.token_urlsafe(24)
    with webhook_inbox(asyncio.get_running_loop(), secret) as (url, inbox):
        await asyncio.to_thread(
            client.call, "POST", "/webhooks", {"url": url, "events": ["parcel.*"], "secret": secret}
        )
        if morning is not None:
            made = await asyncio.to_thread(morning_parcels, client, morning, rng)
            log.info("demo desk: %d parcels wait at the depots to be planned", made)
            morning.ready.set()

        def promised(destination: dict[str, Any]) -> dict[str, Any]:
            """A window that closes between a minute ago and five minutes from now."""
            now = datetime.now(UTC)
            end = now + timedelta(seconds=rng.uniform(-60, 300))
            window = {
                "window_start": (end - timedelta(hours=2)).isoformat(),
                "window_end": end.isoformat(),
            }
            return client.call("POST", "/parcels", {**destination, **window, "size": "M"})

        def load(parcel_id: str) -> None:
            client.call("POST", f"/parcels/{parcel_id}/transitions", {"to": "at_depot"})
            out: dict[str, Any] = {"to": "out_for_delivery"}
            if vans:
                out["vehicle_id"] = rng.choice(vans)
            client.call("POST", f"/parcels/{parcel_id}/transitions", out)

        def send_out(locker_id: str) -> dict[str, Any]:
            parcel = promised({"locker_id": locker_id})
            load(parcel["id"])
            return client.call("POST", f"/parcels/{parcel['id']}/codes", {"kind": "courier"})

        def home_delivery() -> None:
            lat, lon = 52.37 + rng.uniform(-0.004, 0.004), 4.89 + rng.uniform(-0.006, 0.006)
            parcel = promised({"address": "Demo street 1", "lat": lat, "lon": lon})
            load(parcel["id"])
            if rng.random() < 0.3:
                client.call("POST", f"/parcels/{parcel['id']}/attempts", {"reason": "nobody home"})
                load(parcel["id"])
            client.call("POST", f"/parcels/{parcel['id']}/delivery", {"lat": lat, "lon": lon})

        async def customer(event: dict[str, Any]) -> None:
            code = event["data"]["code"]
            parcel_id = event["data"]["parcel"]["id"]
            locker_id = code["locker_id"]
            if code["kind"] == "pickup" and rng.random() < expire_share:
                await asyncio.sleep(rng.uniform(5, 15))
                log.info("demo: nobody collects parcel %s; its code expires", parcel_id)
                await asyncio.to_thread(client.call, "POST", f"/parcels/{parcel_id}/codes/expire")
                return  # the return code arrives by webhook
            await asyncio.sleep(rng.uniform(10, 30) if code["kind"] == "pickup" else 3)
            who = "customer" if code["kind"] == "pickup" else "courier (return)"
            log.info("demo: %s types a code at %s for parcel %s", who, locker_id, parcel_id)
            keypads[locker_id].press(code["code"] + "#")

        async def deliveries() -> None:
            if morning is not None:  # the morning's parcels are planned before others go out
                await morning.planned.wait()
            while True:
                locker_id = rng.choice(sorted(keypads))
                try:
                    courier = await asyncio.to_thread(send_out, locker_id)
                except (OSError, urllib.error.URLError) as err:  # 409 when full: try later
                    log.info("demo desk: no parcel for %s now (%s)", locker_id, err)
                else:
                    log.info(
                        "demo: courier code for %s compartment %s",
                        locker_id,
                        courier["compartment"],
                    )
                    await asyncio.sleep(2)  # the grant reaches the locker
                    keypads[locker_id].press(courier["code"] + "#")
                if rng.random() < home_share:
                    try:
                        await asyncio.to_thread(home_delivery)
                    except (OSError, urllib.error.URLError) as err:
                        log.info("demo desk: a home delivery failed (%s)", err)
                await asyncio.sleep(rng.uniform(15, 25))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(deliveries(), name="demo-deliveries")
            while True:
                event = await inbox.get()
                tg.create_task(customer(event))
