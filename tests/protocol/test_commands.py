"""Signed commands: one precise refusal for each way a command can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocol.codec import decode, encode
from protocol.codes import derive_locker_key
from protocol.commands import (
    BadSignature,
    Command,
    CommandExpired,
    CommandNotYetValid,
    CommandReplayed,
    MemoryNonces,
    WrongDevice,
    canonical_bytes,
    derive_command_key,
    sign_command,
    verify_command,
)

MASTER = b"master secret of the test hub!!!"
KEY = derive_command_key(MASTER, "L1")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _signed(**kw: object) -> Command:
    args: dict[str, object] = {
        "key": KEY,
        "device_id": "L1",
        "name": "open_compartment",
        "args": {"compartment": 3},
        "issued_at": NOW,
    }
    args.update(kw)
    return sign_command(**args)  # type: ignore[arg-type]


def _verify(cmd: Command, *, now: datetime = NOW, nonces: MemoryNonces | None = None) -> Command:
    return verify_command(
        cmd,
        key=KEY,
        device_id="L1",
        now=now,
        nonces=nonces if nonces is not None else MemoryNonces(),
    )


def test_a_signed_command_survives_the_wire_and_verifies_once() -> None:
    cmd = decode(encode(_signed()), Command)
    nonces = MemoryNonces()
    assert _verify(cmd, now=NOW + timedelta(seconds=10), nonces=nonces).args == {"compartment": 3}
    with pytest.raises(CommandReplayed) as err:
        _verify(cmd, now=NOW + timedelta(seconds=11), nonces=nonces)
    assert err.value.reason == "replayed" and err.value.command_id == cmd.command_id


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"args": {"compartment": 4}}, BadSignature),
        ({"name": "open_all"}, BadSignature),
        ({"expires_at": NOW + timedelta(hours=2)}, BadSignature),
        ({"signature": "0" * 64}, BadSignature),
    ],
)
def test_any_tampering_breaks_the_signature(change: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        _verify(_signed().model_copy(update=change))


def test_a_key_for_another_purpose_or_device_signs_nothing() -> None:
    for wrong in (derive_locker_key(MASTER, "L1"), derive_command_key(MASTER, "L2")):
        with pytest.raises(BadSignature):
            _verify(_signed(key=wrong))


def test_a_command_for_another_device_is_refused_before_anything_else() -> None:
    with pytest.raises(WrongDevice, match="'L2'"):
        _verify(_signed(device_id="L2", key=derive_command_key(MASTER, "L2")))


def test_time_window() -> None:
    cmd = _signed(ttl=timedelta(minutes=5))
    with pytest.raises(CommandExpired):
        _verify(cmd, now=NOW + timedelta(minutes=5))
    with pytest.raises(CommandNotYetValid):
        _verify(cmd, now=NOW - timedelta(minutes=2))  # issued in our future, beyond the skew
    _verify(cmd, now=NOW - timedelta(seconds=30))  # within the skew
    with pytest.raises(CommandNotYetValid, match="longer"):
        _verify(_signed(ttl=timedelta(hours=2)), now=NOW)


def test_a_refused_command_does_not_use_up_its_nonce() -> None:
    nonces = MemoryNonces()
    good = _signed()
    forged = good.model_copy(update={"args": {"compartment": 9}})
    with pytest.raises(BadSignature):
        _verify(forged, nonces=nonces)
    _verify(good, nonces=nonces)


def test_the_canonical_form_is_stable_json() -> None:
    cmd = _signed()
    body = canonical_bytes(cmd.model_dump())
    assert b'"signature"' not in body
    assert b'"issued_at":"2026-03-02T09:00:00.000000Z"' in body
    assert body == canonical_bytes(decode(encode(cmd), Command).model_dump())
