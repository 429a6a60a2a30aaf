"""Whatever bytes arrive, the ingest path classifies them and stores them without raising."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cloud.db import make_engine, make_session_factory, migrate
from cloud.ingest import EXPECTED, classify
from cloud.models import DeadLetter
from cloud.services.ingest import Accepted, Rejected, store_batch
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, DeviceKind, topic

INGEST_TOPICS = [topic(kind, "dev-1", channel) for kind, channel in EXPECTED]
ALL_TOPICS = [
    *INGEST_TOPICS,
    "lockers/dev-1/grants",
    "fleet/dev-1/route",
    "fleet/dev 1/telemetry",
    "elsewhere/dev-1/telemetry",
    "fleet",
]


@given(topic_name=st.sampled_from(ALL_TOPICS), payload=st.binary(max_size=512))
def test_random_bytes_are_rejected_with_a_reason(topic_name: str, payload: bytes) -> None:
    result = classify(topic_name, payload)
    assert isinstance(result, Rejected)
    assert result.reason
    assert result.payload == payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    topic_name=st.sampled_from(INGEST_TOPICS),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "v",
                "id",
                "type",
                "vehicle_id",
                "locker_id",
                "device_id",
                "seq",
                "points",
                "kind",
                "at",
                "online",
            ]
        ),
        json_values,
    ),
)
def test_json_objects_of_any_shape_are_classified_without_raising(
    topic_name: str, fields: dict[str, object]
) -> None:
    import json

    result = classify(topic_name, json.dumps(fields).encode())
    assert isinstance(result, Accepted | Rejected)


@given(
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
    seq=st.integers(min_value=1, max_value=2**62),
)
def test_a_valid_batch_on_its_own_topic_is_accepted(lat: float, lon: float, seq: int) -> None:
    batch = TelemetryBatch(
        vehicle_id="dev-1",
        seq=seq,
        points=(Position(t=datetime(2026, 1, 1, tzinfo=UTC), lat=lat, lon=lon),),
    )
    result = classify(topic(DeviceKind.VEHICLE, "dev-1", Channel.TELEMETRY), encode(batch))
    assert isinstance(result, Accepted)
    assert result.message == batch


def test_random_bytes_are_stored_as_dead_letters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    stored: list[bytes] = []

    @settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        items=st.lists(
            st.tuples(st.sampled_from(ALL_TOPICS), st.binary(max_size=256)),
            min_size=1,
            max_size=5,
        )
    )
    def write(items: list[tuple[str, bytes]]) -> None:
        batch = [classify(t, p) for t, p in items]
        with factory() as session, session.begin():
            result = store_batch(session, batch, received_at=datetime.now(UTC))
        assert result.dead_letters == len(items)
        stored.extend(p for _, p in items)

    try:
        write()
        with factory() as session:
            assert list(session.scalars(select(DeadLetter.payload).order_by(DeadLetter.id))) == (
                stored
            )
    finally:
        engine.dispose()
