"""Public value types of the OpenGradient LLM API (the seed's names, plus receipts and proofs)."""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import EnumType, StrEnum
from typing import Any

SERVED_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("gpt-4.1-2025-04-14", "gpt-4.1", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.2"),
    "anthropic": (
        "claude-sonnet-4-5",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-opus-4-5",
        "claude-opus-4-6",
        "claude-sonnet-4-0",  # legacy (kept by the gateway for older SDKs)
        "claude-4.0-sonnet",  # legacy
    ),
    "google": (
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-3-flash-preview",
    ),
    "x-ai": (
        "grok-4",
        "grok-4-fast",
        "grok-4-1-fast",
        "grok-4.1-fast",
        "grok-4-1-fast-non-reasoning",
        "grok-3-mini-beta",  # legacy
        "grok-3-mini",  # legacy
        "grok-3-beta",  # legacy
        "grok-3",  # legacy
    ),
}
"""The models OpenGradient's gateway serves, by provider (tee-gateway ``model_registry.py``,
2026-04-28); the wire name is the part after ``provider/``. Any other name gets 400 "Model
'<m>' is not supported" from the gateway AFTER it has verified the payment."""

KNOWN_MODELS = frozenset(name for names in SERVED_MODELS.values() for name in names)
"""The bare names of :data:`SERVED_MODELS` (the gateway compares lower-cased and trimmed)."""

DEPRECATED_MODELS: dict[str, tuple[str, str]] = {
    "GPT_4O": ("openai/gpt-4o", "GPT_4_1_2025_04_14"),
    "CLAUDE_3_7_SONNET": ("anthropic/claude-3.7-sonnet", "CLAUDE_SONNET_4_5"),
    "CLAUDE_3_5_HAIKU": ("anthropic/claude-3.5-haiku", "CLAUDE_HAIKU_4_5"),
    "GEMINI_2_0_FLASH": ("google/gemini-2.0-flash", "GEMINI_2_5_FLASH"),
    "GROK_2_1212": ("x-ai/grok-2-1212", "GROK_4"),
    "GROK_2_VISION_LATEST": ("x-ai/grok-2-vision-latest", "GROK_4"),
}
"""The seed's ``TEE_LLM`` names of models no longer served: (old value, member it now means)."""


class _ModelsType(EnumType):
    """``TEE_LLM``'s metaclass: the seed's names of retired models resolve, with a
    ``FutureWarning`` (shown by default), to the served model that replaces them."""

    def __getattr__(cls, name: str) -> Any:
        if name in DEPRECATED_MODELS:
            return super().__getitem__(_successor(name))
        inherited = getattr(super(), "__getattr__", None)  # EnumType has one before 3.12
        if inherited is not None:
            return inherited(name)
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")

    def __getitem__(cls, name: str) -> Any:
        return super().__getitem__(_successor(name) if name in DEPRECATED_MODELS else name)


def _successor(name: str) -> str:
    old, successor = DEPRECATED_MODELS[name]
    warnings.warn(
        f"TEE_LLM.{name} is deprecated: OpenGradient's gateway no longer serves {old!r}; it "
        f"now means TEE_LLM.{successor}. Use TEE_LLM.{successor} (or another served model) "
        "to silence this warning.",
        FutureWarning,
        stacklevel=3,
    )
    return successor


class TEE_LLM(StrEnum, metaclass=_ModelsType):  # noqa: N801 - the seed's public name
    """Models served inside OpenGradient's Trusted Execution Environment (what its gateway
    serves today; see :data:`SERVED_MODELS`).

    Each value is ``"provider/model"``; the provider prefix is removed on the wire. The seed's
    names of retired models (``GPT_4O``, ``CLAUDE_3_7_SONNET``, ``CLAUDE_3_5_HAIKU``,
    ``GEMINI_2_0_FLASH``, ``GROK_2_1212``, ``GROK_2_VISION_LATEST``) still resolve, with a
    ``FutureWarning``, to their served successors (:data:`DEPRECATED_MODELS`).
    """

    # OpenAI
    GPT_4_1_2025_04_14 = "openai/gpt-4.1-2025-04-14"
    GPT_4_1 = "openai/gpt-4.1"
    O4_MINI = "openai/o4-mini"
    GPT_5 = "openai/gpt-5"
    GPT_5_MINI = "openai/gpt-5-mini"
    GPT_5_2 = "openai/gpt-5.2"
    # Anthropic
    CLAUDE_SONNET_4_5 = "anthropic/claude-sonnet-4-5"
    CLAUDE_SONNET_4_6 = "anthropic/claude-sonnet-4-6"
    CLAUDE_HAIKU_4_5 = "anthropic/claude-haiku-4-5"
    CLAUDE_OPUS_4_5 = "anthropic/claude-opus-4-5"
    CLAUDE_OPUS_4_6 = "anthropic/claude-opus-4-6"
    CLAUDE_4_0_SONNET = "anthropic/claude-4.0-sonnet"  # legacy, still served
    # Google
    GEMINI_2_5_FLASH = "google/gemini-2.5-flash"
    GEMINI_2_5_PRO = "google/gemini-2.5-pro"
    GEMINI_2_5_FLASH_LITE = "google/gemini-2.5-flash-lite"
    GEMINI_3_FLASH = "google/gemini-3-flash-preview"
    # xAI
    GROK_4 = "x-ai/grok-4"
    GROK_4_FAST = "x-ai/grok-4-fast"
    GROK_4_1_FAST = "x-ai/grok-4.1-fast"
    GROK_4_1_FAST_NON_REASONING = "x-ai/grok-4-1-fast-non-reasoning"
    GROK_3_MINI_BETA = "x-ai/grok-3-mini-beta"  # legacy, still served
    GROK_3_BETA = "x-ai/grok-3-beta"  # legacy, still served


def is_known_model(wire_name: str) -> bool:
    """Whether the gateway serves ``wire_name`` (the model name without its provider)."""
    return wire_name.strip().lower() in KNOWN_MODELS


class x402SettlementMode(StrEnum):  # noqa: N801 - the seed's public name
    """How an inference is recorded on-chain (header ``X-SETTLEMENT-TYPE``).

    The seed's members keep their generation-1 values. Generation-2 servers name the same
    modes ``private``, ``individual`` and ``batch``; use :meth:`wire_value` to get the
    spelling of the server generation in use. Aliases: ``SETTLE_INDIVIDUAL`` and ``PRIVATE``
    for ``SETTLE``; ``SETTLE_INDIVIDUAL_WITH_METADATA`` and ``INDIVIDUAL_FULL`` for
    ``SETTLE_METADATA``; ``BATCH_HASHED`` for ``SETTLE_BATCH``.
    """

    SETTLE = "settle"
    SETTLE_METADATA = "settle-metadata"
    SETTLE_BATCH = "settle-batch"
    # Aliases (same members, other names).
    SETTLE_INDIVIDUAL = "settle"
    SETTLE_INDIVIDUAL_WITH_METADATA = "settle-metadata"
    PRIVATE = "settle"
    INDIVIDUAL_FULL = "settle-metadata"
    BATCH_HASHED = "settle-batch"

    def wire_value(self, generation: int = 1) -> str:
        """The header value for a server of protocol ``generation`` (1 or 2)."""
        return SETTLEMENT_WIRE_VALUES[self.value][0 if generation == 1 else 1]

    @classmethod
    def parse(cls, value: x402SettlementMode | str) -> x402SettlementMode:
        """Accept a member, a member name or a wire value of either generation.

        Raises ``ValueError`` naming the value when it is none of those.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            if value.upper() in cls.__members__:
                return cls.__members__[value.upper()]
            key = _normalize_settlement(value)
            for member_value, spellings in SETTLEMENT_WIRE_VALUES.items():
                if key in map(_normalize_settlement, spellings):
                    return cls(member_value)
        raise ValueError(
            f"unknown settlement mode {value!r}; use one of "
            "x402SettlementMode.SETTLE, SETTLE_METADATA or SETTLE_BATCH"
        )


SETTLEMENT_WIRE_VALUES: dict[str, tuple[str, str]] = {
    # member value: (generation-1 spelling, generation-2 spelling); meaning
    "settle": ("settle", "private"),  # input/output hashes only, most private
    "settle-metadata": ("settle-metadata", "individual"),  # model, input, output recorded
    "settle-batch": ("settle-batch", "batch"),  # aggregated into batch hashes (cheapest)
}
"""The three settlement modes and how each server generation spells them (the one table)."""


def _normalize_settlement(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch not in "-_ ")


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the model."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


# The seed's streaming name for the same counts.
StreamUsage = Usage


@dataclass(frozen=True)
class TeeProof:
    """A TEE attestation of one answer, as sent by the gateway and checked by the client.

    ``verified`` is True only when the client checked the signature with a trusted key, the
    ``tee_id`` against that key, and both hashes against what it sent and received.
    """

    tee_id: str
    signature: str
    request_hash: str
    output_hash: str
    timestamp: int
    verified: bool = False


@dataclass(frozen=True)
class PaymentReceipt:
    """What was paid for a call, or the session it rode on.

    ``amount`` is what the signed payment authorizes (base units): the price of the call for
    ``exact`` (x402 v1 or v2), the session's cap for ``upto``. ``cost`` is what THIS call cost
    when known: the authorized amount for a per-call scheme, the metered amount for a session
    only when the server reports it (OpenGradient's gateway does not: then None).
    ``success``, ``transaction``, ``network`` and ``payer`` come from the server's settlement
    header (``X-PAYMENT-RESPONSE`` in x402 v1, ``PAYMENT-RESPONSE`` in v2); ``success`` is None
    when the server sent none or an unreadable one (nothing is claimed then). ``session_id``
    names the metered session; ``new_payment`` tells whether this call signed a payment or
    reused an open session.
    ``authorized_total`` is what this client has signed for in ``asset`` so far (every call
    and session, refused payments included), and ``budget_remaining`` what its ``budget``
    still allows in that asset (None when no budget is set).
    """

    x402_version: int
    scheme: str
    network: str
    asset: str
    amount: int
    payer: str
    pay_to: str
    success: bool | None = None
    transaction: str | None = None
    session_id: str | None = None
    new_payment: bool = True
    cost: int | None = None
    authorized_total: int = 0
    budget_remaining: int | None = None


@dataclass(frozen=True)
class TeeOrigin:
    """Where an answer came from. ``source`` is ``"registry"`` (a TEE found in OpenGradient's
    on-chain registry: ``tee_id``, its ``pcr_hash`` and ``payment_address`` as registered, TLS
    pinned to its registered certificate) or ``"url"`` (a server URL you gave). ``attestation``
    is ``"verified"`` when this client checked the enclave's Nitro attestation itself
    (``attested_at``: when, unix seconds; ``attestation_timestamp``: the document's time), else
    ``"off"``."""

    endpoint: str
    tee_id: str | None
    source: str = "url"
    pcr_hash: str | None = None
    payment_address: str | None = None
    registry_address: str | None = None
    tls_pinned: bool = False
    attestation: str = "off"
    attested_at: float | None = None
    attestation_timestamp: float | None = None
    module_id: str | None = None


@dataclass
class TextGenerationOutput:
    """The result of a non-streaming ``chat`` or ``completion`` call.

    The first five fields are the seed's. ``chat_output`` is the assistant message
    (``role``, ``content``, and ``tool_calls`` when the model called tools).
    """

    transaction_hash: str
    finish_reason: str | None = None
    chat_output: dict[str, Any] | None = None
    completion_output: str | None = None
    payment_hash: str | None = None
    usage: Usage | None = None
    tee_proof: TeeProof | None = None
    payment: PaymentReceipt | None = None
    model: str | None = None
    id: str | None = None
    tee_origin: TeeOrigin | None = None


@dataclass
class StreamDelta:
    """An incremental piece of the assistant message."""

    content: str | None = None
    role: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class StreamChoice:
    """One choice of a streaming chunk."""

    delta: StreamDelta
    index: int = 0
    finish_reason: str | None = None


@dataclass
class StreamChunk:
    """One chunk of a streaming chat answer (OpenAI ``chat.completion.chunk`` shape).

    The final chunk has ``is_final``, ``usage`` when known, the ``tee_proof`` and the
    ``payment`` receipt.
    """

    choices: list[StreamChoice]
    model: str
    usage: Usage | None = None
    is_final: bool = False
    tee_proof: TeeProof | None = None
    payment: PaymentReceipt | None = None
    payment_hash: str | None = None
    tee_origin: TeeOrigin | None = None

    @classmethod
    def from_sse_data(cls, data: dict[str, Any]) -> StreamChunk:
        """Build a chunk from one decoded SSE ``data:`` JSON object, read strictly as the
        client reads streams (choice 0 only; raises ``MalformedAnswerError`` when malformed)."""
        from .protocol import StreamAccumulator, stream_chunk  # protocol imports this module

        return stream_chunk(StreamAccumulator().add(data))


@dataclass
class TextGenerationStream:
    """Iterator over the :class:`StreamChunk` objects of a streaming chat answer.

    Iterate it with ``for`` (sync) or ``async for`` (from ``LLM.achat(..., stream=True)``).
    After the last chunk, ``final_chunk`` holds the chunk with usage, proof and receipt.
    """

    _iterator: Iterator[StreamChunk] | AsyncIterator[StreamChunk]
    final_chunk: StreamChunk | None = field(default=None, init=False)
    _close: Any = field(default=None, repr=False)
    _closing: asyncio.Future[Any] | None = field(default=None, init=False, repr=False)

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        if not isinstance(self._iterator, Iterator):
            raise TypeError("this is an async stream: iterate it with 'async for'")
        chunk = next(self._iterator)
        if chunk.is_final:
            self.final_chunk = chunk
        return chunk

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self

    async def __anext__(self) -> StreamChunk:
        if not isinstance(self._iterator, AsyncIterator):
            raise TypeError("this is a sync stream: iterate it with 'for'")
        chunk = await self._iterator.__anext__()
        if chunk.is_final:
            self.final_chunk = chunk
        return chunk

    def close(self) -> None:
        """Release the connection of a stream that is not read to its end. For an async
        stream prefer ``await stream.aclose()``; ``close()`` schedules that same close on the
        running event loop (the connection belongs to it)."""
        if self._close is None:
            return
        result = self._close()
        if inspect.isawaitable(result):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # its loop is gone, and its connections with it
                if inspect.iscoroutine(result):
                    result.close()
                return
            self._closing = asyncio.ensure_future(result, loop=loop)

    async def aclose(self) -> None:
        """Release the connection of an async stream that is not read to its end (awaits the
        close of the connection)."""
        if self._closing is not None:
            await self._closing
            return
        if self._close is not None:
            result = self._close()
            if inspect.isawaitable(result):
                await result
