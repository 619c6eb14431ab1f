"""Shared set-up of the integration tests: the Helm chart loaded in-process (Helm v4 as a
library, ``helm-python-sdk``), once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import helm_python
import pytest

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "trunkline"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    """deploy/helm/trunkline, loaded."""
    with helm_python.Chart.load(str(CHART)) as loaded:
        yield loaded
