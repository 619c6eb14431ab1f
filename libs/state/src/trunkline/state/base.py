"""The call state store interface shared by the Redis store and the in-memory fake."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from trunkline.state.model import CallState, Turn

DEFAULT_MAX_RETRIES = 50

Updater = Callable[[CallState], CallState]


class CallStateStoreBase(ABC):
    """Per-call state keyed by (tenant, call). Every write refreshes the TTL.

    A call id is only ever visible under its own tenant.
    """

    @abstractmethod
    async def create(self, state: CallState) -> CallState:
        """Store a new call as version 1; ``CallExistsError`` if one is stored already."""

    @abstractmethod
    async def get(self, tenant_id: str, call_id: str) -> CallState | None:
        """The stored state, or None (never stored, deleted or expired)."""

    @abstractmethod
    async def update(
        self,
        tenant_id: str,
        call_id: str,
        fn: Updater,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> CallState:
        """Apply ``fn`` to the current state and store the result as the next version.

        ``fn`` may run more than once (it is retried when another writer won the race), so it must
        be pure. Raises ``CallNotFoundError`` when nothing is stored and ``ConflictError`` when
        ``max_retries`` retries all lost races.
        """

    @abstractmethod
    async def delete(self, tenant_id: str, call_id: str) -> bool:
        """Remove the state; True when something was removed."""

    async def append_turn(
        self,
        tenant_id: str,
        call_id: str,
        turn: Turn,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> CallState:
        """Append one turn to the history (an ``update``)."""
        return await self.update(tenant_id, call_id, lambda s: s.with_turn(turn), max_retries)
