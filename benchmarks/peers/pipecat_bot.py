"""A Pipecat 1.14 phone bot as its users write it, for ``make bench-peers``.

Runs in Pipecat's OWN virtual environment (``benchmarks/peers/setup.py`` makes it), never in the
project's .venv: ``python pipecat_bot.py --config defaults|best --port N --llm-url URL
--whisper DIR --piper-dir DIR --prompt FILE --transcripts FILE``. Prints ``READY <port>``.

FastAPIWebsocketTransport + TwilioFrameSerializer(auto_hang_up=False), SileroVADAnalyzer and
the user-turn strategies (default: Smart Turn v3.2 after a 0.2 s VAD stop), WhisperSTTService on
a local CTranslate2 directory, OpenAILLMService against llama_cpp.server, PiperTTSService.
``best``: Whisper greedy (beam 1) int8 and the VAD stop set to the given endpoint with a plain
speech-timeout stop (no Smart Turn). A passive observer after STT writes what Pipecat heard
(JSONL: call sid, text) for the word error rate; it changes nothing in the pipeline.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies


class HeardLog(FrameProcessor):
    """Writes each final transcription (what the bot heard) and passes every frame on."""

    def __init__(self, path: Path, call_sid: str) -> None:
        super().__init__()
        self._path = path
        self._call_sid = call_sid

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            with self._path.open("a") as out:
                row = {"call_sid": self._call_sid, "text": frame.text, "t": time.time()}
                out.write(json.dumps(row) + "\n")
        await self.push_frame(frame, direction)


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    prompt = Path(args.prompt).read_text()
    best = args.config == "best"

    @app.websocket("/twilio/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        start: dict[str, Any] = {}
        for _ in range(2):  # "connected", then "start" (Twilio's order)
            message = json.loads(await websocket.receive_text())
            if message.get("event") == "start":
                start = message["start"]
                break
        serializer = TwilioFrameSerializer(
            stream_sid=start["streamSid"],
            call_sid=start.get("callSid"),
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
                serializer=serializer,
            ),
        )  # fmt: skip
        stt = WhisperSTTService(
            settings=WhisperSTTService.Settings(model=args.whisper),
            device="cpu",
            compute_type="int8" if best else "default",
        )
        if best:  # faster-whisper's transcribe() decodes with beam 5 unless told otherwise
            model = stt._model
            assert model is not None
            model.transcribe = functools.partial(model.transcribe, beam_size=1)
        llm = OpenAILLMService(
            api_key="none",
            base_url=args.llm_url,
            settings=OpenAILLMService.Settings(
                model="smollm2-135m-instruct",
                system_instruction=prompt,
                temperature=0.3,
                max_tokens=60,
            ),
        )
        # llama_cpp.server rejects the "developer" role Pipecat uses for its own notes (empty
        # turns); Pipecat's own OLLama/Together/Qwen services set this same flag
        llm.supports_developer_role = False
        tts = PiperTTSService(
            settings=PiperTTSService.Settings(voice="en_US-joe-medium"),
            download_dir=Path(args.piper_dir),
        )
        if best:
            vad = SileroVADAnalyzer(params=VADParams(stop_secs=args.endpoint_ms / 1000))
            strategies = UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)]
            )
            user_params = LLMUserAggregatorParams(vad_analyzer=vad, user_turn_strategies=strategies)
        else:
            user_params = LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
        context = LLMContext()
        aggregators = LLMContextAggregatorPair(context, user_params=user_params)
        heard = HeardLog(Path(args.transcripts), start.get("callSid", ""))
        pipeline = Pipeline([
            transport.input(), stt, heard, aggregators.user(), llm, tts, transport.output(),
            aggregators.assistant(),
        ])  # fmt: skip
        task = PipelineTask(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=16_000),  # Whisper reads 16 kHz
        )
        await PipelineRunner(handle_sigint=False).run(task)

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("defaults", "best"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--whisper", required=True, help="CTranslate2 Whisper model directory")
    parser.add_argument("--piper-dir", required=True, help="directory with en_US-joe-medium.onnx")
    parser.add_argument("--prompt", required=True, help="file with the system prompt")
    parser.add_argument("--transcripts", required=True)
    parser.add_argument("--endpoint-ms", type=float, default=380.0)
    args = parser.parse_args()
    app = build_app(args)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)
    print(f"READY {args.port}", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
