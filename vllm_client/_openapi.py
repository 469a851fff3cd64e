"""What a vLLM server's ``GET /openapi.json`` says about the SDK: the one implementation behind
``client.check_server()``, ``vllm-client server-info --check`` and the schema-coverage tests.

Pure (no I/O). For each route the SDK covers it knows which request fields the SDK types
(a builder's setters, or a method's arguments); the fields and routes it leaves to ``extra()``
or to raw calls are listed here with the reason (docs/vllm-fields.md says the same, and a test
keeps the two equal). From a document it finds: routes the SDK does not cover, request fields
it does not type, covered routes that are gone, fields the SDK sends that the server no longer
takes, and response fields the SDK neither reads nor lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._endpoints.chat import BATCH_CHAT_FIELDS, ChatBody, ChatCompletionResponse, Choice
from ._endpoints.classify import ClassifyBody
from ._endpoints.cohere_embed import CohereEmbedBody
from ._endpoints.completions import CompletionBody, CompletionChoice, CompletionResponse
from ._endpoints.decisions import (
    ChoiceAnswer,
    DecisionsBody,
    DecisionsResponse,
    PredicateAnswer,
    ScoreAnswer,
)
from ._endpoints.embeddings import EmbeddingBody
from ._endpoints.pooling import PoolingBody
from ._endpoints.rerank import RerankBody
from ._endpoints.responses import ResponsesBody
from ._endpoints.score import ScoreBody
from ._endpoints.server import version_flow
from ._exceptions import APIStatusError, route_missing
from ._types import Usage

if TYPE_CHECKING:
    from ._core import ClientCore, Flow

__all__ = ["ServerCheck", "check_openapi", "check_flow", "BUILDERS", "METHODS", "EXTRA_FIELDS", "ROUTES_LEFT",
           "KNOWN_FIELDS", "RESPONSE_MODELS", "request_fields", "typed_fields", "untyped_fields",
           "uncovered_routes", "missing_routes", "rejected_fields", "unread_response_fields"]

# route -> the body class whose setters are the fields the SDK types on it
BUILDERS: dict[str, type] = {
    "/v1/chat/completions": ChatBody,
    "/v1/chat/completions/batch": ChatBody,  # conversations([...]); BATCH_CHAT_FIELDS only
    "/v1/completions": CompletionBody,
    "/v1/embeddings": EmbeddingBody,
    "/v1/responses": ResponsesBody,
    "/v1/decisions": DecisionsBody,
    "/v1/rerank": RerankBody,
    "/v1/score": ScoreBody,
    "/classify": ClassifyBody,
    "/pooling": PoolingBody,
    "/v2/embed": CohereEmbedBody,
}
# route -> the request fields a client method sends (no builder; the rest via its extra=)
METHODS: dict[str, frozenset[str]] = {
    "/tokenize": frozenset({"model", "prompt", "messages", "add_special_tokens"}),  # tokenize(), tokenize_result()
    "/detokenize": frozenset({"model", "tokens"}),  # detokenize()
    "/v1/models": frozenset(), "/health": frozenset(), "/version": frozenset(), "/load": frozenset(),
    "/metrics": frozenset(), "/v1/responses/{response_id}": frozenset(),  # responses().retrieve()
    "/v1/responses/{response_id}/cancel": frozenset(),  # responses().cancel()
    "/v1/audio/transcriptions": frozenset(), "/v1/audio/translations": frozenset(),  # multipart forms
    "/v1/load_lora_adapter": frozenset({"lora_name", "lora_path", "load_inplace"}),  # load_lora_adapter()
    "/v1/unload_lora_adapter": frozenset({"lora_name"}),  # unload_lora_adapter()
}

_RENDER = "only the /render endpoints honour it; ignored on the routes the SDK covers"
_MM = "multimodal / disaggregated-serving plumbing or vLLM-internal"
# route -> {field: why it has no setter}; send with .extra({...}) (tokenize: tokenize_result(extra=))
EXTRA_FIELDS: dict[str, dict[str, str]] = {
    "/v1/chat/completions": {
        "routed_experts_prompt_start": "internal: trims the MoE routed-expert debug data (`routed_experts`)",
        "return_token_offsets": _RENDER, "mm_payload": _RENDER,
        "return_mm_kwargs": "deprecated by vLLM (an alias of `mm_payload=\"none\"`)",
    },
    "/v1/completions": {
        "routed_experts_prompt_start": "internal: trims the MoE routed-expert debug data (`routed_experts`)",
        "return_token_offsets": _RENDER, "mm_payload": _RENDER,
        "return_mm_kwargs": "deprecated by vLLM (an alias of `mm_payload=\"none\"`)",
    },
    "/v1/chat/completions/batch": {
        "best_of": "batch route only (not on /v1/chat/completions)",
        "early_stopping": "beam-search detail of the batch route only",
        "guided_decoding_backend": "deprecated by vLLM (the server's --structured-outputs-config decides)",
    },
    "/v1/responses": {f: _MM for f in (
        "prompt", "mm_processor_kwargs", "media_io_kwargs", "mm_payload", "return_mm_kwargs", "session_id",
        "watermarking", "vllm_xargs", "kv_transfer_params", "ec_transfer_params", "structured_outputs",
        "enable_response_messages", "previous_input_messages")},
    "/tokenize": {f: "chat-template options of tokenize: tokenize_result(..., extra={...})" for f in (
        "return_token_strs", "add_generation_prompt", "chat_template", "chat_template_kwargs",
        "continue_final_message", "media_io_kwargs", "mm_processor_kwargs", "tools", "response_format")},
}

RAW = "raw"  # reachable with client.request(method, path, ...)
OUT = "out of scope"
# route -> (RAW or OUT, why): every route vLLM 0.32-0.34 can serve that no SDK method covers
# (those behind flags or env vars too, named as in vLLM's routers), so a route of a new release is noticed
ROUTES_LEFT: dict[str, tuple[str, str]] = {
    "/rerank": (RAW, "the same handler as /v1/rerank (client.rerank())"),
    "/v2/rerank": (RAW, "the same handler as /v1/rerank (client.rerank())"),
    "/score": (RAW, "the same handler as /v1/score (client.score())"),
    "/ping": (RAW, "SageMaker's name for /health (client.health())"),
    "/invocations": (RAW, "SageMaker's entry point: dispatches to the routes above by body"),
    "/v1/messages": (OUT, "Anthropic's Messages API: use an Anthropic client"),
    "/v1/messages/count_tokens": (OUT, "Anthropic's Messages API: use an Anthropic client"),
    "/v1/systemone": (RAW, "experimental structured decisions without a stable protocol (see /v1/decisions)"),
    "/generative_scoring": (RAW, "experimental generative scoring without a stable protocol"),
    "/is_scaling_elastic_ep": (OUT, "cluster operation (elastic expert parallelism), not inference"),
    "/scale_elastic_ep": (OUT, "cluster operation (elastic expert parallelism), not inference"),
    "/kv_event_sources": (OUT, "cluster plumbing (KV-event publishers), not inference"),
    # behind flags or other runners (not in the recorded documents)
    "/v1/realtime": (OUT, "a WebSocket (realtime audio); the SDK speaks HTTP only"),
    "/v1/audio/speech": (RAW, "text to speech (speech models)"),
    "/v1/chat/completions/render": (RAW, "renders a chat prompt without generating (render endpoints)"),
    "/v1/completions/render": (RAW, "renders a prompt without generating (render endpoints)"),
    "/derender": (RAW, "token ids back to a prompt (render endpoints)"),
    "/tokenizer_info": (RAW, "the tokenizer's configuration (--enable-tokenizer-info-endpoint)"),
    "/start_profile": (OUT, "profiling the server (VLLM_TORCH_PROFILER_DIR), an operator's tool"),
    "/stop_profile": (OUT, "profiling the server (VLLM_TORCH_PROFILER_DIR), an operator's tool"),
    "/sleep": (RAW, "frees GPU memory (VLLM_SERVER_DEV_MODE, sleep mode)"),
    "/wake_up": (RAW, "undoes /sleep (VLLM_SERVER_DEV_MODE)"),
    "/is_sleeping": (RAW, "whether the engine sleeps (VLLM_SERVER_DEV_MODE)"),
    "/reset_prefix_cache": (RAW, "drops the prefix cache (VLLM_SERVER_DEV_MODE)"),
    "/collective_rpc": (OUT, "runs a method on every worker (VLLM_SERVER_DEV_MODE): internal"),
    "/fault_tolerance/apply": (RAW, "fault tolerance (vLLM 0.33; moved to /v1/fault_tolerance/ in 0.34)"),
    "/fault_tolerance/status": (RAW, "fault tolerance (vLLM 0.33; moved to /v1/fault_tolerance/ in 0.34)"),
    "/v1/fault_tolerance/apply": (RAW, "fault tolerance (vLLM 0.34, when enabled)"),
    "/v1/fault_tolerance/status": (RAW, "fault tolerance (vLLM 0.34, when enabled)"),
    "/checkpoint/save": (RAW, "engine checkpoints (vLLM 0.34, when enabled)"),
    "/checkpoint/load": (RAW, "engine checkpoints (vLLM 0.34, when enabled)"),
    "/init_weight_transfer_engine": (RAW, "RL weight updates (when enabled): trainer plumbing"),
    "/update_weights": (RAW, "RL weight updates (when enabled): trainer plumbing"),
    "/get_world_size": (RAW, "RL weight updates (when enabled): trainer plumbing"),
    "/pause": (RAW, "pauses generation for an RL weight update"),
    "/resume": (RAW, "resumes generation after /pause"),
    "/is_paused": (RAW, "whether generation is paused"),
    "/scale": (OUT, "data-parallel scale-out, an operator's tool"),
    "/server_info": (RAW, "the server's configuration (VLLM_SERVER_DEV_MODE)"),
}

# Every request field of vLLM 0.32-0.34 that the SDK types on a covered route (the recorded
# documents' fields with a setter or method argument): what the SDK may send. A server whose
# schema lacks one no longer takes it (``rejected_fields``). A test recomputes it from the recordings.
KNOWN_FIELDS: dict[str, frozenset[str]] = {}  # filled below from _KNOWN


def _known(text: str) -> frozenset[str]:
    return frozenset(text.split())


_KNOWN = {
    "/classify": """
        add_generation_prompt add_special_tokens cache_salt chat_template chat_template_kwargs
        continue_final_message input media_io_kwargs messages mm_processor_kwargs model padding priority
        request_id truncate_prompt_tokens truncation_side use_activation user
        """,
    "/detokenize": "model tokens",
    "/pooling": """
        add_generation_prompt add_special_tokens cache_salt chat_template chat_template_kwargs
        continue_final_message data dimensions embed_dtype encoding_format endianness input
        media_io_kwargs messages mm_processor_kwargs model padding priority request_id task
        truncate_prompt_tokens truncation_side use_activation user
        """,
    "/tokenize": "add_special_tokens messages model prompt",
    "/v1/chat/completions": """
        add_generation_prompt add_special_tokens allowed_token_ids bad_words cache_salt chat_template
        chat_template_kwargs continue_final_message documents ec_transfer_params echo frequency_penalty
        ignore_eos include_reasoning include_stop_str_in_output kv_transfer_params length_penalty
        logit_bias logprob_token_ids logprobs max_completion_tokens max_tokens media_io_kwargs messages
        min_p min_tokens mm_processor_kwargs model n parallel_tool_calls presence_penalty priority
        prompt_logprobs reasoning_effort repetition_detection repetition_penalty request_id
        response_format return_prompt_text return_token_ids return_tokens_as_token_ids
        return_weight_versions seed session_id skip_special_tokens spaces_between_special_tokens stop
        stop_token_ids stream stream_interval stream_options structured_outputs temperature
        thinking_token_budget tool_choice tools top_k top_logprobs top_p truncate_prompt_tokens
        truncation_side use_beam_search user vllm_xargs watermarking
        """,
    "/v1/chat/completions/batch": """
        add_generation_prompt cache_salt chat_template chat_template_kwargs continue_final_message echo
        frequency_penalty include_reasoning include_stop_str_in_output length_penalty logit_bias
        logprob_token_ids logprobs max_completion_tokens max_tokens media_io_kwargs messages min_p
        mm_processor_kwargs model n presence_penalty priority repetition_penalty request_id
        response_format return_token_ids return_tokens_as_token_ids seed stop structured_outputs
        temperature tool_choice top_k top_logprobs top_p use_beam_search user watermarking
        """,
    "/v1/completions": """
        add_special_tokens allowed_token_ids bad_words cache_salt ec_transfer_params echo
        frequency_penalty ignore_eos include_stop_str_in_output kv_transfer_params length_penalty
        logit_bias logprob_token_ids logprobs max_tokens min_p min_tokens model n presence_penalty
        priority prompt prompt_embeds prompt_logprobs repetition_detection repetition_penalty request_id
        response_format return_token_ids return_tokens_as_token_ids return_weight_versions seed
        session_id skip_special_tokens spaces_between_special_tokens stop stop_token_ids stream
        stream_interval stream_options structured_outputs suffix temperature thinking_token_budget top_k
        top_p truncate_prompt_tokens truncation_side use_beam_search user vllm_xargs watermarking
        """,
    "/v1/decisions": "cache_salt input joint model questions safety_identifier",
    "/v1/embeddings": """
        add_generation_prompt add_special_tokens cache_salt chat_template chat_template_kwargs
        continue_final_message dimensions embed_dtype encoding_format endianness input
        late_chunking_params media_io_kwargs messages mm_processor_kwargs model padding priority
        request_id truncate_prompt_tokens truncation_side use_activation user
        """,
    "/v1/rerank": """
        cache_salt chat_template_kwargs documents instruction max_tokens_per_doc max_tokens_per_query
        mm_processor_kwargs model padding priority query request_id top_n truncate_prompt_tokens
        truncation_side use_activation user
        """,
    "/v1/responses": """
        background cache_salt chat_template_kwargs frequency_penalty ignore_eos include
        include_reasoning include_stop_str_in_output input instructions logit_bias max_output_tokens
        max_tool_calls metadata min_p model parallel_tool_calls presence_penalty previous_response_id
        priority prompt_cache_key prompt_cache_options prompt_cache_retention reasoning
        repetition_penalty request_id safety_identifier seed service_tier skip_special_tokens
        spaces_between_special_tokens stop stop_token_ids store stream temperature text
        thinking_token_budget tool_choice tools top_k top_logprobs top_p truncation user
        """,
    "/v1/score": """
        cache_salt chat_template_kwargs data_1 data_2 documents instruction items max_tokens_per_doc
        max_tokens_per_query mm_processor_kwargs model padding priority queries request_id text_1 text_2
        truncate_prompt_tokens truncation_side use_activation user
        """,
    "/v2/embed": """
        embedding_types images input_type inputs max_tokens model output_dimension priority texts
        truncate
        """,
}
KNOWN_FIELDS.update((route, _known(text)) for route, text in _KNOWN.items())


@dataclass(slots=True)
class ServerCheck:
    """What ``check_server()`` found in a server's ``/openapi.json``: its ``version``; the routes
    no SDK method covers (``client.request()`` reaches them); the request fields of covered
    routes without a setter (``"route field"``: send them with ``extra()``); the fields the SDK
    sends that the server no longer takes; ``ok`` when there are none of those."""

    version: str | None
    untyped_routes: list[str]
    untyped_fields: list[str]
    rejected_fields: list[str]
    openapi: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when the server takes every field the SDK sends."""
        return not self.rejected_fields

    def lines(self) -> list[str]:
        """The report, one finding per line (what ``vllm-client server-info --check`` prints)."""
        out = [f"version: {self.version or 'unknown'}"]
        out += [f"untyped route: {r} (client.request())" for r in self.untyped_routes]
        out += [f"untyped field: {f} (extra())" for f in self.untyped_fields]
        out += [f"rejected field: {f} (an SDK setter; not in this server's schema)" for f in self.rejected_fields]
        if len(out) == 1:
            out.append("the SDK types every route and field this server serves")
        return out


# -- reading a document ------------------------------------------------------


def _schema_names(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        return [str(node["$ref"]).rsplit("/", 1)[1]]
    return [n for key in ("anyOf", "oneOf") for sub in node.get(key, ()) for n in _schema_names(sub)]


def _post(openapi: dict[str, Any], route: str) -> dict[str, Any]:
    ops = openapi.get("paths", {}).get(route) or {}
    op = ops.get("post")
    return op if isinstance(op, dict) else {}


def request_models(openapi: dict[str, Any], route: str) -> list[str]:
    """The component names of a route's JSON request body (several for an ``anyOf``)."""
    body = _post(openapi, route).get("requestBody") or {}
    return _schema_names(body.get("content", {}).get("application/json", {}).get("schema", {}))


def request_fields(openapi: dict[str, Any], route: str) -> set[str]:
    """Every field of every request model of a route (empty when it takes no JSON body)."""
    schemas = openapi.get("components", {}).get("schemas", {})
    return {f for name in request_models(openapi, route) for f in schemas.get(name, {}).get("properties", {})}


def typed_fields(route: str) -> set[str] | None:
    """The fields the SDK types on a route: a builder's setters, or a method's arguments;
    None for a route the SDK does not cover."""
    if route in METHODS:
        return set(METHODS[route])
    cls = BUILDERS.get(route)
    if cls is None:
        return None
    names = {f for f in dir(cls) if not f.startswith("_") and callable(getattr(cls, f, None))}
    return names & BATCH_CHAT_FIELDS if route == "/v1/chat/completions/batch" else names


def _covered(route: str) -> bool:
    return route in BUILDERS or route in METHODS


def untyped_fields(openapi: dict[str, Any], *, listed: bool = True) -> list[str]:
    """``"route field"`` for each request field of a covered route that has no setter (with
    ``listed=False``, those in ``EXTRA_FIELDS`` left out: what the tests call uncovered)."""
    out = []
    for route in sorted(openapi.get("paths", {})):
        typed = typed_fields(route)
        if typed is None:
            continue
        extra = EXTRA_FIELDS.get(route, {})
        out += [f"{route} {f}" for f in sorted(request_fields(openapi, route) - typed)
                if listed or f not in extra]
    return out


def uncovered_routes(openapi: dict[str, Any], *, listed: bool = True) -> list[str]:
    """Routes the document serves that no SDK method covers (``listed=False``: those in
    ``ROUTES_LEFT`` left out)."""
    return sorted(r for r in openapi.get("paths", {}) if not _covered(r) and (listed or r not in ROUTES_LEFT))


def missing_routes(openapi: dict[str, Any], expected: set[str]) -> list[str]:
    """The routes of ``expected`` (covered routes a runner served before) the document lacks."""
    return sorted(expected - set(openapi.get("paths", {})))


def rejected_fields(openapi: dict[str, Any]) -> list[str]:
    """``"route field"`` for each vLLM field the SDK sends on a route the server serves but whose
    request schema no longer has it."""
    out = []
    for route in sorted(openapi.get("paths", {})):
        known = KNOWN_FIELDS.get(route)
        if not known or not request_models(openapi, route):
            continue
        out += [f"{route} {f}" for f in sorted(known - request_fields(openapi, route))]
    return out


# -- response schemas the SDK parses -------------------------------------------

_RAW_NOTE = "kept in .raw"
# component schema -> (SDK class whose attributes read it, {field: where it is instead})
RESPONSE_MODELS: dict[str, tuple[type, dict[str, str]]] = {
    "ChatCompletionResponse": (ChatCompletionResponse, {
        "metrics": _RAW_NOTE, "prompt_logprobs": _RAW_NOTE, "service_tier": _RAW_NOTE,
        "system_fingerprint": _RAW_NOTE, "ec_transfer_params": _RAW_NOTE}),
    "ChatCompletionStreamResponse": (ChatCompletionResponse, {
        "metrics": _RAW_NOTE, "system_fingerprint": _RAW_NOTE}),
    "ChatCompletionResponseChoice": (Choice, {"routed_experts": _RAW_NOTE}),
    "ChatCompletionResponseStreamChoice": (Choice, {"delta": "accumulated into message"}),
    "ChatMessage": (Choice, {"role": "message", "reasoning": "reasoning_content", "annotations": "message",
                             "audio": "message", "function_call": "message"}),
    "DeltaMessage": (Choice, {"role": "message", "reasoning": "reasoning_content"}),
    "CompletionResponse": (CompletionResponse, {
        "metrics": _RAW_NOTE, "service_tier": _RAW_NOTE, "system_fingerprint": _RAW_NOTE,
        "ec_transfer_params": _RAW_NOTE}),
    "CompletionStreamResponse": (CompletionResponse, {
        "metrics": _RAW_NOTE, "system_fingerprint": _RAW_NOTE}),
    "CompletionResponseChoice": (CompletionChoice, {"routed_experts": _RAW_NOTE, "prompt_logprobs": _RAW_NOTE}),
    "CompletionResponseStreamChoice": (CompletionChoice, {}),
    "UsageInfo": (Usage, {"completion_tokens_details": "reasoning_tokens",
                          "prompt_tokens_details": "cached_tokens"}),
    "DecisionResponse": (DecisionsResponse, {}),
    "PredicateAnswer": (PredicateAnswer, {}),
    "ChoiceAnswer": (ChoiceAnswer, {}),
    "ScoreAnswer": (ScoreAnswer, {}),
    "OpenAIDecisionUsage": (Usage, {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens",
                                    "input_tokens_details": "cached_tokens",
                                    "output_tokens_details": "reasoning_tokens"}),
}


def _attrs(cls: type) -> set[str]:
    names = set(dir(cls))
    names.update(getattr(cls, "__dataclass_fields__", {}))
    return names


def unread_response_fields(openapi: dict[str, Any]) -> list[str]:
    """``"Schema.field"`` for each field of a response schema the SDK parses that it neither
    reads (an attribute of that name) nor lists in ``RESPONSE_MODELS``."""
    schemas = openapi.get("components", {}).get("schemas", {})
    out = []
    for name, (cls, listed) in RESPONSE_MODELS.items():
        attrs = _attrs(cls)
        for f in sorted(schemas.get(name, {}).get("properties", {})):
            if f not in attrs and f not in listed:
                out.append(f"{name}.{f}")
    return out


def check_openapi(openapi: dict[str, Any], version: str | None = None) -> ServerCheck:
    """The report of a server's ``/openapi.json`` (``check_server()`` without the network)."""
    return ServerCheck(version, uncovered_routes(openapi), untyped_fields(openapi), rejected_fields(openapi),
                       openapi)


def check_flow(client: ClientCore) -> Flow[ServerCheck]:
    """``GET /openapi.json`` and ``GET /version`` at the server root -> the ``ServerCheck``."""
    try:
        doc = yield from client.json_flow(client.prepare("GET", "/openapi.json", root=True), dict, "openapi.json")
    except APIStatusError as e:
        raise route_missing(e, "this server publishes no /openapi.json; vLLM does at its root") from None
    try:
        version: str | None = yield from version_flow(client)
    except APIStatusError:  # a server with an OpenAPI document but no /version
        version = None
    return check_openapi(doc, version or None)
