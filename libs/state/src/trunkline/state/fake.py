"""An in-memory call state store for unit tests of other components (same ABC, same rules)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from trunkline.state.base import DEFAULT_MAX_RETRIES, CallStateStoreBase, Updater
from trunkline.state.model import (
    CallExistsError,
    CallNotFoundError,
    CallState,
    initial_version,
    next_version,
    utc_now,
)
from trunkline.state.redis_store import state_key


class FakeCallStateStore(CallStateStoreBase):
    """Keeps JSON copies in a dict; TTL follows ``monotonic`` (inject a fake clock in tests)."""

    def __init__(
        self,
        ttl_seconds: int = 3600,
        key_prefix: str = "trunkline:call",
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.key_prefix = key_prefix
        self._clock = clock
        self._monotonic = monotonic
        self._items: dict[str, tuple[str, float]] = {}  # key -> (json, expires at)
        self.writes = 0

    def _key(self, tenant_id: str, call_id: str) -> str:
        return state_key(self.key_prefix, tenant_id, call_id)

    def _load(self, key: str) -> CallState | None:
        item = self._items.get(key)
        if item is None:
            return None
        raw, expires = item
        if self._monotonic() >= expires:
            del self._items[key]
            return None
        return CallState.model_validate_json(raw)

    def _store(self, key: str, state: CallState) -> None:
        self._items[key] = (state.model_dump_json(), self._monotonic() + self.ttl_seconds)
        self.writes += 1

    def ttl(self, tenant_id: str, call_id: str) -> float | None:
        """Seconds until the state expires, None when absent."""
        key = self._key(tenant_id, call_id)
        if self._load(key) is None:
            return None
        return self._items[key][1] - self._monotonic()

    async def create(self, state: CallState) -> CallState:
        key = self._key(state.tenant_id, state.call_id)
        if self._load(key) is not None:
            raise CallExistsError(f"call {state.call_id!r} of tenant {state.tenant_id!r} exists")
        stored = initial_version(state, self._clock())
        self._store(key, stored)
        return stored

    async def get(self, tenant_id: str, call_id: str) -> CallState | None:
        return self._load(self._key(tenant_id, call_id))

    async def update(
        self,
        tenant_id: str,
        call_id: str,
        fn: Updater,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> CallState:
        key = self._key(tenant_id, call_id)
        current = self._load(key)
        if current is None:
            raise CallNotFoundError(f"no state for call {call_id!r} of tenant {tenant_id!r}")
        new = next_version(current, fn(current), self._clock())
        self._store(key, new)
        return new

    async def delete(self, tenant_id: str, call_id: str) -> bool:
        key = self._key(tenant_id, call_id)
        present = self._load(key) is not None
        self._items.pop(key, None)
        return present
