"""The configuration fields shared by both models, and building the transport from them.

The transport (``opengradient_shared.LLM``, with ``eth_account``, ``requests`` and ``httpx``)
is imported only when a model is constructed, so that importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from langchain_core.utils import from_env, secret_from_env
from opengradient_shared.settings import (
    KEY_ENV,
    MAX_PAYMENT_ENV,
    STREAMING_URL_ENV,
    URL_ENV,
    build_client,
)
from opengradient_shared.types import x402SettlementMode
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
)
from pydantic import model_validator as _model_validator

__all__ = ["KEY_ENV", "OpenGradientSettings"]


class OpenGradientSettings(BaseModel):
    """Model, sampling, key, server, payment and verification settings; builds the transport
    once, at construction, so that bad settings fail there and not at the first call."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", hide_input_in_errors=True)

    model: str = Field(validation_alias=AliasChoices("model", "model_name"))
    """A ``TEE_LLM`` member or a ``"provider/model"`` string."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    """Most tokens to generate (None: the transport's default, 100)."""
    stop: list[str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    """Seconds per try (None: the transport's default, 60)."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of connection failures and 429/5xx, done by the transport alone."""
    private_key: SecretStr | None = Field(
        default_factory=secret_from_env(KEY_ENV, default=None),
        validation_alias=AliasChoices("private_key", "api_key"),
    )
    """The paying wallet's key (32 bytes, hex; ``OPENGRADIENT_PRIVATE_KEY``)."""
    base_url: str | None = Field(default_factory=from_env(URL_ENV, default=None))
    """The LLM server (``OPENGRADIENT_LLM_URL``)."""
    streaming_url: str | None = Field(default_factory=from_env(STREAMING_URL_ENV, default=None))
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
    client: Any = Field(default=None, exclude=True)
    """An existing ``opengradient_shared.LLM`` to use instead of key, URLs and options."""

    _llm: Any = PrivateAttr(default=None)

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

    @field_validator("private_key", mode="before")
    @classmethod
    def _key_as_text(cls, value: Any) -> Any:
        # A key given as raw bytes becomes hex text.
        if isinstance(value, bytes | bytearray):
            return "0x" + bytes(value).hex()
        return value

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
