from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from redis.asyncio import Redis

from trunkline.state import (
    CallExistsError,
    CallNotFoundError,
    CallState,
    CallStateStore,
    ConflictError,
    Turn,
)

pytestmark = pytest.mark.integration

TTL = 300


def new_state(call_id: str = "CA1", tenant_id: str = "acme") -> CallState:
    return CallState(call_id=call_id, tenant_id=tenant_id, agent_name="support", agent_version="v1")


def bump(state: CallState) -> CallState:
    n = state.data.get("n", 0)
    assert isinstance(n, int)
    return state.model_copy(update={"data": {**state.data, "n": n + 1}})


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis[bytes]]:
    async with Redis.from_url(redis_url) as r:
        yield r


@pytest.fixture
def store(client: Redis[bytes]) -> CallStateStore:
    return CallStateStore(client, ttl_seconds=TTL, key_prefix="test:call")


async def test_create_sets_ttl_and_every_write_refreshes_it(
    store: CallStateStore, client: Redis[bytes]
) -> None:
    await store.create(new_state())
    key = "test:call:acme:CA1"
    assert TTL - 2 <= await client.ttl(key) <= TTL
    await client.expire(key, 5)
    await store.update("acme", "CA1", bump)
    assert TTL - 2 <= await client.ttl(key) <= TTL
    await client.expire(key, 5)
    await store.append_turn("acme", "CA1", Turn(role="user", text="hello"))
    assert TTL - 2 <= await client.ttl(key) <= TTL


async def test_create_fails_if_the_call_exists(store: CallStateStore) -> None:
    await store.create(new_state())
    with pytest.raises(CallExistsError):
        await store.create(new_state())


async def test_twenty_concurrent_updates_all_land(store: CallStateStore) -> None:
    await store.create(new_state())
    calls = 0

    def counting_bump(state: CallState) -> CallState:
        nonlocal calls
        calls += 1
        return bump(state)

    results = await asyncio.gather(*(store.update("acme", "CA1", counting_bump) for _ in range(20)))
    final = await store.get("acme", "CA1")
    assert final is not None
    assert final.data["n"] == 20
    assert final.version == 21
    assert sorted(r.version for r in results) == list(range(2, 22))
    assert calls > 20  # writers really raced and the losers retried


async def test_conflict_error_after_retries(store: CallStateStore, redis_url: str) -> None:
    await store.create(new_state())
    other = redis.Redis.from_url(redis_url)
    attempts = 0

    def interfering(state: CallState) -> CallState:
        nonlocal attempts
        attempts += 1
        key = "test:call:acme:CA1"
        other.set(key, other.get(key) or b"")  # another writer rewrites the key meanwhile
        return bump(state)

    try:
        with pytest.raises(ConflictError, match="gave up after 2 retries"):
            await store.update("acme", "CA1", interfering, max_retries=2)
    finally:
        other.close()
    assert attempts == 3


async def test_update_of_a_missing_call_is_not_found(store: CallStateStore) -> None:
    with pytest.raises(CallNotFoundError):
        await store.update("acme", "nope", bump)


async def test_state_survives_a_service_restart_with_a_new_client(
    store: CallStateStore, client: Redis[bytes], redis_url: str
) -> None:
    await store.create(new_state())
    written = await store.append_turn(
        "acme", "CA1", Turn(role="assistant", text="Hi", truncated=True)
    )
    await client.connection_pool.disconnect()  # the old process and its connections are gone

    async with Redis.from_url(redis_url, decode_responses=True) as fresh:
        restarted = CallStateStore(fresh, ttl_seconds=TTL, key_prefix="test:call")
        assert await restarted.get("acme", "CA1") == written
        after = await restarted.update("acme", "CA1", bump)
        assert after.version == written.version + 1


async def test_tenant_scoped_keys_never_read_across(store: CallStateStore) -> None:
    await store.create(new_state(tenant_id="acme"))
    assert await store.get("globex", "CA1") is None
    with pytest.raises(CallNotFoundError):
        await store.update("globex", "CA1", bump)
    assert not await store.delete("globex", "CA1")
    assert await store.delete("acme", "CA1")
    assert await store.get("acme", "CA1") is None
