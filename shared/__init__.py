"""OpenGradient's TEE-verified, x402-paid LLM inference: the transport shared by the adapters.

``LLM`` implements the OpenGradient client API (``chat``, ``completion`` and their async
twins); ``opengradient_shared.gateway.LocalGateway`` is a local gateway that speaks the same
protocol on loopback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    InvalidRequestError,
    MalformedAnswerError,
    NetworkError,
    OpenGradientError,
    PaymentError,
    PaymentPolicyError,
    PaymentRejectedError,
    ServerError,
    StreamInterruptedError,
    VerificationError,
)
from .types import (
    SERVED_MODELS,
    TEE_LLM,
    PaymentReceipt,
    StreamChoice,
    StreamChunk,
    StreamDelta,
    StreamUsage,
    TeeOrigin,
    TeeProof,
    TextGenerationOutput,
    TextGenerationStream,
    Usage,
    x402SettlementMode,
)

if TYPE_CHECKING:
    from .client import LLM, PaymentPolicy, VerificationPolicy
    from .registry import RegistryError


def __getattr__(name: str) -> Any:
    # The client pulls in requests, httpx and tenacity; import it only when asked for, so
    # that the gateway and the pure modules stay light.
    if name in {"LLM", "PaymentPolicy", "VerificationPolicy"}:
        from . import client

        return getattr(client, name)
    if name == "RegistryError":
        from .registry import RegistryError

        return RegistryError
    raise AttributeError(f"module 'opengradient_shared' has no attribute {name!r}")


__all__ = [
    "LLM",
    "SERVED_MODELS",
    "TEE_LLM",
    "AuthenticationError",
    "InvalidRequestError",
    "MalformedAnswerError",
    "NetworkError",
    "OpenGradientError",
    "PaymentError",
    "PaymentPolicy",
    "PaymentPolicyError",
    "PaymentReceipt",
    "PaymentRejectedError",
    "RegistryError",
    "ServerError",
    "StreamChoice",
    "StreamChunk",
    "StreamDelta",
    "StreamInterruptedError",
    "StreamUsage",
    "TeeOrigin",
    "TeeProof",
    "TextGenerationOutput",
    "TextGenerationStream",
    "Usage",
    "VerificationError",
    "VerificationPolicy",
    "x402SettlementMode",
]
