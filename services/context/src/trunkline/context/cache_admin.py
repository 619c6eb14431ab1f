"""What the semantic cache holds, per tenant, agent and role: list and delete.

Shared by the ``ListCacheEntries``/``DeleteCacheEntries`` RPCs (through the resolver) and
``trunkline cache --uri`` (straight on a Milvus file or server). An unknown tenant is an error
that names it, never an empty answer.
"""

from __future__ import annotations

from trunkline.context.backends.store import AnswerCache, ChunkStore
from trunkline.context.core.filters import check_ident
from trunkline.context.core.types import CacheEntry, EntrySelector
from trunkline.context.errors import InvalidRequestError, UnknownTenantError


async def _known(store: ChunkStore, tenant: str) -> None:
    try:
        check_ident("tenant", tenant)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    if await store.tenant(tenant) is None:
        raise UnknownTenantError(tenant)


async def cache_entries(
    store: ChunkStore, cache: AnswerCache, tenant: str, selector: EntrySelector
) -> list[CacheEntry]:
    """``tenant``'s stored answers that ``selector`` picks (expired ones too, until they are
    overwritten or purged), by agent, role and newest first."""
    await _known(store, tenant)
    return await cache.entries(tenant, selector)


async def delete_cache_entries(
    store: ChunkStore, cache: AnswerCache, tenant: str, selector: EntrySelector
) -> int:
    """Delete ``tenant``'s stored answers that ``selector`` picks; how many were deleted."""
    await _known(store, tenant)
    found = await cache.entries(tenant, selector)
    return await cache.delete(tenant, [e.entry_id for e in found])
