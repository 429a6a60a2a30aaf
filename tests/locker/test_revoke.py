"""A signed ``revoke_grant`` from the hub (a code resent or withdrawn) spends the grant: its code
opens nothing afterwards. A forged one changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from protocol.codec import encode
from protocol.codes import derive_locker_key
from protocol.commands import sign_command
from tests.locker.story import (
    CMD,
    COMMAND_KEY,
    LOCKER,
    MASTER,
    T0,
    FakeClock,
    grant,
    queued_acks,
    queued_events,
    settings_for,
    shut_doors,
)


def _revoke(grant_id: object, *, key: bytes = COMMAND_KEY) -> bytes:
    return encode(
        sign_command(
            key=key,
            device_id=LOCKER,
            name="revoke_grant",
            args={"grant_id": str(grant_id)},
            issued_at=T0,
            ttl=timedelta(minutes=30),
        )
    )


def test_a_revoked_code_opens_nothing_and_a_forged_revocation_is_refused(
    tmp_path, factory: MockLockerFactory
) -> None:
    clock = FakeClock()
    kept = grant("11112222", compartment=1, now=T0)
    revoked = grant("33334444", compartment=2, now=T0)

    async def story() -> None:
        settings = settings_for(tmp_path, command_key=COMMAND_KEY.hex())
        with open_locker(settings, pin_factory=factory, keypad=SimKeypad(), clock=clock) as a:
            shut_doors(factory)
            for g in (kept, revoked):
                a._grants.add(g, now=T0)
            await a.handle_message(
                CMD, _revoke(kept.grant_id, key=derive_locker_key(MASTER, LOCKER))
            )
            await a.handle_message(CMD, _revoke(revoked.grant_id))
            await a.handle_message(CMD, _revoke("not-a-uuid"))
            await a._on_code("33334444")  # revoked: refused, the relay stays off
            assert not factory.pin(1002).state
            stored = a._grants.get(revoked.grant_id)
            assert stored is not None and stored.spent
            assert not a._grants.get(kept.grant_id).spent  # type: ignore[union-attr]

    asyncio.run(story())
    acks = queued_acks(tmp_path)
    assert [(ack.ok, ack.reason) for ack in acks] == [
        (False, "bad_signature"),
        (True, ""),
        (False, "bad_args"),
    ]
    events = queued_events(tmp_path)
    executed = [e for e in events if e.kind == "command_executed"]
    assert [e.grant_id for e in executed] == [revoked.grant_id]
    assert [e.reason for e in events if e.kind == "code_rejected"] == ["used"]
