import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.llm.core import (
    ChatMessage,
    MalformedToolCall,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolCallStreamParser,
    ToolSchema,
    render_tool_instructions,
    to_text_protocol,
)

pytestmark = pytest.mark.unit

CALL = '<tool_call>{"name": "lookup_account", "arguments": {"account_id": "12345"}}</tool_call>'


def parser(known: set[str] | None = None) -> ToolCallStreamParser:
    counter = itertools.count()
    return ToolCallStreamParser(new_id=lambda: f"call_{next(counter)}", known_tools=known)


def run(pieces: list[str], known: set[str] | None = None) -> list[object]:
    p = parser(known)
    out: list[object] = []
    for piece in pieces:
        out += p.feed(piece)
    return out + p.finish()


def spoken(items: list[object]) -> str:
    return "".join(i.text for i in items if isinstance(i, TextDelta))


def calls(items: list[object]) -> list[ToolCall]:
    return [i.call for i in items if isinstance(i, ToolCallEvent)]


def test_plain_text_passes_through_immediately() -> None:
    p = parser()
    assert p.feed("Hello there.") == [TextDelta("Hello there.")]
    assert p.finish() == []


def test_call_split_into_single_characters_is_parsed_and_never_spoken() -> None:
    text = "One moment. " + CALL + " Done."
    items = run(list(text))
    assert spoken(items) == "One moment.  Done."
    assert calls(items) == [
        ToolCall(id="call_0", name="lookup_account", arguments='{"account_id":"12345"}')
    ]


@given(st.lists(st.integers(min_value=1, max_value=len(CALL) + 20), max_size=12))
def test_any_chunking_gives_the_same_result(cuts: list[int]) -> None:
    text = "Sure <b> a<tool " + CALL + " bye <tool_"
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in itertools.pairwise([0, *points, len(text)]) if b > a]
    items = run(pieces)
    assert spoken(items) == "Sure <b> a<tool  bye "
    assert [c.name for c in calls(items)] == ["lookup_account"]
    for item in items:
        if isinstance(item, TextDelta):
            assert "<tool_call" not in item.text


def test_a_possible_tag_prefix_is_held_until_decided() -> None:
    p = parser()
    assert p.feed("Hi <tool") == [TextDelta("Hi ")]
    assert p.feed("box>") == [TextDelta("<toolbox>")]


def test_unclosed_call_at_end_is_used_when_its_json_is_complete() -> None:
    items = run(['<tool_call>{"name": "x", "arguments": {}}'])
    assert [c.name for c in calls(items)] == ["x"]


def test_arguments_as_a_json_string_and_parameters_alias_are_accepted() -> None:
    items = run(
        [
            '<tool_call>{"name": "a", "arguments": "{\\"k\\": 1}"}</tool_call>',
            '<tool_call>{"name": "b", "parameters": {"k": 2}}</tool_call>',
            '<tool_call>```json\n{"name": "c"}\n```</tool_call>',
        ]
    )
    assert [(c.name, c.parsed_arguments()) for c in calls(items)] == [
        ("a", {"k": 1}),
        ("b", {"k": 2}),
        ("c", {}),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"arguments": {}}', "missing tool name"),
        ('{"name": "drop_tables"}', "unknown tool"),
        ('{"name": "lookup_account", "arguments": [1]}', "must be a JSON object"),
        ('{"name": "lookup_account", "arguments": "{oops"}', "arguments are not JSON"),
    ],
)
def test_malformed_calls_are_reported_not_spoken(body: str, reason: str) -> None:
    items = run([f"Ok.<tool_call>{body}</tool_call>"], known={"lookup_account"})
    assert spoken(items) == "Ok."
    bad = [i for i in items if isinstance(i, MalformedToolCall)]
    assert len(bad) == 1
    assert reason in bad[0].reason


def test_runaway_call_body_is_cut_off() -> None:
    p = parser()
    items = p.feed("<tool_call>" + "x" * 9000)
    assert isinstance(items[0], MalformedToolCall)
    assert p.feed("after") == [TextDelta("after")]


def test_instructions_list_every_tool_with_its_schema() -> None:
    text = render_tool_instructions(
        [ToolSchema("lookup_account", "Find an account.", {"type": "object"})]
    )
    assert "<tool_call>" in text
    assert '- lookup_account: Find an account. Arguments (JSON schema): {"type":"object"}' in text
    assert render_tool_instructions([]) == ""


def test_native_history_is_rewritten_for_text_models() -> None:
    call = ToolCall("c1", "lookup_account", '{"account_id": "1"}')
    out = to_text_protocol(
        [
            ChatMessage("user", "my account is 1"),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", '{"balance": 10}', tool_call_id="c1", name="lookup_account"),
        ]
    )
    assert out[0] == ChatMessage("user", "my account is 1")
    assert out[1] == ChatMessage(
        "assistant",
        '<tool_call>{"name":"lookup_account","arguments":{"account_id":"1"}}</tool_call>',
    )
    assert out[2].role == "user"
    assert out[2].content.startswith("<tool_response>")
    assert '"name": "lookup_account"' in out[2].content


def test_an_echoed_tool_response_is_dropped_not_spoken() -> None:
    text = 'Sure.<tool_response>{"name": "x", "content": "1"}</tool_response> Bye.<tool_response>{'
    assert spoken(run(list(text))) == "Sure. Bye."
