"""The agent's keypad menu (``AgentSpec.dtmf``): what a DTMF key the caller presses does.

In YAML, one entry per key (0-9, *, #, A-D), its action a string::

    dtmf:
      "0": person            # a person, as when the caller asks for one outright
      "9": repeat            # the agent's last reply again
      "1": "say: We are open Monday to Friday, eight to six."
      "#": hang_up           # the call ends

A key the menu does not name does nothing (it is still kept and traced).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

DTMF_KEYS = "0123456789*#ABCD"
SAY_PREFIX = "say:"


class KeyAction(StrEnum):
    PERSON = "person"
    REPEAT = "repeat"
    SAY = "say"
    HANG_UP = "hang_up"


ACTIONS = "person, repeat, hang_up or 'say: <text>'"


@dataclass(frozen=True, slots=True)
class MenuItem:
    action: KeyAction
    text: str = ""  # what SAY says


def parse_item(key: str, value: object) -> MenuItem:
    """One key's action (``ValueError`` naming the key and what is allowed)."""
    if not isinstance(value, str):
        raise ValueError(
            f"dtmf key {key!r}: the action must be a string ({ACTIONS}), got {value!r}"
        )
    given = value.strip()
    if given.lower().startswith(SAY_PREFIX):
        text = given[len(SAY_PREFIX) :].strip()
        if not text:
            raise ValueError(f"dtmf key {key!r}: 'say:' needs the text to say ('say: <text>')")
        return MenuItem(KeyAction.SAY, text)
    try:
        action = KeyAction(given)
    except ValueError:
        raise ValueError(f"dtmf key {key!r}: unknown action {value!r}; use {ACTIONS}") from None
    if action is KeyAction.SAY:
        raise ValueError(f"dtmf key {key!r}: 'say' needs its text ('say: <text>')")
    return MenuItem(action)


def normalise_menu(raw: object) -> dict[str, str]:
    """The menu as the spec keeps it (key -> action string), every entry checked. An unquoted
    digit key in YAML (``0: person``) is read as that digit."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"dtmf must map keys to actions (e.g. '0: person'), got {raw!r}")
    menu: dict[str, str] = {}
    for given, value in raw.items():
        key = str(given) if isinstance(given, int) and not isinstance(given, bool) else given
        if not isinstance(key, str) or len(key) != 1 or key not in DTMF_KEYS:
            raise ValueError(f"dtmf: unknown key {given!r}; keys are one of 0-9, *, #, A-D")
        item = parse_item(key, value)
        menu[key] = item.action.value if item.action is not KeyAction.SAY else f"say: {item.text}"
    return menu


def menu_items(menu: Mapping[str, str]) -> dict[str, MenuItem]:
    """The menu's entries parsed (the spec has checked them)."""
    return {key: parse_item(key, value) for key, value in menu.items()}
