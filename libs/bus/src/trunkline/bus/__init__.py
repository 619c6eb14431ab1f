"""NATS and JetStream wrapper with trace propagation.

``bus = await Bus.connect(url, name="gateway")``; ``await bus.publish(subject, msg)``;
``await bus.subscribe(subject, handler)``; JetStream streams and durable consumers are declared
in code (:mod:`trunkline.bus.streams`) and read with ``bus.durable_messages(spec)``. Code that
only needs the interface takes a :class:`BusBase` (``trunkline.testing.fakes.FakeBus`` in tests).
"""

from trunkline.bus.base import BusBase, ConsumerDeletedError, Handler, Subscription
from trunkline.bus.delivery import BadPayloadError, BusMessage, Delivery, decode
from trunkline.bus.nats_bus import Bus, NoResponderError
from trunkline.bus.specs import ConsumerSpec, Retention, Storage, StreamSpec
from trunkline.bus.subjects import subject_matches

__all__ = [
    "BadPayloadError",
    "Bus",
    "BusBase",
    "BusMessage",
    "ConsumerDeletedError",
    "ConsumerSpec",
    "Delivery",
    "Handler",
    "NoResponderError",
    "Retention",
    "Storage",
    "StreamSpec",
    "Subscription",
    "decode",
    "subject_matches",
]
