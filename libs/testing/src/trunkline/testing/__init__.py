"""Fakes, stage harness, fake clock, OTLP receiver and real NATS/Redis fixtures.

- :class:`~trunkline.testing.clock.FakeClock` — ``now()``, ``advance()``, ``await sleep()``
- :func:`~trunkline.testing.stage.run_stage` — drive an async-iterator stage with inputs
- :class:`~trunkline.testing.fakes.FakeBus` — in-memory :class:`trunkline.bus.BusBase`
- pytest plugins (registered by the root conftest): ``server_fixtures`` (``nats_server``,
  ``redis_server``) and ``telemetry_fixtures`` (``otlp_sink``, ``span_recorder``)
"""

from trunkline.testing.clock import FakeClock
from trunkline.testing.fakes import FakeBus, Published
from trunkline.testing.stage import feed, run_stage

__all__ = ["FakeBus", "FakeClock", "Published", "feed", "run_stage"]
