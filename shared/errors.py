"""The error hierarchy. Every error the package raises is an :class:`OpenGradientError`.

Messages say what was wrong and what to do. They never contain a private key.
"""

from __future__ import annotations


class OpenGradientError(Exception):
    """Base class of every error raised by this package.

    ``status_code`` is the HTTP status when the server answered; ``body`` is the server's
    error text (truncated) when it sent one.
    """

    def __init__(self, message: str, *, status_code: int | None = None, body: str | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body

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


class NetworkError(ServerError):
    """The connection failed or timed out (after retries)."""


class StreamInterruptedError(ServerError):
    """A stream ended before ``[DONE]`` or carried an error event."""


class VerificationError(OpenGradientError):
    """The answer's TEE proof is missing or does not verify; its content is withheld."""


def truncate_body(text: str, limit: int = 500) -> str:
    """Shorten a server's error body for inclusion in a message."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"
