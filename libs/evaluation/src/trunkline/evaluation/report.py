"""The eval report: summary figures, JSON, and the table printed on stdout. Pure.

Figures (``summary``):
- pass rate: scenarios whose every check passed, over those scored (errors count as failed;
  scenarios whose only shortfall is an unsupported check are listed apart);
- faithfulness: of the spoken clauses that state a checkable fact, the share whose facts the
  agent's sources support (the eval's own check); the same over all clauses; the gateway's own
  ``grounded`` flag and guard interventions beside it, and the turns where the two disagree;
- out-of-domain deflection and goodbye hang-up rates over the turns that expected them;
- WER of the caller's turns (scenario text vs the stack's STT transcript) and of the replies
  (event text vs the reply audio transcribed back);
- latency: caller-measured voice-to-voice per turn, p50/p95, share within its budget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from trunkline.evaluation.scoring import ScenarioScore, Status, TurnScore
from trunkline.evaluation.wer import corpus_wer

GROUNDED_TARGET = 0.98
DEFLECTION_TARGET = 0.95


@dataclass(frozen=True, slots=True)
class EvalReport:
    scenarios: tuple[ScenarioScore, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return summarize(self.scenarios)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": dict(self.meta),
            "summary": self.summary(),
            "scenarios": [scenario_dict(s) for s in self.scenarios],
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(min(rank, len(ordered))) - 1]


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _turns(scores: Iterable[ScenarioScore]) -> list[TurnScore]:
    return [t for s in scores for t in s.turns]


def _action_rate(turns: Sequence[TurnScore], kind: str) -> dict[str, Any]:
    wanted = [t for t in turns if kind in t.expects]
    checks = [c for t in wanted for c in t.checks if c.kind == "action" and c.name == kind]
    done = sum(c.status is Status.PASS for c in checks)
    unsupported = sum(c.status is Status.UNSUPPORTED for c in checks)
    return {
        "expected": len(wanted),
        "done": done,
        "unsupported": unsupported,
        "rate": _share(done, len(wanted) - unsupported),
    }


def _faithfulness(turns: Sequence[TurnScore]) -> dict[str, Any]:
    clauses = [c for t in turns for c in t.clauses]
    checkable = [c for c in clauses if c.checkable]
    grounded = [c for c in checkable if c.grounded]
    unsupported = Counter(f for c in checkable for f in c.unsupported)
    with_event = [t for t in turns if t.gateway_grounded is not None and t.reply]
    gateway_yes = [t for t in with_event if t.gateway_grounded]
    disagree = [t for t in gateway_yes if any(not c.grounded for c in t.clauses)]
    return {
        "clauses": len(clauses),
        "checkable_clauses": len(checkable),
        "grounded_checkable_clauses": len(grounded),
        "share_of_checkable": _share(len(grounded), len(checkable)),
        "share_of_all": _share(len(clauses) - len(checkable) + len(grounded), len(clauses)),
        "target": GROUNDED_TARGET,
        "unsupported_facts": dict(unsupported.most_common(20)),
        "gateway": {
            "turns_with_reply": len(with_event),
            "turns_marked_grounded": len(gateway_yes),
            "share_marked_grounded": _share(len(gateway_yes), len(with_event)),
            "interventions": sum(len(t.interventions) for t in turns),
            "marked_grounded_but_unsupported_here": len(disagree),
        },
    }


def _latency(turns: Sequence[TurnScore]) -> dict[str, Any]:
    values = [t.latency_ms for t in turns if t.latency_ms is not None]
    within = sum(1 for t in turns if t.latency_ms is not None and t.latency_ms <= t.budget_ms)
    reached = [t for t in turns if t.reached]
    return {
        "turns_measured": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "max_ms": max(values, default=None),
        "within_budget": within,
        "share_within_budget": _share(within, len(reached)),
    }


def _checks(turns: Sequence[TurnScore]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for t in turns:
        for c in t.checks:
            out.setdefault(c.kind, Counter())[c.status.value] += 1
    return {kind: dict(counts) for kind, counts in sorted(out.items())}


def _status_counts(scores: Sequence[ScenarioScore]) -> dict[str, Any]:
    counts = Counter(s.status.value for s in scores)
    scored = len(scores) - counts.get(Status.UNSUPPORTED.value, 0)
    return {
        "total": len(scores),
        **{status.value: counts.get(status.value, 0) for status in Status},
        "pass_rate": _share(counts.get(Status.PASS.value, 0), scored),
    }


def summarize(scores: Sequence[ScenarioScore]) -> dict[str, Any]:
    turns = _turns(scores)
    reached = [t for t in turns if t.reached]
    agents = sorted({s.agent for s in scores})
    tools = [t for t in turns if "tool" in t.expects]
    tool_checks = [c for t in tools for c in t.checks if c.kind == "action" and
                   c.name.startswith("tool ")]  # fmt: skip
    return {
        "scenarios": _status_counts(scores),
        "per_agent": {a: _status_counts([s for s in scores if s.agent == a]) for a in agents},
        "turns": {
            "total": len(turns),
            "reached": len(reached),
            "passed": sum(t.status is Status.PASS for t in turns),
        },
        "checks": _checks(turns),
        "deflection": {**_action_rate(turns, "deflection"), "target": DEFLECTION_TARGET},
        "hang_up": _action_rate(turns, "hang_up"),
        "escalation": _action_rate(turns, "escalation"),
        "tool_calls": {
            "expected": len(tool_checks),
            "done": sum(c.status is Status.PASS for c in tool_checks),
        },
        "faithfulness": _faithfulness(reached),
        "wer": {
            "caller_turns": corpus_wer(t.caller_wer for t in turns if t.caller_wer is not None),
            "caller_turns_scored": sum(t.caller_wer is not None for t in turns),
            "reply_audio": corpus_wer(t.reply_wer for t in turns if t.reply_wer is not None),
            "reply_audio_scored": sum(t.reply_wer is not None for t in turns),
        },
        "latency": _latency(reached),
    }


def turn_dict(turn: TurnScore) -> dict[str, Any]:
    data = asdict(turn)
    data["status"] = turn.status.value
    data["caller_wer"] = None if turn.caller_wer is None else turn.caller_wer.rate
    data["reply_wer"] = None if turn.reply_wer is None else turn.reply_wer.rate
    for check in data["checks"]:
        check["status"] = str(check["status"])
    return data


def scenario_dict(score: ScenarioScore) -> dict[str, Any]:
    return {
        "name": score.name,
        "agent": score.agent,
        "tenant": score.tenant,
        "where": score.where,
        "tags": list(score.tags),
        "description": score.description,
        "status": score.status.value,
        "call_id": score.call_id,
        "end_reason": score.end_reason,
        "ended_by": score.ended_by,
        "error": score.error,
        "turns": [turn_dict(t) for t in score.turns],
    }


# -- text ---------------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def first_problem(score: ScenarioScore) -> str:
    """The first failed (or unsupported) check of a scenario, for one line of a table."""
    if score.error is not None:
        return f"error: {score.error}"
    for turn in score.turns:
        for check in turn.checks:
            if check.status is not Status.PASS:
                detail = f": {check.detail}" if check.detail else ""
                text = f"turn {turn.index} {check.kind} {check.name}{detail}"
                return text if len(text) <= 110 else text[:109] + "…"
    return ""


def table(report: EvalReport) -> str:
    """One row per scenario, then the summary figures."""
    rows = [("SCENARIO", "AGENT", "STATUS", "TURNS OK", "V2V MS", "FIRST PROBLEM")]
    for s in report.scenarios:
        ok = sum(t.status is Status.PASS for t in s.turns)
        v2v = [t.latency_ms for t in s.turns if t.latency_ms is not None]
        rows.append((s.name, s.agent, s.status.value.upper(), f"{ok}/{len(s.turns)}",
                     "/".join(ms(v) for v in v2v) or "-", first_problem(s)))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
             for r in rows]  # fmt: skip
    lines.insert(1, "-" * min(160, sum(widths) + 10 + len(rows[0][5])))
    return "\n".join([*lines, "", summary_text(report.summary())])


def summary_text(summary: Mapping[str, Any]) -> str:
    sc, faith, lat, wer = (summary[k] for k in ("scenarios", "faithfulness", "latency", "wer"))
    gw = faith["gateway"]
    agents = ", ".join(f"{a} {pct(v['pass_rate'])} of {v['total']}"
                       for a, v in summary["per_agent"].items())  # fmt: skip
    d, h, e = summary["deflection"], summary["hang_up"], summary["escalation"]
    lines = [
        f"pass rate {pct(sc['pass_rate'])}: {sc['pass']} passed, {sc['fail']} failed, "
        f"{sc['error']} errors, {sc['unsupported']} unsupported, of {sc['total']} ({agents})",
        f"faithfulness (eval's check): {pct(faith['share_of_checkable'])} of "
        f"{faith['checkable_clauses']} spoken clauses with checkable facts grounded "
        f"({pct(faith['share_of_all'])} of all {faith['clauses']} clauses; target "
        f"{pct(faith['target'])})",
        f"gateway's word: {gw['turns_marked_grounded']}/{gw['turns_with_reply']} replies marked "
        f"grounded, {gw['interventions']} guard interventions, "
        f"{gw['marked_grounded_but_unsupported_here']} marked grounded but unsupported here",
        f"out of domain deflected: {d['done']}/{d['expected']} ({pct(d['rate'])}; target "
        f"{pct(d['target'])});  goodbyes that ended the call: {h['done']}/{h['expected']};  "
        f"tool calls as expected: {summary['tool_calls']['done']}/"
        f"{summary['tool_calls']['expected']};  escalations: {e['done']}/{e['expected']} "
        f"({e['unsupported']} not scored: no hitl)",
        f"WER caller turns: {pct(wer['caller_turns'])} over {wer['caller_turns_scored']} turns; "
        f"reply audio vs event text: {pct(wer['reply_audio'])} over "
        f"{wer['reply_audio_scored']} replies",
        f"latency (caller-measured voice-to-voice): p50 {ms(lat['p50_ms'])} ms, p95 "
        f"{ms(lat['p95_ms'])} ms over {lat['turns_measured']} turns; within budget "
        f"{lat['within_budget']} ({pct(lat['share_within_budget'])})",
    ]
    top = list(faith["unsupported_facts"].items())[:8]
    if top:
        lines.append("unsupported facts spoken: " + ", ".join(f"{k} x{v}" for k, v in top))
    return "\n".join(lines)
