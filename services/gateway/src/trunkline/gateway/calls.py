"""The live calls of this gateway process, by (tenant, call id): what the admin API reads."""

from __future__ import annotations

from collections.abc import Iterator

from trunkline.gateway.session import CallSession


class LiveCalls:
    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], CallSession] = {}

    def add(self, session: CallSession) -> None:
        self._calls[(session.call.tenant, session.call.call_id)] = session

    def remove(self, session: CallSession) -> None:
        key = (session.call.tenant, session.call.call_id)
        if self._calls.get(key) is session:
            del self._calls[key]

    def get(self, tenant: str, call_id: str) -> CallSession | None:
        return self._calls.get((tenant, call_id))

    def by_ticket(self, tenant: str, ticket_id: str) -> CallSession | None:
        """The tenant's call whose handoff waits on (or is talking on) ``ticket_id``."""
        for (t, _), session in self._calls.items():
            handoffs = session.handoffs
            handoff = handoffs.handoff if handoffs is not None else None
            if t == tenant and handoff is not None and handoff.ticket_id == ticket_id:
                return session
        return None

    def of_tenant(self, tenant: str) -> Iterator[CallSession]:
        """The tenant's calls, oldest first."""
        found = [s for (t, _), s in self._calls.items() if t == tenant]
        return iter(sorted(found, key=lambda s: (s.started_at, s.call.call_id)))

    def __len__(self) -> int:
        return len(self._calls)
