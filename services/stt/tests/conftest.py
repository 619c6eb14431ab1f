"""Fixtures for the STT tests: in-memory OpenTelemetry so spans and metrics can be asserted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trunkline.stt.backends import SttTelemetry
from trunkline.testing.otel import InMemoryOtel


class Recorded(InMemoryOtel):
    def __init__(self) -> None:
        super().__init__()
        self.telemetry = SttTelemetry(self.tracer(), self.meter())


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    rec = Recorded()
    yield rec
    rec.shutdown()
