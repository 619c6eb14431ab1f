"""JetStream streams and durable consumers, declared in code as frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Retention(StrEnum):
    LIMITS = "limits"  # keep until max_age/limits; any number of consumers
    INTEREST = "interest"  # keep while some consumer still has to ack
    WORK_QUEUE = "workqueue"  # each message goes to one consumer, deleted on ack


class Storage(StrEnum):
    FILE = "file"
    MEMORY = "memory"


@dataclass(frozen=True)
class StreamSpec:
    """A stream: its name, the subjects it captures and how long it keeps them."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention = Retention.LIMITS
    max_age: timedelta = timedelta(days=7)
    storage: Storage = Storage.FILE
    duplicate_window: timedelta = timedelta(minutes=2)
    description: str = ""


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer of ``stream`` that sees ``filter_subject``.

    A message not acked within ``ack_wait`` is delivered again, at most ``max_deliver`` times.
    """

    stream: str
    durable: str
    filter_subject: str | None = None
    ack_wait: timedelta = timedelta(seconds=30)
    max_deliver: int = 5
    description: str = ""
