"""The retrieval part of an agent spec, as this service reads it.

The agent spec itself is owned by the LLM service (``trunkline.llm.agent_spec``); services do not
import each other, so the context service defines the fields it needs here, with the same names
where they overlap (``top_k``, ``rank_mode``, ``token_budget``, ``data_sources``) plus the data
source descriptions and the set operations. It is sent in the Resolve request as JSON.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trunkline.context.core.setalgebra import SetOp, SetOpName


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RankMode(StrEnum):
    CROSS_ENCODER = "cross_encoder"  # the configured scoring endpoint, embedded if none
    EMBEDDED = "embedded"
    NONE = "none"


class DataSourceSpec(_Strict):
    """A live HTTP JSON API (CRM, billing) whose records join the retrieved set by entity.

    ``url`` may contain ``{name}`` placeholders filled from the call state (e.g.
    ``https://crm.example/customers/{customer_id}/products``); the response is a JSON list of
    objects, or an object holding the list under ``records_path`` (dot separated).
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    url: str
    key_field: str = Field(min_length=1)
    text_fields: tuple[str, ...] = ()
    records_path: str = ""
    timeout_s: float = Field(default=0.3, gt=0, le=10)
    max_records: int = Field(default=20, ge=1, le=500)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("data source url must be http(s)://")
        return value


class SetOperation(_Strict):
    op: SetOpName
    source: str


class RetrievalSpec(_Strict):
    top_k: int = Field(default=4, ge=1, le=50)
    candidates: int = Field(default=20, ge=1, le=200, description="search hits before ranking")
    rank_mode: RankMode = RankMode.EMBEDDED
    token_budget: int = Field(default=400, gt=0, le=32000)
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)
    min_confidence: float = Field(default=0.25, ge=0, le=1, description="below: out of domain")
    data_sources: tuple[DataSourceSpec, ...] = ()
    set_operations: tuple[SetOperation, ...] = ()

    @field_validator("set_operations")
    @classmethod
    def _known_sources(
        cls, value: tuple[SetOperation, ...], info: object
    ) -> tuple[SetOperation, ...]:
        data = getattr(info, "data", {}) or {}
        names = {d.name for d in data.get("data_sources", ())}
        unknown = [op.source for op in value if op.source not in names]
        if unknown:
            raise ValueError(f"set operations name unknown data sources: {unknown}")
        return value

    def set_ops(self) -> tuple[SetOp, ...]:
        return tuple(SetOp(op=o.op, source=o.source) for o in self.set_operations)
