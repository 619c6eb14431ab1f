"""Words that contrast (join/leave, open/close, fixed/variable, gas/electricity ...), for
everything that must not take one side's text for the other's: the context service's cache key
terms (a stored answer about leaving never answers a question about joining) and the gateway's
knowledge answers (a passage about the fixed tariff never answers a question about the variable
one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Group:
    """Words that contrast: each side a set of words or phrases; naming two sides differs.

    ``strict``: a side named by only one of the two questions is a disagreement too.
    ``either_answers``: a text naming either side answers a question naming one (a state and
    its times: "open Monday to Friday from 8 am to 6 pm" answers "when do you close?", "closed
    on Sunday" answers "are you open on Sunday?"), so :func:`other_side_only` passes it; two
    questions naming different sides still differ (their answers do).
    """

    name: str
    sides: tuple[tuple[str, ...], ...]
    strict: bool = True
    either_answers: bool = False


GROUPS: tuple[Group, ...] = (
    Group("join/leave", (
        ("join", "joining", "joined", "sign up", "signing up", "enrol", "enroll", "subscribe"),
        ("leave", "leaving", "exit", "quit", "quitting", "terminate", "unsubscribe"),
    )),
    Group("open/close", (
        ("open", "opens", "opening", "opened", "reopen"),
        ("close", "closes", "closing", "closed", "shut", "shuts"),
    ), strict=False, either_answers=True),
    Group("book/cancel/move", (
        ("book", "booking", "booked", "schedule", "reserve", "make an appointment"),
        ("cancel", "cancels", "cancelling", "canceling", "cancelled", "canceled", "cancellation",
         "cancellations"),
        ("reschedule", "rebook", "postpone", "move my appointment", "change my appointment"),
    ), strict=False),
    Group("start/stop", (
        ("start", "starting", "started", "begin", "beginning", "resume"),
        ("stop", "stops", "stopping", "stopped", "pause", "cease"),
    )),
    Group("buy/sell", (
        ("buy", "buying", "bought", "purchase", "buy back"),
        ("sell", "selling", "sold"),
    )),
    Group("add/remove", (
        ("add", "adding", "added"),
        ("remove", "removing", "removed", "delete", "deleting", "take off"),
    )),
    Group("increase/decrease", (
        ("increase", "increasing", "increased", "raise", "raising", "rise", "rises", "rising",
         "higher", "go up", "goes up", "going up", "went up", "gone up", "top up"),
        ("decrease", "decreasing", "decreased", "lower", "lowering", "reduce", "reducing",
         "reduced", "drop", "go down", "goes down", "going down", "went down", "gone down"),
    )),
    Group("before/after", (("before", "prior to", "ahead of"), ("after", "afterwards"))),
    Group("early/late", (
        ("early", "earlier", "earliest"),
        ("late", "later", "latest"),
    )),
    Group("min/max", (
        ("minimum", "min", "lowest", "cheapest", "shortest", "smallest"),
        ("maximum", "max", "highest", "longest", "largest", "most expensive", "dearest"),
    )),
    Group("import/export", (("import", "importing", "imported"), ("export", "exporting"))),
    Group("on/off", (
        ("turn on", "switch on", "enable", "activate"),
        ("turn off", "switch off", "disable", "deactivate"),
    )),
    Group("in/out", (
        ("move in", "moving in", "moved in", "move into", "moving into", "check in"),
        ("move out", "moving out", "moved out", "check out"),
    )),
    Group("accept/refuse", (
        ("accept", "accepts", "allow", "allowed", "permit"),
        ("refuse", "refused", "decline", "declined", "reject", "rejected"),
    ), strict=False),
    Group("gas/electricity", (
        ("gas",),
        ("electricity", "electric", "power"),
    )),
    Group("peak/off-peak", (("peak",), ("off-peak", "off peak", "offpeak"))),
    Group("fixed/variable", (
        ("fixed",),
        ("variable", "flexible", "flex", "tracker", "standard variable"),
    )),
    Group("adult/child", (
        ("adult", "adults", "grown-up", "grown-ups"),
        ("child", "children", "child's", "children's", "kid", "kids", "kid's", "baby", "babies",
         "toddler", "toddlers", "teenager", "teenagers"),
    )),
    Group("new/existing", (("new",), ("existing", "current")), strict=False),
    Group("payment method", (
        ("cash",),
        ("card", "cards", "credit card", "debit card", "contactless"),
        ("cheque", "cheques"),
        ("direct debit",),
        ("bank transfer",),
    ), strict=False),
    Group("channel", (
        ("online", "website", "internet", "app", "web"),
        ("phone", "telephone"),
        ("post", "letter", "mail"),
        ("in person",),
    ), strict=False),
    Group("part of day", (
        ("morning", "mornings"),
        ("afternoon", "afternoons"),
        ("evening", "evenings"),
        ("night", "nights", "overnight"),
    ), strict=False),
    Group("home/business", (
        ("home", "domestic", "residential", "household"),
        ("business", "commercial"),
    ), strict=False),
)  # fmt: skip


_WORD = re.compile(r"[a-z]+(?:['\u2019-][a-z]+)*")


def phrase_index(groups: Sequence[Group] = GROUPS) -> dict[tuple[str, ...], tuple[str, int]]:
    """Each phrase of ``groups`` as a word tuple -> (group name, side)."""
    index: dict[tuple[str, ...], tuple[str, int]] = {}
    for group in groups:
        for side, words in enumerate(group.sides):
            for phrase in words:
                index[tuple(phrase.split())] = (group.name, side)
    return index


_PHRASES = phrase_index()
EITHER_ANSWERS = frozenset(g.name for g in GROUPS if g.either_answers)
_LONGEST = max(len(p) for p in _PHRASES)


def sides_named(text: str) -> frozenset[tuple[str, int]]:
    """The (group, side) pairs ``text`` names, longest phrase first ("off peak" is not "peak")."""
    words = [w.replace("\u2019", "'") for w in _WORD.findall(text.lower())]
    found: set[tuple[str, int]] = set()
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST, len(words) - i), 0, -1):
            hit = _PHRASES.get(tuple(words[i : i + size]))
            if hit is not None:
                found.add(hit)
                i += size
                break
        else:
            i += 1
    return frozenset(found)


def other_side_only(asked: frozenset[tuple[str, int]], text: str) -> tuple[str, ...]:
    """Groups where ``text`` names another side than ``asked`` does and not the asked one: a
    text about joining for a question about leaving."""
    named = sides_named(text)
    clashes = []
    for group in sorted({g for g, _ in asked} - EITHER_ANSWERS):
        wanted = {side for g, side in asked if g == group}
        there = {side for g, side in named if g == group}
        if there and not there & wanted:
            clashes.append(group)
    return tuple(clashes)
