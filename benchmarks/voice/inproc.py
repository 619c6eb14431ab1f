"""The voice loop in ONE process, no gRPC, no NATS, no Redis: the gateway's own web app,
``CallSession`` and turn pipeline, with in-process peers calling the same model backends (and
the same servicer code: prompt compilation, context arithmetic) that the services run.

``python -m benchmarks.voice.inproc --port P --agents agents --db X.db --turns-out T.jsonl``
prints ``READY <port> <stream secret>`` once models are loaded and the knowledge is ingested.
Each finished turn is appended to ``--turns-out`` as JSON (stage timings as the gateway
measures them). The benchmark dials it exactly as it dials the distributed stack.
"""

from __future__ import annotations

import os

from trunkline.llm.backends.openmp import SPIN_COUNT, SPIN_VAR

os.environ.setdefault(SPIN_VAR, SPIN_COUNT)  # as the llm process does, before llama.cpp loads

import argparse
import asyncio
import json
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from aiohttp import web
from opentelemetry import trace

from trunkline.cli.knowledge import _requests, knowledge_files
from trunkline.cli.plan import AppConfig
from trunkline.cli.settings import StackSettings
from trunkline.cli.stack import library_dir
from trunkline.context.server import ContextService
from trunkline.context.service import Backends
from trunkline.context.settings import ContextSettings
from trunkline.gateway.app import Gateway, PeerChannels
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.events import Message, State
from trunkline.gateway.peers.base import (
    ContextSource,
    LanguageModel,
    PeerEnv,
    Synthesizer,
    Transcriber,
    _close,
)
from trunkline.gateway.peers.grpc_context import (
    _result,
    resolve_request,
    retrieval_options,
    store_answer_request,
)
from trunkline.gateway.peers.grpc_llm import (
    generate_request,
    llm_event,
    prefill_request,
    prefilled,
)
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    StoredAnswer,
    Transcript,
)
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.profile import AgentProfile, RetrievalProfile, VoiceProfile, load_profiles
from trunkline.gateway.records import CallSink, CallSummary, TurnRecord
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.llm.backends.factory import build_backend, served_model
from trunkline.llm.convert import Limits
from trunkline.llm.server import LanguageModelService, ServingOptions
from trunkline.llm.settings import LlmSettings
from trunkline.llm.warmup import load_agents, start_backend, warm_up
from trunkline.stt.backends.base import SpeechRecognizer
from trunkline.stt.backends.factory import build_recognizer
from trunkline.stt.core import (
    AudioIn,
    EndOfUtterance,
    FlushUtterance,
    SttInput,
    Vocabulary,
    vocabulary_of,
)
from trunkline.stt.core import Transcript as SttTranscript
from trunkline.stt.settings import SttSettings
from trunkline.tts.backends.base import StreamSettings
from trunkline.tts.backends.base import Synthesizer as TtsBackend
from trunkline.tts.backends.factory import build_synthesizer
from trunkline.tts.settings import TtsSettings

RATE = 16_000


class DirectContext:
    """The bit of ``grpc.aio.ServicerContext`` the servicers use, without gRPC."""

    async def abort(self, code: Any, details: str = "") -> NoReturn:
        raise RuntimeError(f"{code}: {details}")

    def cancelled(self) -> bool:
        return False

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_code(self, code: Any) -> None:
        pass

    def set_details(self, details: str) -> None:
        pass


CTX = cast(Any, DirectContext())


class _Utterance:
    """One recognition stream for one utterance; a reader task keeps its results, so a read
    that is given up (a read-ahead cancelled by the turn's start) leaves the stream intact."""

    def __init__(self, recognizer: SpeechRecognizer, vocabulary: Vocabulary) -> None:
        self.inputs: asyncio.Queue[SttInput | None] = asyncio.Queue()
        self.sent = bytearray()
        self.results: list[SttTranscript] = []
        self.changed = asyncio.Event()
        stream = recognizer.stream(_drain(self.inputs), sample_rate=RATE, vocabulary=vocabulary)
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[SttTranscript]) -> None:
        try:
            async for result in stream:
                self.results.append(result)
                self.changed.set()
        finally:
            self.changed.set()

    def extended_by(self, audio: bytes) -> bool:
        n = len(self.sent)
        return not self.task.done() and len(audio) >= n and audio[:n] == self.sent

    async def flush(self, audio: bytes) -> SttTranscript | None:
        self.inputs.put_nowait(AudioIn(audio[len(self.sent) :]))
        self.sent += audio[len(self.sent) :]
        self.inputs.put_nowait(FlushUtterance())
        need = len(self.sent) / (2 * RATE) - 0.001
        while True:
            for result in self.results:
                if result.is_final or result.audio_s >= need:
                    return result
            if self.task.done():
                self.task.result()  # re-raise its failure
                return None
            self.changed.clear()
            await self.changed.wait()

    def end(self) -> None:
        """The utterance is over: its stream ends after the final (free when nothing came
        after the last read: the recognizer reuses that read)."""
        self.inputs.put_nowait(EndOfUtterance())
        self.inputs.put_nowait(None)


class DirectTranscriber(Transcriber):
    """Like the gRPC transcriber: one recognition stream per caller utterance, fed only the
    new audio at each read and asked with a flush (the recognizer keeps its stable prefix)."""

    def __init__(
        self,
        env: PeerEnv,
        recognizer: SpeechRecognizer,
        policy: RetryPolicy,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        super().__init__(env, policy)
        self.recognizer = recognizer
        self.vocabulary = vocabulary or Vocabulary()
        self._open: _Utterance | None = None

    async def _transcribe(self, call: CallInfo, audio: bytes) -> Transcript:
        if self._open is None or not self._open.extended_by(audio):
            await self.close()
            self._open = _Utterance(self.recognizer, self.vocabulary)
        result = await self._open.flush(audio)
        if result is None or not result.text or result.no_speech:
            return Transcript("", 0.0)
        return Transcript(result.text, result.confidence)

    async def close(self) -> None:
        if self._open is not None:
            self._open.end()
            self._open = None


async def _drain(queue: asyncio.Queue[SttInput | None]) -> AsyncIterator[SttInput]:
    while (item := await queue.get()) is not None:
        yield item


class DirectContextSource(ContextSource):
    def __init__(
        self,
        env: PeerEnv,
        service: ContextService,
        retrieval: RetrievalProfile,
        policy: RetryPolicy,
    ) -> None:
        super().__init__(env, policy)
        self.service = service
        self.options = retrieval_options(retrieval)

    async def _resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str],
        prefer_first: tuple[str, ...] = (),
    ) -> ContextResult:
        request = resolve_request(call, query, entities, self.options, prefer_first)
        return _result(await self.service.Resolve(request, CTX))

    async def _store_answer(self, call: CallInfo, answer: StoredAnswer) -> bool:
        response = await self.service.StoreAnswer(store_answer_request(call, answer), CTX)
        return bool(response.stored)


class DirectLanguageModel(LanguageModel):
    def __init__(
        self,
        env: PeerEnv,
        service: LanguageModelService,
        profile: AgentProfile,
        policy: RetryPolicy,
    ) -> None:
        super().__init__(env, policy)
        self.service = service
        self.profile = profile

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        stream = self.service.Generate(generate_request(self.profile, request), CTX)
        try:
            async for response in stream:
                if (event := llm_event(response)) is not None:
                    yield event
        finally:
            await _close(stream)

    async def _prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None,
        partial: str,
    ) -> Prefilled:
        request = prefill_request(self.profile, call, history, context, partial)
        return prefilled(await self.service.Prefill(request, CTX))


class DirectSynthesizer(Synthesizer):
    def __init__(
        self,
        env: PeerEnv,
        backend: TtsBackend,
        voice: VoiceProfile,
        policy: RetryPolicy,
        sample_rate: int = RATE,
    ) -> None:
        super().__init__(env, policy)
        self.backend = backend
        self.sample_rate = sample_rate  # the transport's output rate: one resample, in TTS
        self.settings = StreamSettings(
            sample_rate=sample_rate, voice=voice.name, speaking_rate=voice.speaking_rate
        )

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        stream = self.backend.synthesize(text, self.settings)
        try:
            async for chunk in stream:
                yield chunk.pcm
        finally:
            await _close(stream)


class JsonlSink(CallSink):
    """Turn records to a JSON-lines file; call facts nowhere (no NATS, no Redis)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def call_started(self, call: CallInfo, transport: str) -> None:
        pass

    async def state_changed(self, call: CallInfo, state: State, history: list[Message]) -> None:
        pass

    async def turn_completed(self, record: TurnRecord) -> None:
        row = {
            "call_id": record.call.call_id,
            "greeting": record.greeting,
            "user_text": record.user_text,
            "agent_text": record.agent_text,
            "generated_text": record.generated_text,
            "truncated": record.interrupted,
            "stage_s": record.stage_s,
            "voice_to_voice_s": record.voice_to_voice_s,
            "reply_source": str(record.reply_source),
        }
        with self.path.open("a") as out:
            out.write(json.dumps(row) + "\n")

    async def call_ended(self, summary: CallSummary) -> None:
        pass


class DirectGateway(Gateway):
    """The gateway's call runner with in-process peers instead of gRPC channels."""

    def __init__(self, settings: GatewaySettings, profiles: dict[str, AgentProfile],
                 sink: CallSink, backends: tuple[SpeechRecognizer, ContextService,
                 LanguageModelService, TtsBackend]) -> None:  # fmt: skip
        tracer = trace.get_tracer("benchmarks.voice.inproc")
        super().__init__(
            settings, profiles, sink, cast(PeerChannels, None), clock=SystemClock(), tracer=tracer
        )
        self.backends = backends

    def peers(self, profile: AgentProfile, out_rate: int = RATE) -> Peers:
        env, policy = self._env, self._policy
        stt, context, llm, tts = self.backends
        return Peers(
            stt=DirectTranscriber(
                env, stt, policy, vocabulary_of(profile.stt.vocabulary, profile.stt.boost)
            ),
            context=DirectContextSource(env, context, profile.retrieval, policy),
            llm=DirectLanguageModel(env, llm, profile, policy),
            tts=DirectSynthesizer(env, tts, profile.voice, policy, out_rate),
        )


async def serve(args: argparse.Namespace) -> None:
    agents: Path = args.agents
    recognizer = build_recognizer(SttSettings())
    synthesizer = build_synthesizer(TtsSettings())
    # The same gateway/LLM knobs the stack gives the distributed services (cli/plan.py).
    same = AppConfig(
        agents_dir=agents,
        tenants_file=agents,
        milvus_uri=str(args.db),
        llm_library_dir=library_dir(StackSettings().llm_library_dir),
    )
    llm_settings = LlmSettings(
        agents_dir=agents,
        library_dir=same.llm_library_dir,
        first_token_timeout_s=same.llm_first_token_timeout_s,
        threads_batch=same.llm_threads_batch,
        first_tokens_threads=same.llm_threads_batch,
    )
    llm = LanguageModelService(
        build_backend(llm_settings),
        ServingOptions(
            limits=Limits(
                context_tokens=llm_settings.context_size,
                default_max_tokens=llm_settings.default_max_tokens,
            ),
            model=served_model(llm_settings),
        ),
    )
    await recognizer.start()
    await synthesizer.start()
    await start_backend(llm.backend)
    await warm_up(llm.backend, load_agents(agents), llm.options.model)
    llm.mark_warm()
    context_settings = ContextSettings(milvus_uri=str(args.db), agents_dir=agents)
    backends = await asyncio.to_thread(Backends.open, context_settings)
    context = ContextService(lambda: backends)
    knowledge = knowledge_files(agents / args.agent / "knowledge")
    await context.Ingest(_requests(args.tenant, knowledge), CTX)

    secret = secrets.token_hex(16)
    settings = GatewaySettings(
        http_port=0,
        peer_timeout_s=same.peer_timeout_s,
        endpoint_ms=same.endpoint_ms,
        speculative_start=same.speculative_start,
        speculate_after_ms=same.speculate_after_ms,
    )
    profiles = load_profiles(agents)
    gateway = DirectGateway(settings, profiles, JsonlSink(Path(args.turns_out)),
                            (recognizer, context, llm, synthesizer))  # fmt: skip
    tenants = {args.tenant: TenantAuth("", secret, frozenset(profiles))}
    sock = socket.create_server(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    media = GatewayWeb(
        tenants, gateway.run_call, clock=gateway.clock, public_url=f"http://127.0.0.1:{port}"
    )
    runner = web.AppRunner(media.app())
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(f"READY {port} {secret}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await llm.backend.aclose()
    await recognizer.close()
    await synthesizer.close()
    await backends.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--agents", type=Path, default=Path("agents"))
    parser.add_argument("--agent", default="acme-dental")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--turns-out", required=True)
    args = parser.parse_args()
    args.agents, args.db = args.agents.resolve(), args.db.resolve()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
