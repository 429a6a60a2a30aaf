"""Fixtures shared by every test tier. Real peers (Mosquitto, PostgreSQL) live in tests/fixtures/."""

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.fixtures.broker", "tests.fixtures.postgres"]

# This 2-core machine runs brokers, databases and agents beside the tests: timing-based checks
# (per-example deadlines, "data generation too slow") would fail on load, not on bugs.
settings.register_profile("lastmile", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lastmile")
