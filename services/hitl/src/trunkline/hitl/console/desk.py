"""The console's side of the ticket queues: the hitl :class:`~trunkline.hitl.queue.TicketQueue`,
called in-process with the operator's tenant from the session.

The queue refuses a ticket of another tenant (``WrongTenant``), an unknown one (``NotFound``), a
closed one (``Closed``), one another operator holds (``Held``) and a malformed request
(``InvalidRequest``); the console shows those messages. Accepting an escalation also signs the
operator's short-lived join token (:mod:`trunkline.telephony.join`) for the call's audio.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from trunkline.hitl.core.tickets import Kind, Ticket
from trunkline.hitl.queue import TicketQueue
from trunkline.telephony.join import JoinGrant, sign_join


@dataclass(frozen=True)
class Join:
    """An accepted escalation and the token the operator's browser leg presents."""

    ticket: Ticket
    join_token: str = ""


class QueueUnavailableError(Exception):
    """The ticket queue is not connected yet (the hitl process is still starting)."""


class Desk:
    """``queue``: the queue, or a function giving it once it is connected (None before)."""

    def __init__(
        self,
        queue: TicketQueue | Callable[[], TicketQueue | None],
        join_secret: bytes | None = None,
        join_ttl_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._join_secret = join_secret
        self._join_ttl_s = join_ttl_s
        self._clock = clock

    @property
    def queue(self) -> TicketQueue:
        queue = self._queue if isinstance(self._queue, TicketQueue) else self._queue()
        if queue is None:
            raise QueueUnavailableError("the ticket queues are not connected yet: try again soon")
        return queue

    async def open_tickets(self, tenant: str) -> list[Ticket]:
        """The tenant's open tickets (queued, claimed, taken over), oldest first."""
        return await self.queue.list(tenant)

    async def ticket(self, tenant: str, ticket_id: str) -> Ticket:
        return await self.queue.get(tenant, ticket_id)

    async def claim(self, tenant: str, ticket_id: str, operator_id: str) -> Ticket:
        return await self.queue.claim(tenant, ticket_id, operator_id)

    async def take_over(self, tenant: str, ticket_id: str, operator_id: str) -> Join:
        """Accept the escalation (the operator joins the call) and sign their join token."""
        ticket = await self.queue.accept(tenant, ticket_id, operator_id)
        return Join(ticket, self.join_token(tenant, ticket_id, operator_id))

    def join_token(self, tenant: str, ticket_id: str, operator_id: str) -> str:
        if self._join_secret is None:
            return ""
        expires = int(self._clock() + self._join_ttl_s)
        return sign_join(self._join_secret, JoinGrant(tenant, ticket_id, operator_id, expires))

    async def decide(
        self,
        tenant: str,
        ticket_id: str,
        operator_id: str,
        outcome: str,
        *,
        note: str = "",
        arguments_json: str = "",
    ) -> Ticket:
        return await self.queue.decide(
            tenant,
            ticket_id,
            operator_id,
            outcome=outcome,
            note=note,
            arguments_json=arguments_json,
        )

    async def hand_back(
        self,
        tenant: str,
        ticket_id: str,
        operator_id: str,
        *,
        note: str = "",
        end_call: bool = False,
    ) -> Ticket:
        return await self.queue.hand_back(
            tenant, ticket_id, operator_id, note=note, end_call=end_call
        )

    @contextlib.asynccontextmanager
    async def changes(self, tenant: str) -> AsyncIterator[AsyncIterator[Kind]]:
        """The kind of each change of the tenant's tickets after entering (subscribed then:
        a list read inside the ``async with`` misses no change)."""
        async with self.queue.watch(tenant) as tickets:

            async def kinds() -> AsyncIterator[Kind]:
                async for ticket in tickets:
                    yield ticket.kind

            yield kinds()
