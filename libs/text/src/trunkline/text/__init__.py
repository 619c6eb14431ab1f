"""One reading of numbers, weekdays and months in English text, for everything that compares
what was said with what is known: the gateway's grounding guard, the context service's cache
key terms, the conversation eval and the knowledge-answer benchmark.

``vocabulary`` holds the word tables; ``numbers`` reads spelled-out numbers ("twenty five",
"one hundred and five", "nineteen sixty six"). Each user keeps its own policy on top (which
facts count, how they are compared); the words and the arithmetic live here, once.
"""

from trunkline.text.numbers import NumberRun, read_number, spelled_numbers
from trunkline.text.vocabulary import (
    MONTH_NUMBERS,
    MONTHS,
    NUMBER_WORDS,
    ORDINALS,
    SCALES,
    TENS,
    UNITS,
    WEEKDAYS,
)

__all__ = [
    "MONTHS",
    "MONTH_NUMBERS",
    "NUMBER_WORDS",
    "ORDINALS",
    "SCALES",
    "TENS",
    "UNITS",
    "WEEKDAYS",
    "NumberRun",
    "read_number",
    "spelled_numbers",
]
