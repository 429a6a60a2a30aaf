"""The locker flows end to end: hub API -> outbox -> Mosquitto -> locker agent on mock pins ->
keypad and doors -> locker events -> ingest -> parcel flows -> grants and webhooks.

Codes reach people only through the API response that issued them or the signed webhook; the
database never holds one (checked on every backend with a dump of every table)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import LockerEventRow
from cloud.settings import Role
from edge.settings import MqttSettings
from locker.hardware import MockLockerFactory
from tests.cloud.flow_rig import LOCKER, Rig, hub_and_locker
from tests.cloud.helpers import dump_database, eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def factory() -> Iterator[MockLockerFactory]:
    f = MockLockerFactory()
    yield f
    f.reset()
    f.close()


def _rig(
    mqtt: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    factory: MockLockerFactory,
    **extra: Any,
) -> contextlib.AbstractAsyncContextManager[Rig]:
    return hub_and_locker(
        mqtt=mqtt,
        session_factory=session_factory,
        database_url=database_url,
        state_dir=tmp_path / "locker",
        factory=factory,
        **extra,
    )


async def _to_locker(rig: Rig, reference: str) -> tuple[str, dict[str, Any]]:
    """A new parcel for the locker, out for delivery with its courier code."""
    parcel = await rig.call(
        "POST",
        "/api/v1/parcels",
        role=Role.INTEGRATION,
        json={"locker_id": LOCKER, "reference": reference, "size": "M"},
        status=201,
    )
    pid = parcel["id"]
    for to in ("at_depot", "out_for_delivery"):
        await rig.call("POST", f"/api/v1/parcels/{pid}/transitions", json={"to": to})
    courier = await rig.call(
        "POST", f"/api/v1/parcels/{pid}/codes", json={"kind": "courier"}, status=201
    )
    return pid, courier


async def _rejections(rig: Rig) -> list[str]:
    with rig.session_factory() as session:
        return list(
            session.scalars(
                select(LockerEventRow.reason).where(LockerEventRow.kind == "code_rejected")
            )
        )


def test_courier_deposits_customer_picks_up_with_proof_and_signed_webhooks(
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    factory: MockLockerFactory,
) -> None:
    codes_seen: list[str] = []

    async def story() -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        async with _rig(mqtt_settings, session_factory, database_url, tmp_path, factory) as rig:
            rig.receiver.fail_next = 2  # the first two deliveries get a 500: retried with backoff
            pid, courier = await _to_locker(rig, "R-1")
            codes_seen.append(courier["code"])
            # an M parcel: compartment 1 is S, 2 is the smallest that fits (sizes S, M, M, L)
            assert (courier["kind"], courier["compartment"], courier["state"]) == (
                "courier",
                2,
                "active",
            )
            await rig.wait_grant(1)
            rig.keypad.press(courier["code"] + "#")
            await rig.visit(2)
            await rig.wait_status(pid, "deposited")

            pickup = await rig.code_from_webhook("parcel.pickup_code_issued")
            codes_seen.append(pickup["code"])
            assert (pickup["kind"], pickup["compartment"], pickup["locker_id"]) == (
                "pickup",
                2,
                LOCKER,
            )
            await rig.wait_grant(2)
            rig.keypad.press(pickup["code"] + "#")
            await rig.visit(2)
            await rig.wait_status(pid, "picked_up")

            history = (await rig.call("GET", f"/api/v1/parcels/{pid}/events", role=Role.VIEWER))[
                "data"
            ]
            proofs = await rig.call("GET", f"/api/v1/parcels/{pid}/proofs", role=Role.VIEWER)
            hooks = await rig.call("GET", "/api/v1/webhooks")
            hook_id = hooks["data"][0]["id"]

            async def all_delivered() -> dict[str, Any] | None:
                log = await rig.call("GET", f"/api/v1/webhooks/{hook_id}/deliveries")
                done = all(d["status"] == "delivered" for d in log["data"])
                return log if done and log["count"] >= 7 else None

            log = await eventually(all_delivered, timeout=20, what="every webhook delivered")
            return pid, proofs, history, log

    pid, proofs, history, log = asyncio.run(story())

    kinds = [e["kind"] for e in history]
    assert kinds == [
        "created",
        "at_depot",
        "out_for_delivery",
        "courier_code_issued",
        "deposited",
        "pickup_code_issued",
        "picked_up",
    ], kinds
    deposited = history[4]
    assert (deposited["from_status"], deposited["to_status"]) == ("out_for_delivery", "deposited")
    assert deposited["source"] == f"locker:{LOCKER}"
    assert deposited["detail"]["compartment"] == 2

    assert proofs["count"] == 1
    proof = proofs["data"][0]
    assert (proof["kind"], proof["locker_id"], proof["compartment"]) == (
        "locker_pickup",
        LOCKER,
        2,
    )
    assert proof["locker_event_id"] is not None

    # two 500s, each retried; every delivery ends delivered and the log shows the failures
    attempts = [a for d in log["data"] for a in d["log"]]
    assert [a["status_code"] for a in attempts].count(500) == 2
    failed_first = [d for d in log["data"] if d["attempts"] > 1]
    assert failed_first and all(d["log"][-1]["status_code"] == 200 for d in failed_first)
    assert all(d["log"][0]["error"] == "HTTP 500" for d in failed_first)

    dump = dump_database(session_factory)
    for code in codes_seen:
        assert code not in dump
    assert pid in dump  # the dump does see the data


def test_resend_revokes_the_old_code_on_the_locker_and_an_expired_parcel_is_returned(
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    factory: MockLockerFactory,
) -> None:
    async def story() -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
        async with _rig(mqtt_settings, session_factory, database_url, tmp_path, factory) as rig:
            pid, courier = await _to_locker(rig, "R-2")
            await rig.wait_grant(1)
            rig.keypad.press(courier["code"] + "#")
            await rig.visit(courier["compartment"])
            await rig.wait_status(pid, "deposited")
            first = await rig.code_from_webhook("parcel.pickup_code_issued")

            resent = await rig.call(
                "POST", f"/api/v1/parcels/{pid}/codes", json={"kind": "pickup"}, status=201
            )
            assert resent["code"] != first["code"]
            by_hook = await rig.code_from_webhook("parcel.pickup_code_issued", after=1)
            assert by_hook["code"] == resent["code"]  # the same new code, on both channels

            # the revocation is a signed command: the locker answers, the hub records it
            async def revoke_acked() -> bool:
                cmds = await rig.call("GET", f"/api/v1/lockers/{LOCKER}/commands")
                return any(
                    c["name"] == "revoke_grant" and c["status"] == "executed" for c in cmds["data"]
                )

            await eventually(revoke_acked, timeout=15, what="revoke_grant executed")
            rig.keypad.press(first["code"] + "#")  # the old code no longer opens anything
            await eventually(
                lambda: rig.agent.stats.codes_rejected >= 1, timeout=10, what="old code refused"
            )

            expired = await rig.call("POST", f"/api/v1/parcels/{pid}/codes/expire")
            assert [g["kind"] for g in expired["data"]] == ["return"]
            ret = await rig.code_from_webhook("parcel.return_code_issued")
            await rig.wait_grant(4)
            rig.keypad.press(ret["code"] + "#")
            await rig.visit(courier["compartment"])
            await rig.wait_status(pid, "returned")
            grants = await rig.call("GET", f"/api/v1/parcels/{pid}/codes", role=Role.VIEWER)
            history = (await rig.call("GET", f"/api/v1/parcels/{pid}/events"))["data"]
            return await _rejections(rig), grants, history

    rejections, grants, history = asyncio.run(story())
    assert rejections == ["used"]  # revoked = spent on the locker
    states = [(g["kind"], g["state"]) for g in grants["data"]]
    assert states == [
        ("courier", "used"),
        ("pickup", "revoked"),
        ("pickup", "expired"),
        ("return", "used"),
    ], states
    assert "code" not in grants["data"][0]
    kinds = [e["kind"] for e in history]
    assert kinds[-4:] == ["pickup_code_issued", "code_expired", "return_code_issued", "returned"]


def test_a_door_that_never_opens_gets_the_courier_a_new_code_for_another_compartment(
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    factory: MockLockerFactory,
) -> None:
    async def story() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with _rig(
            mqtt_settings,
            session_factory,
            database_url,
            tmp_path,
            factory,
            locker_extra={"unlock_pulse_s": 0.3},
        ) as rig:
            pid, courier = await _to_locker(rig, "R-3")
            await rig.wait_grant(1)
            rig.keypad.press(courier["code"] + "#")  # compartment 1 is jammed: nobody opens it
            reissued = await rig.code_from_webhook("parcel.courier_code_issued")
            await rig.wait_grant(2)
            rig.keypad.press(reissued["code"] + "#")
            await rig.visit(reissued["compartment"])
            await rig.wait_status(pid, "deposited")
            return courier, reissued, await rig.parcel(pid)

    courier, reissued, parcel = asyncio.run(story())
    assert courier["compartment"] == 2  # the first M compartment
    assert reissued["compartment"] == 3  # the next M: never the jammed one, never the S
    assert reissued["code"] != courier["code"]
    assert parcel["compartment"] == 3


def test_remote_open_is_signed_sent_through_the_outbox_and_its_ack_is_visible(
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    factory: MockLockerFactory,
) -> None:
    async def story() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with _rig(mqtt_settings, session_factory, database_url, tmp_path, factory) as rig:
            sent = await rig.call(
                "POST", f"/api/v1/lockers/{LOCKER}/compartments/3/open", status=202
            )
            await rig.visit(3)  # the relay was energized by the command

            async def acked() -> dict[str, Any] | None:
                c = await rig.call(
                    "GET",
                    f"/api/v1/lockers/{LOCKER}/commands/{sent['command_id']}",
                    role=Role.VIEWER,
                )
                return c if c["status"] != "sent" else None

            answer = await eventually(acked, timeout=15, what="the locker's ack")
            missing = await rig.call(
                "POST", f"/api/v1/lockers/{LOCKER}/compartments/9/open", status=422
            )
            return sent, answer, missing

    sent, answer, missing = asyncio.run(story())
    assert (sent["name"], sent["args"], sent["status"]) == (
        "open_compartment",
        {"compartment": 3},
        "sent",
    )
    assert (answer["status"], answer["reason"]) == ("executed", "")
    assert answer["acked_at"] is not None
    assert "compartments 1..4, not 9" in missing["detail"]
