"""Contrasting words: which side a text names, and a text about the other side only."""

import pytest

from trunkline.text.contrasts import other_side_only, sides_named

pytestmark = pytest.mark.unit


def test_sides_named_prefers_the_longest_phrase() -> None:
    assert sides_named("Is it cheaper off peak?") == {("peak/off-peak", 1)}
    assert sides_named("What is the peak rate?") == {("peak/off-peak", 0)}
    assert sides_named("Can I sign up online?") == {("join/leave", 0), ("channel", 0)}
    assert sides_named("Thanks a lot") == frozenset()


def test_a_text_about_the_other_side_only_clashes() -> None:
    leave = sides_named("Is there a fee to leave the fixed tariff?")
    assert other_side_only(leave, "There is no fee to join any tariff.") == ("join/leave",)
    assert other_side_only(leave, "Leaving a fixed tariff early costs 50 dollars.") == ()
    # naming both sides, or neither, is no clash
    assert other_side_only(leave, "You can join or leave at any time.") == ()
    assert other_side_only(leave, "Call us on weekdays.") == ()
    gas = sides_named("I smell gas")
    assert other_side_only(gas, "For a power cut, call the outage line.") == ("gas/electricity",)
    assert other_side_only(gas, "Gas and electricity prices are fixed.") == ()


def test_open_and_closed_answer_each_other() -> None:
    """The hours sentence answers a question about closing; "closed on Sunday" answers one about
    being open (the eval's "Are you open on Sunday?" got the weekday hours, "What time do you
    close on Friday?" the Sunday closure)."""
    hours = "Acme Dental is open Monday to Friday from 8 am to 6 pm."
    assert other_side_only(sides_named("What time do you close on Friday?"), hours) == ()
    closed = "We are closed on Sunday and on public holidays."
    assert other_side_only(sides_named("Are you open on Sunday?"), closed) == ()
