"""The configuration fields shared by both models, and building the transport from them.

The transport (``opengradient_shared.LLM``, with ``eth_account``, ``requests`` and ``httpx``)
is imported only when a model is constructed, so that importing this package stays cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from langchain_core.messages import BaseMessage
from langchain_core.utils import from_env, secret_from_env
from opengradient_shared.settings import (
    BUDGET_ENV,
    KEY_ENV,
    MAX_PAYMENT_ENV,
    STREAMING_URL_ENV,
    URL_ENV,
    ClientOption,
    build_client,
    key_as_text,
    not_a_flag,
)
from opengradient_shared.types import x402SettlementMode
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic import model_validator as _model_validator

from . import _tokens

__all__ = ["KEY_ENV", "OpenGradientSettings"]

# Settings of OpenAI's clients that OpenGradient has no use for, with the reason given.
_REFUSED = {
    "default_headers": "the gateway reads no custom headers (the transport sets the payment "
    "and settlement headers itself)",
    "default_query": "the gateway reads no query parameters",
    "http_client": "the transport owns its connection pools",
    "http_async_client": "the transport owns its connection pools",
    "organization": "payment is by wallet, not by organization",
    "openai_organization": "payment is by wallet, not by organization",
    "openai_proxy": "set HTTPS_PROXY in the environment instead",
    "reasoning_effort": "newer tee-gateway versions put it in the TEE request hash, which this "
    "client's proof check does not compute yet",
}
_EMPTY: tuple[Any, ...] = (None, {}, "")


def conceal_key_arguments(options: dict[str, Any]) -> None:
    """Wrap a key given as text or bytes (``private_key``/``api_key``) in a ``SecretStr``, in
    ``options`` itself, so that the constructors below (LangChain's, pydantic's) only ever hold
    the wrapper: a traceback captured with locals (what error reporters record) of a refused
    setting shows ``**********``, not the key."""
    for name in ("private_key", "api_key"):
        value = options.get(name)
        if isinstance(value, bytes | bytearray):
            options[name] = SecretStr("0x" + bytes(value).hex())
        elif isinstance(value, str):
            options[name] = SecretStr(value)


class CutAnswerWarning(UserWarning):
    """An answer stopped at ``max_tokens`` (``finish_reason == "length"``)."""


class OpenGradientSettings(BaseModel):
    """Model, sampling, key, server, payment and verification settings; builds the transport
    once, at construction, so that bad settings fail there and not at the first call."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", hide_input_in_errors=True)

    model: str = Field(validation_alias=AliasChoices("model", "model_name"))
    """A ``TEE_LLM`` member or a ``"provider/model"`` string."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("max_tokens", "max_completion_tokens")
    )
    """Most tokens to generate (alias ``max_completion_tokens``). None: chat sends no cap (the
    server's default applies), completion sends 4096. A cut answer has
    ``finish_reason == "length"`` and warns once per model."""
    stop: list[str] | None = None
    timeout: float | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("timeout", "request_timeout")
    )
    """Seconds per try (None: the transport's default, 60)."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of connection failures and 429/5xx, done by the transport alone."""
    private_key: SecretStr | None = Field(
        default_factory=secret_from_env(KEY_ENV, default=None),
        validation_alias=AliasChoices("private_key", "api_key"),
    )
    """The paying wallet's key (32 bytes, hex; ``OPENGRADIENT_PRIVATE_KEY``)."""
    base_url: str | None = Field(
        default_factory=from_env(URL_ENV, default=None), validate_default=True
    )
    """The LLM server (``OPENGRADIENT_LLM_URL``); a trailing ``/v1`` (the OpenAI habit) is
    dropped."""
    streaming_url: str | None = Field(
        default_factory=from_env(STREAMING_URL_ENV, default=None), validate_default=True
    )
    """The streaming server (``OPENGRADIENT_LLM_STREAMING_URL``; default: ``base_url``)."""
    settlement_mode: x402SettlementMode = Field(
        default=x402SettlementMode.SETTLE_BATCH,
        validation_alias=AliasChoices("settlement_mode", "x402_settlement_mode"),
    )
    """How each inference is settled on-chain."""
    max_payment: int | None = Field(
        default_factory=from_env(MAX_PAYMENT_ENV, default=None), validate_default=True, ge=0
    )
    """Most base units paid per call (``OPENGRADIENT_MAX_PAYMENT``; None: the transport's)."""
    allowed_networks: list[str] | None = None
    allowed_assets: list[str] | None = None
    allowed_payees: list[str] | None = None
    verification: Literal["raise", "warn", "off"] = "raise"
    """What a failed TEE proof does: raise ``VerificationError``, warn, or nothing."""
    tee_public_key: str | None = None
    """The trusted TEE's PEM public key (None: fetched once from the server)."""
    rpc_url: str | None = None
    """Without ``base_url``: the chain RPC holding the TEE registry (``OPENGRADIENT_RPC_URL``,
    else OpenGradient's devnet)."""
    registry_address: str | None = None
    """Without ``base_url``: the registry contract (``OPENGRADIENT_REGISTRY_ADDRESS``)."""
    tee_id: str | None = None
    """Use only this TEE (with ``base_url``: the key ``GET /signing-key`` returns must have it)."""
    tls_certificate: str | None = None
    """With an https ``base_url``: trust only this certificate (PEM)."""
    attestation: Literal["verify", "off"] | None = None
    """Registry TEEs: verify each one's Nitro attestation (None: the transport's "verify")."""
    allowed_measurements: list[str] | None = None
    """Registry TEEs: the PCR hashes you accept, on top of the registry's approval."""
    attestation_root_sha256: str | None = None
    """Registry TEEs: the attestation root to pin instead of AWS's (a local gateway's)."""
    stream_verification: Literal["incremental", "buffer"] = "incremental"
    """Streams: text chunks as they arrive, verified at the end ("incremental"), or no chunk
    (and no callback) until the proof verified ("buffer"). Tool-call chunks always wait."""
    allow_unknown_models: bool = False
    """Let a model the gateway does not list through (else refused before paying)."""
    budget: int | None = Field(
        default_factory=from_env(BUDGET_ENV, default=None), validate_default=True, ge=0
    )
    """Most base units (per asset) the transport may ever authorize, over all calls
    (``OPENGRADIENT_BUDGET``; None: no limit). Models sharing a transport share it."""
    deadline: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds for a whole call, every try and a stream to its end included (None: the
    transport's: none for plain calls, ``timeout × (max_retries + 1)`` for a stream)."""
    max_response_bytes: int | None = Field(default=None, gt=0)
    """The largest answer read, streamed or not (None: the transport's 8 MiB)."""
    retry_session_requests: bool = False
    """Resend a generation-2 session request that may have reached the server (billed per
    try); by default it is not resent."""
    max_proof_age_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Proofs older than this fail verification (None: the transport's 300 s)."""
    max_stream_event_bytes: int | None = Field(default=None, ge=1024)
    """The largest stream event; a larger one ends the stream (None: the transport's 1 MiB)."""
    client: ClientOption = Field(default=None, exclude=True)
    """An existing ``opengradient_shared.LLM`` to use instead of key, URLs and options."""

    _llm: Any = PrivateAttr(default=None)
    _warned_cut: bool = PrivateAttr(default=False)
    _framework_fields: ClassVar[str] = "callbacks, tags, metadata, cache, verbose"

    def __init__(self, **options: Any) -> None:
        conceal_key_arguments(options)  # before any frame below holds the key as text
        super().__init__(**options)

    @property
    def model_name(self) -> str:
        """The model (``ChatOpenAI``'s name for ``model``)."""
        return self.model

    @_model_validator(mode="before")
    @classmethod
    def _known_settings(cls, data: Any) -> Any:
        """One clear error naming every unsupported setting and the supported set."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (k in _REFUSED and v in _EMPTY)}
        accepted = set()
        for name, info in cls.model_fields.items():
            accepted.add(name)
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                accepted.update(str(choice) for choice in alias.choices)
        unknown = sorted(str(key) for key in data if key not in accepted)
        if not unknown:
            return data
        reasons = "".join(f"; {key}: {_REFUSED[key]}" for key in unknown if key in _REFUSED)
        own = [
            name
            for klass in reversed(cls.__mro__)
            if klass.__module__.startswith("langchain_opengradient")
            for name in vars(klass).get("__annotations__", {})
            if name in cls.model_fields and not name.startswith("_")
        ]
        raise ValueError(
            f"{cls.__name__} does not take {', '.join(unknown)}{reasons}. It takes: "
            f"{', '.join(dict.fromkeys(own))} (and LangChain's {cls._framework_fields}, ...)"
        )

    @field_validator("base_url", "streaming_url", mode="before")
    @classmethod
    def _server_root(cls, value: Any) -> Any:
        # OpenAI clients take ".../v1"; the transport adds "/v1/chat/completions" itself.
        if not isinstance(value, str):
            return value
        text = value.strip()
        path = urlsplit(text).path.rstrip("/")
        if path.endswith(("/chat/completions", "/completions")):
            raise ValueError(
                f"{value!r} is an endpoint, not a server: give the server's root, like "
                "'http://127.0.0.1:8000' (the paths are added per call)"
            )
        if path.endswith("/v1"):
            return text.rstrip("/")[: -len("/v1")]
        return value

    # -- copies: share the transport, never pickle the key ------------------------------------

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """A deep copy that shares the live transport (LangChain copies models internally)."""
        memo = {} if memo is None else memo
        for shared in (self._llm, self.client):
            if shared is not None:
                memo[id(shared)] = shared
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled: it holds a wallet key and a live "
            "transport. Pickle its settings instead (model.model_dump(exclude={'private_key'}))"
            " and build a new model from them, with the key from OPENGRADIENT_PRIVATE_KEY"
        )

    # -- answers cut at max_tokens -------------------------------------------------------------

    def _note_finish(self, finish_reason: str | None) -> None:
        """Warn once per model when an answer stopped at ``max_tokens``."""
        if finish_reason != "length" or self._warned_cut:
            return
        self._warned_cut = True
        limit = (
            "the server's default limit"
            if self.max_tokens is None
            else (f"max_tokens={self.max_tokens}")
        )
        warnings.warn(
            f"an answer of {self.model} was cut at {limit} (finish_reason='length'); raise "
            "max_tokens to get whole answers (this warning shows once per model)",
            CutAnswerWarning,
            stacklevel=4,
        )

    # -- token counting without transformers ---------------------------------------------------

    def get_token_ids(self, text: str) -> list[int]:
        """Approximate token ids (dependency-free; see ``langchain_opengradient._tokens``),
        or ``custom_get_token_ids`` when set."""
        custom = getattr(self, "custom_get_token_ids", None)
        if custom is not None:
            return list(custom(text))
        return _tokens.token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        """Approximate number of tokens in ``text``."""
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Approximate prompt tokens of ``messages`` (and ``tools``), counted as OpenAI
        documents for its chat models; ``trim_messages(token_counter=model)`` uses it."""
        if getattr(self, "custom_get_token_ids", None) is not None:
            return sum(self.get_num_tokens(_tokens.content_text(m.content)) for m in messages)
        return _tokens.count_messages(messages, tools)

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Where LangChain's serialisation finds the key: the environment, never the model."""
        return {"private_key": KEY_ENV}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "base_url": self.base_url,
            "settlement_mode": self.settlement_mode.value,
            "verification": self.verification,
        }

    @field_validator(
        "budget",
        "deadline",
        "max_response_bytes",
        "max_proof_age_seconds",
        "max_stream_event_bytes",
        mode="before",
    )
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        return not_a_flag(value, str(info.field_name))

    @field_validator("private_key", mode="before")
    @classmethod
    def _key_as_text(cls, value: Any) -> Any:
        return key_as_text(value)

    @field_validator("settlement_mode", mode="before")
    @classmethod
    def _settlement(cls, value: Any) -> x402SettlementMode:
        return x402SettlementMode.parse(value)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> str:
        from opengradient_shared.protocol import wire_model

        wire_model(value)  # raises InvalidRequestError (a ValueError) with a hint
        return str(value)

    @_model_validator(mode="after")
    def _connect(self) -> Self:
        self._llm = build_client(self)
        return self
