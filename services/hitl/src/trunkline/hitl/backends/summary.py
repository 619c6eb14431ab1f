"""Ticket summaries: extractive (embedded default, no model) or an LLM on an OpenAI-compatible
server (vLLM on GPU nodes), which falls back to extractive when slow or failing."""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence

import httpx

from trunkline.hitl.core.summary import extractive_summary
from trunkline.hitl.core.tickets import Line

log = logging.getLogger(__name__)

PROMPT = (
    "Summarize this support call for the human operator taking it over, in at most two short "
    "sentences: what the caller wants and why they asked for a person. Only facts from the "
    "transcript."
)


class Summarizer(abc.ABC):
    async def summarize(self, lines: Sequence[Line], reason: str) -> str:
        """A short summary; never raises (falls back to the extractive one)."""
        try:
            return await self._summarize_impl(lines, reason)
        except Exception as exc:  # a summary must never block an escalation
            log.warning("summary by %s failed, extractive instead: %r", type(self).__name__, exc)
            return extractive_summary(lines, reason)

    @abc.abstractmethod
    async def _summarize_impl(self, lines: Sequence[Line], reason: str) -> str: ...


class ExtractiveSummarizer(Summarizer):
    async def _summarize_impl(self, lines: Sequence[Line], reason: str) -> str:
        return extractive_summary(lines, reason)


class LlmSummarizer(Summarizer):
    """``POST {base_url}/chat/completions`` with the transcript; ``timeout`` bounds the wait."""

    def __init__(self, base_url: str, model: str, timeout: float = 2.0) -> None:
        if not base_url:
            raise ValueError("the llm summary backend needs HITL_SUMMARY_LLM_URL")
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self._model = model

    async def _summarize_impl(self, lines: Sequence[Line], reason: str) -> str:
        transcript = "\n".join(f"{line.speaker}: {line.text}" for line in lines)
        response = await self._client.post(
            "/chat/completions",
            json={
                "model": self._model,
                "messages": [
                    {"role": "system", "content": PROMPT},
                    {"role": "user", "content": f"Reason: {reason}\n\n{transcript}"},
                ],
                "max_tokens": 96,
                "temperature": 0,
            },
        )
        response.raise_for_status()
        text = str(response.json()["choices"][0]["message"]["content"]).strip()
        return text or extractive_summary(lines, reason)

    async def close(self) -> None:
        await self._client.aclose()
