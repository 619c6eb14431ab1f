"""What a pressed DTMF key does in a call (the agent's keypad menu, ``AgentSpec.dtmf``).

Pure: the session asks :meth:`KeypadMenu.decide` with the key and what the agent said last and
carries out the answer (speak a line, hand the call to a person, hang up). A key the menu does
not name decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trunkline.agents.dtmf import KeyAction, MenuItem

NO_PERSON_LINE = "I'm sorry, I can't reach a colleague right now. I'll keep helping you myself."


@dataclass(frozen=True, slots=True)
class KeyDecision:
    key: str
    action: KeyAction  # PERSON: hand the call over; HANG_UP: end it; SAY/REPEAT: speak ``line``
    line: str = ""
    detail: str = ""  # in words, for the trace and the operator


class KeypadMenu:
    def __init__(
        self,
        items: Mapping[str, MenuItem],
        *,
        person_available: bool,
        no_person_line: str = NO_PERSON_LINE,
    ) -> None:
        """``person_available``: the agent can hand a call to a person (else ``person`` keys
        say ``no_person_line``)."""
        self.items = dict(items)
        self.person_available = person_available
        self.no_person_line = no_person_line

    def decide(self, key: str, last_reply: str) -> KeyDecision | None:
        """The key's action, with ``last_reply`` (what the agent said last, or is saying) for
        ``repeat``; None when the key is not in the menu or there is nothing to repeat yet."""
        item = self.items.get(key)
        if item is None:
            return None
        match item.action:
            case KeyAction.PERSON if self.person_available:
                return KeyDecision(key, KeyAction.PERSON, detail=f"the caller pressed {key}")
            case KeyAction.PERSON:
                detail = f"the caller pressed {key} for a person; no human-in-the-loop"
                return KeyDecision(key, KeyAction.SAY, self.no_person_line, detail)
            case KeyAction.REPEAT:
                line = last_reply.strip()
                if not line:
                    return None
                return KeyDecision(key, KeyAction.REPEAT, line, f"the caller pressed {key}")
            case KeyAction.SAY:
                return KeyDecision(key, KeyAction.SAY, item.text, f"the caller pressed {key}")
            case KeyAction.HANG_UP:
                return KeyDecision(key, KeyAction.HANG_UP, detail=f"the caller pressed {key}")
