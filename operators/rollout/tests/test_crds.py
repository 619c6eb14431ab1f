"""The chart's CRDs are what ``tools/gen_crds.py`` generates from the current models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from trunkline.rollout.resources import agentrollout_crd

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "deploy" / "helm" / "trunkline" / "crds"


def test_agentrollout_crd_is_generated_from_the_models() -> None:
    committed = yaml.safe_load((CRDS / "agentrollouts.trunkline.dev.yaml").read_text())
    assert committed == agentrollout_crd(), "stale CRD: run `python tools/gen_crds.py`"


def test_printer_columns_make_kubectl_get_readable() -> None:
    columns = agentrollout_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert names[:4] == ["Agent", "Stable", "Candidate", "Phase"]
    assert {"Checks", "Promoted", "Age"} <= set(names)


def test_gen_crds_check_finds_no_drift() -> None:
    spec = importlib.util.spec_from_file_location("gen_crds", ROOT / "tools" / "gen_crds.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
