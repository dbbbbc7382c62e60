"""Integration-test fixtures: real Postgres, moto server, the real Better-Auth server."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)
