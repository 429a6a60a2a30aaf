"""The fast telemetry path accepts exactly what the model accepts, and yields the same rows.

:mod:`cloud.telemetry_rows` restates :class:`protocol.messages.TelemetryBatch` as TypedDicts; if
the two schemas drift apart, these properties fail on the first payload that tells them apart.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest import classify
from cloud.services.ingest import Accepted, Rejected, TelemetryRows, _position_tuples
from cloud.telemetry_rows import _ISO_TIME, TelemetryDecoder
from protocol.messages import TelemetryBatch
from protocol.topics import Channel, vehicle_topic

TOPIC = vehicle_topic("van-1", Channel.TELEMETRY)
DECODER = TelemetryDecoder()

_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=9.5))]
) | st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m)))
# As Python writes them (+00:00) and as pydantic, hence the edge, does (Z).
_times = st.datetimes(timezones=_zones).map(lambda d: d.isoformat()) | st.datetimes(
    timezones=st.just(UTC)
).map(lambda d: d.isoformat().replace("+00:00", "Z"))


def _within(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False)


_REQUIRED_FIELDS = {"t": _times, "lat": _within(-90, 90), "lon": _within(-180, 180)}
_OPTIONAL_FIELDS = {
    "speed_mps": _within(0, 150) | st.none(),
    "heading_deg": _within(0, 359.99) | st.none(),
    "alt_m": st.floats(allow_nan=False, allow_infinity=False) | st.none(),
    "hdop": _within(0, 99) | st.none(),
    "sats": st.integers(min_value=0, max_value=255) | st.none(),
    "fix": st.sampled_from(["2d", "3d", None]),
}
_valid_point = st.fixed_dictionaries(_REQUIRED_FIELDS, optional=_OPTIONAL_FIELDS)
_full_point = st.fixed_dictionaries({**_REQUIRED_FIELDS, **_OPTIONAL_FIELDS})
_valid_batch = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "id": st.uuids().map(str),
        "vehicle_id": st.just("van-1"),
        "seq": st.integers(min_value=1, max_value=2**63 - 1),
        "points": st.lists(_valid_point, min_size=1, max_size=4),
    },
    optional={"sent_at": _times, "type": st.just("telemetry")},
)
_WRONG: list[Any] = [
    *(None, "", "x", "12", True, False, -1, 0, 1, 11.0, 1e308, -1e308, [], {}, "NaN"),
    *(float("inf"), float("nan"), -1e-9, 90.000001, -180.5, 150.01, 360, 256, 2**63, 2**64),
    *("2d", "4d", "telemetry", "status", "van-2", "van 1", "not-a-uuid", 2),
    *("2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "2026-01-01", 1_767_225_600, "1767225600"),
    *("2026-01-01T00:00:00Z", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", [{}], "points"),
    # Times of the shape the fast path parses itself but no such moment, or nearly that shape.
    *(
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "0000-01-01T00:00:00Z",
    ),
    *("2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00-99:00", "2026-01-01T00:00:60Z"),
    *("2026-01-01T00:00:00.1234567Z", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00z"),
    *("2026-01-01T00:00:00+0200", "2026-01-01T00:00Z", "2026-01-01T00:00:00.Z"),
    *("2026-01-01T00:00:00+00:60", "2026-01-01T00:00:00-23:99", "2026-01-01T00:00:00+23:59"),
]
_BATCH_KEYS = ["v", "id", "sent_at", "type", "vehicle_id", "seq", "points", "extra"]
_POINT_KEYS = ["t", "lat", "lon", "speed_mps", "heading_deg", "alt_m", "hdop", "sats", "fix", "x"]


def _with_fault(batch: dict[str, Any], fault: tuple[str, str, bool, Any] | None) -> dict[str, Any]:
    """``batch`` with one field set to a wrong value, or removed (``None``: unchanged)."""
    if fault is None:
        return batch
    where, key, remove, value = fault
    target = batch if where == "batch" else batch["points"][0]
    if remove:
        target.pop(key, None)
    else:
        target[key] = value
    return batch


# One fault at a time: a payload wrong in one place tells two schemas apart far better than one
# refused on its first field.
_faults = st.one_of(
    st.none(),
    st.tuples(
        st.just("batch"), st.sampled_from(_BATCH_KEYS), st.booleans(), st.sampled_from(_WRONG)
    ),
    st.tuples(
        st.just("point"), st.sampled_from(_POINT_KEYS), st.booleans(), st.sampled_from(_WRONG)
    ),
)
_batches = st.builds(_with_fault, _valid_batch, _faults)


def _iso_shaped(t: object) -> bool:
    """Whether the fast path parses time ``t`` itself (else the model does: 1767225600, 'z')."""
    return isinstance(t, str) and re.match(_ISO_TIME, t) is not None


def _comparable(rows: list[Any]) -> list[tuple[str, ...]]:
    """Rows with every value as its repr (NaN is not equal to itself, its repr is), times as
    ISO 8601 with their offset: the fast path's tzinfo is the standard library's, the model's
    pydantic's, for the same instant and offset."""
    return [
        tuple(v.isoformat() if isinstance(v, datetime) else repr(v) for v in row) for row in rows
    ]


@settings(max_examples=400, deadline=None)
@given(batch=_batches)
def test_the_fast_path_classifies_as_the_model_does(batch: dict[str, Any]) -> None:
    payload = json.dumps(batch).encode()
    by_model = classify(TOPIC, payload)
    fast = classify(TOPIC, payload, telemetry=DECODER)
    assert type(fast) is type(by_model)
    if isinstance(by_model, Rejected):
        assert isinstance(fast, Rejected)
        assert (fast.reason, fast.detail, fast.payload) == (
            by_model.reason,
            by_model.detail,
            by_model.payload,
        )
        return
    assert isinstance(fast, Accepted)
    assert isinstance(by_model.message, TelemetryBatch)
    if isinstance(fast.message, TelemetryRows):
        expected = by_model.message
        assert (fast.message.id, fast.message.vehicle_id, fast.message.seq) == (
            expected.id,
            expected.vehicle_id,
            expected.seq,
        )
        assert _comparable(fast.message.positions) == _comparable(_position_tuples([expected]))
    else:  # the model's own result, for a form the fast schema leaves out
        assert "id" not in batch or any(not _iso_shaped(p["t"]) for p in batch["points"])


@settings(max_examples=200, deadline=None)
@given(batch=_batches)
def test_what_the_fast_schema_accepts_the_model_accepts_with_the_same_values(
    batch: dict[str, Any],
) -> None:
    payload = json.dumps(batch).encode()
    rows = DECODER.decode(payload)
    if rows is None:
        return
    model = TelemetryBatch.model_validate_json(payload)
    assert rows.id == model.id
    assert _comparable(rows.positions) == _comparable(_position_tuples([model]))


def test_a_typical_batch_takes_the_fast_path() -> None:
    """The properties above hold trivially if the fast path never accepts: check it does."""
    message_id = "6f0c2a34-2c55-4c1e-9c31-2f9d0b0a1e11"
    payload = json.dumps(
        {
            "v": 1,
            "id": message_id,
            "sent_at": "2026-01-01T00:00:05Z",
            "type": "telemetry",
            "vehicle_id": "van-1",
            "seq": 3,
            "points": [
                {"t": "2026-01-01T00:00:00Z", "lat": 52.37, "lon": 4.89, "fix": "3d"},
                {"t": "2026-01-01T00:00:01Z", "lat": 52.38, "lon": 4.9, "sats": 9},
            ],
        }
    ).encode()
    item = classify(TOPIC, payload, telemetry=DECODER)
    assert isinstance(item, Accepted)
    assert isinstance(item.message, TelemetryRows)
    assert item.message.id == UUID(message_id)
    assert [(r[9], r[1], r[7], r[8]) for r in item.message.positions] == [
        ("van-1", 52.37, None, "3d"),
        ("van-1", 52.38, 9, None),
    ]


@settings(max_examples=50, deadline=None)
@given(batch=_valid_batch, full=st.lists(_full_point, min_size=1, max_size=4))
def test_points_with_every_field_and_points_without_yield_the_models_rows(
    batch: dict[str, Any], full: list[dict[str, Any]]
) -> None:
    """Points carrying every field take one route to a row, points leaving one out another (the
    edge omits None): both must give the model's rows, also mixed in one batch."""
    for points in (full, [*full, *batch["points"]]):
        payload = json.dumps({**batch, "points": points}).encode()
        rows = DECODER.decode(payload)
        assert rows is not None
        model = TelemetryBatch.model_validate_json(payload)
        assert _comparable(rows.positions) == _comparable(_position_tuples([model]))


def test_a_batch_the_fast_path_refuses_is_dead_lettered_with_the_models_reason() -> None:
    payload = json.dumps(
        {
            "v": 1,
            "id": "6f0c2a34-2c55-4c1e-9c31-2f9d0b0a1e11",
            "vehicle_id": "van-1",
            "seq": 1,
            "points": [{"t": "2026-01-01T00:00:00Z", "lat": 91, "lon": 4.89}],
        }
    ).encode()
    item = classify(TOPIC, payload, telemetry=DECODER)
    assert isinstance(item, Rejected)
    assert item.reason == "invalid TelemetryBatch"
    assert item.detail.startswith("points.0.lat: Input should be less than or equal to 90")


def test_every_offset_the_fast_path_parses_means_what_the_model_reads() -> None:
    """``datetime.fromisoformat`` and pydantic differ at the edges (``+00:60`` is an hour to the
    one, an error to the other): every offset of the ISO shape, valid or not, either goes the
    model's way or gives the model's instant and offset."""
    fast_ones = 0
    for sign in "+-":
        for hours in range(100):
            for minutes in range(100):
                t = f"2026-03-02T07:00:00{sign}{hours:02d}:{minutes:02d}"
                payload = json.dumps(
                    {"v": 1, "id": str(UUID(int=1)), "vehicle_id": "van-1", "seq": 1,
                     "points": [{"t": t, "lat": 1, "lon": 2}]}
                ).encode()  # fmt: skip
                rows = DECODER.decode(payload)
                if rows is None:
                    continue
                fast_ones += 1
                model = TelemetryBatch.model_validate_json(payload).points[0].t
                ours = rows.positions[0][0]
                assert (ours, ours.utcoffset()) == (model, model.utcoffset()), t
    assert fast_ones == 2 * 24 * 60
