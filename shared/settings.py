"""Adapter settings without a framework: the environment variables, the URL and key checks, and
building the transport from them. Both adapters use these, so they read and refuse the same way.

``eth_account`` and the client (``requests``, ``httpx``) are imported only when a transport is
built, so that importing an adapter stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from .client import LLM

KEY_ENV = "OPENGRADIENT_PRIVATE_KEY"
URL_ENV = "OPENGRADIENT_LLM_URL"
STREAMING_URL_ENV = "OPENGRADIENT_LLM_STREAMING_URL"
MAX_PAYMENT_ENV = "OPENGRADIENT_MAX_PAYMENT"


def base_url(value: str | None, name: str, env: str) -> str:
    """A usable http(s) base URL, or a ``ValueError`` that says where to set it."""
    if value is None or not value.strip():
        raise ValueError(
            f"{name} is not set: pass {name}='http://host:port' (the OpenGradient LLM server) "
            f"or set the {env} environment variable"
        )
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{name} {value!r} is not an http(s) URL; write it like 'http://127.0.0.1:8000'"
        )
    return value.strip().rstrip("/")


def account_from_key(secret: str | None) -> LocalAccount:
    """An ``eth_account`` LocalAccount from a hex key; the error never repeats the key."""
    secret = (secret or "").strip()
    if not secret:
        raise ValueError(
            "private_key is not set: pass private_key=... (a 32-byte hex wallet key) or set "
            f"the {KEY_ENV} environment variable"
        )
    from eth_account import Account

    try:
        account: LocalAccount = Account.from_key(secret)
    except Exception:  # noqa: BLE001 - every failure reads the same, and never shows the key
        raise ValueError(
            "private_key is malformed: expected a 32-byte wallet key as 64 hex digits "
            "(optionally 0x-prefixed); the value given is not shown"
        ) from None
    return account


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


class AdapterSettings(Protocol):
    """The transport settings both adapters hold, under the same names (read-only here)."""

    @property
    def client(self) -> Any: ...
    @property
    def private_key(self) -> _Secret | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def streaming_url(self) -> str | None: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def max_payment(self) -> int | None: ...
    @property
    def allowed_networks(self) -> list[str] | None: ...
    @property
    def allowed_assets(self) -> list[str] | None: ...
    @property
    def allowed_payees(self) -> list[str] | None: ...
    @property
    def verification(self) -> str: ...
    @property
    def tee_public_key(self) -> str | None: ...


REGISTRY_SETTINGS = (
    "rpc_url",
    "registry_address",
    "tee_id",
    "tls_certificate",
    "attestation",
    "allowed_measurements",
    "attestation_root_sha256",
)
"""Adapter fields passed to ``LLM`` as they are when set (an adapter may lack them)."""


def build_client(settings: AdapterSettings) -> LLM:
    """The transport of an adapter: ``settings.client`` when given (it must be an ``LLM``),
    else a new ``LLM`` on ``base_url`` (``streaming_url`` defaults to it) paying with
    ``private_key``; the options that are None keep the transport's defaults. Without
    ``base_url`` the transport finds a TEE in OpenGradient's registry (``rpc_url``,
    ``registry_address``, ``tee_id``).

    Raises ``ValueError`` (or :class:`InvalidRequestError`, also one) naming the setting at
    fault, never the key.
    """
    from .client import LLM

    if settings.client is not None:
        if not isinstance(settings.client, LLM):
            raise ValueError(
                f"client must be an opengradient_shared.LLM, got {type(settings.client).__name__}"
            )
        return settings.client
    server: str | None = None
    stream_server: str | None = None
    if settings.base_url is not None and settings.base_url.strip():
        server = base_url(settings.base_url, "base_url", URL_ENV)
        stream_server = (
            server
            if settings.streaming_url is None
            else base_url(settings.streaming_url, "streaming_url", STREAMING_URL_ENV)
        )
    elif settings.streaming_url is not None:
        raise ValueError(
            f"streaming_url is set but base_url is not: set base_url too ({URL_ENV}), or "
            "neither to use OpenGradient's network through its TEE registry"
        )
    key = settings.private_key
    options: dict[str, Any] = {
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        "max_payment": settings.max_payment,
        "allowed_networks": settings.allowed_networks,
        "allowed_assets": settings.allowed_assets,
        "allowed_payees": settings.allowed_payees,
        "verification": settings.verification,
        "tee_public_key": settings.tee_public_key,
        **{name: getattr(settings, name, None) for name in REGISTRY_SETTINGS},
    }
    return LLM(
        account_from_key(key.get_secret_value() if key is not None else None),
        server,
        stream_server,
        **{name: value for name, value in options.items() if value is not None},
    )
