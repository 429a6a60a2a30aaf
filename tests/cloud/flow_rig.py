"""A hub and a locker, for real: Mosquitto, ingest, outbox dispatcher, parcel flows, webhook
sender, the API (in process) and a locker agent on mock GPIO pins, plus a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dispatch import OutboundDispatcher
from cloud.flows import ParcelFlows
from cloud.ingest import IngestWorker
from cloud.models import Locker
from cloud.services.policy import code_secrets, flow_policy
from cloud.services.webhook_setup import secret_box, target_policy
from cloud.settings import HubSettings, Role
from cloud.webhooks import WebhookSender
from edge.settings import MqttSettings
from locker.agent import LockerAgent
from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.settings import LockerSettings
from protocol.codes import derive_courier_key, derive_locker_key
from protocol.commands import derive_command_key
from tests.cloud.helpers import MASTER_SECRET, auth, eventually, hub_settings, running
from tests.cloud.webhook_receiver import Receiver, receiving

LOCKER = "locker-1"
WEBHOOK_SECRET = "whsec_test-receiver-3f9a1c77d2b4"


@dataclass
class Rig:
    settings: HubSettings
    session_factory: sessionmaker[Session]
    api: httpx.AsyncClient
    agent: LockerAgent
    keypad: SimKeypad
    factory: MockLockerFactory
    receiver: Receiver
    sender: WebhookSender
    flows: ParcelFlows

    def as_role(self, role: Role) -> dict[str, str]:
        return auth(role)

    async def call(
        self, method: str, path: str, *, role: Role = Role.OPS, json: Any = None, status: int = 200
    ) -> Any:
        r = await self.api.request(method, path, json=json, headers=auth(role))
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json()

    async def parcel(self, parcel_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/v1/parcels/{parcel_id}", role=Role.VIEWER))

    async def wait_status(self, parcel_id: str, status: str, *, timeout: float = 15) -> None:
        async def probe() -> bool:
            return (await self.parcel(parcel_id))["status"] == status

        await eventually(probe, timeout=timeout, what=f"parcel {status}")

    async def wait_grant(self, n: int) -> None:
        await eventually(
            lambda: self.agent.stats.grants_stored >= n, timeout=15, what=f"{n} grants at locker"
        )

    async def visit(self, compartment: int) -> None:
        """Someone opens the released door and shuts it again."""
        relay, door = self.factory.pin(1000 + compartment), self.factory.pin(2000 + compartment)
        await eventually(lambda: relay.state, timeout=10, what=f"relay {compartment} energized")
        door.drive_high()
        await eventually(lambda: not relay.state, timeout=10, what=f"relay {compartment} off")
        door.drive_low()

    async def code_from_webhook(self, event_type: str, *, after: int = 0) -> dict[str, Any]:
        """The code block of the ``after``-th accepted delivery of ``event_type`` with a code."""

        def probe() -> list[Any]:
            return [r for r in self.receiver.accepted(event_type) if "code" in r.json["data"]]

        got = await eventually(
            lambda: len(probe()) > after and probe(), timeout=15, what=event_type
        )
        return dict(got[after].json["data"]["code"])


def locker_settings(state_dir: Path, mqtt: MqttSettings, **extra: Any) -> LockerSettings:
    master = MASTER_SECRET.encode()
    return LockerSettings(
        device_id=LOCKER,
        mqtt=mqtt,
        state_dir=state_dir,
        compartments=4,
        sizes=["S", "M", "M", "L"],
        code_key=derive_locker_key(master, LOCKER).hex(),
        courier_key=derive_courier_key(master, LOCKER).hex(),
        command_key=derive_command_key(master, LOCKER).hex(),
        **extra,
    )


@contextlib.asynccontextmanager
async def hub_and_locker(
    *,
    mqtt: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
    state_dir: Path,
    factory: MockLockerFactory,
    locker_extra: dict[str, Any] | None = None,
    **hub_overrides: Any,
) -> AsyncIterator[Rig]:
    settings = hub_settings(database_url=database_url, mqtt=mqtt, **hub_overrides)
    wakeup = asyncio.Event()
    ingest = IngestWorker(settings=mqtt, session_factory=session_factory, client_id="hub-ingest")
    dispatcher = OutboundDispatcher(
        settings=mqtt,
        session_factory=session_factory,
        client_id="hub-dispatch",
        wakeup=wakeup,
        poll_interval_s=0.1,
    )
    flows = ParcelFlows(
        session_factory=session_factory,
        policy=flow_policy(settings),
        wake_dispatcher=dispatcher.wake,
        poll_interval_s=0.05,
    )
    sender = WebhookSender(
        session_factory=session_factory,
        secrets=code_secrets(settings),
        secret_box=secret_box(settings),
        targets=target_policy(settings),
        backoff_base_s=0.2,
        backoff_max_s=1.0,
        poll_interval_s=0.05,
        max_attempts=settings.webhook_max_attempts,
    )
    app = create_app(settings=settings, session_factory=session_factory, dispatcher_wakeup=wakeup)
    keypad = SimKeypad()
    with (
        receiving(WEBHOOK_SECRET) as receiver,
        open_locker(
            locker_settings(state_dir, mqtt, **(locker_extra or {})),
            pin_factory=factory,
            keypad=keypad,
        ) as agent,
    ):
        for n in range(1, 5):
            factory.pin(2000 + n).drive_low()  # doors shut
        async with (
            running(ingest.run(), dispatcher.run(), flows.run(), sender.run(), agent.run()),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as api,
        ):
            await ingest.wait_ready()

            def compartments() -> bool:
                with session_factory() as session:
                    locker = session.get(Locker, LOCKER)
                    return locker is not None and locker.compartments == 4

            await eventually(compartments, timeout=15, what="the locker's status")
            r = await api.post(
                "/api/v1/webhooks",
                json={"url": receiver.url, "events": ["parcel.*"], "secret": WEBHOOK_SECRET},
                headers=auth(Role.OPS),
            )
            assert r.status_code == 201, r.text
            yield Rig(
                settings=settings,
                session_factory=session_factory,
                api=api,
                agent=agent,
                keypad=keypad,
                factory=factory,
                receiver=receiver,
                sender=sender,
                flows=flows,
            )
