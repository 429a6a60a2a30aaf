"""A fresh mock locker board per test, reset and closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from locker.hardware import MockLockerFactory


@pytest.fixture
def factory() -> Iterator[MockLockerFactory]:
    f = MockLockerFactory()
    yield f
    f.reset()
    f.close()
