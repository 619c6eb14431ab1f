"""The local stack for the e2e modules that need one: ``trunkline stack up`` in a run dir of the
module's own, once per module, and ``down`` after it (only what it started); a module that
restarts a component mid-test does it through :func:`restart_component`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trunkline.cli.record import StackRecord, load

AGENTS = Path(__file__).resolve().parents[2] / "agents"


def trunkline_stack(run_dir: Path, *args: str, timeout: float = 300) -> str:
    """``trunkline stack <args> --run-dir run_dir`` with the repository's agents; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "trunkline.cli.main", "stack", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "TRUNKLINE_STACK_AGENTS_DIR": str(AGENTS)},
    )
    assert done.returncode == 0, f"stack {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def restart(record: StackRecord, component: str) -> str:
    """``trunkline stack restart <component>`` in the running stack's run dir; its stdout."""
    return trunkline_stack(Path(record.run_dir), "restart", component)


@pytest.fixture(scope="module")
def restart_component() -> Callable[[StackRecord, str], str]:
    """:func:`restart`, for a test that kills a component of its ``local_stack`` mid-call."""
    return restart


@pytest.fixture(scope="module")
def local_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackRecord]:
    """The stack of the requesting module (its run dir named after the module)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    run_dir = tmp_path_factory.mktemp(name) / "run"
    try:
        trunkline_stack(run_dir, "up")
        record = load(run_dir)
        assert record is not None
        yield record
    finally:
        if (run_dir / "stack.json").exists():
            trunkline_stack(run_dir, "down")
