"""The per-call state document and the pure rules for writing a new version of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

Role = Literal["system", "user", "assistant", "tool"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Turn(BaseModel):
    """One entry of the conversation history.

    ``truncated`` marks an assistant turn cut by barge-in: ``text`` is only what was heard.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    text: str
    truncated: bool = False
    agent_version: str | None = None
    tool_name: str | None = None
    at: datetime = Field(default_factory=utc_now)
    data: dict[str, JsonValue] = Field(default_factory=dict)


class CallState(BaseModel):
    """Everything a gateway needs to carry a call on after a restart. Stored as one JSON value.

    ``version`` starts at 1 and is bumped by the store on every successful write.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: str = Field(min_length=1, max_length=256)
    tenant_id: str = Field(min_length=1, max_length=128)
    agent_name: str
    agent_version: str
    node: str = "listening"
    history: tuple[Turn, ...] = ()
    data: dict[str, JsonValue] = Field(default_factory=dict)
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)

    @field_validator("tenant_id")
    @classmethod
    def _tenant_has_no_separator(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("tenant_id must not contain ':' (it separates the key parts)")
        return value

    def with_turn(self, turn: Turn) -> CallState:
        """A copy with ``turn`` appended to the history."""
        return self.model_copy(update={"history": (*self.history, turn)})


class StateError(Exception):
    """Base of the call state errors."""


class CallExistsError(StateError):
    """``create`` found a state already stored for this tenant and call."""


class CallNotFoundError(StateError):
    """No state stored (or it expired) for this tenant and call."""


class ConflictError(StateError):
    """Concurrent writers kept changing the state; the update gave up after its retries."""


def next_version(current: CallState, proposed: CallState, now: datetime) -> CallState:
    """Validate what an update function returned and stamp it as the next version."""
    if not isinstance(proposed, CallState):
        raise TypeError(f"update function must return a CallState, got {type(proposed).__name__}")
    if (proposed.tenant_id, proposed.call_id) != (current.tenant_id, current.call_id):
        raise ValueError("an update must not change tenant_id or call_id")
    # re-validate: model_copy(update=...) skips validation
    return CallState.model_validate(
        proposed.model_dump()
        | {"version": current.version + 1, "created_at": current.created_at, "updated_at": now}
    )


def initial_version(state: CallState, now: datetime) -> CallState:
    """The state as first stored: version 1, created and updated now."""
    return CallState.model_validate(
        state.model_dump() | {"version": 1, "created_at": now, "updated_at": now}
    )
