"""Root pytest hooks: every test module declares exactly one category (unit, integration, e2e)."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "trunkline.testing.server_fixtures",
    "trunkline.testing.telemetry_fixtures",
    "trunkline.testing.kube_fixtures",
]

CATEGORIES = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bad: list[str] = []
    for item in items:
        found = [name for name in CATEGORIES if item.get_closest_marker(name) is not None]
        if len(found) != 1:
            bad.append(f"{item.nodeid}: categories {found or 'none'}")
    if bad:
        listing = "\n  ".join(bad)
        raise pytest.UsageError(
            "each test module must declare exactly one category "
            f"(pytestmark = pytest.mark.unit|integration|e2e):\n  {listing}"
        )
