"""Decisions (``POST /decisions``, vLLM 0.33+, every runner): typed questions over a text or
user messages — a predicate (yes/no probability), a choice among values, a score on a scale of
levels — answered with probabilities read from the model, not sampled text. A model with no
decisions strategy answers 501: ``NotSupportedError``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._types import Usage, _dict, _list, _str
from .base import AsyncSender, Sender, _Builder
from .responses import _usage

__all__ = ["PredicateAnswer", "ChoiceAnswer", "ScoreAnswer", "DecisionAnswer", "DecisionProbability",
           "DecisionsResponse", "DecisionsBody", "DecisionsBuilder", "AsyncDecisionsBuilder"]

_MAX_QUESTIONS = 200
DB = TypeVar("DB", bound="DecisionsBody")


def _prob(v: Any) -> float | None:
    return float(v) if v.__class__ in (int, float) else None


@dataclass(slots=True)
class DecisionProbability:
    """One possible answer of a choice or score question and its probability (``label``: a
    score level's label, ``value`` its 0-based position on the scale)."""

    value: Any
    probability: float
    label: str | None = None


def _probabilities(d: dict[str, Any]) -> list[DecisionProbability]:
    out = []
    for p in _list(d.get("probabilities")):
        p = _dict(p)
        prob = _prob(p.get("probability"))
        if prob is not None:
            out.append(DecisionProbability(p.get("value"), prob, _str(p.get("label"))))
    return out


@dataclass(slots=True)
class PredicateAnswer:
    """A predicate question's answer: the ``probability`` that it holds."""

    type: ClassVar[str] = "predicate"
    name: str | None
    probability: float
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def value(self) -> bool:
        """True when ``probability`` is at least 0.5."""
        return self.probability >= 0.5


@dataclass(slots=True)
class ChoiceAnswer:
    """A choice question's answer: the most likely ``choice``, its ``confidence`` and every
    option's probability."""

    type: ClassVar[str] = "choice"
    name: str | None
    choice: str | bool | None
    confidence: float | None
    probabilities: list[DecisionProbability]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(slots=True)
class ScoreAnswer:
    """A score question's answer: the expected ``score`` on the levels' scale (0 = the first
    level), its ``confidence`` and each level's probability."""

    type: ClassVar[str] = "score"
    name: str | None
    score: float | None
    confidence: float | None
    probabilities: list[DecisionProbability]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


DecisionAnswer = PredicateAnswer | ChoiceAnswer | ScoreAnswer
"""One answer, in the order of the questions."""


def _answer(i: int, d: Any, body: dict[str, Any]) -> DecisionAnswer:
    if d.__class__ is not dict:
        raise ResponseDecodeError(f"decisions: answers[{i}] is not an object", body=body)
    kind, name = d.get("type"), _str(d.get("name"))
    if kind == "choice" or (kind is None and "choice" in d):
        choice = d.get("choice")
        return ChoiceAnswer(name, choice if choice.__class__ in (str, bool) else None, _prob(d.get("confidence")),
                            _probabilities(d), d)
    if kind == "score" or (kind is None and "score" in d):
        return ScoreAnswer(name, _prob(d.get("score")), _prob(d.get("confidence")), _probabilities(d), d)
    prob = _prob(d.get("probability"))
    if kind not in (None, "predicate") or prob is None:
        raise ResponseDecodeError(f"decisions: answers[{i}] of type {kind!r} is not one the SDK reads", body=body)
    return PredicateAnswer(name, prob, d)


@dataclass(slots=True)
class DecisionsResponse(_Meta):
    """The answers, one per question in order; ``answer(name)`` finds a named one."""

    raw: dict[str, Any] = field(repr=False)
    answers: list[DecisionAnswer]
    model: str | None
    usage: Usage | None

    def answer(self, name: str) -> DecisionAnswer:
        """The answer of the question called ``name`` (KeyError when there is none)."""
        for a in self.answers:
            if a.name == name:
                return a
        raise KeyError(name)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecisionsResponse:
        """Parse a decisions answer."""
        answers = d.get("answers")
        if answers.__class__ is not list:
            raise ResponseDecodeError("decisions: 'answers' should be a list", body=d)
        return cls(raw=d, answers=[_answer(i, a, d) for i, a in enumerate(answers)], model=_str(d.get("model")),
                   usage=_usage(d.get("usage")))


# ---------------------------------------------------------------------------
# the request


def _input_message(i: int, m: Any) -> dict[str, Any]:
    if not isinstance(m, Mapping):
        raise InvalidRequestError(f"input[{i}]: expected a message dict {{'role': 'user', 'content': ...}}")
    if m.get("role") != "user":
        raise InvalidRequestError(f"input[{i}]: decisions take user messages only (role 'user')")
    content = m.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not (isinstance(part, Mapping) and part.get("type") == "input_text" and isinstance(part.get("text"), str)):
                raise InvalidRequestError(f"input[{i}].content[{j}]: expected {{'type': 'input_text', 'text': ...}}")
        content = [dict(p) for p in content]
    elif not isinstance(content, str):
        raise InvalidRequestError(f"input[{i}]: content should be text or a list of input_text parts")
    return {**m, "content": content}


def _named(q: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name is not None:
        q["name"] = v.string("name", name)
    return q


def _options(setter: str, items: Sequence[Any], key: str, kinds: tuple[type, ...], lo: int, hi: int) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not lo <= len(items) <= hi:
        raise InvalidRequestError(f"{setter}: give a list of {lo} to {hi} {key}s")
    out: list[Any] = []
    for i, x in enumerate(items):
        if isinstance(x, kinds):
            out.append({key: x})
        elif isinstance(x, Mapping) and isinstance(x.get(key), kinds):
            out.append(dict(x))
        else:
            raise InvalidRequestError(f"{setter}[{i}]: expected a {key} or {{'{key}': ..., 'description': ...}}")
    return out


def _question(i: int, q: Any) -> dict[str, Any]:
    if not isinstance(q, Mapping):
        raise InvalidRequestError(f"questions[{i}]: expected a dict (or use .predicate() / .choice() / .score())")
    kind = q.get("type")
    if kind not in ("predicate", "choice", "score"):
        raise InvalidRequestError(f"questions[{i}]: type {kind!r}: expected 'predicate', 'choice' or 'score'")
    if not isinstance(q.get("instructions"), str):
        raise InvalidRequestError(f"questions[{i}]: 'instructions' should be text")
    out = dict(q)
    if kind == "choice":
        out["choices"] = _options(f"questions[{i}].choices", q.get("choices") or (), "value", (str, bool), 2, 255)
    elif kind == "score":
        out["levels"] = _options(f"questions[{i}].levels", q.get("levels") or (), "label", (str,), 2, 10)
    return out


class DecisionsBody(_Builder):
    """Setters of a decisions request: ``input`` (a text or user messages) and the questions
    (``predicate()``, ``choice()``, ``score()`` add one each; ``questions([...])`` sets them all)."""

    _path = "/decisions"
    _what = "decisions"
    _parse = DecisionsResponse.from_dict
    _route_hint = "vLLM serves /v1/decisions from 0.33 on"

    def model(self: DB, model: str) -> DB:
        """The model to ask."""
        return self._set("model", v.string("model", model))

    def input(self: DB, text_or_messages: str | Sequence[Mapping[str, Any]]) -> DB:
        """The text the questions are about, or user messages (``{"role": "user", "content": ...}``)."""
        if isinstance(text_or_messages, str):
            return self._set("input", text_or_messages)
        if isinstance(text_or_messages, Sequence) and not isinstance(text_or_messages, bytes) and text_or_messages:
            return self._set("input", [_input_message(i, m) for i, m in enumerate(text_or_messages)])
        raise InvalidRequestError(f"input({text_or_messages!r:.60}): expected text or a non-empty list of messages")

    def questions(self: DB, questions: Sequence[Mapping[str, Any]]) -> DB:
        """Every question at once, as vLLM's dicts (``{"type": "predicate", "instructions": ...}``)."""
        if isinstance(questions, (str, bytes)) or not isinstance(questions, Sequence):
            raise InvalidRequestError("questions: expected a list of question dicts")
        qs = [_question(i, q) for i, q in enumerate(questions)]
        self._body.pop("questions", None)
        for q in qs:
            self._add(q)
        return self

    def _add(self: DB, q: dict[str, Any]) -> DB:
        qs = self._body.get("questions", [])
        if len(qs) >= _MAX_QUESTIONS:
            raise InvalidRequestError(f"questions: at most {_MAX_QUESTIONS} per request")
        self._body["questions"] = [*qs, q]  # a new list: a copied builder never shares it
        return self

    def predicate(self: DB, instructions: str, *, name: str | None = None) -> DB:
        """Add a yes/no question; its answer is the probability that it holds."""
        q = {"type": "predicate", "instructions": v.string("instructions", instructions)}
        return self._add(_named(q, name))

    def choice(self: DB, instructions: str, choices: Sequence[str | bool | Mapping[str, Any]], *,
               name: str | None = None) -> DB:
        """Add a question with 2 to 255 possible values (strings or booleans, or dicts
        ``{"value": ..., "description": ...}``); the answer is the likeliest with every probability."""
        q = {"type": "choice", "instructions": v.string("instructions", instructions),
             "choices": _options("choices", choices, "value", (str, bool), 2, 255)}
        return self._add(_named(q, name))

    def score(self: DB, instructions: str, levels: Sequence[str | Mapping[str, Any]], *,
              name: str | None = None) -> DB:
        """Add a question scored on 2 to 10 levels (labels, lowest first, or dicts ``{"label":
        ..., "description": ...}``); the answer is the expected score and each level's probability."""
        q = {"type": "score", "instructions": v.string("instructions", instructions),
             "levels": _options("levels", levels, "label", (str,), 2, 10)}
        return self._add(_named(q, name))

    def cache_salt(self: DB, salt: str) -> DB:
        """Salt for vLLM's prefix cache (requests share cache entries only with the same salt)."""
        return self._set("cache_salt", v.string("cache_salt", salt))

    def safety_identifier(self: DB, value: str) -> DB:
        """A stable id of your end user for abuse detection (at most 128 characters)."""
        text = v.string("safety_identifier", value)
        if len(text) > 128:
            raise InvalidRequestError(f"safety_identifier: {len(text)} characters, at most 128")
        return self._set("safety_identifier", text)

    def joint(self: DB, value: bool = True) -> DB:
        """Read all questions jointly (vLLM: diffusion models only)."""
        return self._set("joint", v.boolean("joint", value))

    def _check(self, body: dict[str, Any]) -> None:
        if "input" not in body:
            raise InvalidRequestError("decisions: call .input(text_or_messages) first")
        if not body.get("questions"):
            raise InvalidRequestError("decisions: ask at least one question (.predicate(), .choice(), .score())")


class DecisionsBuilder(DecisionsBody, Sender[DecisionsResponse]):
    """Builds one decisions request."""


class AsyncDecisionsBuilder(DecisionsBody, AsyncSender[DecisionsResponse]):
    """Builds one decisions request (async)."""
