"""Re-quantizing the bundled SmolLM2 with llama.cpp's own quantizer: converted once into the
cache folder, reused while the source is unchanged, and the result loads and answers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from trunkline.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig, smollm2_model_path
from trunkline.llm.backends.requantize import cached_name, requantized
from trunkline.llm.core import ChatMessage, Done, GenerationRequest, SamplingParams, TextDelta

pytestmark = pytest.mark.integration


def gguf_type(path: Path) -> int:
    """general.file_type of a GGUF, read with llama.cpp's reader."""
    from llama_cpp import Llama  # noqa: PLC0415

    llm = Llama(model_path=str(path), n_ctx=64, verbose=False, vocab_only=True)
    try:
        return int(llm.metadata["general.file_type"])
    finally:
        llm.close()


def test_converts_once_and_reuses_the_file(tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    shutil.copy(smollm2_model_path(), source)
    assert requantized(source, "keep", tmp_path / "cache") == source
    first = requantized(source, "q4_0", tmp_path / "cache")
    assert first.parent == tmp_path / "cache"
    assert gguf_type(source) == 3  # LLAMA_FTYPE_MOSTLY_Q4_1
    assert gguf_type(first) == 2  # LLAMA_FTYPE_MOSTLY_Q4_0
    stamp = first.stat().st_mtime_ns
    assert requantized(source, "q4_0", tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == stamp  # not converted again
    assert not list((tmp_path / "cache").glob("*.partial"))

    source.touch()  # the source changed: a new name, a new conversion
    assert cached_name(source, "q4_0") != first.name
    assert requantized(source, "q4_0", tmp_path / "cache") != first


def test_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model file not found"):
        requantized(tmp_path / "absent.gguf", "q8_0", tmp_path)


async def test_the_converted_model_answers(tmp_path: Path) -> None:
    config = LlamaCppConfig(smollm2_model_path(), quantize="q4_0", cache_dir=tmp_path)
    llama = LlamaCppBackend(config)
    await llama.start()
    try:
        request = GenerationRequest(
            messages=(ChatMessage("user", "What is the capital of France?"),),
            sampling=SamplingParams(max_tokens=12, temperature=0.0),
        )
        events = [e async for e in llama.generate(request)]
    finally:
        await llama.aclose()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "Paris" in text
    assert isinstance(events[-1], Done)
    assert config.model_path.suffix == ".gguf"
    converted = [p.name for p in os.scandir(tmp_path) if ".q4_0." in p.name]
    assert len(converted) == 1
