from dataclasses import replace
from itertools import pairwise

import pytest

from trunkline.agents import AgentSpec
from trunkline.llm.core import (
    ChatMessage,
    GenerationRequest,
    HistoryPolicy,
    ToolCall,
    compact_history,
    compile_prompt,
    prompt_from_spec,
)
from trunkline.llm.core.history import folded_count, split_turns, summary_line

pytestmark = pytest.mark.unit

OVERHEAD = 4


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


def cost(message: ChatMessage) -> int:
    return words(message.content) + OVERHEAD


def spec(budget: int = 4000) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "name": "acme",
            "version": "1",
            "system_prompt": "You are the Acme receptionist. Answer in one short sentence.",
            "greeting": "Hello, Acme Dental.",
            "token_budget": {"prompt_tokens": budget},
            "model": {"name": "m", "sampling": {"max_reply_tokens": 10}},
        }
    )


def question(i: int) -> str:
    return f"caller question number {i} about opening hours and prices please"


def answer(i: int) -> str:
    return f"agent answer number {i}: we are open from nine to five on weekdays."


def flatten(request: GenerationRequest) -> list[str]:
    """The prompt as the backend sees it, one entry per message (a stand-in for its tokens)."""
    return [f"{m.role}:{m.content}" for m in request.messages]


def common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokens_of(messages: list[str]) -> int:
    return sum(words(m.split(":", 1)[1]) + OVERHEAD for m in messages)


def simulate(turns: int, policy: HistoryPolicy, budget: int = 4000) -> list[dict[str, int]]:
    """A call of ``turns`` caller turns, each answered; per turn what a prefix cache would
    reuse and evaluate (whole messages as the unit), with a context block per turn."""
    history = [ChatMessage("assistant", "Hello, Acme Dental.")]
    previous: list[str] = []
    rows = []
    for i in range(turns):
        parts = prompt_from_spec(spec(budget), history, question(i))
        parts = replace(parts, context_text=f"facts for question {i}")
        compiled = compile_prompt(parts, words, message_overhead=OVERHEAD, history_policy=policy)
        prompt = flatten(compiled.request)
        shared = common_prefix(previous, prompt)
        rows.append(
            {
                "prompt": compiled.prompt_tokens,
                "reused": tokens_of(prompt[:shared]),
                "evaluated": tokens_of(prompt[shared:]),
                "summarized": compiled.history_summarized,
                "prefix_messages": shared,
                "messages": len(prompt),
            }
        )
        previous = prompt
        history += [ChatMessage("user", question(i)), ChatMessage("assistant", answer(i))]
    return rows


def test_thirty_turns_evaluate_a_bounded_number_of_tokens_per_turn() -> None:
    policy = HistoryPolicy(verbatim_tokens=120, fold_turns=3, summary_tokens=60)
    rows = simulate(30, policy)
    bound = policy.verbatim_tokens + policy.summary_tokens + 60  # + context, user, template
    assert max(r["evaluated"] for r in rows[1:]) <= bound
    assert max(r["prompt"] for r in rows) <= 20 + bound  # system prompt on top
    # without folding, the whole history stays: the prompt grows with the call
    unbounded = simulate(30, HistoryPolicy(verbatim_tokens=0))
    assert unbounded[-1]["prompt"] > 3 * rows[-1]["prompt"]
    # a turn between folds evaluates only the last exchange, the context block and the turn
    steady = [r for prev, r in pairwise(rows) if r["summarized"] == prev["summarized"]]
    assert len(steady) >= 20
    fence = 2  # the context block is fenced as data: <data> … </data>
    assert max(r["evaluated"] for r in steady) <= 2 * 14 + 2 * OVERHEAD + 2 + OVERHEAD + 12 + fence


def test_prefix_is_unchanged_between_compactions() -> None:
    policy = HistoryPolicy(verbatim_tokens=120, fold_turns=3, summary_tokens=60)
    rows = simulate(30, policy)
    folds = [i for i in range(1, 30) if rows[i]["summarized"] != rows[i - 1]["summarized"]]
    assert folds, "the call is long enough to fold"
    for i in range(1, 30):
        if i in folds:
            # the summary changed: only the system message is shared with the previous turn
            assert rows[i]["prefix_messages"] == 1
        else:
            # everything before the previous turn's context block and caller turn is reused
            assert rows[i]["prefix_messages"] == rows[i - 1]["messages"] - 2
    # folds come in blocks: the prefix changes about once every fold_turns turns, not every turn
    assert len(folds) <= 30 // policy.fold_turns + 1
    assert all(b - a >= policy.fold_turns - 1 for a, b in pairwise(folds))
    assert sum(b - a == policy.fold_turns for a, b in pairwise(folds)) >= len(folds) - 2
    # and the folded count only grows, by multiples of the block (in turns)
    summarized = [r["summarized"] for r in rows]
    assert summarized == sorted(summarized)


def test_fold_point_moves_only_forward_in_blocks() -> None:
    policy = HistoryPolicy(verbatim_tokens=50, fold_turns=4)
    costs: list[int] = []
    seen = []
    for size in [7, 30, 12, 5, 40, 9, 9, 9, 25, 3, 3, 60, 8, 8, 8, 8, 8, 8, 8, 8]:
        costs.append(size)
        fold = folded_count(costs, policy)
        step = fold - (seen[-1] if seen else 0)
        seen.append(fold)
        assert step % 4 == 0 or fold == len(costs)  # whole blocks, or everything
        assert sum(costs[fold:]) <= 50 or fold == len(costs)
    assert seen == sorted(seen)
    assert seen[-1] > 0
    assert folded_count([10, 10], HistoryPolicy(verbatim_tokens=0)) == 0


def test_turns_start_at_caller_messages_and_keep_tool_results() -> None:
    call = ToolCall("c1", "lookup", "{}")
    history = [
        ChatMessage("assistant", "Hello."),
        ChatMessage("user", "my account?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"balance": 3}', tool_call_id="c1", name="lookup"),
        ChatMessage("assistant", "You owe 3."),
        ChatMessage("user", "thanks"),
    ]
    turns = split_turns(history)
    assert [len(t) for t in turns] == [1, 4, 1]
    assert turns[1][2].role == "tool"


def test_summary_quotes_the_callers_questions_shortened_and_capped() -> None:
    policy = HistoryPolicy(verbatim_tokens=30, fold_turns=2, summary_tokens=40, question_words=5)
    history = [ChatMessage("assistant", "Hello.")]
    for i in range(8):
        history += [ChatMessage("user", question(i)), ChatMessage("assistant", answer(i))]
    compact = compact_history(history, cost, words, policy)
    assert compact.summary is not None
    assert compact.summary.role == "system"
    text = compact.summary.content
    assert text.startswith("Earlier in this call the caller asked: …")  # older ones dropped
    assert words(text) <= 40
    last_folded = [m for m in history[: compact.folded] if m.role == "user"][-1]
    assert '"caller question number 6 about…"' in text or last_folded.content.split()[3] in text
    assert "agent answer" not in text
    assert compact.history == tuple(history[compact.folded :])
    assert sum(cost(m) for m in compact.history) <= 30


def test_a_pending_tool_result_is_never_folded() -> None:
    call = ToolCall("c1", "lookup", "{}")
    history = [
        ChatMessage("user", "a " * 50),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "b " * 50, tool_call_id="c1", name="lookup"),
    ]
    compact = compact_history(history, cost, words, HistoryPolicy(verbatim_tokens=10, fold_turns=1))
    assert compact.history == tuple(history)


def test_summary_line_is_empty_when_nothing_fits() -> None:
    policy = HistoryPolicy(summary_tokens=3)
    assert summary_line(["what are your hours"], words, policy) == ""
    assert summary_line(["hours?"], words, HistoryPolicy()) == (
        'Earlier in this call the caller asked: "hours?".'
    )


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="fold_turns"):
        HistoryPolicy(fold_turns=0)
