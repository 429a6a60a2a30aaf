import contextlib
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.codec import decode, decode_any, encode
from protocol.codes import code_matches, derive_locker_key, hash_code, new_code
from protocol.errors import DecodeError
from protocol.messages import Grant, LockerEvent, Position, TelemetryBatch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _batch(n: int = 3) -> TelemetryBatch:
    return TelemetryBatch(
        vehicle_id="van-1",
        seq=7,
        points=tuple(
            Position(t=NOW + timedelta(seconds=i), lat=52.37, lon=4.89, speed_mps=8.5, sats=9)
            for i in range(n)
        ),
    )


def test_a_batch_round_trips_and_keeps_its_id() -> None:
    batch = _batch()
    again = decode(encode(batch), TelemetryBatch)
    assert again == batch
    assert decode_any(encode(batch)) == batch


def test_every_message_has_a_unique_id_and_a_version() -> None:
    a, b = _batch(), _batch()
    assert a.id != b.id
    assert json.loads(encode(a))["v"] == 1


def test_messages_are_frozen() -> None:
    with pytest.raises(ValidationError):
        _batch().seq = 8  # type: ignore[misc]


def test_an_unknown_version_is_named_as_such() -> None:
    doc = json.loads(encode(_batch()))
    doc["v"] = 2
    with pytest.raises(DecodeError) as err:
        decode(json.dumps(doc).encode(), TelemetryBatch)
    assert err.value.reason == "unsupported schema version"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 1, "type": "telemetry"}', "invalid TelemetryBatch"),
    ],
)
def test_malformed_payloads_raise_one_precise_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(payload, TelemetryBatch)
    assert err.value.reason == reason


def test_validation_detail_names_the_field() -> None:
    doc = json.loads(encode(_batch()))
    doc["points"][1]["lat"] = 123.0
    with pytest.raises(DecodeError, match=r"points\.1\.lat"):
        decode(json.dumps(doc).encode(), TelemetryBatch)


def test_an_empty_batch_and_unknown_fields_are_refused() -> None:
    doc = json.loads(encode(_batch()))
    with pytest.raises(DecodeError):
        decode(json.dumps({**doc, "points": []}).encode(), TelemetryBatch)
    with pytest.raises(DecodeError, match="colour: Extra inputs"):
        decode(json.dumps({**doc, "colour": "red"}).encode(), TelemetryBatch)


def test_naive_timestamps_are_refused() -> None:
    doc = json.loads(encode(_batch()))
    doc["points"][0]["t"] = "2026-11-23T12:00:00"
    with pytest.raises(DecodeError, match="timezone"):
        decode(json.dumps(doc).encode(), TelemetryBatch)


@given(st.binary(max_size=512))
def test_decoding_arbitrary_bytes_raises_only_decode_error(payload: bytes) -> None:
    for kind in (TelemetryBatch, LockerEvent, Grant):
        with contextlib.suppress(DecodeError):
            decode(payload, kind)
    with contextlib.suppress(DecodeError):
        decode_any(payload)


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_decoding_arbitrary_json_raises_only_decode_error(doc: object) -> None:
    with contextlib.suppress(DecodeError):
        decode_any(json.dumps(doc).encode())


def test_codes_are_hashed_under_a_per_locker_key() -> None:
    master = b"m" * 32
    k1, k2 = derive_locker_key(master, "L1"), derive_locker_key(master, "L2")
    assert k1 != k2
    code = new_code()
    assert len(code) == 8 and code.isdigit()
    h = hash_code(k1, code)
    assert code not in h
    assert code_matches(k1, code, h)
    assert not code_matches(k2, code, h)
    assert not code_matches(k1, "00000000" if code != "00000000" else "11111111", h)


def test_a_grant_carries_only_a_hash() -> None:
    with pytest.raises(ValidationError):
        Grant(
            locker_id="L1",
            grant_id=uuid4(),
            compartment=1,
            code_hash="12345678",
            valid_from=NOW,
            valid_until=NOW,
        )
