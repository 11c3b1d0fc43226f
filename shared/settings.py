"""Adapter settings without a framework: the environment variables, the URL and key checks, and
building the transport from them. Both adapters use these, so they read and refuse the same way.

``eth_account`` and the client (``requests``, ``httpx``) are imported only when a transport is
built, so that importing an adapter stays cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import weakref
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar
from urllib.parse import urlsplit

from .errors import InvalidRequestError, excerpt

_Choice = TypeVar("_Choice", bound=StrEnum)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from .client import LLM

KEY_ENV = "OPENGRADIENT_PRIVATE_KEY"
URL_ENV = "OPENGRADIENT_LLM_URL"
STREAMING_URL_ENV = "OPENGRADIENT_LLM_STREAMING_URL"
MAX_PAYMENT_ENV = "OPENGRADIENT_MAX_PAYMENT"
BUDGET_ENV = "OPENGRADIENT_BUDGET"

if TYPE_CHECKING:
    ClientOption: TypeAlias = "LLM | None"
else:  # the adapters' field stays cheap to declare; build_client checks it is an LLM
    ClientOption = Any
"""The type of the adapters' ``client`` field: an existing transport, or None."""


def server_url(value: Any, name: str, env: str | None = None) -> str:
    """The one check of a server URL (``LLM`` and both adapters): a usable http(s) base URL,
    or an :class:`InvalidRequestError` (a ``ValueError``) naming the setting.

    A URL carrying credentials (``http://user:password@host``) is refused and never echoed:
    the gateway is paid with x402, not HTTP authentication, and the URL would otherwise reach
    reprs, logs, errors and tracing. Only the host is named in that error."""
    if not isinstance(value, str) or not value.strip():
        where = f" or set the {env} environment variable" if env else ""
        raise InvalidRequestError(
            f"{name} is not set: pass the OpenGradient LLM server URL, e.g. "
            f"'http://127.0.0.1:8000'{where}"
        )
    text = value.strip()
    parts = urlsplit(text)
    if "@" in parts.netloc or (not parts.netloc and "@" in text):
        host = (parts.netloc or text).rpartition("@")[2].split("/")[0]
        raise InvalidRequestError(
            f"{name} carries credentials (user:password@) for host {host!r}; they are refused "
            "and not shown: x402 pays the gateway, so remove them from the URL"
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(
            f"{name} '{excerpt(text, 80)}' is not an http(s) URL; "
            "write it like 'http://127.0.0.1:8000'"
        )
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text):
        raise InvalidRequestError(f"{name} contains whitespace or control characters")
    return text.rstrip("/")


def base_url(value: str | None, name: str, env: str) -> str:
    """:func:`server_url` for an adapter setting read from ``env`` when unset."""
    return server_url(value, name, env)


def choice_of(choices: type[_Choice], value: Any, name: str) -> _Choice:
    """A member of the string enum ``choices`` from a member or its value (any case), else an
    ``InvalidRequestError`` naming the setting ``name`` and the accepted values."""
    try:
        return choices(value.lower() if isinstance(value, str) else value)
    except ValueError:
        values = [repr(member.value) for member in choices]
        accepted = ", ".join(values[:-1]) + " or " + values[-1]
        raise InvalidRequestError(f"{name} {value!r} is unknown; use {accepted}") from None


def key_as_text(value: Any) -> Any:
    """A key given as raw bytes (e.g. ``Account.create().key``) as ``0x`` hex text; any other
    value unchanged (an adapter's ``private_key`` field reads text)."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value


def not_a_flag(value: Any, name: str) -> Any:
    """``value`` unchanged, unless it is a bool given for the numeric setting ``name``
    (``True`` would otherwise pass as 1): then a ``ValueError`` naming the setting."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    return value


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
    def client(self) -> LLM | None: ...
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
    @property
    def stream_verification(self) -> str: ...
    @property
    def allow_unknown_models(self) -> bool: ...
    @property
    def budget(self) -> int | None: ...
    @property
    def deadline(self) -> float | None: ...
    @property
    def max_response_bytes(self) -> int | None: ...
    @property
    def retry_session_requests(self) -> bool: ...
    @property
    def max_proof_age_seconds(self) -> float | None: ...
    @property
    def max_stream_event_bytes(self) -> int | None: ...


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
REGISTRY_ENV = (
    "OPENGRADIENT_RPC_URL",
    "OPENGRADIENT_REGISTRY_ADDRESS",
    "OPENGRADIENT_ATTESTATION_ROOT_SHA256",
)


_TRANSPORTS: weakref.WeakValueDictionary[tuple[Any, ...], LLM] = weakref.WeakValueDictionary()
_TRANSPORTS_LOCK = threading.Lock()
_FINGERPRINT_KEY = os.urandom(32)  # per process: a cache key says nothing about the wallet key


def _fingerprint(secret: str) -> str:
    """A keyed hash of a wallet key: equal keys (any spelling) give equal fingerprints, and
    the fingerprint cannot be turned back into the key or checked against a guess elsewhere."""
    normal = secret.strip().lower().removeprefix("0x").encode()
    return hmac.new(_FINGERPRINT_KEY, normal, hashlib.sha256).hexdigest()


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def build_client(settings: AdapterSettings) -> LLM:
    """The transport of an adapter: ``settings.client`` when given (it must be an ``LLM``),
    else an ``LLM`` on ``base_url`` (``streaming_url`` defaults to it) paying with
    ``private_key``; the options that are None keep the transport's defaults. Without
    ``base_url`` the transport finds a TEE in OpenGradient's registry (``rpc_url``,
    ``registry_address``, ``tee_id``).

    Models with the same key, URLs and options share one transport (and so what it has
    learned: payment terms, sessions, the TEE key) while any of them is alive: copies made by
    ``with_config``, ``configurable_fields`` or ``copy.deepcopy`` pay no extra unpaid round
    trip. The cache holds transports weakly and is keyed on a keyed hash of the wallet key,
    never the key itself.

    A ``budget`` belongs to the transport, so models sharing one also share its budget: a copy
    of a model cannot spend the budget a second time.

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
    secret = key.get_secret_value() if key is not None else None
    options: dict[str, Any] = {
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        "max_payment": settings.max_payment,
        "allowed_networks": settings.allowed_networks,
        "allowed_assets": settings.allowed_assets,
        "allowed_payees": settings.allowed_payees,
        "verification": settings.verification,
        "tee_public_key": settings.tee_public_key,
        "stream_verification": settings.stream_verification,
        "allow_unknown_models": settings.allow_unknown_models,
        "budget": settings.budget,
        "deadline": settings.deadline,
        "max_response_bytes": settings.max_response_bytes,
        "retry_session_requests": settings.retry_session_requests,
        "max_proof_age_seconds": settings.max_proof_age_seconds,
        "max_stream_event_bytes": settings.max_stream_event_bytes,
        **{name: getattr(settings, name, None) for name in REGISTRY_SETTINGS},
    }
    options = {name: value for name, value in options.items() if value is not None}
    cache_key = (
        _fingerprint(secret or ""),
        server,
        stream_server,
        tuple(sorted((name, _frozen(value)) for name, value in options.items())),
        # without a URL the transport also reads the registry settings from the environment
        tuple(os.environ.get(name) for name in REGISTRY_ENV) if server is None else (),
    )
    with _TRANSPORTS_LOCK:
        transport = _TRANSPORTS.get(cache_key)
        if transport is None:
            transport = LLM(account_from_key(secret), server, stream_server, **options)
            _TRANSPORTS[cache_key] = transport
    return transport
