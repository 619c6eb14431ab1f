"""The report as one self-contained HTML page: headline figures, a latency chart, a table of
scenarios with each turn's checks folded under it. Pure (returns a string); no scripts, no
external resources."""

from __future__ import annotations

from html import escape
from typing import Any

from trunkline.evaluation.report import EvalReport, ms, pct
from trunkline.evaluation.scoring import ScenarioScore, Status, TurnScore

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px;margin:0 0 4px} .meta{color:#666;font-size:12px;margin-bottom:16px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:16px}
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:150px}
.tile b{display:block;font-size:20px} .tile span{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%} td,th{padding:3px 6px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top;font-size:13px}
.pass{color:#17803d}.fail{color:#c0262d}.error{color:#c0262d}.unsupported{color:#a66a00}
details{margin:2px 0} summary{cursor:pointer} .turn{margin:4px 0 8px 16px;font-size:12px}
.turn td{font-size:12px;border:0;padding:1px 4px} code{background:#f4f4f4;padding:0 3px}
svg{border:1px solid #eee}
"""


def _tile(value: str, label: str) -> str:
    return f'<div class="tile"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _tiles(summary: dict[str, Any]) -> str:
    sc, faith, lat, wer = (summary[k] for k in ("scenarios", "faithfulness", "latency", "wer"))
    d, h = summary["deflection"], summary["hang_up"]
    return '<div class="tiles">' + "".join([
        _tile(pct(sc["pass_rate"]), f"pass rate ({sc['pass']}/{sc['total']} scenarios)"),
        _tile(pct(faith["share_of_checkable"]),
              f"clauses with facts grounded ({faith['checkable_clauses']})"),
        _tile(pct(faith["gateway"]["share_marked_grounded"]), "replies marked grounded by gateway"),
        _tile(pct(d["rate"]), f"out of domain deflected ({d['done']}/{d['expected']})"),
        _tile(pct(h["rate"]), f"goodbyes that hung up ({h['done']}/{h['expected']})"),
        _tile(pct(wer["caller_turns"]), "WER of the caller's turns"),
        _tile(f"{ms(lat['p50_ms'])} / {ms(lat['p95_ms'])} ms", "voice-to-voice p50 / p95"),
        _tile(pct(lat["share_within_budget"]), "turns within latency budget"),
    ]) + "</div>"  # fmt: skip


def _chart(report: EvalReport) -> str:
    """Each reached turn's voice-to-voice latency as a bar, its budget as a tick."""
    turns = [t for s in report.scenarios for t in s.turns if t.reached]
    if not turns:
        return ""
    top = max([t.budget_ms for t in turns] + [t.latency_ms or 0.0 for t in turns]) or 1.0
    width, height, bar = 1100, 160, max(2.0, min(12.0, 1100 / len(turns) - 1))
    parts = [f'<svg width="{width}" height="{height + 20}" role="img" '
             f'aria-label="voice-to-voice latency per turn">']  # fmt: skip
    for i, t in enumerate(turns):
        x = i * (bar + 1)
        budget_y = height - t.budget_ms / top * height
        if t.latency_ms is not None:
            h = t.latency_ms / top * height
            colour = "#17803d" if t.latency_ms <= t.budget_ms else "#c0262d"
            parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{ms(t.latency_ms)} ms '
                         f'(budget {ms(t.budget_ms)})</title></rect>')  # fmt: skip
        parts.append(f'<line x1="{x:.1f}" x2="{x + bar:.1f}" y1="{budget_y:.1f}" '
                     f'y2="{budget_y:.1f}" stroke="#333"/>')  # fmt: skip
    parts.append(
        f'<text x="0" y="{height + 15}" font-size="11">voice-to-voice per turn '
        f"(bar; green within budget, tick = budget), scale 0-{top:.0f} ms</text></svg>"
    )
    return "".join(parts)


def _turn(turn: TurnScore) -> str:
    rows = [
        ("caller said", turn.said or f"({turn.source})"),
        ("STT heard", turn.transcript),
        ("agent reply", turn.reply),
        ("reply audio heard as", turn.reply_heard or ""),
        ("reply source / intent", f"{', '.join(turn.reply_sources) or '-'} / "
                                  f"{', '.join(turn.intents) or '-'}"),
        ("tool calls", "; ".join(turn.tool_calls)),
        ("latency", f"{ms(turn.latency_ms)} ms (budget {ms(turn.budget_ms)})"),
        ("gateway grounded", "-" if turn.gateway_grounded is None else str(turn.gateway_grounded)),
        ("guard interventions", "; ".join(turn.interventions)),
    ]  # fmt: skip
    checks = "".join(
        f'<tr><td class="{c.status.value}">{c.status.value}</td><td>{escape(c.kind)}</td>'
        f"<td>{escape(c.name)}</td><td>{escape(c.detail)}</td></tr>"
        for c in turn.checks
    )
    info = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows if v)
    return (f'<div class="turn"><b class="{turn.status.value}">turn {turn.index}: '
            f"{turn.status.value}</b> <code>{escape(turn.where)}</code><table>{info}</table>"
            f"<table>{checks}</table></div>")  # fmt: skip


def _scenario(score: ScenarioScore) -> str:
    status = score.status.value
    ok = sum(t.status is Status.PASS for t in score.turns)
    body = "".join(_turn(t) for t in score.turns)
    if score.error:
        body = f'<div class="turn error">{escape(score.error)}</div>' + body
    return (f'<tr><td><details><summary>{escape(score.name)}</summary>'
            f'<div class="meta">{escape(score.description)} <code>{escape(score.where)}</code> '
            f"call {escape(score.call_id)}, ended: {escape(score.end_reason or score.ended_by)}"
            f"</div>{body}</details></td><td>{escape(score.agent)}</td>"
            f'<td class="{status}">{status}</td><td>{ok}/{len(score.turns)}</td></tr>')  # fmt: skip


def html_page(report: EvalReport, title: str = "Trunkline conversation eval") -> str:
    summary = report.summary()
    meta = " &middot; ".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in report.meta.items())
    facts = summary["faithfulness"]["unsupported_facts"]
    unsupported = ", ".join(f"<code>{escape(k)}</code> &times;{v}" for k, v in facts.items())
    rows = "".join(_scenario(s) for s in report.scenarios)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<div class="meta">{meta}</div>{_tiles(summary)}{_chart(report)}'
        f"<p>Unsupported facts spoken: {unsupported or 'none'}</p>"
        f"<table><tr><th>scenario (click for turns)</th><th>agent</th><th>status</th>"
        f"<th>turns ok</th></tr>{rows}</table></body></html>"
    )
