"""A llama.cpp build for this CPU, loaded instead of the wheel's portable one.

The ``llama-cpp-python`` wheel is built for x86-64-v3 (AVX2/FMA, see ``pyproject.toml``) so that
it runs on any machine it is installed on. Where the CPU also has AVX-512, ``make install`` builds
the same llama.cpp version once more with it (``tools/llama_build.py``) into a folder holding the
shared libraries and ``cpu-flags.txt``, the CPU flags that build needs. Prompt evaluation of
SmolLM2 is ~1.4-1.6x faster with it (README, LLM section), and prompt evaluation is most of the
reply's first-token time.

``llama-cpp-python`` loads its libraries from ``LLAMA_CPP_LIB_PATH`` when that is set at its
first import, so the folder is chosen before anything imports it, and only when this CPU has
every flag in ``cpu-flags.txt`` (a build with instructions the CPU lacks dies with SIGILL).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS_FILE = "cpu-flags.txt"
LIBRARY = "libllama.so"
LIB_PATH_VAR = "LLAMA_CPP_LIB_PATH"
BUILD_DIR = Path("build") / "llama-cpu"
"""Where ``make install`` puts the build, relative to the repository root."""
AVX512_DEFINES = (
    "GGML_NATIVE=OFF", "GGML_AVX=ON", "GGML_AVX2=ON", "GGML_FMA=ON", "GGML_F16C=ON",
    "GGML_BMI2=ON", "GGML_AVX512=ON", "GGML_AVX512_VBMI=ON", "GGML_AVX512_VNNI=ON",
    "GGML_AVX_VNNI=ON",
)  # fmt: skip
"""The CMake options ``tools/llama_build.py`` builds with: the wheel's x86-64-v3 set plus
AVX-512 with VBMI and VNNI, and AVX-VNNI."""
AVX512_FLAGS = frozenset(
    {
        "avx2", "fma", "f16c", "bmi2",
        "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni",
        "avx_vnni",
    }
)  # fmt: skip
"""The /proc/cpuinfo flags a CPU needs to run that build (written to ``cpu-flags.txt``)."""


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first processor in ``/proc/cpuinfo`` text (empty if there are none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def required_flags(build_dir: Path) -> frozenset[str] | None:
    """The flags a build needs, or None when ``build_dir`` holds no complete build."""
    flags = build_dir / FLAGS_FILE
    if not (build_dir / LIBRARY).is_file() or not flags.is_file():
        return None
    return frozenset(flags.read_text().split())


def missing_flags(build_dir: Path, have: frozenset[str]) -> frozenset[str] | None:
    """The flags ``build_dir``'s build needs that ``have`` lacks (empty: usable), or None when
    it holds no complete build."""
    need = required_flags(build_dir)
    return None if need is None else need - have


def choose(build_dir: Path | None, cpuinfo_path: Path = Path("/proc/cpuinfo")) -> Path | None:
    """``build_dir`` if this CPU can run the build in it, else None (the wheel's own build)."""
    if build_dir is None:
        return None
    try:
        have = cpu_flags(cpuinfo_path.read_text())
    except OSError:
        have = frozenset()
    missing = missing_flags(build_dir, have)
    if missing is None:
        log.info("no llama.cpp build in %s: using the wheel's", build_dir)
        return None
    if missing:
        log.info("llama.cpp build in %s needs %s: using the wheel's", build_dir, sorted(missing))
        return None
    return build_dir


def use(build_dir: Path | None) -> Path | None:
    """Point ``llama-cpp-python`` at the build :func:`choose` picks; the folder it loads from.
    It has to run before the first import of ``llama_cpp`` (it warns when too late); an explicit
    ``LLAMA_CPP_LIB_PATH`` in the environment wins."""
    if os.environ.get(LIB_PATH_VAR):
        return Path(os.environ[LIB_PATH_VAR])
    chosen = choose(build_dir)
    if chosen is None:
        return None
    if "llama_cpp" in sys.modules:
        log.warning("llama_cpp is already loaded: the build in %s is not used", chosen)
        return None
    os.environ[LIB_PATH_VAR] = str(chosen.resolve())
    log.info("llama.cpp: using the build in %s", chosen)
    return chosen
