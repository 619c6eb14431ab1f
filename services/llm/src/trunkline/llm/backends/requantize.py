"""Re-quantize a GGUF model once, into a cache folder, with llama.cpp's own quantizer.

The bundled SmolLM2 file is Q4_1, which llama.cpp's CPU backend evaluates with its generic
kernels; Q4_0 and Q8_0 take its repacked / tinyBLAS paths and evaluate prompts about twice as
fast on AVX2 (``python -m benchmarks.llm`` measures it). Converting takes under a second, so
it happens at start-up; the result is reused while the source file is unchanged. Nothing is
downloaded: the source is the installed model file.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Quantization = Literal["keep", "q4_0", "q8_0"]


def cached_name(source: Path, kind: str) -> str:
    """A name that changes whenever the source file does (path, size, modification time)."""
    stat = source.stat()
    key = f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return f"{source.stem}.{kind}.{hashlib.sha256(key).hexdigest()[:12]}.gguf"


def requantized(source: Path, kind: Quantization, cache_dir: Path) -> Path:
    """``source`` converted to ``kind`` in ``cache_dir`` (made once); ``keep``: ``source``."""
    if kind == "keep":
        return source
    import llama_cpp  # noqa: PLC0415 - the SDK loads only with the llama.cpp backend

    ftypes = {
        "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    }
    if not source.is_file():
        raise FileNotFoundError(f"model file not found: {source}")
    cache_dir = cache_dir.expanduser()
    target = cache_dir / cached_name(source, kind)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[kind]
    params.allow_requantize = True
    params.nthread = 1
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), ctypes.byref(params)
    )
    if status != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp could not convert {source.name} to {kind} ({status})")
    partial.replace(target)  # atomic: a concurrent start sees the whole file or none
    log.info("converted %s to %s: %s", source.name, kind, target)
    return target
