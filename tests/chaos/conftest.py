"""The chaos tests also run alone, without xdist (``pytest -p no:xdist tests/chaos``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # xdist registers this marker; --strict-markers would refuse it when xdist is off.
    config.addinivalue_line("markers", "xdist_group(name): run with the group's other tests")
