"""Build llama.cpp once more for this CPU when it has AVX-512 (``make install`` runs this).

The locked ``llama-cpp-python`` wheel is built for x86-64-v3 so that it runs anywhere. This builds
the same version from the same sdist with GGML_AVX512 (+ VBMI, VNNI, AVX-VNNI) through uv, which
fetches it from the package index like every other dependency and caches the built wheel keyed by
these settings (a second run is instant), then keeps only its shared libraries in
``build/llama-cpu`` with ``cpu-flags.txt``: the llm service loads them instead of the wheel's
where the CPU has every one of those flags (``trunkline.llm.backends.cpubuild``).

On a CPU without AVX-512 it does nothing and says so. A failed build is reported and leaves no
folder behind: everything works with the wheel's build.

``python tools/llama_build.py [--out build/llama-cpu] [--force]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trunkline.llm.backends.cpubuild import (
    AVX512_DEFINES,
    AVX512_FLAGS,
    BUILD_DIR,
    FLAGS_FILE,
    LIBRARY,
    cpu_flags,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "llama-cpp-python"


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).is_file():
        raise SystemExit("uv not found (make install installs it)")
    return found


def build(out: Path, version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="llama-build-") as tmp:
        target = Path(tmp) / "site"
        settings = [arg for define in AVX512_DEFINES for arg in ("-C", f"cmake.define.{define}")]
        command = [
            uv(), "pip", "install", "--quiet", "--no-deps", "--python", sys.executable,
            "--target", str(target), f"{PACKAGE}=={version}", *settings,
        ]  # fmt: skip
        print(f"building llama.cpp ({PACKAGE} {version}) with AVX-512 for this CPU", flush=True)
        subprocess.run(command, check=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
        libs = target / "llama_cpp" / "lib"
        if not (libs / LIBRARY).is_file():
            raise SystemExit(f"the build has no {LIBRARY} in {libs}")
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(libs, partial, symlinks=True)
        (partial / FLAGS_FILE).write_text(" ".join(sorted(AVX512_FLAGS)) + "\n")
        (partial / "VERSION").write_text(f"{PACKAGE} {version}\n")
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    print(f"llama.cpp for this CPU: {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / BUILD_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even if it is up to date")
    args = parser.parse_args()
    out: Path = args.out
    try:
        have = cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        have = frozenset()
    missing = AVX512_FLAGS - have
    if missing:
        print(f"llama.cpp: this CPU lacks {' '.join(sorted(missing))}: the wheel's build is used")
        shutil.rmtree(out, ignore_errors=True)
        return 0
    version = importlib.metadata.version(PACKAGE)
    stamp = out / "VERSION"
    if not args.force and stamp.is_file() and stamp.read_text() == f"{PACKAGE} {version}\n":
        print(f"llama.cpp for this CPU is up to date: {out}")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        build(out, version)
    except (subprocess.CalledProcessError, OSError, SystemExit) as exc:
        print(f"warning: the AVX-512 llama.cpp build failed ({exc}); the wheel's build is used")
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
