from __future__ import annotations

import pytest

from tests.copying.clock import FixedClock


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()
