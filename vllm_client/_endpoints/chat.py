"""Chat completions (``POST /chat/completions``): the request body and its setters, the
response types, the sync and async builders (with the tool loop), and ``client.chat``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from .. import _validate as v
from .._conversation import AsyncConversation, Conversation, ConversationState, ToolLoop
from .._exceptions import InvalidRequestError
from .._media import media_part
from .._types import ChatMessage, ToolCall, WeightVersionSpan, _Completion, _dict, split_content
from .base import AsyncToolLoopSender, Creator, ToolLoopSender, _copy, endpoint
from .common import _ChatTemplateFields
from .sampling import _check_min_max, _SamplingMixin

__all__ = ["BATCH_CHAT_FIELDS", "Choice", "ChatCompletionResponse", "ChatBody", "ChatCompletionBuilder", "AsyncChatCompletionBuilder",
           "Chat", "AsyncChat"]

CB = TypeVar("CB", bound="ChatBody")
T = TypeVar("T")
if TYPE_CHECKING:  # the output type of response_format(T) & co. (Any when none was given)
    from typing_extensions import Self
    from typing_extensions import TypeVar as _TypeVarWithDefault

    P = _TypeVarWithDefault("P", default=Any)
else:
    P = TypeVar("P")
# Where servers put an assistant turn's reasoning, and read it back from: vLLM reads `reasoning`
# only (0.32+), DeepSeek `reasoning_content`.
_REASONING_KEYS = ("reasoning", "reasoning_content")
_BATCH_PATH = "/chat/completions/batch"  # vLLM: many conversations in one request
# The fields vLLM's /chat/completions/batch takes (0.32-0.34): conversations([...]) refuses the others
BATCH_CHAT_FIELDS = frozenset("""
    add_generation_prompt best_of cache_salt chat_template chat_template_kwargs continue_final_message
    early_stopping echo frequency_penalty guided_decoding_backend include_reasoning
    include_stop_str_in_output length_penalty logit_bias logprob_token_ids logprobs
    max_completion_tokens max_tokens media_io_kwargs messages min_p mm_processor_kwargs model n
    presence_penalty priority repetition_penalty request_id response_format return_token_ids
    return_tokens_as_token_ids seed stop structured_outputs temperature tool_choice top_k top_logprobs
    top_p use_beam_search user watermarking
""".split())


# ---------------------------------------------------------------------------
# the response


@dataclass(slots=True)
class Choice(Generic[P]):
    """One choice of a chat completion (one per ``n``)."""

    index: int
    content: str | None
    reasoning_content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str | None
    refusal: str | None = None
    logprobs: Any = None
    stop_reason: Any = None
    message: ChatMessage = field(default_factory=ChatMessage)  # the message as sent: a dict, fields also as attributes
    token_ids: list[int] | None = None  # vLLM, with return_token_ids
    parsed: P | None = None  # the validated output instance (with an output type), else None
    weight_versions: list[WeightVersionSpan] | None = None  # vLLM 0.33+, with return_weight_versions

    @classmethod
    def from_dict(cls, d: Any, position: int = 0) -> Choice[Any]:
        """Parse a choice of a ``chat.completion`` body."""
        d = _dict(d)
        get = d.get
        msg = get("message")
        msg = ChatMessage(msg) if msg.__class__ is dict else ChatMessage()
        mget = msg.get
        content = mget("content")
        part_reasoning = None
        if content is not None and content.__class__ is not str:
            content, part_reasoning = split_content(content)
        reasoning = mget("reasoning_content")
        if reasoning is None:
            reasoning = mget("reasoning")
            if reasoning is None:
                reasoning = part_reasoning
        index = get("index")
        tool_calls = mget("tool_calls")
        finish_reason = get("finish_reason")
        refusal = mget("refusal")
        cut = finish_reason == "length"  # the turn ended by length: its calls may be cut
        return cls(
            position if index.__class__ is not int else index,
            content,
            reasoning if reasoning.__class__ is str else None,
            [ToolCall.from_dict(tc, cut) for tc in tool_calls] if tool_calls and tool_calls.__class__ is list else [],
            finish_reason if finish_reason.__class__ is str else None,
            refusal if refusal.__class__ is str else None,
            get("logprobs"),
            get("stop_reason"),
            msg,
            get("token_ids"),
            weight_versions=WeightVersionSpan.parse_list(get("weight_versions")),
        )

    def history_message(self, reasoning: bool = True) -> dict[str, Any]:
        """The assistant message as a dict, ready to append to a conversation: with the reasoning
        the server sent, under the key it used (``reasoning`` for vLLM, ``reasoning_content``
        for DeepSeek & co.; both when it sent both), unless ``reasoning=False`` (for servers
        that refuse the key)."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if reasoning and self.reasoning_content is not None:
            msg = self.message
            keys = [k for k in _REASONING_KEYS if msg.get(k).__class__ is str]
            for k in keys:
                out[k] = msg[k]
        if self.tool_calls:
            out["tool_calls"] = [tc.to_dict() for tc in self.tool_calls]
        elif out["content"] is None:
            out["content"] = ""
        return out


class ChatCompletionResponse(_Completion, Generic[P]):
    """A chat completion. Top-level ``content``/``reasoning_content``/``tool_calls``/
    ``finish_reason``/``refusal``/``message`` are those of the first choice."""

    __slots__ = ()
    _what = "chat completion"
    _choice = Choice

    @property
    def choices(self) -> list[Choice[P]]:
        """One ``Choice`` per ``n``, in the server's order."""
        return self._parsed_choices()

    @property
    def _first(self) -> Choice[P] | None:
        choices = self._parsed_choices()
        return choices[0] if choices else None

    @property
    def content(self) -> str | None:
        """The text of the first choice (None when the model sent none)."""
        # Not parsed yet: plain text is read as is, without parsing (a measured repeat of what
        # Choice.from_dict reads first; change both together).
        if self._choices is None:
            choices = self.raw.get("choices")
            first = choices[0] if choices else None
            message = first.get("message") if first.__class__ is dict else None
            text = message.get("content") if message.__class__ is dict else None
            if text.__class__ is str:
                return text
        c = self._first
        return c.content if c else None

    @property
    def reasoning_content(self) -> str | None:
        """The reasoning ("thinking") text, from ``reasoning_content`` or ``reasoning``."""
        c = self._first
        return c.reasoning_content if c else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls of the first choice; an empty list when none."""
        c = self._first
        return c.tool_calls if c else []

    @property
    def finish_reason(self) -> str | None:
        """Why generation stopped: "stop", "length", "tool_calls", ..."""
        c = self._first
        return c.finish_reason if c else None

    @property
    def refusal(self) -> str | None:
        """The refusal text when the model refused."""
        c = self._first
        return c.refusal if c else None

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message as a dict, ready to append to a history."""
        c = self._first
        return c.history_message() if c else {"role": "assistant", "content": ""}

    @property
    def parsed(self) -> P | None:
        """The first choice's validated output (``response_format(T)``: a ``T``); None when no
        type was given or the model refused (then ``refusal`` is set)."""
        c = self._first
        return c.parsed if c else None


# ---------------------------------------------------------------------------
# the request body


def _system_first(msgs: list[Any], text: str, setter: str) -> bool:
    """True when ``msgs`` already starts with this system prompt; False when it has none first;
    an error when it starts with a different one (two system prompts: which one was meant?)."""
    first = msgs[0] if msgs else None
    if first.__class__ is not dict or first.get("role") != "system":
        return False
    if first.get("content") == text:
        return True
    raise InvalidRequestError(
        f"{setter}(...): two different system prompts, {_short(text)} from system() and "
        f"{_short(first.get('content'))} first in the messages; keep one (copy() a builder to vary it)")


def _short(text: Any) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


class ChatBody(_ChatTemplateFields, _SamplingMixin):
    """Setters of a chat completion request (OpenAI fields + vLLM extensions)."""

    _path = "/chat/completions"
    _what = "chat completion"
    _parse = ChatCompletionResponse.from_dict
    _toolset: Any = None  # the ToolSet given to tools(), for run_tools()
    _tool_loop_class: ClassVar[type[ToolLoop]] = ToolLoop  # run_tools() over messages and tool messages
    _typed_output = True  # response_format(T) & co.: responses get .parsed
    _parse_retries = 0  # parse_retries(n): re-asks after an OutputParseError

    _system: str | None = None  # the text given to system(): it stays the first message

    def messages(self: CB, messages: list[dict[str, Any]]) -> CB:
        """Replace the message list (dicts with ``role`` and ``content``). A prompt given to
        ``system()`` stays first (a different system message first in ``messages`` is an error)."""
        self._path = ChatBody._path
        system = self._system
        if system is None:  # (the usual case first: no system() before)
            return self._set("messages", _copy(v.messages("messages", messages)))
        msgs = _copy(v.messages("messages", messages))
        if msgs is not None and not _system_first(msgs, system, "messages"):
            msgs.insert(0, {"role": "system", "content": system})
        return self._set("messages", msgs)

    def message(self: CB, message: Mapping[str, Any]) -> CB:
        """Append one message dict."""
        if self._path == _BATCH_PATH:
            raise InvalidRequestError("message(...) after conversations([...]): add the message to a conversation")
        if not isinstance(message, Mapping):
            v.message("message", message)  # (raises: not a dict)
        self._body.setdefault("messages", []).append(v.message("message", dict(message)))
        return self

    def conversations(self: CB, conversations: list[list[dict[str, Any]]]) -> CB:
        """Many conversations in one request (vLLM's ``POST /chat/completions/batch``): the
        response has one choice per conversation, in order. Not streamable; servers without
        the route answer 404 (``client.batch()`` is the portable way)."""
        if not isinstance(conversations, list) or not conversations:
            raise InvalidRequestError("conversations(...): expected a non-empty list of message lists")
        convs = [list(v.messages(f"conversations[{i}]", c)) for i, c in enumerate(conversations)]
        if not all(convs):
            raise InvalidRequestError(f"conversations(...): conversation {convs.index([])} has no messages")
        self._path = _BATCH_PATH
        return self._set("messages", convs)

    @property
    def _route_hint(self) -> str | None:
        """What a 404 of a missing route means for this request (``ClientCore.builder_flow``)."""
        if self._path == _BATCH_PATH:
            return ("vLLM serves /v1/chat/completions/batch from 0.32; elsewhere send one request per "
                    "conversation, e.g. with client.batch([...])")
        return None

    def _request_parts(self, stream: bool) -> tuple[dict[str, Any], dict[str, str] | None, Any]:
        if stream and self._path == _BATCH_PATH:
            raise InvalidRequestError("conversations([...]) cannot be streamed: vLLM's /chat/completions/batch "
                                      "answers with JSON only; drop stream(True), or stream each conversation")
        return super()._request_parts(stream)

    def system(self: CB, text: str) -> CB:
        """The system prompt: always the first message, whether called before or after
        ``messages()`` / ``user_message()``. A different system message already first (from
        ``messages()`` or an earlier ``system()``) is an ``InvalidRequestError``, never dropped."""
        text = v.string("system", text, empty_ok=True)
        if text is None:
            raise InvalidRequestError("system(None): expected a string")
        if self._path == _BATCH_PATH:
            raise InvalidRequestError("system(...) after conversations([...]): put it in each conversation")
        msgs = self._body.get("messages")
        if msgs is None:
            msgs = self._body["messages"] = []
        if not _system_first(msgs, text, "system"):
            msgs.insert(0, {"role": "system", "content": text})
        self._system = text
        return self

    def user_message(self: CB, content: str | list[Any], *, images: Iterable[Any] = (), audio: Iterable[Any] = (),
                     videos: Iterable[Any] = ()) -> CB:
        """Append a user message: text or content parts, plus images, audio clips and videos. Each
        is a URL (``str``: http, https or data; never read from disk), a ``pathlib.Path`` (a local
        file, read: its content must be of that kind, at most ``MAX_MEDIA_BYTES``), raw bytes, or
        a content-part dict."""
        if not isinstance(content, (str, list)):
            raise InvalidRequestError(f"user_message({content!r}): expected text or a list of content parts")
        if not (images or audio or videos):  # (text only: the common case)
            return self.message({"role": "user", "content": content})
        parts = []
        for kind, items in (("image", images), ("audio", audio), ("video", videos)):
            arg = "images" if kind == "image" else ("audio" if kind == "audio" else "videos")
            if isinstance(items, (str, bytes, bytearray, os.PathLike, Mapping)) or not isinstance(items, Iterable):
                raise InvalidRequestError(f"user_message({arg}=...): expected a list of {arg}")
            parts += [media_part(x, kind, f"user_message({arg}=[...])") for x in items]
        if parts:
            text_parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            return self.message({"role": "user", "content": text_parts + parts})
        return self.message({"role": "user", "content": content})

    def assistant(self: CB, text: str) -> CB:
        """Append an assistant message."""
        return self.message({"role": "assistant", "content": v.string("assistant", text, empty_ok=True)})

    def max_completion_tokens(self: CB, value: int) -> CB:
        """Most tokens to generate (the newer OpenAI name of max_tokens)."""
        return self._set("max_completion_tokens", v.integer("max_completion_tokens", value, lo=1))

    def logprobs(self: CB, value: bool = True) -> CB:
        """Return log probabilities of the output tokens."""
        return self._set("logprobs", v.boolean("logprobs", value))

    def top_logprobs(self: CB, value: int) -> CB:
        """How many top alternatives per token (0-20; needs logprobs)."""
        return self._set("top_logprobs", v.integer("top_logprobs", value, lo=0, hi=20))

    def tools(self: CB, tools: Iterable[Callable[..., Any] | Mapping[str, Any]]) -> CB:
        """Tools the model may call: Python functions (schema from their signature) or tool dicts."""
        from .._tools import ToolSet

        if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
            raise InvalidRequestError("tools(...): expected a list of functions or tool dicts")
        ts = ToolSet(list(tools))
        self._toolset = ts
        return self._set("tools", ts.schemas)

    def tool_choice(self: CB, choice: str | Mapping[str, Any]) -> CB:
        """"auto", "none", "required", a function name, or a tool_choice dict."""
        if isinstance(choice, str):
            if choice not in ("auto", "none", "required"):
                choice = {"type": "function", "function": {"name": choice}}
        elif isinstance(choice, Mapping):
            choice = dict(choice)
        else:
            raise InvalidRequestError(f"tool_choice({choice!r}): expected 'auto', 'none', 'required', a name or a dict")
        return self._set("tool_choice", choice)

    def parallel_tool_calls(self: CB, value: bool) -> CB:
        """Allow several tool calls in one turn."""
        return self._set("parallel_tool_calls", v.boolean("parallel_tool_calls", value))

    def response_format(self: CB, fmt: Mapping[str, Any] | Any) -> CB:
        """A type (pydantic model, dataclass, TypedDict, ``list[Item]``, ...; as ``json_schema(T)``:
        ``.parsed`` is the validated instance), or a format dict such as ``{"type": "json_object"}``."""
        if not isinstance(fmt, Mapping):
            return self.json_schema(fmt)
        self._set_output(None)
        return self._set("response_format", _copy(v.mapping("response_format", fmt)))

    def json_schema(self: CB, schema: Mapping[str, Any] | Any, name: str | None = None, strict: bool = True) -> CB:
        """Ask for JSON matching a schema (``response_format`` of type json_schema): a schema dict,
        or a type whose schema is made by the converter behind ``tool(fn)`` (strict mode when
        ``strict``; ``name`` defaults to the type's name) and whose instance becomes ``.parsed``."""
        from .._structured import structured_output

        strict = v.boolean("json_schema(strict=)", strict)
        if isinstance(schema, Mapping):
            output = None
            schema_dict = dict(schema)
            default_name = "output"
        else:
            output = structured_output(schema, strict=strict, where="json_schema")
            schema_dict = output.schema or {}
            default_name = output.name
        self._set_output(output)
        return self._set("response_format", {
            "type": "json_schema",
            "json_schema": {"name": v.string("json_schema(name=)", name if name is not None else default_name),
                            "schema": schema_dict, "strict": strict},
        })

    def parse_retries(self: CB, n: int) -> CB:
        """With an output type: when the answer does not parse or validate, send the error back
        and ask again, up to ``n`` times (``n + 1`` requests at most; not for streams, and not
        for an answer cut at max_tokens). For servers that do not constrain the output."""
        self._parse_retries = v.integer("parse_retries", n, lo=0)
        return self

    # vLLM chat extensions (chat_template, add_generation_prompt ...: _ChatTemplateFields)

    def documents(self: CB, documents: list[Mapping[str, str]]) -> CB:
        """Documents for a RAG-aware chat template, e.g. ``[{"title": ..., "text": ...}]`` (vLLM;
        templates without RAG support ignore them)."""
        if not isinstance(documents, list) or not all(
                isinstance(d, Mapping) and all(isinstance(k, str) and isinstance(x, str) for k, x in d.items())
                for d in documents):
            raise InvalidRequestError(f"documents({documents!r:.80}): expected a list of dicts of strings")
        return self._set("documents", [dict(d) for d in documents])

    def return_prompt_text(self: CB, value: bool = True) -> CB:
        """Return the prompt the chat template made, as ``prompt_text`` on the response (vLLM)."""
        return self._set("return_prompt_text", v.boolean("return_prompt_text", value))

    def reasoning_effort(self: CB, effort: str) -> CB:
        """"low", "medium" or "high" (also "minimal"/"none" on some servers)."""
        return self._set("reasoning_effort", v.string("reasoning_effort", effort))

    def include_reasoning(self: CB, value: bool) -> CB:
        """Send the reasoning text back (vLLM; default True)."""
        return self._set("include_reasoning", v.boolean("include_reasoning", value))

    # provider dialects

    def reasoning_format(self: CB, fmt: str) -> CB:
        """Groq: "parsed" (reasoning in its own field), "raw" (in <think> tags) or "hidden"."""
        return self._set("reasoning_format", v.string("reasoning_format", fmt))

    def chat_id(self: CB, chat_id: str) -> CB:
        """FastGPT ``chatId``: the server keeps the conversation's history under this id."""
        return self._set("chatId", v.string("chat_id", chat_id))

    def variables(self: CB, variables: Mapping[str, Any]) -> CB:
        """FastGPT ``variables``: values for the app's workflow variables."""
        return self._set("variables", _copy(v.mapping("variables", variables)))

    def detail(self: CB, value: bool = True) -> CB:
        """FastGPT ``detail``: stream the workflow's node events too (``ServerEvent``s)."""
        return self._set("detail", v.boolean("detail", value))

    def _check(self, body: dict[str, Any]) -> None:
        msgs = body.get("messages")
        if not msgs:
            raise InvalidRequestError("no messages: call .messages([...]) or .user_message('...') first")
        if self._path == _BATCH_PATH:
            if body.get("stream") is True:
                raise InvalidRequestError("conversations([...]) cannot be streamed: drop stream(True)")
            refused = sorted(k for k in self._body if k not in BATCH_CHAT_FIELDS and k != "stream")
            if refused:
                raise InvalidRequestError(f"conversations([...]): vLLM's /chat/completions/batch does not take "
                                          f"{', '.join(refused)}; drop them or send one request per conversation")
            if "messages" in self._extra:
                for i, c in enumerate(msgs):
                    v.messages(f"conversations[{i}]", c)
            _check_min_max(body)
            return
        if body.get("continue_final_message") is True and body.get("add_generation_prompt", True) is not False:
            raise InvalidRequestError("continue_final_message(True) needs add_generation_prompt(False) "
                                      "(vLLM refuses the two together)")
        _check_min_max(body)
        if "messages" in self._extra:  # the setters checked theirs; extra() may have replaced them
            v.messages("messages", msgs)


# ---------------------------------------------------------------------------
# the builders: the body plus a sender (with the tool loop: base.ToolLoopSender)


class ChatCompletionBuilder(ChatBody, ToolLoopSender[ChatCompletionResponse[P]], Generic[P]):
    """Builds one chat completion request; ``send()`` or ``send_stream()`` it. Generic in the
    output type ``P`` of ``response_format(P)``: ``send().parsed`` is a ``P | None``."""

    # Typing only: a type given to response_format / json_schema / structured_outputs(json=)
    # makes the builder's responses' .parsed that type (to mypy and pyright).
    @overload
    def response_format(self, fmt: type[T]) -> ChatCompletionBuilder[T]: ...
    @overload
    def response_format(self, fmt: Mapping[str, Any]) -> Self: ...
    @overload
    def response_format(self, fmt: Any) -> ChatCompletionBuilder[Any]: ...
    def response_format(self, fmt: Any) -> Any:
        return ChatBody.response_format(self, fmt)

    @overload
    def json_schema(self, schema: type[T], name: str | None = None, strict: bool = True) -> ChatCompletionBuilder[T]: ...
    @overload
    def json_schema(self, schema: Mapping[str, Any], name: str | None = None, strict: bool = True) -> Self: ...
    @overload
    def json_schema(self, schema: Any, name: str | None = None, strict: bool = True) -> ChatCompletionBuilder[Any]: ...
    def json_schema(self, schema: Any, name: str | None = None, strict: bool = True) -> Any:
        return ChatBody.json_schema(self, schema, name, strict)

    @overload
    def structured_outputs(self, *, json: type[T], **more: Any) -> ChatCompletionBuilder[T]: ...
    @overload
    def structured_outputs(self, *, choice: type[T], **more: Any) -> ChatCompletionBuilder[T]: ...
    @overload
    def structured_outputs(self, *, json: Mapping[str, Any] | str | None = None, regex: str | None = None,
                           choice: list[str] | None = None, grammar: str | None = None,
                           json_object: bool | None = None, structural_tag: str | None = None,
                           **more: Any) -> Self: ...
    @overload
    def structured_outputs(self, **kwargs: Any) -> ChatCompletionBuilder[Any]: ...
    def structured_outputs(self, **kwargs: Any) -> Any:
        return ChatBody.structured_outputs(self, **kwargs)

    def send(self) -> ChatCompletionResponse[P]:
        """Send and return the response (with an output type, ``.parsed`` is validated;
        ``parse_retries(n)`` re-asks on an ``OutputParseError``)."""
        if self._parse_retries and self._output is not None and not self._streams():
            from .._structured import reask_flow

            c: Any = self._client
            result: ChatCompletionResponse[P] = c._run(reask_flow(c, self, self._parse_retries))
            return result
        return ToolLoopSender.send(self)


class AsyncChatCompletionBuilder(ChatBody, AsyncToolLoopSender[ChatCompletionResponse[P]], Generic[P]):
    """Builds one chat completion request; ``await send()`` or ``await send_stream()``. Generic
    in the output type ``P`` of ``response_format(P)``: ``.parsed`` is a ``P | None``."""

    # Typing only: a type given to response_format / json_schema / structured_outputs(json=)
    # makes the builder's responses' .parsed that type (to mypy and pyright).
    @overload
    def response_format(self, fmt: type[T]) -> AsyncChatCompletionBuilder[T]: ...
    @overload
    def response_format(self, fmt: Mapping[str, Any]) -> Self: ...
    @overload
    def response_format(self, fmt: Any) -> AsyncChatCompletionBuilder[Any]: ...
    def response_format(self, fmt: Any) -> Any:
        return ChatBody.response_format(self, fmt)

    @overload
    def json_schema(self, schema: type[T], name: str | None = None, strict: bool = True) -> AsyncChatCompletionBuilder[T]: ...
    @overload
    def json_schema(self, schema: Mapping[str, Any], name: str | None = None, strict: bool = True) -> Self: ...
    @overload
    def json_schema(self, schema: Any, name: str | None = None, strict: bool = True) -> AsyncChatCompletionBuilder[Any]: ...
    def json_schema(self, schema: Any, name: str | None = None, strict: bool = True) -> Any:
        return ChatBody.json_schema(self, schema, name, strict)

    @overload
    def structured_outputs(self, *, json: type[T], **more: Any) -> AsyncChatCompletionBuilder[T]: ...
    @overload
    def structured_outputs(self, *, choice: type[T], **more: Any) -> AsyncChatCompletionBuilder[T]: ...
    @overload
    def structured_outputs(self, *, json: Mapping[str, Any] | str | None = None, regex: str | None = None,
                           choice: list[str] | None = None, grammar: str | None = None,
                           json_object: bool | None = None, structural_tag: str | None = None,
                           **more: Any) -> Self: ...
    @overload
    def structured_outputs(self, **kwargs: Any) -> AsyncChatCompletionBuilder[Any]: ...
    def structured_outputs(self, **kwargs: Any) -> Any:
        return ChatBody.structured_outputs(self, **kwargs)

    async def send(self) -> ChatCompletionResponse[P]:
        """Send and return the response (with an output type, ``.parsed`` is validated;
        ``parse_retries(n)`` re-asks on an ``OutputParseError``)."""
        if self._parse_retries and self._output is not None and not self._streams():
            from .._structured import reask_flow

            c: Any = self._client
            result: ChatCompletionResponse[P] = await c._run(reask_flow(c, self, self._parse_retries))
            return result
        return await AsyncToolLoopSender.send(self)


# ---------------------------------------------------------------------------
# client.chat

BT = TypeVar("BT")
CT = TypeVar("CT")


class _ChatNamespace(Generic[BT, CT]):
    """``client.chat``: ``completions()`` (builders) and ``conversation()``; one class for
    both clients, given the client's builder and conversation classes."""

    def __init__(self, client: Any, builder: Callable[[Any], BT], conversation: Callable[..., CT]) -> None:
        self._client = client
        self._completions = Creator(client, builder)  # stateless: one is enough
        self._conversation = conversation

    @endpoint
    def completions(self) -> Creator[BT]:
        """The chat completions endpoint: ``.create()`` gives a builder."""
        return self._completions

    def conversation(self, model: str | None = None, system: str | None = None, *,
                     messages: list[dict[str, Any]] | None = None, tools: Iterable[Any] | None = None,
                     keep_reasoning: bool = True, **defaults: Any) -> CT:
        """A multi-turn conversation; ``defaults`` are builder setters applied to every turn
        (e.g. ``temperature=0.3``); ``messages`` resumes a saved history.

        Each assistant turn keeps the reasoning the server sent (under its key) and sends it
        back: inside a turn's tool loop always, across user turns unless ``keep_reasoning=False``
        (by default the server's chat template decides what it shows the model). For servers
        that refuse the key: ``reasoning_in_history=False`` (never sent)."""
        return self._conversation(self._client, ConversationState(
            model=model, system=system, messages=messages, tools=tools,
            keep_reasoning=keep_reasoning, defaults=defaults))


class Chat(_ChatNamespace[ChatCompletionBuilder, Conversation]):
    """``VllmClient.chat``: chat completions and conversations."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, ChatCompletionBuilder, Conversation)


class AsyncChat(_ChatNamespace[AsyncChatCompletionBuilder, AsyncConversation]):
    """``AsyncVllmClient.chat``: chat completions and conversations (awaitable)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, AsyncChatCompletionBuilder, AsyncConversation)
