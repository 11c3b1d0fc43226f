"""The error hierarchy. Every error the package raises is an :class:`OpenGradientError`.

Messages say what was wrong and what to do. They never contain a private key.
"""

from __future__ import annotations

import reprlib


class OpenGradientError(Exception):
    """Base class of every error raised by this package.

    ``status_code`` is the HTTP status when the server answered; ``body`` is the server's
    error text (escaped and cut to 500 characters) when it sent one. Messages are cut to
    :data:`MAX_MESSAGE` characters; server text inside them is escaped (:func:`excerpt`).
    """

    def __init__(self, message: str, *, status_code: int | None = None, body: str | None = None):
        message = _bounded(message)
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = None if body is None else truncate_body(body)

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(OpenGradientError, ValueError):
    """The call's arguments are wrong. Raised before any request is sent or payment signed,
    or when the server answered 400/404/415 (fix the input; retrying will not help)."""


class AuthenticationError(OpenGradientError):
    """The server answered 401 or 403."""


class PaymentError(OpenGradientError):
    """A payment could not be made or was refused. Nothing more is paid for this call."""


class PaymentPolicyError(PaymentError):
    """The server asked for a payment this client's policy does not allow (price over the cap,
    network, asset or payee not allowed, validity window too long). Nothing was signed."""


class PaymentRejectedError(PaymentError):
    """The server refused the signed payment (its reason is in the message)."""


class ServerError(OpenGradientError):
    """The server failed (5xx, 429 after retries, an unreadable answer, or no connection)."""


class MalformedAnswerError(ServerError):
    """A server's answer could not be read: not JSON, nested too deep, too large a number, or a
    field of the wrong type or range (the message names the field). Nothing from it is
    delivered and nothing is paid on the strength of it."""


class NetworkError(ServerError):
    """The connection failed or timed out (after retries). ``request_sent`` is False only when
    no try can have reached the server (every try failed to connect)."""

    request_sent: bool = True


class StreamInterruptedError(ServerError):
    """A stream ended before ``[DONE]`` or carried an error event."""


class VerificationError(OpenGradientError):
    """The answer's TEE proof is missing or does not verify; its content is withheld."""


MAX_MESSAGE = 2000
"""No error message is longer than this many characters (the rest is cut)."""

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 300
_REPR.maxlevel = 3


def _escaped(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


def _bounded(message: str) -> str:
    """A message with control characters escaped, cut to :data:`MAX_MESSAGE` characters (the
    safety net under every quote of server text: no message spans lines or is unbounded)."""
    cut = message[: MAX_MESSAGE + 1]
    if not cut.isprintable():
        cut = "".join(_escaped(char) for char in cut)
    return (
        cut if len(cut) <= MAX_MESSAGE and len(message) <= MAX_MESSAGE else cut[:MAX_MESSAGE] + "…"
    )


def excerpt(value: object, limit: int = 200) -> str:
    """A server-sent value made safe to quote: newlines, control characters and ANSI escapes
    written repr-style (``\\n``, ``\\x1b``), cut to ``limit`` characters (plus "…").

    Bytes are decoded as UTF-8 (invalid bytes replaced); other values than text are shown by
    a bounded ``repr``. The cost is bounded by ``limit``, whatever the size of ``value``.
    """
    if isinstance(value, bytes | bytearray):
        text = bytes(value[: 4 * limit + 4]).decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value[: limit + 1]
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        text = f"<an integer of {value.bit_length()} bits>"
    else:
        text = _REPR.repr(value)
    escaped = "".join(_escaped(char) for char in text[: limit + 1])
    return escaped if len(escaped) <= limit else escaped[:limit] + "…"


def truncate_body(text: str, limit: int = 500) -> str:
    """Shorten and escape a server's text for a message or a log line (see :func:`excerpt`)."""
    return excerpt(text[: 4 * limit + 4].strip(), limit)
