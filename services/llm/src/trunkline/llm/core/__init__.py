"""The LLM service's pure core: domain types, prompt compilation, the text tool-call protocol.

No I/O and no backend SDKs here (enforced by import-linter).
"""

from trunkline.llm.core.history import CompactHistory, HistoryPolicy, compact_history
from trunkline.llm.core.prompt import (
    CompiledPrompt,
    ContextChunk,
    PromptBudgetError,
    PromptLayout,
    PromptParts,
    compile_prompt,
    prompt_from_spec,
)
from trunkline.llm.core.tool_protocol import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    MalformedToolCall,
    ToolCallStreamParser,
    render_tool_instructions,
    to_text_protocol,
)
from trunkline.llm.core.types import (
    BackendEvent,
    ChatMessage,
    Done,
    GenerationEvent,
    GenerationRequest,
    PrefillResult,
    Role,
    SamplingParams,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSchema,
    Usage,
)

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "BackendEvent",
    "ChatMessage",
    "CompactHistory",
    "CompiledPrompt",
    "ContextChunk",
    "Done",
    "GenerationEvent",
    "GenerationRequest",
    "HistoryPolicy",
    "MalformedToolCall",
    "PrefillResult",
    "PromptBudgetError",
    "PromptLayout",
    "PromptParts",
    "Role",
    "SamplingParams",
    "Stop",
    "TextDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolCallStreamParser",
    "ToolSchema",
    "Usage",
    "compact_history",
    "compile_prompt",
    "prompt_from_spec",
    "render_tool_instructions",
    "to_text_protocol",
]
