"""Choosing a llama.cpp build for this CPU (``tools/llama_build.py`` makes one)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from trunkline.llm.backends import cpubuild
from trunkline.llm.backends.cpubuild import AVX512_FLAGS, FLAGS_FILE, LIBRARY

pytestmark = pytest.mark.unit

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx avx2 fma f16c bmi2
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu sse2 avx avx2 fma f16c bmi2
"""


def make_build(root: Path, flags: frozenset[str] = AVX512_FLAGS) -> Path:
    root.mkdir()
    (root / LIBRARY).write_bytes(b"\x7fELF")
    (root / FLAGS_FILE).write_text(" ".join(sorted(flags)) + "\n")
    return root


def cpuinfo(tmp_path: Path, flags: frozenset[str]) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {' '.join(sorted(flags))}\n")
    return path


def test_cpu_flags_are_the_first_processors() -> None:
    assert cpubuild.cpu_flags(CPUINFO) == {"fpu", "sse2", "avx", "avx2", "fma", "f16c", "bmi2"}
    assert cpubuild.cpu_flags("no flags here") == frozenset()


def test_a_build_is_chosen_only_where_the_cpu_has_every_flag(tmp_path: Path) -> None:
    build = make_build(tmp_path / "llama")
    assert cpubuild.choose(build, cpuinfo(tmp_path, AVX512_FLAGS | {"sse2"})) == build
    lacking = cpuinfo(tmp_path, AVX512_FLAGS - {"avx512_vnni"})
    missing = cpubuild.missing_flags(build, cpubuild.cpu_flags(lacking.read_text()))
    assert missing == frozenset({"avx512_vnni"})
    assert cpubuild.choose(build, lacking) is None
    assert cpubuild.choose(None) is None
    assert cpubuild.choose(tmp_path / "absent", cpuinfo(tmp_path, AVX512_FLAGS)) is None
    assert cpubuild.choose(build, tmp_path / "no-cpuinfo") is None  # unknown CPU: the wheel's


def test_an_incomplete_build_is_not_chosen(tmp_path: Path) -> None:
    build = make_build(tmp_path / "llama")
    (build / FLAGS_FILE).unlink()
    assert cpubuild.required_flags(build) is None
    assert cpubuild.choose(build, cpuinfo(tmp_path, AVX512_FLAGS)) is None


def test_use_points_llama_cpp_python_at_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = make_build(tmp_path / "llama")
    monkeypatch.setenv(cpubuild.LIB_PATH_VAR, "")  # records the real value: restored afterwards
    monkeypatch.delenv(cpubuild.LIB_PATH_VAR)
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.setattr(cpubuild, "choose", lambda d: d)
    assert cpubuild.use(build) == build
    assert os.environ[cpubuild.LIB_PATH_VAR] == str(build.resolve())
    # an explicit LLAMA_CPP_LIB_PATH wins
    monkeypatch.setenv(cpubuild.LIB_PATH_VAR, "/elsewhere")
    assert cpubuild.use(build) == Path("/elsewhere")
    monkeypatch.undo()
    assert os.environ.get(cpubuild.LIB_PATH_VAR) != str(build.resolve())


def test_use_is_too_late_once_llama_cpp_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = make_build(tmp_path / "llama")
    monkeypatch.setenv(cpubuild.LIB_PATH_VAR, "")
    monkeypatch.delenv(cpubuild.LIB_PATH_VAR)
    monkeypatch.setitem(sys.modules, "llama_cpp", object())
    monkeypatch.setattr(cpubuild, "choose", lambda d: d)
    assert cpubuild.use(build) is None
    assert cpubuild.LIB_PATH_VAR not in os.environ
