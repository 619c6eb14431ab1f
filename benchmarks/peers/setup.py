"""Pipecat's own virtual environment for ``make bench-peers`` (never the project's .venv).

``pipecat-ai[websocket,whisper,piper,silero]==1.14.0`` installed with uv from PyPI into
``~/.cache/trunkline/pipecat-venv`` the first time, reused after. Run outside the project
directory with ``--no-config``: the root pyproject's ``[[tool.uv.dependency-metadata]]`` pins
pipecat-ai with no dependencies (the project takes only its Smart Turn model), which would leave
Pipecat without its dependencies here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PIPECAT = ("pipecat-ai[websocket,whisper,piper,silero]==1.14.0", "uvicorn")  # uvicorn serves it
VENV = Path(os.environ.get("TRUNKLINE_PIPECAT_VENV", Path.home() / ".cache/trunkline/pipecat-venv"))


def uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(found).exists():
        raise RuntimeError("uv not found (run `make uv`)")
    return found


def _ok(exe: Path, probe: str) -> bool:
    return subprocess.run([exe, "-c", probe], check=False, capture_output=True).returncode == 0


def python() -> Path:
    """The venv's interpreter, creating the venv when it is missing or has no Pipecat 1.14.0."""
    exe = VENV / "bin" / "python"
    probe = "import importlib.metadata as m; assert m.version('pipecat-ai') == '1.14.0'; " \
        "import faster_whisper, piper, onnxruntime, fastapi, uvicorn"  # fmt: skip
    if exe.exists() and _ok(exe, probe):
        return exe
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(VENV)}
    if not exe.exists():
        subprocess.run([uv(), "venv", "-p", "python3.11", str(VENV)], check=True, env=env, cwd="/")
    subprocess.run([uv(), "pip", "install", "--no-config", *PIPECAT], check=True, env=env, cwd="/")
    return exe


if __name__ == "__main__":
    print(python())
