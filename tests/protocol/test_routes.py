"""Signed routes: the hub's signature survives the wire; every field is covered by it; another
key, another van, an expired or over-long route, a replayed older route and a command's signature
are each refused with their own reason; an unsigned (pre-signing) route is not a Route at all."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from protocol.codec import decode, encode
from protocol.commands import (
    BadSignature,
    Command,
    CommandExpired,
    CommandNotYetValid,
    MemoryNonces,
    WrongDevice,
    derive_command_key,
    sign_command,
    verify_command,
)
from protocol.errors import DecodeError
from protocol.messages import Route, RouteStop
from protocol.routes import (
    MAX_ROUTE_LIFETIME,
    MIN_ROUTE_LIFETIME,
    ROUTE_GRACE,
    RouteMark,
    RouteStale,
    derive_route_key,
    hub_route_key,
    is_unsigned,
    route_expiry,
    route_id_of,
    sign_route,
    verify_route,
)
from protocol.topics import DeviceKind

MASTER = b"master secret of the test hub!!!"
COMMAND_KEY = derive_command_key(MASTER, "van-1", kind=DeviceKind.VEHICLE)
KEY = derive_route_key(COMMAND_KEY, "van-1")
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
STOPS = (
    RouteStop(stop_id="s1", lat=52.38, lon=4.9, eta=NOW + timedelta(hours=3)),
    RouteStop(
        stop_id="s2",
        lat=52.39,
        lon=4.91,
        eta=NOW + timedelta(hours=4),
        due=NOW + timedelta(hours=5),
        kind="pickup",
    ),
)


def _route(
    *, key: bytes = KEY, device_id: str = "van-1", issued_at: datetime = NOW, **kw: Any
) -> Route:
    args: dict[str, Any] = {
        "key": key,
        "device_id": device_id,
        "route_id": uuid.uuid4(),
        "plan_id": uuid.uuid4(),
        "stops": STOPS,
        "issued_at": issued_at,
        "expires_at": issued_at + timedelta(hours=12),
    }
    args.update(kw)
    return sign_route(**args)


def _verify(
    route: Route, *, now: datetime = NOW, newest: RouteMark | None = None, key: bytes = KEY
) -> Route:
    return verify_route(route, key=key, device_id="van-1", now=now, newest=newest)


def test_a_signed_route_survives_the_wire_and_verifies() -> None:
    route = _route()
    received = decode(encode(route), Route)
    assert _verify(received, now=NOW + timedelta(minutes=5)) == route
    assert received.stops[1].due == NOW + timedelta(hours=5)


def test_the_hub_and_the_van_derive_the_same_route_key_and_it_is_not_the_command_key() -> None:
    assert hub_route_key(MASTER, "van-1") == KEY
    assert KEY != COMMAND_KEY
    assert derive_route_key(COMMAND_KEY, "van-2") != KEY


TAMPERED: list[tuple[str, Any]] = [
    ("id", str(uuid.uuid4())),
    ("sent_at", "2026-12-01T05:00:00Z"),
    ("route_id", str(uuid.uuid4())),
    ("plan_id", str(uuid.uuid4())),
    ("issued_at", "2026-12-01T05:59:00Z"),
    ("expires_at", "2026-12-01T19:00:00Z"),
    ("stops.0.stop_id", "s9"),
    ("stops.0.lat", 52.0),
    ("stops.0.lon", 5.0),
    ("stops.0.eta", "2026-12-01T10:00:00Z"),
    ("stops.1.due", "2026-12-01T23:00:00Z"),
    ("stops.1.kind", "delivery"),
    ("stops", []),
]


@pytest.mark.parametrize(("path", "value"), TAMPERED, ids=[p for p, _ in TAMPERED])
def test_tampering_with_any_field_breaks_the_signature(path: str, value: Any) -> None:
    body = json.loads(encode(_route()))
    *parents, leaf = path.split(".")
    target = body
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    target[leaf] = value
    tampered = decode(json.dumps(body).encode(), Route)
    with pytest.raises(BadSignature) as err:
        _verify(tampered)
    assert err.value.reason == "bad_signature"
    assert err.value.command_id == tampered.route_id
    assert "route" in str(err.value)


def test_a_route_moved_to_another_van_is_refused_for_the_signature() -> None:
    body = json.loads(encode(_route(key=derive_route_key(COMMAND_KEY, "van-2"), device_id="van-2")))
    body["device_id"] = "van-1"
    with pytest.raises(BadSignature):
        _verify(decode(json.dumps(body).encode(), Route))


def test_another_vans_route_is_refused_as_wrong_device() -> None:
    other = _route(key=hub_route_key(MASTER, "van-2"), device_id="van-2")
    with pytest.raises(WrongDevice) as err:
        _verify(other)
    assert err.value.reason == "wrong_device"


@pytest.mark.parametrize(
    "key",
    [
        COMMAND_KEY,  # the command key itself, not the route key derived from it
        hub_route_key(b"another hub's master secret!!!!!", "van-1"),
        derive_route_key(derive_command_key(MASTER, "van-1"), "van-1"),  # the locker label
    ],
    ids=["command-key", "other-master", "locker-label"],
)
def test_a_route_signed_with_any_other_key_is_refused(key: bytes) -> None:
    with pytest.raises(BadSignature):
        _verify(_route(key=key))


def test_validity_window() -> None:
    route = _route()
    with pytest.raises(CommandExpired) as expired:
        _verify(route, now=route.expires_at)
    assert expired.value.reason == "expired"
    with pytest.raises(CommandNotYetValid) as early:
        _verify(route, now=NOW - timedelta(minutes=5))
    assert early.value.reason == "not_yet_valid"
    too_long = _route(expires_at=NOW + MAX_ROUTE_LIFETIME + timedelta(seconds=1))
    with pytest.raises(CommandNotYetValid, match="longer than"):
        _verify(too_long)


def test_a_replayed_older_route_is_stale_and_the_route_in_force_is_accepted_again() -> None:
    old = _route(issued_at=NOW)
    new = _route(issued_at=NOW + timedelta(minutes=30))
    later = NOW + timedelta(hours=1)
    assert _verify(new, now=later, newest=RouteMark.of(old)) == new
    with pytest.raises(RouteStale) as err:
        _verify(old, now=later, newest=RouteMark.of(new))
    assert err.value.reason == "stale" and err.value.command_id == old.route_id
    # the broker's retained copy of the route in force, delivered again on reconnect
    assert _verify(new, now=later, newest=RouteMark.of(new)) == new
    # a different route issued at the very same instant is not newer either
    twin = _route(issued_at=new.issued_at)
    with pytest.raises(RouteStale):
        _verify(twin, now=later, newest=RouteMark.of(new))


def test_a_route_signature_is_no_command_signature_and_vice_versa() -> None:
    route = _route()
    as_command = sign_command(
        key=COMMAND_KEY, device_id="van-1", name="route", issued_at=NOW, ttl=timedelta(minutes=5)
    ).model_copy(update={"signature": route.signature})
    with pytest.raises(BadSignature):
        verify_command(
            as_command, key=COMMAND_KEY, device_id="van-1", now=NOW, nonces=MemoryNonces()
        )
    # even under the same key, the type field in the signed bytes keeps them apart
    command = sign_command(key=KEY, device_id="van-1", name="route", issued_at=NOW)
    with pytest.raises(BadSignature):
        _verify(route.model_copy(update={"signature": command.signature}))
    # and a command is not a route on the wire: the van refuses it as malformed
    with pytest.raises(DecodeError):
        decode(encode(command), Route)
    with pytest.raises(DecodeError):
        decode(encode(route), Command)


def test_an_unsigned_route_from_an_older_hub_is_not_a_route() -> None:
    legacy: dict[str, Any] = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "sent_at": "2026-12-01T06:00:00Z",
        "type": "route",
        "device_id": "van-1",
        "route_id": str(uuid.uuid4()),
        "plan_id": str(uuid.uuid4()),
        "stops": [],
    }
    payload = json.dumps(legacy).encode()
    with pytest.raises(DecodeError) as err:
        decode(payload, Route)
    for name in ("signature", "issued_at", "expires_at"):
        assert name in err.value.detail
    assert is_unsigned(payload)
    assert route_id_of(payload) == uuid.UUID(legacy["route_id"])
    assert not is_unsigned(encode(_route()))
    assert not is_unsigned(b"[1, 2]") and not is_unsigned(b"\xff")
    assert route_id_of(b"{") is None and route_id_of(b'{"route_id": "nope"}') is None


def test_the_route_schema_requires_the_signature_fields() -> None:
    schema = Route.model_json_schema()
    assert {"signature", "issued_at", "expires_at"} <= set(schema["required"])
    assert schema["properties"]["signature"]["pattern"] == "^[0-9a-f]{64}$"


def test_route_expiry_is_the_shift_end_plus_grace_within_bounds() -> None:
    end = NOW + timedelta(hours=11)
    assert route_expiry(issued_at=NOW, shift_end=end) == end + ROUTE_GRACE
    # a day already over: the route still lives long enough to be acknowledged
    past = NOW - timedelta(days=3)
    assert route_expiry(issued_at=NOW, shift_end=past) == NOW + MIN_ROUTE_LIFETIME
    # a day far ahead: bounded by what a van accepts
    far = NOW + timedelta(days=10)
    assert route_expiry(issued_at=NOW, shift_end=far) == NOW + MAX_ROUTE_LIFETIME
    with pytest.raises(ValueError, match="expire after"):
        _route(expires_at=NOW)
    with pytest.raises(ValueError, match="16 bytes"):
        _route(key=b"short")
