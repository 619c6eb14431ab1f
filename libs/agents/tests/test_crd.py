"""The VoiceAgent CRD and the AgentSpec agree: same fields, same constraints, samples validate."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from trunkline.agents import AgentSpec, load_agent_spec
from trunkline.agents.crd import voiceagent_crd
from trunkline.agents.openapi import SchemaError, openapi_schema, property_paths

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CHART_CRD = ROOT / "deploy" / "helm" / "trunkline" / "crds" / "voiceagents.trunkline.dev.yaml"


def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]  # type: ignore[no-any-return]


def model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field path of a pydantic model, walked from the model classes themselves."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        paths.add(path)
        kind: Any = info.annotation
        if get_origin(kind) in (Union, UnionType):  # X | None
            kind = next(a for a in get_args(kind) if a is not type(None))
        if get_origin(kind) is tuple:  # tuple[X, ...]
            kind, path = get_args(kind)[0], f"{path}[]"
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths |= model_paths(kind, path)
    return paths


def as_jsonschema(node: Any) -> Any:
    """OpenAPI ``nullable`` -> JSON Schema ``type: [t, null]`` (draft 4 keeps the rest)."""
    if isinstance(node, dict):
        out = {k: as_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        if out.pop("nullable", False):
            out["type"] = [out["type"], "null"]
        if node.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", True)
        elif node.get("type") == "object" and "properties" in node:
            out["additionalProperties"] = False  # what strict field validation enforces
        return out
    if isinstance(node, list):
        return [as_jsonschema(v) for v in node]
    return node


def test_committed_crd_is_generated_from_the_current_agent_spec() -> None:
    committed = yaml.safe_load(CHART_CRD.read_text())
    assert committed == voiceagent_crd(), (
        "deploy/helm/trunkline/crds is stale: run `python tools/gen_crds.py`"
    )


def test_every_agent_spec_field_is_in_the_crd_and_nothing_else() -> None:
    assert property_paths(spec_schema(voiceagent_crd())) == model_paths(AgentSpec)


def test_sample_agents_validate_against_the_crd_schema() -> None:
    validator = jsonschema.Draft4Validator(as_jsonschema(spec_schema(voiceagent_crd())))
    for path in sorted((ROOT / "agents").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        load_agent_spec(path)  # valid for the model ...
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], f"{path}: {errors}"  # ... and for the CRD


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"name": "Not A Slug"}, "does not match"),
        ({"tools": [{"name": "t", "description": "d", "endpoint": "builtin:x",
                     "allowed_roles": ["*"], "risk": "extreme"}]}, "is not one of"),
        ({"model": {"sampling": {"top_p": 0}}}, "less than or equal to the minimum"),
        ({"voice": {"pitch": 2}}, "Additional properties are not allowed"),
    ],
)  # fmt: skip
def test_crd_schema_rejects_what_the_model_rejects(change: dict[str, Any], needle: str) -> None:
    base = {"name": "tiny", "version": "1", "system_prompt": "x", "greeting": "y"}
    validator = jsonschema.Draft4Validator(as_jsonschema(spec_schema(voiceagent_crd())))
    messages = [e.message for e in validator.iter_errors({**base, **change})]
    assert any(needle in m for m in messages), messages
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        AgentSpec.model_validate({**base, **change})


def test_unsupported_constructs_are_refused() -> None:
    class Either(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match="anyOf of 2 non-null types"):
        openapi_schema(Either)
