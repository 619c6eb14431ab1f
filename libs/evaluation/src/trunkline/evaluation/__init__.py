"""Conversation eval (DESIGN.md §8): scenarios as data, run against a stack, scored and reported.

Pure parts: :mod:`scenario` (model and loader, ``file:line`` errors), :mod:`normalize` and
:mod:`facts` (comparable text, the independent grounding check), :mod:`scoring`, :mod:`report`
and :mod:`html`. I/O: :mod:`sources` (reads the agents folder), :mod:`runner` (sequences calls
through a :class:`CallDriver`; ``trunkline eval`` supplies the one that dials the local stack
over the Twilio protocol), :mod:`events` (protobuf events as plain data).

Library use (a replay gate)::

    scenarios = load_scenarios([Path("agents/acme-dental/eval")])
    sources = load_agent_sources(Path("agents"))
    report = await run_eval(scenarios, MyDriver(), sources)
    report.summary()["scenarios"]["pass_rate"]; table(report); html_page(report)
"""

from trunkline.evaluation.html import html_page
from trunkline.evaluation.observation import (
    CallSeen,
    Intervention,
    ToolCallSeen,
    TurnEvent,
    TurnSeen,
    assign_events,
)
from trunkline.evaluation.report import EvalReport, summarize, table
from trunkline.evaluation.runner import CallDriver, run_eval
from trunkline.evaluation.scenario import (
    Action,
    ActionKind,
    Scenario,
    ScenarioError,
    ScenarioTurn,
    check_references,
    load_scenarios,
    parse_scenarios,
    select,
)
from trunkline.evaluation.scoring import (
    Check,
    ScenarioScore,
    ScoringOptions,
    Status,
    TurnScore,
    score_scenario,
)
from trunkline.evaluation.sources import AgentSources, SourcesError, load_agent_sources

__all__ = [
    "Action",
    "ActionKind",
    "AgentSources",
    "CallDriver",
    "CallSeen",
    "Check",
    "EvalReport",
    "Intervention",
    "Scenario",
    "ScenarioError",
    "ScenarioScore",
    "ScenarioTurn",
    "ScoringOptions",
    "SourcesError",
    "Status",
    "ToolCallSeen",
    "TurnEvent",
    "TurnScore",
    "TurnSeen",
    "assign_events",
    "check_references",
    "html_page",
    "load_agent_sources",
    "load_scenarios",
    "parse_scenarios",
    "run_eval",
    "score_scenario",
    "select",
    "summarize",
    "table",
]
