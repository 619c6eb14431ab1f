"""Rule-based PII detectors and :func:`redact` (pure: no I/O, no models).

Entities: payment card numbers (Luhn-checked; CVV after its name), account numbers (bank,
member, policy, patient; IBAN; any long digit string that is not an order or booking
reference), phone numbers, e-mail addresses, street addresses and dates of birth. Each detector
reads the written and the spoken form, since speech-to-text writes digits as words at times:
"four one one one …", "john dot smith at gmail dot com", "my date of birth is March fourth
nineteen eighty five".

``make bench-redaction`` measures precision and recall per entity on the labelled set in
``tests/data/redaction``; hard negatives there (opening hours, prices, quantities, appointment
dates, order numbers) keep the rules honest.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from trunkline.redaction.numbers import (
    NUMBER_WORDS,
    DigitRun,
    digit_runs,
    luhn_ok,
    tokens,
)


class Entity(enum.StrEnum):
    CARD = "card"
    ACCOUNT = "account"
    PHONE = "phone"
    EMAIL = "email"
    ADDRESS = "address"
    DOB = "dob"


PLACEHOLDERS = {entity: f"[{entity.value.upper()}]" for entity in Entity}


@dataclass(frozen=True, slots=True)
class Finding:
    entity: Entity
    start: int
    end: int

    def text(self, source: str) -> str:
        return source[self.start : self.end]


# ---- e-mail ---------------------------------------------------------------------------------

_TLD = r"(?:com|net|org|edu|gov|io|co|uk|us|ca|de|fr|info|biz|me|ai|app)"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_SPOKEN_EMAIL = re.compile(
    r"(?i)\b[a-z0-9][a-z0-9._+-]*(?:\s+(?:dot|underscore|dash|hyphen)\s+[a-z0-9]+)*"
    r"\s+at\s+"
    rf"[a-z0-9-]+(?:(?:\s+dot\s+|\s+dash\s+|\.)[a-z0-9-]+)*(?:\s+dot\s+|\.){_TLD}\b"
)


def _emails(text: str) -> list[Finding]:
    found = [Finding(Entity.EMAIL, m.start(), m.end()) for m in _EMAIL.finditer(text)]
    for m in _SPOKEN_EMAIL.finditer(text):
        found.append(Finding(Entity.EMAIL, m.start(), m.end()))
    return found


# ---- street addresses -----------------------------------------------------------------------

_SUFFIX = (
    r"(?i:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl"
    r"|terrace|ter|parkway|pkwy|circle|cir|highway|hwy|close|crescent|square|sq|trail|alley)"
)
_NUMWORD = r"(?i:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|" \
    r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|" \
    r"fifty|sixty|seventy|eighty|ninety|hundred)"  # fmt: skip
_NOT_STREET = (
    r"(?i:minutes?|hours?|miles?|days?|weeks?|months?|years?|times?|more|other|of|the|a|an|and"
    r"|or|to|for|per|dollars?|people|patients|blocks?|steps?|floors?|kilometers?|km|mins?"
    r"|is|are|was|we|you|i|it|at|on|in|by|from|with)"
)
_ADDRESS = re.compile(
    rf"\b(?:\d{{1,6}}[A-Za-z]?|{_NUMWORD}(?:[\s-]+{_NUMWORD}){{0,5}})\s*,?\s+"
    rf"(?:(?!{_NOT_STREET}\b)(?!{_NUMWORD}\b)[A-Za-z0-9][A-Za-z0-9'.-]*\s+){{1,3}}"
    rf"{_SUFFIX}\b\.?"
    r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|flat)\.?\s*#?\s*[A-Za-z0-9-]+|\s*#\s*\d+)?"
    r"(?:,\s*[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+){0,2})?"
    r"(?:,?\s+[A-Z]{2}\b)?"
    r"(?:,?\s+\d{5}(?:-\d{4})?\b)?"
)
_PO_BOX = re.compile(r"(?i)\bp\.?\s?o\.?\s+box\s+\d+\b")


def _addresses(text: str) -> list[Finding]:
    found = [Finding(Entity.ADDRESS, m.start(), m.end()) for m in _ADDRESS.finditer(text)]
    found += [Finding(Entity.ADDRESS, m.start(), m.end()) for m in _PO_BOX.finditer(text)]
    return found


# ---- dates of birth -------------------------------------------------------------------------

_MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
_ORDINALS = frozenset(
    [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
        "thirtieth",
    ]
)
_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_FILLER = frozenset({"of", "the", "and"})
_DATE_PUNCT = frozenset({"/", "-", ".", ","})
_UNITS_AFTER = frozenset(
    [
        "days",
        "weeks",
        "months",
        "years",
        "hours",
        "minutes",
        "times",
        "people",
        "dollars",
        "percent",
        "am",
        "pm",
        "o'clock",
    ]
)
_DOB_BEFORE = re.compile(
    r"(?i)(?:date\s+of\s+birth|birth\s*date|birthday|born|d\.?\s?o\.?\s?b\.?)"
    r"(?:\s+(?:is|was|would\s+be|on|in|:|it's))*[\s:,]*(?:the\s+)?$"
)
_DOB_AFTER = re.compile(
    r"(?i)^[\s,]*(?:is|was|that's|which\s+is)\s+(?:my|his|her|their|the)\s+"
    r"(?:date\s+of\s+birth|birthday|birth\s*date|d\.?o\.?b)"
)
_YEARISH = frozenset({"nineteen", "thousand"})


def _date_runs(text: str) -> list[tuple[int, int, bool, int]]:
    """Runs of date-like tokens: (start, end, has a month or a slashed date, numeric items)."""
    toks = tokens(text)
    runs: list[tuple[int, int, bool, int]] = []
    i = 0
    while i < len(toks):
        word = toks[i].lower
        if not (toks[i].is_digits or word in _MONTHS or word in _ORDINALS or word in NUMBER_WORDS):
            i += 1
            continue
        start, end, month, numeric, content, year = toks[i].start, toks[i].end, False, 0, 0, False
        slashes = 0
        j = i
        while j < len(toks):
            tok = toks[j]
            if j > i and text[toks[j - 1].end : tok.start].strip():
                break
            low = tok.lower
            if tok.is_digits or low in NUMBER_WORDS or low in _ORDINALS or low == "thousand":
                numeric += 1
                content += 1
                year = year or (tok.is_digits and len(tok.text) == 4) or low in _YEARISH
                end = tok.end
            elif low in _MONTHS:
                month = True
                content += 1
                end = tok.end
            elif (
                low in _SUFFIXES
                and j > i
                and toks[j - 1].is_digits
                and toks[j - 1].end == tok.start
            ):
                end = tok.end
            elif low in _FILLER:
                pass
            elif tok.text in _DATE_PUNCT:
                if tok.text == "," and year:
                    break
                if tok.text == "/":
                    slashes += 1
            else:
                break
            if content >= 8:
                break
            j += 1
        after = text[end:].split(maxsplit=1)
        unit_after = bool(after) and after[0].lower().strip(".,") in _UNITS_AFTER
        if not unit_after:
            runs.append((start, end, month or slashes >= 1, numeric))
        i = max(j, i + 1)
    return runs


def _dates_of_birth(text: str) -> list[Finding]:
    found = []
    for start, end, dated, numeric in _date_runs(text):
        before = _DOB_BEFORE.search(text[max(0, start - 40) : start])
        after = _DOB_AFTER.search(text[end : end + 40])
        if (before is not None and (dated or numeric >= 1)) or (
            after is not None and (dated or numeric >= 2)
        ):
            found.append(Finding(Entity.DOB, start, end))
    return found


# ---- digit runs: cards, accounts, phones ----------------------------------------------------

_ACCOUNT_CONTEXT = re.compile(
    r"(?i)(?<![a-z])(?:account|acct|a/c|member(?:ship)?|policy|customer|patient|routing|sort\s+code"
    r"|iban|bank|social\s+security|ssn|national\s+insurance|tax\s+id|subscriber|client\s+id"
    r"|id\s+number|user\s*id)(?![a-z])"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|call|calling|number\s+is|mobile|cell|reach|text|contact|dial|fax|"
    r"landline|whatsapp)\b"
)
_CARD_CONTEXT = re.compile(r"(?i)\b(?:cvv|cvc|cv2|security\s+code|card\s+verification)\b")
_REFERENCE_CONTEXT = re.compile(
    r"(?i)\b(?:order|invoice|ticket|confirmation|reference|ref|tracking|booking|case|"
    r"appointment|room|flight|model|serial|part|item|sku|quantity|units?|boxes|pieces|copies)\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,4})?\b")
# Written digit groups with a comma and a space between them (at least once; spaces alone between
# the others): speech-to-text writes a card or a phone number read out in groups, or digit by
# digit, that way ("4111, 1111, 1111, 1111", "4539, 488, 0, 3, 4, 3, 6", "4539. 14880, 64667",
# "4539. 1488 033 433 6 467"), where a quantity has no space ("1,250").
# Only a card (Luhn-valid or beside a card word), a phone or account number beside its word,
# or eight digits and more read one by one count (a list of years or room numbers stays as it
# is).
_CARD_WORDS = re.compile(r"(?i)\b(?:card|visa|mastercard|amex|credit|debit)\b")
_COMMA_GROUPS = re.compile(r"(?<![\d,.])\d{1,6}(?:[,.]?[ \t]+\d{1,6}){1,18}(?![\d]|[.,]\d)")
_GROUP_MARK = re.compile(r"\d[,.][ \t]")
# After a card word, digit groups with any separators between them, dashes too: Whisper wrote a
# card read out in groups as "4539-1488-0343, 6-4-6-" (the dashed groups alone read as a phone
# number beside "number is", the last group as nothing).
_CARD_GROUPS = re.compile(r"(?<![\d])\d{1,6}(?:(?:[ \t]*[-.,/][ \t]*|[ \t]+)\d{1,6}){1,18}(?!\d)")
_EXPIRY = re.compile(
    r"(?i)\bexp(?:iry|ires|iring|iration)?(?:\s+date)?\s*(?:is\s+)?:?\s*\d{2}\s?/\s?\d{2,4}\b"
)


def _near_before(pattern: re.Pattern[str], text: str, start: int, window: int) -> bool:
    return pattern.search(text[max(0, start - window) : start]) is not None


def _last_at(pattern: re.Pattern[str], text: str, start: int, window: int) -> int:
    """Where the nearest match of ``pattern`` before ``start`` ends (-1: none in the window)."""
    ends = [m.end() for m in pattern.finditer(text[max(0, start - window) : start])]
    return ends[-1] if ends else -1


def classify(run: DigitRun, text: str) -> Entity | None:
    """Which entity a digit run is, from its length, checksum, layout and nearby words."""
    digits, n = run.digits, len(run.digits)
    if 13 <= n <= 19 and (luhn_ok(digits) or _near_before(_CARD_WORDS, text, run.start, 40)):
        return Entity.CARD  # a card number misheard by speech-to-text is still the card
    if 3 <= n <= 4 and _near_before(_CARD_CONTEXT, text, run.start, 30):
        return Entity.CARD
    account = _near_before(_ACCOUNT_CONTEXT, text, run.start, 40)
    phone_at = _last_at(_PHONE_CONTEXT, text, run.start, 40)
    reference_at = _last_at(_REFERENCE_CONTEXT, text, run.start, 40)
    phone = phone_at >= 0
    reference = reference_at >= 0 and reference_at + 15 >= phone_at
    if run.plus and 8 <= n <= 15:
        return Entity.PHONE
    if account and n >= 5 and not (phone and _phone_shaped(run)):
        return Entity.ACCOUNT
    if reference:
        return None
    if _phone_shaped(run) or (phone and 7 <= n <= 13):
        return Entity.PHONE
    if n >= 8:
        return Entity.ACCOUNT
    return None


def _phone_shaped(run: DigitRun) -> bool:
    digits, n = run.digits, len(run.digits)
    if n == 10 and digits[0] != "0" and (run.formatted or run.spoken or run.groups != (10,)):
        return True
    if n == 10 and digits[0] in "23456789":
        return True
    if n == 11 and digits[0] in "01":
        return True
    return n == 7 and run.formatted and run.groups == (3, 4)


def _card_groups(text: str) -> list[Finding]:
    """Digit groups of 13 to 19 digits in all, however separated, a card word before them."""
    found = []
    for m in _CARD_GROUPS.finditer(text):
        n = sum(c.isdigit() for c in m.group(0))
        if 13 <= n <= 19 and _near_before(_CARD_WORDS, text, m.start(), 40):
            found.append(Finding(Entity.CARD, m.start(), m.end()))
    return found


def _comma_groups(text: str) -> list[Finding]:
    found = []
    for m in _COMMA_GROUPS.finditer(text):
        if not _GROUP_MARK.search(m.group(0)):
            continue  # spaces alone: a digit run (classify) decides
        digits = re.sub(r"\D", "", m.group(0))
        n = len(digits)
        if 13 <= n <= 19 and luhn_ok(digits):  # after a card word: _card_groups has it
            found.append(Finding(Entity.CARD, m.start(), m.end()))
        elif 7 <= n <= 13 and _near_before(_PHONE_CONTEXT, text, m.start(), 40):
            found.append(Finding(Entity.PHONE, m.start(), m.end()))
        elif n >= 6 and _near_before(_ACCOUNT_CONTEXT, text, m.start(), 40):
            found.append(Finding(Entity.ACCOUNT, m.start(), m.end()))
        elif n >= 8 and sum(len(g) == 1 for g in re.findall(r"\d+", m.group(0))) >= 4:
            # read out digit by digit ("0, 3, 4, 3, 6, …"): a long number, an account
            found.append(Finding(Entity.ACCOUNT, m.start(), m.end()))
    return found


def _numbers(text: str, skip: list[tuple[int, int]]) -> list[Finding]:
    found = []
    for m in _IBAN.finditer(text):
        found.append(Finding(Entity.ACCOUNT, m.start(), m.end()))
    found += _non_overlapping(_card_groups(text) + _comma_groups(text))
    for m in _EXPIRY.finditer(text):
        found.append(Finding(Entity.CARD, m.start(), m.end()))
    taken = skip + [(f.start, f.end) for f in found]
    for run in digit_runs(text, taken):
        entity = classify(run, text)
        if entity is not None:
            found.append(Finding(entity, run.start, run.end))
    return found


# ---- all together ---------------------------------------------------------------------------


Known = dict[str, Entity]
"""Digits of the personal numbers already found in a call or a message -> their entity: the
agent's reply may repeat a caller's card as bare digits ("4539, 14880, 64667."), with none of the
words that tell the rules it is a card."""

MIN_KNOWN_DIGITS = 4


def detect(text: str, known: Known | None = None) -> list[Finding]:
    """Every PII finding in ``text``, non-overlapping, in order; with ``known``, also every run
    of 4+ digits that is part of a known personal number."""
    if not text:
        return []
    first = _emails(text) + _dates_of_birth(text) + _addresses(text)
    chosen = _non_overlapping(first)
    chosen += _numbers(text, [(f.start, f.end) for f in chosen])
    chosen = _non_overlapping(chosen)
    if known:
        taken = [(f.start, f.end) for f in chosen]
        for run in digit_runs(text, taken):
            if len(run.digits) < MIN_KNOWN_DIGITS:
                continue
            entity = next((e for digits, e in known.items() if run.digits in digits), None)
            if entity is not None:
                chosen.append(Finding(entity, run.start, run.end))
        chosen = _non_overlapping(chosen)
    return chosen


def sensitive_digits(text: str, known: Known | None = None) -> Known:
    """``known`` (a new dict if None) with the digits of each card, account and phone number
    found in ``text`` added; returned."""
    out: Known = {} if known is None else known
    for finding in detect(text):
        if finding.entity in (Entity.CARD, Entity.ACCOUNT, Entity.PHONE):
            digits = "".join(run.digits for run in digit_runs(finding.text(text)))
            if len(digits) >= MIN_KNOWN_DIGITS:
                out[digits] = finding.entity
    return out


def _non_overlapping(findings: list[Finding]) -> list[Finding]:
    ordered = sorted(findings, key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for finding in ordered:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def redact(text: str, known: Known | None = None, only: frozenset[Entity] | None = None) -> str:
    """``text`` with each finding replaced by its placeholder (``[CARD]``, ``[PHONE]`` …); with
    ``known``, also the bare digits of those personal numbers (see :data:`Known`); with
    ``only``, just the findings of those entities (a store that must keep the rest)."""
    findings = [f for f in detect(text, known) if only is None or f.entity in only]
    if not findings:
        return text
    parts, at = [], 0
    for finding in findings:
        parts.append(text[at : finding.start])
        parts.append(PLACEHOLDERS[finding.entity])
        at = finding.end
    parts.append(text[at:])
    return "".join(parts)


def redact_facts(text: str, facts: tuple[str, ...], known: Known | None = None) -> tuple[str, ...]:
    """Facts read from ``text`` (``"number:4111"``, the grounding guard's) with each value that
    lies inside a PII finding of ``text`` masked (``"number:[CARD]"``): a card's digit groups
    are the card, even one group at a time."""
    findings = detect(text, known)
    if not findings:
        return facts
    inside = []
    for finding in findings:
        span = text[finding.start : finding.end]
        digits = "".join(run.digits for run in digit_runs(span))
        inside.append((finding.entity, span.lower(), digits))
    masked = []
    for fact in facts:
        kind, sep, value = fact.partition(":")
        value_digits = re.sub(r"\D", "", value)
        hit = next(
            (
                entity
                for entity, span, digits in inside
                if (value and value.lower() in span) or (value_digits and value_digits in digits)
            ),
            None,
        )
        masked.append(f"{kind}{sep}{PLACEHOLDERS[hit]}" if hit is not None else fact)
    return tuple(masked)


__all__ = [
    "PLACEHOLDERS",
    "Entity",
    "Finding",
    "Known",
    "classify",
    "detect",
    "redact",
    "redact_facts",
    "sensitive_digits",
]
