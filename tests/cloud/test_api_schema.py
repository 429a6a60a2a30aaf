"""The API against its own OpenAPI document: whatever a client may send, never a 5xx, and every
response matches the schema it documents (schemathesis, on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dashboard.live import LiveHub
from cloud.models import Locker, PositionRow, Vehicle
from cloud.settings import Role
from tests.cloud.helpers import auth, hub_settings

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _seed(session_factory: sessionmaker[Session]) -> None:
    """A van with a track and an idle locker, so that lookups also find something."""
    import uuid

    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", last_seen=T0, online=True, version="1.0"))
        session.add(Locker(id="locker-1", compartments=4, online=True, version="1.0"))
        session.flush()
        message_id = uuid.uuid4()
        session.add_all(
            PositionRow(
                vehicle_id="van-1",
                t=T0 + timedelta(seconds=i),
                lat=52.0,
                lon=4.9,
                message_id=message_id,
            )
            for i in range(5)
        )


def test_the_api_keeps_its_openapi_promises(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    """Every operation, 40 generated requests each, as an ops caller (who may do anything)."""
    _seed(session_factory)
    live = LiveHub()
    live.close()  # the live stream answers its hello and ends, so each call returns
    app = create_app(
        settings=hub_settings(database_url=database_url),
        session_factory=session_factory,
        live=live,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def keeps_its_promises(case: Any) -> None:
            # A request valid per schema may still be refused on meaning ('since' after
            # 'until'): that 422 is documented, so only that check is left out.
            case.call_and_validate(
                headers=auth(Role.OPS), excluded_checks=[positive_data_acceptance]
            )

        keeps_its_promises()
