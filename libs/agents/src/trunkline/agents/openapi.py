"""A pydantic model's JSON schema as a Kubernetes *structural* OpenAPI v3 schema (for CRDs).

Pure: no I/O. ``tools/gen_crds.py`` writes the CRDs with it and a test checks the committed ones
against it, so a field added to :class:`~trunkline.agents.AgentSpec` that the CRD lacks fails CI
(the API server would otherwise prune it silently).

What changes on the way (Kubernetes accepts a subset of OpenAPI v3.0):
- ``$ref``/``$defs`` are inlined (a CRD schema cannot refer to anything);
- ``X | None`` (``anyOf`` with ``null``) becomes ``X`` with ``nullable: true``;
- JSON Schema 2020's numeric ``exclusiveMinimum: 0`` becomes ``minimum: 0`` +
  ``exclusiveMinimum: true``; ``const`` becomes a one-value ``enum``;
- a free-form mapping (``dict[str, Any]``) becomes ``x-kubernetes-preserve-unknown-fields``;
- ``title`` and ``default`` are dropped: defaults are applied once, by the model, so the
  stored object says only what its author wrote;
- ``additionalProperties: false`` (``extra="forbid"``) is dropped: the API server prunes unknown
  fields, and rejects them outright with server-side field validation (kubectl's default).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

_PASS = (
    "type",
    "description",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "enum",
    "required",
    "uniqueItems",
    "nullable",
)


class SchemaError(ValueError):
    """A model uses a construct a structural schema cannot express."""


def openapi_schema(model: type[BaseModel], *, by_alias: bool = True) -> Schema:
    """The structural OpenAPI v3 schema of ``model`` (validation mode)."""
    raw = model.model_json_schema(by_alias=by_alias, mode="validation")
    return _convert(raw, raw.get("$defs", {}), "")


def _resolve(node: Schema, defs: Schema, where: str) -> Schema:
    ref = node["$ref"]
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith("#/$defs/") or name not in defs:
        raise SchemaError(f"{where or '(root)'}: unresolvable $ref {ref}")
    return {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}


def _convert(node: Schema, defs: Schema, where: str) -> Schema:
    if "$ref" in node:
        node = _resolve(node, defs, where)
    if "allOf" in node:
        parts = node["allOf"]
        if len(parts) != 1:
            raise SchemaError(f"{where}: allOf with {len(parts)} parts")
        rest = {k: v for k, v in node.items() if k != "allOf"}
        node = {**_resolve(parts[0], defs, where), **rest} if "$ref" in parts[0] else parts[0]
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"{where}: anyOf of {len(options)} non-null types")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        inner = _convert(options[0], defs, where)
        merged = {**inner, **{k: v for k, v in rest.items() if k == "description"}}
        if len(node["anyOf"]) > len(options):
            merged["nullable"] = True
        return merged
    out: Schema = {k: node[k] for k in _PASS if k in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            if isinstance(node[bound], bool):
                raise SchemaError(f"{where}: boolean {bound} (draft 4) in a pydantic schema")
            out[flag] = node[bound]
            out[bound] = True
    kind = node.get("type")
    if kind is None and "enum" in node:
        values = node["enum"]
        out["type"] = "string" if all(isinstance(v, str) for v in values) else "number"
    if kind == "object":
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props:
            out["properties"] = {
                name: _convert(sub, defs, f"{where}.{name}" if where else name)
                for name, sub in props.items()
            }
        elif isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, defs, f"{where}.*")
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        if "prefixItems" in node:
            raise SchemaError(f"{where}: fixed-length tuples are not expressible")
        out["items"] = _convert(node.get("items", {}), defs, f"{where}[]")
    elif kind is None and "type" not in out:
        raise SchemaError(f"{where}: a schema without a type ({sorted(node)})")
    return out


def property_paths(schema: Schema, prefix: str = "") -> set[str]:
    """Every property path of a converted schema (``model.sampling.seed``, ``tools[].name``)."""
    paths: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths.add(path)
        paths |= property_paths(sub, path)
    if "items" in schema:
        paths |= property_paths(schema["items"], f"{prefix}[]")
    return paths
