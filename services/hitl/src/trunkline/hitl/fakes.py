"""In-memory stand-ins implementing the real ABCs, for unit tests without NATS."""

from __future__ import annotations

from trunkline.hitl.core.tickets import Ticket
from trunkline.hitl.store import StaleRevision, Stored, TicketStore, key_of


class MemoryTicketStore(TicketStore):
    """Tickets in a dict, with the same compare-and-set and change feed as the JetStream one."""

    def __init__(self) -> None:
        super().__init__()
        self._tickets: dict[str, Stored] = {}
        self._revision = 0

    async def open(self) -> None:
        return None

    def _put(self, ticket: Ticket) -> Stored:
        self._revision += 1
        stored = Stored(ticket, self._revision)
        self._tickets[stored.key] = stored
        self._notify(stored)
        return stored

    async def create(self, ticket: Ticket) -> Stored:
        if key_of(ticket.tenant_id, ticket.ticket_id) in self._tickets:
            raise StaleRevision(f"ticket {ticket.ticket_id} exists")
        return self._put(ticket)

    async def get(self, tenant_id: str, ticket_id: str) -> Stored | None:
        return self._tickets.get(key_of(tenant_id, ticket_id))

    async def update(self, ticket: Ticket, revision: int) -> Stored:
        current = self._tickets.get(key_of(ticket.tenant_id, ticket.ticket_id))
        if current is None or current.revision != revision:
            raise StaleRevision(f"ticket {ticket.ticket_id} changed since revision {revision}")
        return self._put(ticket)

    def snapshot(self) -> list[Stored]:
        return list(self._tickets.values())

    async def close(self) -> None:
        return None
