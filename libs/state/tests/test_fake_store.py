from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trunkline.state import (
    CallExistsError,
    CallNotFoundError,
    CallState,
    CallStateStoreBase,
    Turn,
)
from trunkline.state.fake import FakeCallStateStore

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)


def new_state(call_id: str = "CA1", tenant_id: str = "acme") -> CallState:
    return CallState(call_id=call_id, tenant_id=tenant_id, agent_name="support", agent_version="v1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> FakeCallStateStore:
    return FakeCallStateStore(ttl_seconds=60, clock=clock.now, monotonic=clock.monotonic)


def test_fake_implements_the_abc(store: FakeCallStateStore) -> None:
    assert isinstance(store, CallStateStoreBase)


async def test_create_get_update_versions(store: FakeCallStateStore, clock: Clock) -> None:
    created = await store.create(new_state().model_copy(update={"version": 7}))
    assert created.version == 1
    assert created.created_at == created.updated_at == clock.now()
    with pytest.raises(CallExistsError):
        await store.create(new_state())
    clock.t += 5
    updated = await store.update(
        "acme", "CA1", lambda s: s.model_copy(update={"node": "thinking", "data": {"n": 1}})
    )
    assert (updated.version, updated.node, updated.data) == (2, "thinking", {"n": 1})
    assert updated.created_at == created.created_at
    assert updated.updated_at == clock.now()
    assert await store.get("acme", "CA1") == updated


async def test_append_turn_and_truncated_history(store: FakeCallStateStore) -> None:
    await store.create(new_state())
    await store.append_turn("acme", "CA1", Turn(role="user", text="hi"))
    state = await store.append_turn(
        "acme", "CA1", Turn(role="assistant", text="Hello, how", truncated=True)
    )
    assert [(t.role, t.text, t.truncated) for t in state.history] == [
        ("user", "hi", False),
        ("assistant", "Hello, how", True),
    ]
    assert state.version == 3


async def test_ttl_expires_and_is_refreshed_by_writes(
    store: FakeCallStateStore, clock: Clock
) -> None:
    await store.create(new_state())
    clock.t += 50
    await store.update("acme", "CA1", lambda s: s.model_copy(update={"node": "speaking"}))
    assert store.ttl("acme", "CA1") == 60
    clock.t += 59
    assert await store.get("acme", "CA1") is not None
    clock.t += 1
    assert await store.get("acme", "CA1") is None
    with pytest.raises(CallNotFoundError):
        await store.update("acme", "CA1", lambda s: s)


async def test_tenants_never_read_across(store: FakeCallStateStore) -> None:
    await store.create(new_state(tenant_id="acme"))
    assert await store.get("globex", "CA1") is None
    assert not await store.delete("globex", "CA1")
    assert await store.delete("acme", "CA1")
    assert await store.get("acme", "CA1") is None


async def test_update_may_not_change_identity(store: FakeCallStateStore) -> None:
    await store.create(new_state())
    with pytest.raises(ValueError, match="tenant_id or call_id"):
        await store.update("acme", "CA1", lambda s: s.model_copy(update={"tenant_id": "globex"}))


def test_tenant_ids_cannot_contain_the_separator() -> None:
    with pytest.raises(ValueError, match="must not contain ':'"):
        new_state(tenant_id="a:b")


def test_state_is_frozen_and_json_round_trips() -> None:
    state = new_state().with_turn(Turn(role="tool", text="{}", tool_name="lookup", data={"x": [1]}))
    with pytest.raises(ValueError, match="frozen"):
        state.node = "x"  # type: ignore[misc]
    assert CallState.model_validate_json(state.model_dump_json()) == state
