import pytest

from trunkline.agents import AgentSpec
from trunkline.llm.core import (
    ChatMessage,
    ContextChunk,
    PromptBudgetError,
    ToolCall,
    compile_prompt,
    prompt_from_spec,
)
from trunkline.redaction.injection import data_block

pytestmark = pytest.mark.unit


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


def spec(budget: int = 200, **extra: object) -> AgentSpec:
    data: dict[str, object] = {
        "name": "acme",
        "version": "2",
        "system_prompt": "You are the Acme receptionist.",
        "greeting": "Hello, Acme.",
        "token_budget": {"prompt_tokens": budget},
        "model": {"name": "m", "sampling": {"max_reply_tokens": 10, "seed": 3}},
        "tools": [
            {
                "name": "lookup_account",
                "description": "Find an account.",
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                "endpoint": "http://tools/lookup",
                "allowed_roles": ["caller"],
            },
            {
                "name": "refund",
                "description": "Refund.",
                "endpoint": "http://tools/refund",
                "allowed_roles": ["operator"],
                "risk": "high",
            },
        ],
    }
    data.update(extra)
    return AgentSpec.model_validate(data)


def history(turns: int) -> list[ChatMessage]:
    out = [ChatMessage("assistant", "Hello, Acme.")]
    for i in range(turns):
        out += [ChatMessage("user", f"question {i} a b c"), ChatMessage("assistant", f"answer {i}")]
    return out


def test_layout_system_history_user_and_sampling() -> None:
    compiled = compile_prompt(
        prompt_from_spec(
            spec=spec(),
            history=history(1),
            user_text="When are you open?",
            context=[ContextChunk("1", "hours.md", "Open 8 to 6.")],
        ),
        words,
    )
    messages = compiled.request.messages
    roles = [m.role for m in messages]
    assert roles == ["system", "assistant", "user", "assistant", "system", "user"]
    assert messages[0].content.startswith("You are the Acme receptionist.")
    # the per-turn context comes after the history, so the prefix stays the same across turns
    assert "Open 8 to 6." not in messages[0].content
    assert "[1] (hours.md) Open 8 to 6." in messages[-2].content
    assert messages[-1] == ChatMessage("user", "When are you open?")
    assert compiled.request.sampling.max_tokens == 10
    assert compiled.request.sampling.seed == 3
    assert compiled.request.model == "m"
    assert compiled.history_dropped == 0
    tool_json = (
        '{"name": "lookup_account", "description": "Find an account.", "parameters": '
        '{"type": "object", "properties": {"id": {"type": "string"}}}}'
    )
    assert compiled.prompt_tokens == sum(words(m.content) + 4 for m in messages) + words(tool_json)


def test_tools_are_filtered_by_caller_role() -> None:
    caller = compile_prompt(prompt_from_spec(spec(), [], "hi", caller_role="caller"), words)
    operator = compile_prompt(prompt_from_spec(spec(), [], "hi", caller_role="operator"), words)
    guest = compile_prompt(prompt_from_spec(spec(), [], "hi", caller_role="guest"), words)
    assert [t.name for t in caller.request.tools] == ["lookup_account"]
    assert [t.name for t in operator.request.tools] == ["refund"]
    assert guest.request.tools == ()
    assert guest.request.tool_choice == "none"
    assert caller.request.tool_choice == "auto"


def test_text_mode_puts_the_protocol_in_the_system_prompt() -> None:
    compiled = compile_prompt(prompt_from_spec(spec(), [], "hi"), words, tool_mode="text")
    system = compiled.request.messages[0].content
    assert "<tool_call>" in system
    assert "lookup_account" in system
    assert "refund" not in system


def test_oldest_history_is_trimmed_first_to_fit_the_budget() -> None:
    full = compile_prompt(prompt_from_spec(spec(budget=10_000), history(10), "now?"), words)
    budget = full.prompt_tokens - 20
    compiled = compile_prompt(prompt_from_spec(spec(budget=budget), history(10), "now?"), words)
    assert compiled.prompt_tokens <= budget
    assert compiled.history_dropped > 0
    kept = compiled.request.messages[1:-1]
    assert kept == tuple(history(10)[-len(kept) :])
    assert compiled.history_kept + compiled.history_dropped == len(history(10))


def test_trimming_never_leaves_a_tool_result_without_its_call() -> None:
    call = ToolCall("c1", "lookup_account", '{"id": "1"}')
    past = [
        ChatMessage("user", "one two three four five six seven eight nine ten"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "balance 10", tool_call_id="c1", name="lookup_account"),
        ChatMessage("assistant", "Your balance is 10."),
    ]
    base = compile_prompt(prompt_from_spec(spec(budget=10_000), [], "next"), words).prompt_tokens
    # room for the last two messages only: the tool result would lead without its call
    budget = base + (words("balance 10") + 4) + (words("Your balance is 10.") + 4)
    compiled = compile_prompt(prompt_from_spec(spec(budget=budget), past, "next"), words)
    kept = compiled.request.messages[1:-1]
    assert kept == (ChatMessage("assistant", "Your balance is 10."),)


def test_lowest_ranked_context_goes_when_history_cannot_make_room() -> None:
    chunks = [ContextChunk(str(i), "kb", "fact " * 30) for i in range(1, 4)]
    no_ctx = compile_prompt(prompt_from_spec(spec(budget=10_000), [], "q"), words).prompt_tokens
    fence = words(data_block("x")[0]) - 1  # the data rule and the <data> fence around it
    budget = no_ctx + 4 + 2 * 32 + 12 + fence  # the context message: overhead, heading, 2 chunks
    compiled = compile_prompt(prompt_from_spec(spec(budget=budget), [], "q", context=chunks), words)
    assert compiled.context_kept == 2
    assert compiled.context_dropped == 1
    assert "[2] (kb)" in compiled.request.messages[-2].content
    assert "[3]" not in compiled.request.messages[-2].content


def test_consecutive_turns_share_everything_up_to_the_previous_turn() -> None:
    facts = [ContextChunk("1", "kb", "Open 8 to 6.")]
    other = [ContextChunk("1", "kb", "Whitening 299 dollars.")]
    first = compile_prompt(
        prompt_from_spec(spec(), history(1), "open?", context=facts), words
    ).request.messages
    past = [*history(1), ChatMessage("user", "open?"), ChatMessage("assistant", "8 to 6.")]
    second = compile_prompt(
        prompt_from_spec(spec(), past, "price?", context=other), words
    ).request.messages
    assert second[: len(history(1)) + 1] == first[: len(history(1)) + 1]


def test_old_layout_keeps_the_context_inside_the_system_prompt() -> None:
    facts = [ContextChunk("1", "kb", "Open 8 to 6.")]
    compiled = compile_prompt(
        prompt_from_spec(spec(), history(1), "open?", context=facts),
        words,
        layout="context_in_system",
    )
    messages = compiled.request.messages
    assert [m.role for m in messages] == ["system", "assistant", "user", "assistant", "user"]
    assert "[1] (kb) Open 8 to 6." in messages[0].content


def test_budget_too_small_for_the_essentials_is_a_clear_error() -> None:
    small = spec(budget=20)
    with pytest.raises(PromptBudgetError, match="acme@2: system prompt, tools and the user turn"):
        compile_prompt(prompt_from_spec(small, [], "a long question " * 10), words)


def test_continuation_after_tool_results_has_no_new_user_turn() -> None:
    call = ToolCall("c1", "lookup_account", '{"id": "1"}')
    past = [
        ChatMessage("user", "account 1 please"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "balance 10", tool_call_id="c1", name="lookup_account"),
    ]
    compiled = compile_prompt(prompt_from_spec(spec(), past, None), words)
    assert compiled.request.messages[-1].role == "tool"
