"""Per-call state in Redis with TTL and optimistic concurrency.

``CallStateStore(redis, ttl_seconds)`` (Redis) and ``trunkline.state.fake.FakeCallStateStore``
(in memory) implement ``CallStateStoreBase``; keys are ``{prefix}:{tenant}:{call_id}``.
"""

from trunkline.state.base import DEFAULT_MAX_RETRIES, CallStateStoreBase, Updater
from trunkline.state.model import (
    CallExistsError,
    CallNotFoundError,
    CallState,
    ConflictError,
    Role,
    StateError,
    Turn,
)
from trunkline.state.redis_store import CallStateStore, state_key

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "CallExistsError",
    "CallNotFoundError",
    "CallState",
    "CallStateStore",
    "CallStateStoreBase",
    "ConflictError",
    "Role",
    "StateError",
    "Turn",
    "Updater",
    "state_key",
]
