"""Turn a scenario into audio before dialling: WAV files read, text synthesized by the TTS."""

from __future__ import annotations

from collections.abc import Sequence

from trunkline.cli.caller.scenario import CallerTurn, PreparedTurn, prepare_wavs
from trunkline.cli.caller.tts import caller_voice, list_voices, synthesize

AUTO_VOICE = "auto"
SAME_VOICE_RATE = 1.1  # "auto" with no second voice: the same voice, a little faster


async def prepare_script(
    turns: Sequence[CallerTurn],
    *,
    tts_addr: str | None = None,
    tenant: str = "",
    voice: str = AUTO_VOICE,
    agent_voice: str = "",
    speaking_rate: float = 0.0,
) -> list[PreparedTurn]:
    """Audio for every turn. ``voice="auto"``: a TTS voice other than ``agent_voice`` if the
    service has one, else its default voice at a different speaking rate (unless one is set)."""
    audio = prepare_wavs(turns)
    texts = {i: t.text for i, t in enumerate(turns) if t.wav is None and t.text is not None}
    if texts:
        if not tts_addr:
            raise ValueError("text turns need a TTS service address (--tts-addr)")
        if voice == AUTO_VOICE:
            voice = caller_voice(await list_voices(tts_addr), agent_voice)
            if not voice and not speaking_rate:
                speaking_rate = SAME_VOICE_RATE
        spoken = await synthesize(
            tts_addr,
            list(texts.values()),
            tenant=tenant or "simulated-caller",
            voice=voice,
            speaking_rate=speaking_rate,
        )
        audio.update(zip(texts.keys(), spoken, strict=True))
    return [PreparedTurn(turn, audio[i]) for i, turn in enumerate(turns)]
