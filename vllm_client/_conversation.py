"""Multi-turn conversations and the tool loop: pure state, shared by both clients.

``ToolLoop`` decides what the next request is and which tool calls to run;
``call_tool`` decides how one call runs (call it, await what it returns, format
the result or the exception). The clients only send the requests and drive
``call_tool`` on their own I/O (threads for sync, the event loop for async), at
most ``MAX_PARALLEL_TOOLS`` at a time. ``ConversationState`` keeps the history as
plain dicts and only commits a turn once its reply is complete; ``Conversation``
and ``AsyncConversation`` are its two thin drivers.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._exceptions import IncompleteToolCallError, InvalidRequestError, ToolLoopError

if TYPE_CHECKING:
    from ._endpoints.base import _Builder
    from ._endpoints.chat import (
        AsyncChatCompletionBuilder,
        ChatCompletionBuilder,
        ChatCompletionResponse,
    )
    from ._stream import AsyncChatStream, ChatStream
    from ._tools import ToolSet

# A call to run: (tool_call_id, zero-argument callable or an "error: ..." string)
PreparedCall = tuple[str, "Callable[[], Any] | str"]

MAX_PARALLEL_TOOLS = 8  # tool calls of one round run at most this many at a time, on both clients
# The keys servers put an assistant message's reasoning under (vLLM: reasoning; DeepSeek: reasoning_content)
REASONING_KEYS = ("reasoning", "reasoning_content")
# The request fields that bound a turn's output tokens (chat, chat's newer name, Responses)
_BUDGETS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def without_reasoning(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with the reasoning taken out of assistant turns (copies where changed)."""
    out = []
    for m in messages:
        if m.get("role") == "assistant" and any(k in m for k in REASONING_KEYS):
            m = {k: x for k, x in m.items() if k not in REASONING_KEYS}
        elif m.get("type") == "reasoning" and "role" not in m:
            continue  # a Responses reasoning item
        out.append(m)
    return out


def budget_spent(body: Mapping[str, Any], response: Any) -> bool:
    """Whether the response used the whole output budget of its request (``max_tokens`` & co.),
    by its usage: its turn ended by length whatever its finish_reason says (vLLM 0.32 reports
    "tool_calls" for an auto tool call cut by ``max_tokens``)."""
    usage = response.usage
    if usage is None or not usage.completion_tokens:
        return False
    for key in _BUDGETS:
        budget = body.get(key)
        if budget.__class__ is int and usage.completion_tokens >= budget:
            return True
    return False


def call_tool(call: Callable[[], Any] | str) -> Generator[Any, Any, str]:
    """How one prepared tool call runs, for either client to drive.

    Yields the zero-argument callable (the driver runs it: sync in a thread, async in
    ``asyncio.to_thread``) and sends back its value; when that value is awaitable (an
    async tool), yields it (the driver awaits it: async directly, sync on a fresh event
    loop in a worker thread) and gets its result. Returns the tool message text: the
    result formatted, or ``error: ...`` for an exception (thrown back in by the driver).
    A str (an argument error found earlier) is the text already.
    """
    from ._tools import format_exception, format_result

    if isinstance(call, str):
        return call
    try:
        value = yield call
        if inspect.isawaitable(value):
            value = yield value
        text: str = format_result(value)
    except Exception as e:
        text = format_exception(e)
    return text


def has_tools(builder: Any) -> bool:
    """Whether a chat turn runs the tool loop (the builder has Python functions as tools)."""
    toolset = builder._toolset
    return toolset is not None and bool(toolset.functions)


def clone_with_messages(builder: _Builder, messages: list[dict[str, Any]]) -> Any:
    """A copy of a chat builder (same client, fields, headers, timeout) with other messages."""
    b = copy.copy(builder)
    b._body = dict(builder._body)
    b._body["messages"] = messages
    b._extra = dict(builder._extra)
    b._extra.pop("messages", None)
    b._headers = dict(builder._headers)
    return b


class ToolLoop:
    """The tool loop as a state machine: request -> tool calls -> results -> request ...

    ``next_builder()`` is the request to send; ``after(response)`` returns the calls
    to run (or None when the model answered without tools; raises ``ToolLoopError``
    after ``max_rounds``); ``add_results(results)`` appends the tool messages.
    """

    def __init__(self, builder: _Builder, toolset: ToolSet | None, max_rounds: int) -> None:
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 0:
            raise InvalidRequestError(f"run_tools(max_rounds={max_rounds!r}): expected an integer >= 0")
        if toolset is None:
            raise InvalidRequestError("run_tools(): give the tools first with .tools([...functions...])")
        self.builder = builder
        self.toolset = toolset
        self.max_rounds = max_rounds
        self.rounds = 0
        body = builder.build()
        self.body = body
        # the model's reasoning goes back with its turns (reasoning_in_history(False): never)
        self.reasoning: bool = getattr(builder, "_reasoning_in_history", True)
        self.cut_retries: int = getattr(builder, "_cut_retries", 0)  # retry_cut_tool_calls(n)
        self.budget: dict[str, int] = {}  # the output budget, once grown for a cut tool call
        history = self._history(body)
        self.messages: list[dict[str, Any]] = history if self.reasoning else without_reasoning(history)
        self.start = len(self.messages)
        self._pending: list[PreparedCall] = []

    # What differs between APIs (chat here; the Responses API's loop overrides these four).

    def _history(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The history the loop starts from, taken from the first request's body."""
        return list(body.get("messages") or [])

    def _reply(self, response: Any) -> list[dict[str, Any]]:
        """What the model's reply adds to the history (with its reasoning, under the server's key)."""
        msg = response.message
        return [msg] if self.reasoning else without_reasoning([msg])

    def _result(self, call_id: str, content: str) -> dict[str, Any]:
        """The history entry carrying one tool result."""
        return {"role": "tool", "tool_call_id": call_id, "content": content}

    def next_builder(self) -> Any:
        """The builder for the next request (the conversation so far)."""
        return self._with_budget(clone_with_messages(self.builder, list(self.messages)))

    def _with_budget(self, b: Any) -> Any:
        """The next request's builder with the output budget grown (``retry_cut_tool_calls``)."""
        for key, value in self.budget.items():
            (b._extra if key in b._extra else b._body)[key] = value
        return b

    def _grow_budget(self, reply: int) -> bool:
        """A cut tool call: take the reply back and double the budget for a new try, if allowed."""
        if self.cut_retries <= 0:
            return False
        body = {**self.body, **self.budget}
        grown = {k: body[k] * 2 for k in _BUDGETS if body.get(k).__class__ is int}
        if not grown:
            return False
        self.cut_retries -= 1
        self.budget = grown
        del self.messages[len(self.messages) - reply:]
        return True

    def after(self, response: ChatCompletionResponse) -> list[PreparedCall] | None:
        """Take the model's reply; the calls to run next, or None when it is the final answer."""
        reply = self._reply(response)
        self.messages.extend(reply)
        calls = response.tool_calls
        if not calls:
            return None
        if not any(tc.incomplete for tc in calls) and budget_spent(self.body, response):
            for tc in calls:
                tc.incomplete = True
        cut = [tc.name for tc in calls if tc.incomplete]
        if cut and self._grow_budget(len(reply)):
            self._pending = []
            return []  # nothing to run: the next request asks the same turn again, with more tokens
        if cut:
            raise IncompleteToolCallError(
                f"the model's turn ended by length (finish_reason {response.finish_reason!r}) inside its tool "
                f"call{'s' if len(cut) > 1 else ''} ({', '.join(cut)}): not run, its arguments may be cut; "
                "raise max_tokens", response=response, messages=self.messages)
        if self.rounds >= self.max_rounds:
            raise ToolLoopError(
                f"the model still asked for tools after max_rounds={self.max_rounds} rounds "
                f"({', '.join(tc.name for tc in response.tool_calls)}); raise max_rounds or check the tools",
                messages=self.messages,
            )
        self.rounds += 1
        self._pending = [(tc.id or f"call_{i}", self.toolset.prepare(tc.name, tc.arguments))
                         for i, tc in enumerate(response.tool_calls)]
        return self._pending

    def add_results(self, results: Iterable[str]) -> None:
        """Append one tool message per call, in call order."""
        for (call_id, _), content in zip(self._pending, results, strict=False):
            self.messages.append(self._result(call_id, content))
        self._pending = []

    def produced(self) -> list[dict[str, Any]]:
        """The messages the loop added after the ones it started with."""
        return self.messages[self.start:]


class ConversationState:
    """History and per-conversation defaults; shared by ``Conversation`` and ``AsyncConversation``."""

    def __init__(
        self,
        *,
        model: str | None = None,
        system: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        tools: Iterable[Any] | None = None,
        keep_reasoning: bool = True,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        from ._validate import messages as check_messages

        self.model = model
        self.system = system
        self.keep_reasoning = keep_reasoning
        self.defaults = dict(defaults or {})
        self.tools = list(tools) if tools is not None else None
        history = [dict(m) for m in check_messages("messages", messages)] if messages else []
        if system is not None and not (history and history[0].get("role") == "system"):
            history.insert(0, {"role": "system", "content": system})
        self.messages: list[dict[str, Any]] = history

    def make_builder(self, factory: Callable[[], Any], messages: list[dict[str, Any]],
                     tools: Iterable[Any] | None = None) -> Any:
        """A builder with the conversation's model, defaults and tools, over ``messages``."""
        b = factory()
        if self.model is not None:
            b.model(self.model)
        for name, value in self.defaults.items():
            setter = getattr(b, name, None)
            if setter is None or name.startswith("_") or not callable(setter):
                raise InvalidRequestError(f"conversation default {name!r}: the chat builder has no such setter")
            setter(value)
        chosen = tools if tools is not None else self.tools
        if chosen:
            b.tools(chosen)
        b.messages(messages)
        return b

    def user_turn(self, content: str | list[Any] | dict[str, Any]) -> dict[str, Any]:
        """The user message for ``content`` (text, content parts, or a whole message dict)."""
        if isinstance(content, dict):
            return dict(content)
        if not isinstance(content, (str, list)):
            raise InvalidRequestError(f"send({content!r:.60}): expected text, content parts or a message dict")
        return {"role": "user", "content": content}

    def commit(self, user: dict[str, Any], produced: list[dict[str, Any]], reasoning: bool = True) -> None:
        """Append a finished turn: the user message and what the reply produced (its reasoning
        taken out unless ``keep_reasoning`` and ``reasoning``, the builder's
        ``reasoning_in_history``)."""
        self.messages.append(user)
        self.messages.extend(produced if self.keep_reasoning and reasoning else without_reasoning(produced))

    def undo(self) -> None:
        """Drop the last user turn and everything after it."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].get("role") == "user":
                del self.messages[i:]
                return

    def reset(self) -> None:
        """Back to just the system prompt."""
        self.messages[:] = [m for m in self.messages[:1] if m.get("role") == "system"]

    def add_tool_result(self, tool_call_id: str, content: Any) -> None:
        """Append a tool message answering ``tool_call_id`` (non-str content is JSON-encoded)."""
        from ._tools import format_result

        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise InvalidRequestError("add_tool_result: tool_call_id must be a non-empty string")
        self.messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": format_result(content)})


class ConversationBase:
    """What ``Conversation`` and ``AsyncConversation`` share: history, builder, undo/reset."""

    def __init__(self, client: Any, state: ConversationState) -> None:
        self._client = client
        self._state = state
        self._total_usage: Any = None

    @property
    def total_usage(self) -> Any:
        """The usage of every request this conversation made that got an answer (tool rounds
        included), summed: a ``Usage``, None before the first or when the server reports none."""
        return self._total_usage

    def _count(self, response: Any) -> None:
        from ._types import add_usage

        total = getattr(response, "total_usage", None)
        if total is not None:
            self._total_usage = total if self._total_usage is None else self._total_usage + total
        else:
            self._total_usage = add_usage(self._total_usage, response)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The history: a list of message dicts you can save as JSON and pass back to resume."""
        return self._state.messages

    def _new_builder(self) -> Any:
        return self._client.chat.completions().create()

    def builder(self) -> Any:
        """A builder with this conversation's model, defaults, tools and history, to tweak one turn:
        ``conv.send("hi", builder=conv.builder().temperature(0))``."""
        return self._state.make_builder(self._new_builder, list(self._state.messages))

    def _turn(self, text: Any, tools: Iterable[Any] | None, builder: Any,
              response_format: Any = None) -> tuple[dict[str, Any], Any]:
        st = self._state
        user = st.user_turn(text)
        msgs = [*st.messages, user]
        if builder is not None:
            if tools is not None:
                builder = builder.tools(tools)
            b = clone_with_messages(builder, msgs)
        else:
            b = st.make_builder(self._new_builder, msgs, tools)
        if response_format is not None:
            b.response_format(response_format)  # (on this turn's builder only)
        if not getattr(b, "_reasoning_in_history", True):  # never sent, not even what the history holds
            b._body["messages"] = without_reasoning(b._body["messages"])
        return user, b

    def _commit_loop(self, user: dict[str, Any], response: ChatCompletionResponse, loop: ToolLoop | None,
                     builder: Any) -> None:
        self._count(response)
        produced = loop.produced() if loop is not None else [response.message]
        self._state.commit(user, produced, getattr(builder, "_reasoning_in_history", True))

    def _commit_stream(self, user: dict[str, Any], builder: Any) -> Callable[[Any], None]:
        reasoning = getattr(builder, "_reasoning_in_history", True)

        def commit(response: Any) -> None:
            self._count(response)
            self._state.commit(user, [response.message], reasoning)

        return commit

    def add_tool_result(self, tool_call_id: str, content: Any) -> None:
        """Append the result of a tool call you ran yourself."""
        self._state.add_tool_result(tool_call_id, content)

    def undo(self) -> None:
        """Drop the last user turn and everything that followed it."""
        self._state.undo()

    def reset(self) -> None:
        """Back to just the system prompt."""
        self._state.reset()


class Conversation(ConversationBase):
    """A chat whose history (``messages``, plain dicts) grows one complete turn at a time.

    A turn is committed only when its reply is complete: a failed or cut request
    leaves the history as it was. When the conversation has Python tools, ``send``
    runs them (the tool loop) and keeps every tool message in the history.
    """

    def send(self, text: str | list[Any] | dict[str, Any], *, tools: Iterable[Any] | None = None,
             builder: ChatCompletionBuilder | None = None, max_rounds: int = 8,
             response_format: Any = None) -> ChatCompletionResponse:
        """Send a user turn and return the reply; both join the history once the reply is complete.
        ``response_format``: a type (the reply's ``.parsed``) or a format dict, for this turn."""
        user, b = self._turn(text, tools, builder, response_format)
        response: ChatCompletionResponse
        loop: ToolLoop | None
        if has_tools(b):
            response, loop = b._tool_loop(max_rounds)
        else:
            response, loop = b.send(), None
        self._commit_loop(user, response, loop, b)
        return response

    def stream(self, text: str | list[Any] | dict[str, Any], *,
               builder: ChatCompletionBuilder | None = None,
               response_format: Any = None) -> ChatStream[ChatCompletionResponse]:
        """Stream a user turn; the turn joins the history when the stream finishes well."""
        user, b = self._turn(text, None, builder, response_format)
        stream: ChatStream[ChatCompletionResponse] = b.send_stream()
        stream.on_complete = self._commit_stream(user, b)
        return stream


class AsyncConversation(ConversationBase):
    """The async twin of ``Conversation``: ``await send(...)``, ``await stream(...)``."""

    async def send(self, text: str | list[Any] | dict[str, Any], *, tools: Iterable[Any] | None = None,
                   builder: AsyncChatCompletionBuilder | None = None,
                   max_rounds: int = 8, response_format: Any = None) -> ChatCompletionResponse:
        """Send a user turn; it and the reply join the history once the reply is complete.
        ``response_format``: a type (the reply's ``.parsed``) or a format dict, for this turn."""
        user, b = self._turn(text, tools, builder, response_format)
        response: ChatCompletionResponse
        loop: ToolLoop | None
        if has_tools(b):
            response, loop = await b._tool_loop(max_rounds)
        else:
            response, loop = await b.send(), None
        self._commit_loop(user, response, loop, b)
        return response

    async def stream(self, text: str | list[Any] | dict[str, Any], *,
                     builder: AsyncChatCompletionBuilder | None = None,
                     response_format: Any = None) -> AsyncChatStream[ChatCompletionResponse]:
        """Stream a user turn; the turn joins the history when the stream finishes well."""
        user, b = self._turn(text, None, builder, response_format)
        stream: AsyncChatStream[ChatCompletionResponse] = await b.send_stream()
        stream.on_complete = self._commit_stream(user, b)
        return stream
