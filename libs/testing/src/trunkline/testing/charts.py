"""The manifests a Helm chart renders, as dicts (for the chart tests; the chart is rendered
in-process by ``helm_python``, taken here by its ``render`` method only)."""

from __future__ import annotations

from typing import Any, Protocol

import yaml

Manifest = dict[str, Any]


class Renders(Protocol):
    def render(self, values: dict[str, Any], *, name: str, namespace: str) -> dict[str, str]: ...


def manifests(
    chart: Renders, values: dict[str, Any] | None = None, *, namespace: str = "calls"
) -> list[Manifest]:
    """Every object of every rendered template (release ``voice``), in file order; NOTES.txt
    and empty documents left out."""
    rendered = chart.render(values or {}, name="voice", namespace=namespace)
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
