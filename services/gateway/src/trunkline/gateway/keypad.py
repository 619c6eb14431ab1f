"""The session's side of the keypad menu (:mod:`trunkline.gateway.core.keypad` decides): the
menu built from the session's config, and the work of a turn that says a fixed line (a
``StartWork`` with ``line``): TTS only, its audio back to the turn machine as reply audio."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from trunkline.agents.dtmf import KeyAction, MenuItem
from trunkline.gateway.core.events import Event, ReplyAudio, StartWork, WorkDone
from trunkline.gateway.core.keypad import KeypadMenu
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.peers.base import Synthesizer
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.records import TurnRecord

KEYPAD = "keypad"  # the turn's reply_source: a line the keypad menu asked for


def keypad_menu(
    items: Mapping[str, MenuItem], *, person_available: bool, no_person_line: str
) -> KeypadMenu:
    return KeypadMenu(items, person_available=person_available, no_person_line=no_person_line)


def fixed_lines(items: Mapping[str, MenuItem], no_person_line: str) -> frozenset[str]:
    """The menu's own lines (rendered once per agent version and kept by the filler cache);
    a repeated reply is synthesised afresh."""
    said = {item.text for item in items.values() if item.action is KeyAction.SAY}
    if any(item.action is KeyAction.PERSON for item in items.values()):
        said.add(no_person_line)
    return frozenset(said)


async def say_line(
    work: StartWork,
    record: TurnRecord,
    emit: Callable[[Event], None],
    *,
    call: CallInfo,
    tts: Synthesizer,
    fillers: FillerCache,
    cached: frozenset[str],
) -> None:
    """Speak ``work.line`` as the turn's one clause, then end the turn's work."""
    line = work.line
    record.generated_text = line
    record.reply_source, record.grounded = KEYPAD, True
    if line in cached:
        pcm = await fillers.get(tts, call, line)
        record.tts_audio_s += len(pcm) / (2 * tts.sample_rate)
        emit(ReplyAudio(work.turn_id, 0, line, pcm, last=True))
    else:
        async for pcm in tts.synthesize(call, line):
            record.tts_audio_s += len(pcm) / (2 * tts.sample_rate)
            emit(ReplyAudio(work.turn_id, 0, line, pcm, last=False))
        emit(ReplyAudio(work.turn_id, 0, line, b"", last=True))
    emit(WorkDone(work.turn_id))
