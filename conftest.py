"""Root pytest hooks: every test module declares exactly one category (unit, integration, e2e)."""

from __future__ import annotations

import os

import pytest

# CTranslate2 (Whisper) runs its int8 matrix products in oneDNN, whose kernels follow the CPU: on
# an AVX-512 machine tiny.en heard "Could Ava call me back" where every AVX2 machine heard "Could
# I have a call me back" (test_whisper_vocabulary). Tests pin oneDNN to AVX2, inherited by the
# services the e2e tests start, so a transcript is the same on every CPU the tests run on.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

pytest_plugins = [
    "trunkline.testing.server_fixtures",
    "trunkline.testing.telemetry_fixtures",
    "trunkline.testing.kube_fixtures",
    "trunkline.testing.hang_dump",
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
