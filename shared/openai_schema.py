"""Pieces of OpenGradient's OpenAI-compatible schema that the transport and the adapters share
(pure): the chat fields beyond the seed's arguments and their checks, how a message's text parts
join, and the ``provider/model`` name of an answer. Kept apart from :mod:`.protocol` so that
importing an adapter does not import the transport's hashing and crypto."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import InvalidRequestError

__all__ = [
    "EXTRA_CHAT_FIELDS",
    "TEXT_PARTS_SEPARATOR",
    "extra_chat_fields",
    "join_text",
    "provider_model",
]


def _number(low: float, high: float) -> Callable[[str, Any], float]:
    def check(name: str, value: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or math.isnan(value) or not low <= value <= high:
            raise InvalidRequestError(
                f"{name} must be a number from {low:g} to {high:g}, got {value!r}"
            )
        return float(value)

    return check


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an integer, got {value!r}")
    return value


def _one_choice(name: str, value: Any) -> int:
    if _integer(name, value) != 1:
        raise InvalidRequestError(
            f"{name} must be 1: the gateway answers with one choice, got {value!r}"
        )
    return 1


def _user(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name} must be a non-empty string, got {value!r:.80}")
    return value


def _logit_bias(name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"{name} must be a dict of token id to bias, got {value!r:.80}")
    bias = _number(-100, 100)
    out: dict[str, float] = {}
    for token, weight in value.items():
        if isinstance(token, bool) or not str(token).isdigit():
            raise InvalidRequestError(f"{name} keys must be token ids, got {token!r:.40}")
        out[str(token)] = bias(f"{name}[{token}]", weight)
    return out


EXTRA_CHAT_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "top_p": _number(0, 1),
    "n": _one_choice,
    "seed": _integer,
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "logit_bias": _logit_bias,
    "user": _user,
}
"""Fields of OpenGradient's OpenAI-compatible chat schema beyond the seed's arguments (the
gateway's request parser reads these; none is in the TEE request hash), with their checks."""


def extra_chat_fields(value: Any) -> dict[str, Any]:
    """Check ``extra_body`` (a dict of :data:`EXTRA_CHAT_FIELDS`); None values are dropped.

    Raises :class:`InvalidRequestError` naming a field outside the set, or a bad value.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"extra_body must be a dict, got {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key not in EXTRA_CHAT_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unsupported request field(s) {', '.join(unknown)}; OpenGradient's gateway reads "
            f"{', '.join(EXTRA_CHAT_FIELDS)} beyond the chat arguments"
        )
    return {
        key: EXTRA_CHAT_FIELDS[key](key, item) for key, item in value.items() if item is not None
    }


TEXT_PARTS_SEPARATOR = ""
"""How the text parts of one message's list content are joined into the string sent (as the
OpenAI API reads consecutive text parts: one after the other). The adapters join their
frameworks' text blocks the same way (:func:`join_text`)."""


def join_text(parts: Iterable[str]) -> str:
    """One message's text parts as the one string the gateway gets (and hashes)."""
    return TEXT_PARTS_SEPARATOR.join(parts)


def provider_model(reported: str | None, requested: str) -> str:
    """The ``provider/model`` name of an answer: the gateway reports the model without its
    provider (``gpt-4.1`` for ``openai/gpt-4.1``); nothing reported means the one requested."""
    if not reported:
        return requested
    provider, _, _ = requested.partition("/")
    return reported if "/" in reported else f"{provider}/{reported}"
