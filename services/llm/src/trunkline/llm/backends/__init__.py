"""LLM backends behind one ABC (:class:`LlmBackend`): ``llamacpp`` (embedded) and ``openai``.

Backends are imported from their own modules so that an SDK is only loaded when used.
"""

from trunkline.llm.backends.base import (
    BackendUnavailableError,
    CallPolicy,
    GenerationTimeoutError,
    LlmBackend,
    LlmError,
    LlmMetrics,
)

__all__ = [
    "BackendUnavailableError",
    "CallPolicy",
    "GenerationTimeoutError",
    "LlmBackend",
    "LlmError",
    "LlmMetrics",
]
