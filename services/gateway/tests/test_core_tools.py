"""Tool-call decisions: round limit, unknown tool, RBAC, argument schema, risk."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from trunkline.gateway.core.tools import (
    RESULT_LIMIT,
    Execute,
    Refuse,
    ToolBook,
    ToolPolicy,
    ToolStatus,
    result_json,
)

pytestmark = pytest.mark.unit

LOOKUP = ToolPolicy(
    name="lookup_account",
    endpoint="http://crm/tools/lookup_account",
    parameters={
        "type": "object",
        "properties": {"account_id": {"type": "string", "pattern": "^[0-9]+$"}},
        "required": ["account_id"],
    },
    allowed_roles=("caller", "operator"),
)
REFUND = ToolPolicy(
    name="issue_refund",
    endpoint="http://crm/tools/issue_refund",
    parameters={"type": "object", "properties": {"amount_usd": {"type": "number"}}},
    allowed_roles=("caller", "operator"),
    high_risk=True,
)
BOOK = ToolBook([LOOKUP, REFUND], max_rounds=2)


def refused(decision: Execute | Refuse) -> Refuse:
    assert isinstance(decision, Refuse), decision
    return decision


def test_an_allowed_valid_call_executes_with_parsed_arguments() -> None:
    decision = BOOK.decide("lookup_account", '{"account_id": "441729"}', "caller", 0)
    assert decision == Execute(LOOKUP, {"account_id": "441729"})


def test_a_role_outside_allowed_roles_is_forbidden() -> None:
    refusal = refused(BOOK.decide("lookup_account", '{"account_id": "1"}', "guest", 0))
    assert refusal.status is ToolStatus.FORBIDDEN
    assert "'guest' may not use lookup_account" in refusal.reason
    assert refusal.result["error"] == "forbidden"


def test_a_wildcard_role_admits_everyone() -> None:
    open_tool = ToolPolicy(name="hours", endpoint="http://x/hours", allowed_roles=("*",))
    assert isinstance(ToolBook([open_tool]).decide("hours", "{}", "anyone", 0), Execute)


def test_an_undeclared_tool_is_unknown() -> None:
    refusal = refused(BOOK.decide("delete_everything", "{}", "caller", 0))
    assert refusal.status is ToolStatus.UNKNOWN
    assert "issue_refund, lookup_account" in refusal.reason


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('["441729"]', "must be a JSON object, got list"),
        ("{}", "'account_id' is a required property"),
        ('{"account_id": "12ab"}', "account_id: '12ab' does not match"),
        ('{"account_id": 441729}', "account_id: 441729 is not of type 'string'"),
    ],
)
def test_arguments_are_checked_against_the_schema(arguments: str, expected: str) -> None:
    refusal = refused(BOOK.decide("lookup_account", arguments, "caller", 0))
    assert refusal.status is ToolStatus.INVALID
    assert expected in refusal.reason


def test_a_high_risk_tool_needs_approval_and_is_never_executed() -> None:
    refusal = refused(BOOK.decide("issue_refund", '{"amount_usd": 20}', "caller", 0))
    assert refusal.status is ToolStatus.NEEDS_APPROVAL
    assert "needs human approval" in refusal.reason
    assert "not available yet" in refusal.reason


def test_rbac_is_checked_before_risk_and_schema() -> None:
    refusal = refused(BOOK.decide("issue_refund", "{bad", "guest", 0))
    assert refusal.status is ToolStatus.FORBIDDEN


def test_the_round_limit_refuses_further_calls() -> None:
    assert BOOK.may_continue(1)
    assert not BOOK.may_continue(2)
    refusal = refused(BOOK.decide("lookup_account", '{"account_id": "1"}', "caller", 2))
    assert refusal.status is ToolStatus.ROUND_LIMIT


def test_bad_books_are_refused() -> None:
    with pytest.raises(ValueError, match="max_rounds"):
        ToolBook([], max_rounds=0)
    broken = ToolPolicy(name="x", endpoint="http://x", parameters={"type": "nonsense"})
    with pytest.raises(ValueError, match="tool x: invalid parameters schema"):
        ToolBook([broken])


def test_results_are_compact_json_cut_to_the_limit() -> None:
    assert result_json({"a": [1, 2]}) == '{"a":[1,2]}'
    long = result_json({"text": "x" * (RESULT_LIMIT * 2)})
    assert len(long) == RESULT_LIMIT
    assert json.loads(result_json({"n": "é"})) == {"n": "é"}


HEARD = ToolBook(
    [
        replace(
            LOOKUP,
            call_when_heard=True,
            parameters={
                "type": "object",
                "properties": {"account_id": {"type": "string", "pattern": "^[0-9]{6}$"}},
                "required": ["account_id"],
            },
            allowed_roles=("caller",),
        ),
        REFUND,
    ]
)


@pytest.mark.parametrize(
    ("text", "role", "calls"),
    [
        ("Please look up my account 441729.", "caller", [("lookup_account", "441729")]),
        # Whisper heard "account" as "count": the number's other cue still gives it
        ("Please look up, count number 441-729.", "caller", [("lookup_account", "441729")]),
        ("account four four one, seven two nine", "caller", [("lookup_account", "441729")]),
        ("When are you open on Saturday?", "caller", []),
        ("Please look up my account 441729.", "operator", []),  # not this role's tool
        ("It is account 4411729.", "caller", []),  # not valid against its schema: the model's
        ("My phone is 5550123.", "caller", []),  # no cue for an account
        ("My card number is 4539 1488 0343 6467.", "caller", []),  # a card is never an account
        ("my card number is four five three nine, one four eight eight", "caller", []),
    ],
)
def test_a_tool_called_when_heard_gets_the_arguments_the_turn_gives(
    text: str, role: str, calls: list[tuple[str, str]]
) -> None:
    heard = HEARD.heard_calls(text, role)
    assert [(name, json.loads(args)["account_id"]) for name, args in heard] == calls


def test_only_tools_marked_call_when_heard_are_heard() -> None:
    assert BOOK.heard_calls("Please look up my account 441729.", "caller") == []


def test_a_card_number_is_never_a_heard_argument() -> None:
    """The schema takes any digits (as the sample agents' does): the card is still not sent."""
    book = ToolBook([replace(LOOKUP, call_when_heard=True, allowed_roles=("caller",))])
    assert book.heard_calls("Please look up my account 441729.", "caller") != []
    assert book.heard_calls("My card number is 4539 1488 0343 6467.", "caller") == []
