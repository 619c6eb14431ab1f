"""Human-readable output of a call: the conversation and a per-turn latency table."""

from __future__ import annotations

from trunkline.cli.caller.result import CallResult


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def conversation(result: CallResult) -> str:
    lines = []
    if result.greeting is not None and result.greeting.first_audio_ms is not None:
        lines.append(f"agent : (greeting, {_ms(result.greeting.played_ms)} ms of audio)")
    for turn in result.turns:
        said = turn.caller_text if turn.caller_text else f"({turn.source} audio)"
        lines.append(f"caller: {said}")
        if turn.outcome != "answered":
            lines.append("agent : (no reply)")
            continue
        heard = turn.agent_text if turn.agent_text else "(audio, no transcript source)"
        lines.append(f"agent : {heard}")
    return "\n".join(lines)


HEADER = ("turn", "source", "v2v ms", "reply ms", "rx ms", "barge clear", "barge stop", "outcome")


def latency_table(result: CallResult) -> str:
    rows = [HEADER]
    for t in result.turns:
        rows.append(
            (
                str(t.index),
                t.source,
                _ms(t.voice_to_voice_ms),
                _ms(t.reply_played_ms),
                _ms(t.reply_received_ms),
                _ms(t.barge_in_clear_ms),
                _ms(t.barge_in_stop_ms),
                t.outcome,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    out = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    s = result.summary()
    out.append(
        f"voice-to-voice p50 {_ms(s['voice_to_voice_p50_ms'])} ms, "
        f"p95 {_ms(s['voice_to_voice_p95_ms'])} ms over {len(result.latencies())} turns; "
        f"barge-in stop p95 {_ms(s['barge_in_stop_p95_ms'])} ms"
    )
    out.append(
        f"call {result.call_sid}: {result.duration_ms / 1000:.1f} s, {result.frames_sent} frames "
        f"sent (worst {result.max_send_late_ms:.1f} ms late), marks {result.marks_echoed}/"
        f"{result.marks_received} echoed, {result.clears} clears, "
        f"{len(result.bad_messages)} bad messages, ended by {result.ended_by}"
    )
    return "\n".join(out)
