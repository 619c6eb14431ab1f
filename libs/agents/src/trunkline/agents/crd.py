"""The ``VoiceAgent`` CustomResourceDefinition, its spec generated from :class:`AgentSpec`.

A VoiceAgent is one agent *version*: ``spec`` is the agent spec exactly as in a YAML file
(``spec.name`` + ``spec.version``), ``status`` is what the rollout operator found: whether it
validated, whether this version is the agent's active one. ``tools/gen_crds.py`` writes it into
the Helm chart's ``crds/``; pure (no I/O).
"""

from __future__ import annotations

from typing import Any

from trunkline.agents.loader import GROUP, KIND, PLURAL, VERSION
from trunkline.agents.openapi import Schema, openapi_schema
from trunkline.agents.spec import AgentSpec

CONDITION_SCHEMA: Schema = {
    "type": "object",
    "description": "metav1.Condition: one aspect of the resource's state",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string", "maxLength": 316},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string", "maxLength": 1024},
        "message": {"type": "string", "maxLength": 32768},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
    },
}

CONDITIONS_SCHEMA: Schema = {
    "type": "array",
    "items": CONDITION_SCHEMA,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


def crd_document(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    spec: Schema,
    status: Schema,
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    """A namespaced ``trunkline.dev`` CRD with one served version and a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["trunkline"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def condition_column(name: str, kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{kind}")].status',
    }


AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

VOICEAGENT_STATUS: Schema = {
    "type": "object",
    "description": "what the rollout operator found; written only by it",
    "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "agent": {"type": "string", "description": "spec.name as validated"},
        "version": {"type": "string", "description": "spec.version as validated"},
        "active": {
            "type": "boolean",
            "description": "this version takes the agent's live calls",
        },
        "activeVersion": {
            "type": "string",
            "description": "the agent's version that takes live calls (this one or another)",
        },
        "message": {"type": "string"},
        "conditions": CONDITIONS_SCHEMA,
    },
}


def voiceagent_crd() -> dict[str, Any]:
    spec = openapi_schema(AgentSpec)
    spec["description"] = (
        "one agent version as data (trunkline.agents.AgentSpec): the same keys as an agent "
        "YAML file"
    )
    return crd_document(
        kind=KIND,
        plural=PLURAL,
        singular="voiceagent",
        short_names=["va"],
        spec=spec,
        status=VOICEAGENT_STATUS,
        columns=[
            {"name": "Agent", "type": "string", "jsonPath": ".spec.name"},
            {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
            {"name": "Active", "type": "boolean", "jsonPath": ".status.active"},
            condition_column("Validated", "Validated"),
            condition_column("Ready", "Ready"),
            AGE_COLUMN,
        ],
        description="VoiceAgent: one version of a voice agent (prompt, tools, retrieval, voice)",
    )
