"""vllm_client: a fast, typed client for vLLM and OpenAI-compatible chat servers.

::

    from vllm_client import VllmClient
    with VllmClient("http://localhost:8000/v1") as client:
        r = client.chat.completions().create().model("Qwen/Qwen3-8B").user_message("Hi").send()
        print(r.content)

The async client (``AsyncVllmClient``) and aiohttp are imported on first use,
so ``import vllm_client`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import Timeout
from ._conversation import AsyncConversation, Conversation
from ._endpoints.audio import (
    AsyncTranscriptionBuilder,
    AsyncTranslationBuilder,
    TranscriptionBuilder,
    TranscriptionResponse,
    TranslationBuilder,
)
from ._endpoints.chat import (
    AsyncChatCompletionBuilder,
    ChatCompletionBuilder,
    ChatCompletionResponse,
    Choice,
)
from ._endpoints.classify import (
    AsyncClassifyBuilder,
    Classification,
    ClassifyBuilder,
    ClassifyResponse,
)
from ._endpoints.cohere_embed import (
    AsyncCohereEmbedBuilder,
    CohereEmbedBuilder,
    CohereEmbedResponse,
)
from ._endpoints.completions import (
    AsyncCompletionBuilder,
    CompletionBuilder,
    CompletionChoice,
    CompletionResponse,
)
from ._endpoints.decisions import (
    AsyncDecisionsBuilder,
    ChoiceAnswer,
    DecisionAnswer,
    DecisionProbability,
    DecisionsBuilder,
    DecisionsResponse,
    PredicateAnswer,
    ScoreAnswer,
)
from ._endpoints.embeddings import AsyncEmbeddingBuilder, EmbeddingBuilder, EmbeddingResponse
from ._endpoints.pooling import AsyncPoolingBuilder, PoolingBuilder, PoolingData, PoolingResponse
from ._endpoints.rerank import AsyncRerankBuilder, RerankBuilder, RerankResponse, RerankResult
from ._endpoints.responses import (
    AsyncResponses,
    AsyncResponsesBuilder,
    ResponseFunctionCall,
    ResponseMessage,
    ResponseOutputItem,
    ResponseReasoning,
    Responses,
    ResponsesBuilder,
    ResponsesResponse,
)
from ._endpoints.score import AsyncScoreBuilder, ScoreBuilder, ScoreData, ScoreResponse
from ._endpoints.server import Metrics, Model, ModelList, TokenizeResult
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteToolCallError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    NotSupportedError,
    OutputParseError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    StreamError,
    StreamTimeoutError,
    TLSError,
    ToolLoopError,
    ToolSchemaError,
    UnprocessableEntityError,
    VllmError,
)
from ._media import MAX_MEDIA_BYTES, data_url
from ._observe import RequestInfo, ResponseInfo, Timing, configure_from_env
from ._openapi import ServerCheck
from ._raw import AsyncRawStream, RawResponse, RawStream
from ._stream import AsyncChatStream, ChatStream
from ._sync import VllmClient
from ._transports import (
    AsyncTransport,
    MockResponse,
    MockTransport,
    PreparedRequest,
    RequestsTransport,
    Response,
    SyncTransport,
)
from ._types import (
    ChatMessage,
    ContentDelta,
    Done,
    PartialParsed,
    ReasoningDelta,
    RefusalDelta,
    ServerEvent,
    StreamEvent,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
    UsageEvent,
    WeightVersionSpan,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._async import AsyncVllmClient
    from ._tools import ToolSet, tool
    from ._transports.aiohttp import AiohttpTransport

# imported on first use: the async client and its transport import asyncio and aiohttp
_LAZY = {
    "AsyncVllmClient": "._async",
    "AiohttpTransport": "._transports.aiohttp",
    "tool": "._tools",
    "ToolSet": "._tools",
}


def __getattr__(name: str) -> Any:
    """Import the async client (asyncio) and the tool helpers only when first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vllm_client' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


configure_from_env()  # VLLM_CLIENT_LOG=debug|info: a stderr handler on the "vllm_client" logger


def instrument(tracer_provider: Any = None, meter_provider: Any = None, *,
               capture_content: bool | None = None) -> None:
    """Emit OpenTelemetry spans and metrics (GenAI semantic conventions) for every request of
    every client in this process; the global providers when none are given. Needs
    ``opentelemetry-api`` (``pip install opentelemetry-api``, or the ``otel`` extra:
    ``pip install -e ".[otel]"`` in a checkout of this SDK). Message content is recorded only
    with ``capture_content=True`` (or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``)."""
    try:
        from . import _otel
    except ImportError as e:
        raise ImportError("vllm_client.instrument() needs opentelemetry-api: pip install opentelemetry-api "
                          "(or, in a checkout of this SDK: pip install -e '.[otel]')") from e
    _otel.instrument(tracer_provider, meter_provider, capture_content)


def uninstrument() -> None:
    """Stop emitting OpenTelemetry spans and metrics."""
    from ._observe import state

    state.otel = None


__all__ = [
    "__version__",
    # clients
    "VllmClient",
    "AsyncVllmClient",
    "Timeout",
    # local media files (read only when asked for)
    "data_url",
    "MAX_MEDIA_BYTES",
    # builders
    "ChatCompletionBuilder",
    "CompletionBuilder",
    "EmbeddingBuilder",
    "AsyncChatCompletionBuilder",
    "AsyncCompletionBuilder",
    "AsyncEmbeddingBuilder",
    "ResponsesBuilder",
    "AsyncResponsesBuilder",
    "Responses",
    "AsyncResponses",
    "TranscriptionBuilder",
    "AsyncTranscriptionBuilder",
    "TranslationBuilder",
    "AsyncTranslationBuilder",
    "RerankBuilder",
    "AsyncRerankBuilder",
    "ScoreBuilder",
    "AsyncScoreBuilder",
    "ClassifyBuilder",
    "AsyncClassifyBuilder",
    "PoolingBuilder",
    "AsyncPoolingBuilder",
    "CohereEmbedBuilder",
    "AsyncCohereEmbedBuilder",
    # responses
    "ChatCompletionResponse",
    "Choice",
    "ChatMessage",
    "CompletionChoice",
    "CompletionResponse",
    "EmbeddingResponse",
    "RerankResponse",
    "RerankResult",
    "ScoreResponse",
    "ScoreData",
    "ClassifyResponse",
    "Classification",
    "PoolingResponse",
    "PoolingData",
    "CohereEmbedResponse",
    "Model",
    "ModelList",
    "TokenizeResult",
    "ResponsesResponse",
    "ResponseMessage",
    "ResponseFunctionCall",
    "ResponseReasoning",
    "ResponseOutputItem",
    "TranscriptionResponse",
    "Metrics",
    "ToolCall",
    "Usage",
    # any route: client.request()
    "RawResponse",
    "RawStream",
    "AsyncRawStream",
    # streaming
    "ChatStream",
    "AsyncChatStream",
    "StreamEvent",
    "ReasoningDelta",
    "ContentDelta",
    "RefusalDelta",
    "PartialParsed",
    "ToolCallDelta",
    "ToolCallComplete",
    "UsageEvent",
    "Done",
    "ServerEvent",
    # conversations and tools
    "Conversation",
    "AsyncConversation",
    "tool",
    "ToolSet",
    # errors
    "VllmError",
    "InvalidRequestError",
    "APIConnectionError",
    "APITimeoutError",
    "TLSError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "ResponseDecodeError",
    "StreamError",
    "StreamTimeoutError",
    "ToolLoopError",
    "IncompleteToolCallError",
    "OutputParseError",
    "ToolSchemaError",
    # observability
    "Timing",
    "RequestInfo",
    "ResponseInfo",
    "instrument",
    "uninstrument",
    # transports (your own: anything with the SyncTransport / AsyncTransport methods)
    "SyncTransport",
    "AsyncTransport",
    "Response",
    "RequestsTransport",
    "AiohttpTransport",
    # testing
    "MockTransport",
    "MockResponse",
    "PreparedRequest",
    # current vLLM (0.33, 0.34)
    "DecisionsBuilder",
    "AsyncDecisionsBuilder",
    "DecisionsResponse",
    "DecisionAnswer",
    "PredicateAnswer",
    "ChoiceAnswer",
    "ScoreAnswer",
    "DecisionProbability",
    "WeightVersionSpan",
    "NotSupportedError",
    "ServerCheck",
]
