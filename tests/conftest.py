"""Fixtures shared by every test tier. Real peers (Mosquitto, PostgreSQL) live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.broker", "tests.fixtures.postgres"]
