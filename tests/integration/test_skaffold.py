"""skaffold.yaml (no skaffold binary exists here): its schema version and structure, that every
path it names exists, that it builds exactly the images of deploy/images.yaml with their build
arguments, and that each profile's values, with the image values Skaffold would set, render
through the chart and pass its schema and the Kubernetes schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD = ROOT / "skaffold.yaml"
IMAGES = ROOT / "deploy" / "images.yaml"
API_VERSION = "skaffold/v4beta13"
"""The config version of Skaffold v2.15+ (the current schema)."""
PROFILES = ("dev", "gpu", "ci")
TEMPLATE = re.compile(r"^\{\{\.IMAGE_(REPO|TAG|FULLY_QUALIFIED)_([A-Za-z0-9_]+)\}\}$")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = yaml.safe_load(SKAFFOLD.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(str(ROOT / "deploy" / "helm" / "trunkline")) as loaded:
        yield loaded


def profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The effective build/manifests/deploy of a profile (a profile's sections replace the
    top-level ones, as Skaffold merges them; dev is the top level)."""
    overrides = next(p for p in config["profiles"] if p["name"] == name)
    return {key: overrides.get(key, config[key]) for key in ("build", "manifests", "deploy")}


def test_schema_version_and_shape(config: dict[str, Any]) -> None:
    assert config["apiVersion"] == API_VERSION
    assert config["kind"] == "Config"
    assert config["metadata"]["name"] == "trunkline"
    assert [p["name"] for p in config["profiles"]] == list(PROFILES)
    allowed = {"apiVersion", "kind", "metadata", "build", "manifests", "deploy", "portForward",
               "profiles"}  # fmt: skip
    assert set(config) <= allowed


@pytest.mark.parametrize("name", PROFILES)
def test_artifacts_are_the_declared_images(config: dict[str, Any], name: str) -> None:
    images = yaml.safe_load(IMAGES.read_text())["images"]
    for artifact in profile(config, name)["build"]["artifacts"]:
        declared = images[artifact["image"]]
        assert (ROOT / artifact["context"]).is_dir()
        assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
        args = artifact["docker"]["buildArgs"]
        assert args["PACKAGE"] == declared["package"], artifact["image"]
        assert args["EXTRAS"].split() == declared["extras"], artifact["image"]


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_deploys_the_chart_it_renders(config: dict[str, Any], name: str) -> None:
    effective = profile(config, name)
    assert effective["manifests"]["helm"]["releases"] == effective["deploy"]["helm"]["releases"]
    built = {a["image"].replace("-", "_") for a in effective["build"]["artifacts"]}
    for release in effective["deploy"]["helm"]["releases"]:
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
        for values in release["valuesFiles"]:
            assert (ROOT / values).is_file(), values
        for key, template in release["setValueTemplates"].items():
            match = TEMPLATE.match(template)
            assert match, f"{key}: {template}"
            assert match.group(2) in built, f"{key} names an image this profile does not build"


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_renders_valid_manifests(
    config: dict[str, Any], chart: helm_python.Chart, name: str
) -> None:
    (release,) = profile(config, name)["deploy"]["helm"]["releases"]
    values: dict[str, Any] = {}
    for path in release["valuesFiles"]:
        values = _merge(values, yaml.safe_load((ROOT / path).read_text()))
    for key, template in release["setValueTemplates"].items():
        match = TEMPLATE.match(template)
        assert match is not None
        image = f"registry.example/{match.group(2).replace('_', '-')}"
        full = f"{image}:abc1234@sha256:{'c' * 64}"
        value = {"REPO": image, "TAG": "abc1234", "FULLY_QUALIFIED": full}[match.group(1)]
        values = _merge(values, _nested(key.split("."), value))
    chart.validate_schema(values)
    rendered = chart.render(values, name=release["name"], namespace=release["namespace"])
    docs = [
        d for p, t in rendered.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d
    ]
    images = set()
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
        if doc["kind"] == "Deployment":
            images |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
    ours = {i for i in images if i.startswith("registry.example/")}
    assert ours, "no Deployment runs an image Skaffold built"
    if name == "gpu":
        assert len(ours) == 8  # one slim image per process


def _nested(keys: list[str], value: str) -> dict[str, Any]:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nested(keys[1:], value)}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
