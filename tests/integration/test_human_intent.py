"""The sample agent's ``human`` intent with the real embedder (MiniLM, as the context service's
Resolve classifies each utterance): requests for a person reach it, paraphrases included;
near misses ("Are you a real person?", "Can I talk to a dentist?") do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.agents import load_agent_spec
from trunkline.context.backends.embedder import MiniLMEmbedder
from trunkline.context.core.intents import nearest_intent

pytestmark = pytest.mark.integration

AGENT = Path(__file__).resolve().parents[2] / "agents" / "acme-dental.yaml"
ASKS_FOR_A_PERSON = [
    "This is the third time I am calling. I want to talk to a real person.",
    "Can I speak to someone?",
    "Let me speak to a human being please",
    "Put me through to the front desk",
]
NEAR_MISSES = {
    "Are you a real person?": "small_talk",
    "Are you a robot?": "small_talk",
    "Can I talk to a dentist?": "",
    "Is the dentist a real doctor?": "",
    "I want to talk about my bill": "",
    "What are your opening hours?": "",
}
# Known miss, kept visible: "robot" pulls it to the small-talk example "Are you a robot?".
KNOWN_MISS = "I need a real human, not a robot"


def classify(embedder: MiniLMEmbedder, examples: dict[str, tuple], text: str, th: float) -> str:
    match = nearest_intent(embedder.embed_sync([text])[0], examples)
    return match.intent if match.score >= th else ""


def test_requests_for_a_person_and_near_misses() -> None:
    spec = load_agent_spec(AGENT)
    embedder = MiniLMEmbedder()
    examples = {
        name: (phrases, embedder.embed_sync(list(phrases)))
        for name, phrases in spec.intents.examples().items()
    }
    threshold = spec.intents.threshold
    for text in ASKS_FOR_A_PERSON:
        assert classify(embedder, examples, text, threshold) == "human", text
    for text, intent in NEAR_MISSES.items():
        assert classify(embedder, examples, text, threshold) == intent, text
    assert classify(embedder, examples, KNOWN_MISS, threshold) != "human"
