"""The LLM gateway: OpenAI-compatible endpoints with limits, retries, cache and usage.

Anything that speaks the OpenAI chat protocol works: vLLM, SGLang, Ollama, OpenRouter,
OpenAI, a LiteLLM proxy. Offline, nothing here pretends to be a model: a call to an
unreachable endpoint raises :class:`LLMCallError` with the URL and the cause.
"""

from medresearcher.llm.cache import ResponseCache
from medresearcher.llm.dialects import get_dialect, parse_hermes_tool_calls
from medresearcher.llm.endpoint import EndpointClient
from medresearcher.llm.errors import CacheMissError, LLMCallError, LLMError, StructuredOutputError
from medresearcher.llm.gateway import LLMGateway
from medresearcher.llm.types import ChatResult, ToolCall, Usage

__all__ = [
    "CacheMissError",
    "ChatResult",
    "EndpointClient",
    "LLMCallError",
    "LLMError",
    "LLMGateway",
    "ResponseCache",
    "StructuredOutputError",
    "ToolCall",
    "Usage",
    "get_dialect",
    "parse_hermes_tool_calls",
]
