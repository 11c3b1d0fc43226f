"""``LLM``: OpenGradient's TEE-verified, x402-paid chat and completion API (the seed's), with
async twins.

Arguments are validated by :mod:`.protocol` before anything is signed or sent; one
:class:`~.exchange.Exchange` flow does the payment dance for both drivers (blocking on a
pooled ``requests.Session``, asyncio on an ``httpx.AsyncClient`` per event loop); every answer's
TEE proof is checked under the :class:`VerificationPolicy`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Collection, Generator, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Literal, overload

from eth_account.signers.local import LocalAccount

from . import protocol
from ._async import AsyncDriver
from ._sync import SyncDriver
from .attestation import AttestationError
from .errors import (
    InvalidRequestError,
    NetworkError,
    OpenGradientError,
    ServerError,
    StreamInterruptedError,
    excerpt,
)
from .exchange import Delivery, Exchange, Flow
from .limits import DEFAULT_MAX_RESPONSE_BYTES, stream_end
from .network import (
    FAILOVER_LIMIT,
    AttestationPolicy,
    TeeNetwork,
    Watched,
    adrive,
    drive,
    origin_for_url,
)
from .network import rpc_unreachable as _rpc_unreachable
from .pinning import Pins, certificate_der
from .registry import RegistryError
from .retry import RetryPolicy
from .settings import server_url as _server_url
from .sse import DEFAULT_MAX_EVENT_BYTES
from .stream import STREAM_VERIFICATION_MODES, StreamAssembler
from .types import (
    DEPRECATED_MODELS,
    TEE_LLM,
    StreamChunk,
    TeeOrigin,
    TeeProof,
    TextGenerationOutput,
    TextGenerationStream,
    is_known_model,
)
from .types import x402SettlementMode as _Mode
from .verification import TrustAnchor, VerificationPolicy, VerificationWarning, check_proof
from .x402.policy import DEFAULT_NETWORKS, PaymentPolicy

__all__ = ["LLM", "PaymentPolicy", "VerificationPolicy", "VerificationWarning"]

_NO_TOOLS: tuple[dict[str, Any], ...] = ()
DEFAULT_MAX_PROOF_AGE_SECONDS = 300.0
"""Proofs older than this (seconds) fail verification unless ``max_proof_age_seconds`` says
otherwise."""


def _timeout(value: Any, name: str = "timeout") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidRequestError(f"{name} must be a positive number of seconds, got {value!r}")
    if math.isinf(value):
        raise InvalidRequestError(f"{name} must be finite, got {value!r}")
    return float(value)


def _unreadable(exc: Exception) -> ServerError:
    return ServerError(
        f"the exchange with the server failed unexpectedly ({type(exc).__name__}: "
        f"{excerpt(str(exc), 200)})"
    )


def _broken(exc: Exception) -> StreamInterruptedError:
    return StreamInterruptedError(
        f"the stream could not be read ({type(exc).__name__}: {excerpt(str(exc), 200)})"
    )


def _guarded(chunks: Generator[StreamChunk, None, None]) -> Generator[StreamChunk, None, None]:
    """``chunks``, with anything but an ``OpenGradientError`` raised as a
    :class:`StreamInterruptedError` (the funnel for what the driver does not map)."""
    try:
        yield from chunks
    except OpenGradientError:
        raise
    except Exception as exc:
        raise _broken(exc) from exc


async def _aguarded(chunks: AsyncGenerator[StreamChunk, None]) -> AsyncGenerator[StreamChunk, None]:
    """Async :func:`_guarded`."""
    try:
        async for chunk in chunks:
            yield chunk
    except OpenGradientError:
        raise
    except Exception as exc:
        raise _broken(exc) from exc
    finally:
        await chunks.aclose()


class LLM:
    """LLM chat and completion via TEE-verified execution with x402 payments.

    ``LLM(wallet_account, og_llm_server_url, og_llm_streaming_server_url)`` as in the seed; the
    streaming URL defaults to the plain one. Without a server URL (``LLM(wallet_account)``)
    the client uses OpenGradient's network: it finds the active LLM TEEs in the on-chain
    registry (``rpc_url``, ``registry_address``; ``tee_id`` pins one), pins TLS to each one's
    registered certificate, trusts its registered key and pays only its registered payment
    address. Nothing is fetched before the first call. Keyword-only options:

    - ``max_response_bytes`` (the largest answer read, streamed or not; default 8 MiB) and
      ``deadline`` (seconds for a whole call, every try and a stream to its end included;
      default: none for plain calls, and ``timeout × (max_retries + 1)`` for a stream);
    - ``timeout`` (seconds per try) and ``max_retries`` (retries of connection failures and
      429/502/503/504; a retry resends the same signed payment); a generation-2 request riding
      an open session is resent only if it cannot have reached the server (the gateway bills
      every try), unless ``retry_session_requests=True``;
    - the payment policy: ``max_payment`` (base units per call, or per session in generation 2;
      None = one whole token of an asset whose decimals are known, any other asset refused),
      ``allowed_networks``, ``allowed_assets``, ``allowed_payees``, ``max_validity_seconds``,
      ``budget`` (total base units per asset this client may ever authorize; None = no limit)
      — or a ready ``payment_policy`` that replaces them;
    - ``verification`` ("raise", "warn" or "off"), and the trusted TEE: ``tee_public_key``
      (PEM) and/or ``tee_id``; without them the key is fetched once per server from
      ``GET /signing-key``; ``max_proof_age_seconds`` (default 300, None: no limit): older
      proofs, and proofs dated more than 60 s ahead, fail verification;
    - ``stream_verification``: ``"incremental"`` (default; text chunks as they arrive, the
      stream is verified at its end, tool-call chunks are held until then) or ``"buffer"``
      (no chunk until the proof verified); ``max_stream_event_bytes`` (default 1 MiB): a
      larger stream event ends the stream with ``StreamInterruptedError``;
    - ``allow_unknown_models``: by default a model OpenGradient's gateway does not serve
      (:data:`~.types.SERVED_MODELS`) is refused before anything is paid, because the gateway
      verifies the payment before it looks at the model; True lets a newer model through.
    - ``tls_certificate`` (PEM or DER) pins an https server URL's certificate;
    - OpenGradient's network (no server URL): ``rpc_url`` (default ``OPENGRADIENT_RPC_URL``,
      else OpenGradient's devnet), ``registry_address`` (``OPENGRADIENT_REGISTRY_ADDRESS``,
      else OpenGradient's registry), ``tee_id`` (use only this TEE); ``attestation``
      ("verify", the default: fetch each TEE's Nitro attestation over the pinned connection
      and check it against AWS's root, the registered PCR hash, the pinned certificate and the
      registered key; "off": trust the registry alone), ``allowed_measurements`` (PCR hashes
      you accept, checked on top of the registry's) and ``attestation_root_sha256`` (another
      root to pin instead of AWS's, e.g. a local gateway's test root).
    """

    def __init__(
        self,
        wallet_account: LocalAccount,
        og_llm_server_url: str | None = None,
        og_llm_streaming_server_url: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_payment: int | None = None,
        allowed_networks: Iterable[str] = DEFAULT_NETWORKS,
        allowed_assets: Iterable[str] | None = None,
        allowed_payees: Iterable[str] | None = None,
        max_validity_seconds: int = 3600,
        budget: int | None = None,
        verification: VerificationPolicy | str = VerificationPolicy.RAISE,
        tee_public_key: str | bytes | None = None,
        tee_id: str | None = None,
        payment_policy: PaymentPolicy | None = None,
        retry_session_requests: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = None,
        stream_verification: str = "incremental",
        max_proof_age_seconds: float | None = DEFAULT_MAX_PROOF_AGE_SECONDS,
        max_stream_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        allow_unknown_models: bool = False,
        tls_certificate: str | bytes | None = None,
        rpc_url: str | None = None,
        registry_address: str | None = None,
        attestation: AttestationPolicy | str = AttestationPolicy.VERIFY,
        allowed_measurements: Collection[str] | None = None,
        attestation_root_sha256: str | None = None,
    ) -> None:
        if not isinstance(wallet_account, LocalAccount):
            raise InvalidRequestError(
                "wallet_account must be an eth_account LocalAccount (e.g. "
                f"eth_account.Account.from_key(private_key)), got a {type(wallet_account).__name__}"
            )
        self._pins = Pins()
        self._network: TeeNetwork | None = None
        if og_llm_server_url is None:  # OpenGradient's network, found in the registry
            for name, given in (
                ("og_llm_streaming_server_url", og_llm_streaming_server_url),
                ("tee_public_key", tee_public_key),
                ("tls_certificate", tls_certificate),
            ):
                if given is not None:
                    raise InvalidRequestError(
                        f"{name} needs a server URL; without one the TEE, its key and its "
                        "certificate come from the registry (pin one TEE with tee_id)"
                    )
            self._network = TeeNetwork(
                self._pins,
                rpc_url=rpc_url,
                registry_address=registry_address,
                tee_id=tee_id,
                attestation=attestation,
                allowed_measurements=allowed_measurements,
                attestation_root_sha256=attestation_root_sha256,
            )
            tee_id = None
            self._url = self._stream_url = ""
        else:
            AttestationPolicy.parse(attestation)  # checked here too; it applies to registry TEEs
            self._url = _server_url(og_llm_server_url, "og_llm_server_url")
            self._stream_url = (
                self._url
                if og_llm_streaming_server_url is None
                else _server_url(og_llm_streaming_server_url, "og_llm_streaming_server_url")
            )
            if tls_certificate is not None:
                der = certificate_der(tls_certificate)
                for url in {self._url, self._stream_url}:
                    self._pins.pin(url, der)
        self.timeout = _timeout(timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidRequestError(
                f"max_retries must be a non-negative integer, got {max_retries!r}"
            )
        self.max_retries = max_retries
        self.allow_unknown_models = bool(allow_unknown_models)
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes <= 0
        ):
            raise InvalidRequestError(
                f"max_response_bytes must be a positive integer, got {max_response_bytes!r}"
            )
        self.max_response_bytes = max_response_bytes
        self.deadline = None if deadline is None else _timeout(deadline, "deadline")
        if payment_policy is not None and not isinstance(payment_policy, PaymentPolicy):
            raise InvalidRequestError("payment_policy must be a PaymentPolicy")
        policy = payment_policy or PaymentPolicy(
            max_payment=max_payment,
            allowed_networks=allowed_networks,
            allowed_assets=allowed_assets,
            allowed_payees=allowed_payees,
            max_validity_seconds=max_validity_seconds,
            budget=budget,
        )
        self._exchange = Exchange(
            account=wallet_account,
            policy=policy,
            verification=VerificationPolicy.parse(verification),
            anchor=TrustAnchor(tee_public_key, tee_id),
            retry_session_requests=bool(retry_session_requests),
        )
        if stream_verification not in STREAM_VERIFICATION_MODES:
            raise InvalidRequestError(
                f"stream_verification {stream_verification!r} is unknown; use 'incremental' "
                "(text as it arrives, verified at the end) or 'buffer' (nothing until verified)"
            )
        self.stream_verification = stream_verification
        self.max_proof_age_seconds = (
            None
            if max_proof_age_seconds is None
            else _timeout(max_proof_age_seconds, "max_proof_age_seconds")
        )
        if (
            isinstance(max_stream_event_bytes, bool)
            or not isinstance(max_stream_event_bytes, int)
            or max_stream_event_bytes < 1024
        ):
            raise InvalidRequestError(
                f"max_stream_event_bytes must be an integer of at least 1024, "
                f"got {max_stream_event_bytes!r}"
            )
        self.max_stream_event_bytes = max_stream_event_bytes
        retry = RetryPolicy(max_retries=max_retries)
        self._sync = SyncDriver(retry, max_response_bytes=max_response_bytes, pins=self._pins)
        self._async = AsyncDriver(retry, max_response_bytes=max_response_bytes, pins=self._pins)

    # -- identity --------------------------------------------------------------------------

    @property
    def wallet_address(self) -> str:
        """The address that pays (the private key never leaves the account object)."""
        return str(self._exchange.account.address)

    @property
    def payment_policy(self) -> PaymentPolicy:
        """The limits this client pays under."""
        return self._exchange.policy

    @property
    def verification(self) -> VerificationPolicy:
        """What happens when a TEE proof fails."""
        return self._exchange.verification

    def __repr__(self) -> str:
        if self._network is not None:
            where = (
                f"rpc_url={self._network.rpc_url!r}, "
                f"registry_address={self._network.registry_address!r}"
            )
        else:
            where = (
                f"og_llm_server_url={self._url!r}, og_llm_streaming_server_url={self._stream_url!r}"
            )
        return (
            f"LLM(wallet_address={self.wallet_address!r}, {where}, "
            f"verification={self.verification.value!r})"
        )

    def __reduce__(self) -> Any:
        raise TypeError(
            "an opengradient_shared.LLM holds a wallet key and live connections and cannot be "
            "pickled; build a new LLM from its settings where you need one"
        )

    def __copy__(self) -> LLM:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LLM:
        """The same client: copies of a model share its transport (and never copy the key)."""
        return self

    # -- seed API ----------------------------------------------------------------------------

    @overload
    def chat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = ...,
        stop_sequence: list[str] | None = ...,
        temperature: float = ...,
        tools: Sequence[dict[str, Any]] | None = ...,
        tool_choice: str | dict[str, Any] | None = ...,
        x402_settlement_mode: _Mode | None = ...,
        stream: Literal[False] = ...,
        *,
        response_format: dict[str, Any] | None = ...,
        extra_body: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> TextGenerationOutput: ...

    @overload
    def chat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = ...,
        stop_sequence: list[str] | None = ...,
        temperature: float = ...,
        tools: Sequence[dict[str, Any]] | None = ...,
        tool_choice: str | dict[str, Any] | None = ...,
        x402_settlement_mode: _Mode | None = ...,
        *,
        stream: Literal[True],
        response_format: dict[str, Any] | None = ...,
        extra_body: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> TextGenerationStream: ...

    @overload
    def chat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = ...,
        stop_sequence: list[str] | None = ...,
        temperature: float = ...,
        tools: Sequence[dict[str, Any]] | None = ...,
        tool_choice: str | dict[str, Any] | None = ...,
        x402_settlement_mode: _Mode | None = ...,
        stream: bool = ...,
        *,
        response_format: dict[str, Any] | None = ...,
        extra_body: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> TextGenerationOutput | TextGenerationStream: ...

    def chat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = 100,
        stop_sequence: list[str] | None = None,
        temperature: float = 0.0,
        tools: Sequence[dict[str, Any]] | None = _NO_TOOLS,
        tool_choice: str | dict[str, Any] | None = None,
        x402_settlement_mode: _Mode | None = _Mode.SETTLE_BATCH,
        stream: bool = False,
        *,
        response_format: dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> TextGenerationOutput | TextGenerationStream:
        """Chat with ``model`` inside the TEE, paying with x402.

        Returns a :class:`TextGenerationOutput` (``chat_output``, ``finish_reason``, ``usage``,
        the verified ``tee_proof``, the ``payment`` receipt, ``payment_hash``), or with
        ``stream=True`` a :class:`TextGenerationStream` of :class:`StreamChunk` whose final
        chunk carries usage, proof and receipt. Raises an ``OpenGradientError`` subclass.
        ``max_tokens=None`` sends no cap (the server's default applies); ``extra_body`` adds
        fields of the gateway's OpenAI schema (``openai_schema.EXTRA_CHAT_FIELDS``: top_p, n,
        seed, presence_penalty, frequency_penalty, logit_bias, user).
        """
        prepared = protocol.prepare_chat(
            model, messages, max_tokens, stop_sequence, temperature, tools, tool_choice,
            x402_settlement_mode, stream, response_format, extra_body,
        )  # fmt: skip
        self._check_model(prepared)
        seconds = self._call_timeout(timeout)
        end = self._end(seconds, stream)
        delivery, origin = self._deliver(prepared, stream, seconds, end)
        if stream:
            response = delivery.response.stream
            assembler = self._assembler(prepared, delivery, origin)
            chunks = _guarded(self._sync.stream(response, assembler, end))

            def close() -> None:
                chunks.close()
                response.close()  # also when iteration never started

            return TextGenerationStream(_iterator=chunks, _close=close)
        return self._output(prepared, delivery, origin)

    def completion(
        self,
        model: TEE_LLM | str,
        prompt: str,
        max_tokens: int | None = 100,
        stop_sequence: list[str] | None = None,
        temperature: float = 0.0,
        x402_settlement_mode: _Mode | None = _Mode.SETTLE_BATCH,
        *,
        timeout: float | None = None,
    ) -> TextGenerationOutput:
        """Complete ``prompt`` with ``model`` inside the TEE, paying with x402.

        Returns a :class:`TextGenerationOutput` with ``completion_output``. Raises an
        ``OpenGradientError`` subclass.
        """
        prepared = protocol.prepare_completion(
            model, prompt, max_tokens, stop_sequence, temperature, x402_settlement_mode
        )
        self._check_model(prepared)
        seconds = self._call_timeout(timeout)
        delivery, origin = self._deliver(prepared, False, seconds, self._end(seconds, False))
        return self._output(prepared, delivery, origin)

    @overload
    async def achat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = ...,
        stop_sequence: list[str] | None = ...,
        temperature: float = ...,
        tools: Sequence[dict[str, Any]] | None = ...,
        tool_choice: str | dict[str, Any] | None = ...,
        x402_settlement_mode: _Mode | None = ...,
        stream: Literal[False] = ...,
        *,
        response_format: dict[str, Any] | None = ...,
        extra_body: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> TextGenerationOutput: ...

    @overload
    async def achat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = ...,
        stop_sequence: list[str] | None = ...,
        temperature: float = ...,
        tools: Sequence[dict[str, Any]] | None = ...,
        tool_choice: str | dict[str, Any] | None = ...,
        x402_settlement_mode: _Mode | None = ...,
        *,
        stream: Literal[True],
        response_format: dict[str, Any] | None = ...,
        extra_body: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> TextGenerationStream: ...

    @overload
    async def achat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = ...,
        stop_sequence: list[str] | None = ...,
        temperature: float = ...,
        tools: Sequence[dict[str, Any]] | None = ...,
        tool_choice: str | dict[str, Any] | None = ...,
        x402_settlement_mode: _Mode | None = ...,
        stream: bool = ...,
        *,
        response_format: dict[str, Any] | None = ...,
        extra_body: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> TextGenerationOutput | TextGenerationStream: ...

    async def achat(
        self,
        model: TEE_LLM | str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = 100,
        stop_sequence: list[str] | None = None,
        temperature: float = 0.0,
        tools: Sequence[dict[str, Any]] | None = _NO_TOOLS,
        tool_choice: str | dict[str, Any] | None = None,
        x402_settlement_mode: _Mode | None = _Mode.SETTLE_BATCH,
        stream: bool = False,
        *,
        response_format: dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> TextGenerationOutput | TextGenerationStream:
        """Async :meth:`chat`. With ``stream=True``, awaiting sends the request (and pays);
        iterate the returned stream with ``async for``."""
        prepared = protocol.prepare_chat(
            model, messages, max_tokens, stop_sequence, temperature, tools, tool_choice,
            x402_settlement_mode, stream, response_format, extra_body,
        )  # fmt: skip
        self._check_model(prepared)
        seconds = self._call_timeout(timeout)
        end = self._end(seconds, stream)
        delivery, origin = await self._adeliver(prepared, stream, seconds, end)
        if stream:
            response = delivery.response.stream
            assembler = self._assembler(prepared, delivery, origin)
            chunks = _aguarded(self._async.stream(response, assembler, end))

            async def aclose() -> None:
                await chunks.aclose()
                await response.aclose()  # also when iteration never started

            return TextGenerationStream(_iterator=chunks, _close=aclose)
        return self._output(prepared, delivery, origin)

    async def acompletion(
        self,
        model: TEE_LLM | str,
        prompt: str,
        max_tokens: int | None = 100,
        stop_sequence: list[str] | None = None,
        temperature: float = 0.0,
        x402_settlement_mode: _Mode | None = _Mode.SETTLE_BATCH,
        *,
        timeout: float | None = None,
    ) -> TextGenerationOutput:
        """Async :meth:`completion`."""
        prepared = protocol.prepare_completion(
            model, prompt, max_tokens, stop_sequence, temperature, x402_settlement_mode
        )
        self._check_model(prepared)
        seconds = self._call_timeout(timeout)
        delivery, origin = await self._adeliver(prepared, False, seconds, self._end(seconds, False))
        return self._output(prepared, delivery, origin)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools (async pools of other event loops are dropped)."""
        self._sync.close()
        self._async.forget()

    async def aclose(self) -> None:
        """Close the running event loop's pool (and the blocking pool)."""
        await self._async.aclose()
        self._sync.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLM:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- helpers -----------------------------------------------------------------------------

    def _run(self, flow: Flow, seconds: float, end: float | None = None) -> Delivery:
        try:
            return self._sync.run(flow, seconds, end)
        except OpenGradientError:
            raise
        except Exception as exc:  # the funnel; no cause kept: a signing frame may hold the key
            raise _unreadable(exc) from None

    async def _arun(self, flow: Flow, seconds: float, end: float | None = None) -> Delivery:
        try:
            return await self._async.run(flow, seconds, end)
        except OpenGradientError:
            raise
        except Exception as exc:  # the funnel; no cause kept: a signing frame may hold the key
            raise _unreadable(exc) from None

    def _check_model(self, prepared: protocol.PreparedRequest) -> None:
        """Refuse, before anything is paid, a model the gateway does not serve (it would take
        the payment and then answer 400), unless ``allow_unknown_models``."""
        name = str(prepared.body["model"])
        if self.allow_unknown_models or is_known_model(name):
            return
        retired = {old.split("/", 1)[1]: new for old, new in DEPRECATED_MODELS.values()}
        hint = f" (use TEE_LLM.{retired[name]})" if name in retired else ""
        raise InvalidRequestError(
            f"model {name!r} is not one OpenGradient's gateway serves{hint}; it would verify "
            "the payment first and then refuse the model. Pick a TEE_LLM member, or pass "
            "LLM(..., allow_unknown_models=True) for a model newer than this package."
        )

    def _call_timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else _timeout(timeout)

    def _deliver(
        self, prepared: protocol.PreparedRequest, stream: bool, seconds: float, end: float | None
    ) -> tuple[Delivery, TeeOrigin]:
        """Run the exchange: on the server URL, or on a registry TEE with failover."""
        network = self._network
        if network is None:
            server = self._stream_url if stream else self._url
            delivery = self._run(self._exchange.flow(server, prepared), seconds, end)
            pinned = self._pins.context_for(server) is not None
            return delivery, origin_for_url(server, delivery.key, pinned)
        tried: list[str] = []
        failure: NetworkError | AttestationError | None = None
        while True:
            try:
                route = drive(
                    network.route(tried), partial(self._sync.send, timeout=seconds, end=end)
                )
            except NetworkError as exc:
                raise _rpc_unreachable(network, exc) from None
            except RegistryError:
                if failure is not None:  # no other TEE to try: the TEE's failure is the error
                    raise failure from None
                raise
            watched = Watched()
            try:
                route = drive(
                    network.attest(route), partial(self._sync.send, timeout=seconds, end=end)
                )
                flow = self._exchange.flow(
                    route.entry.endpoint,
                    prepared,
                    key=route.key,
                    pay_to=route.entry.payment_address,
                )
                return self._run(watched.flow(flow), seconds, end), route.origin
            except (NetworkError, AttestationError) as exc:
                network.failed(route.entry)
                tried.append(route.entry.tee_id)
                paid = isinstance(exc, NetworkError) and watched.may_have_paid(exc)
                if paid or len(tried) >= FAILOVER_LIMIT:
                    raise
                failure = exc

    async def _adeliver(
        self, prepared: protocol.PreparedRequest, stream: bool, seconds: float, end: float | None
    ) -> tuple[Delivery, TeeOrigin]:
        """:meth:`_deliver` on the async driver."""
        network = self._network
        if network is None:
            server = self._stream_url if stream else self._url
            delivery = await self._arun(self._exchange.flow(server, prepared), seconds, end)
            pinned = self._pins.context_for(server) is not None
            return delivery, origin_for_url(server, delivery.key, pinned)
        tried: list[str] = []
        failure: NetworkError | AttestationError | None = None
        while True:
            try:
                route = await adrive(
                    network.route(tried), partial(self._async.send, timeout=seconds, end=end)
                )
            except NetworkError as exc:
                raise _rpc_unreachable(network, exc) from None
            except RegistryError:
                if failure is not None:  # no other TEE to try: the TEE's failure is the error
                    raise failure from None
                raise
            watched = Watched()
            try:
                route = await adrive(
                    network.attest(route), partial(self._async.send, timeout=seconds, end=end)
                )
                flow = self._exchange.flow(
                    route.entry.endpoint,
                    prepared,
                    key=route.key,
                    pay_to=route.entry.payment_address,
                )
                return await self._arun(watched.flow(flow), seconds, end), route.origin
            except (NetworkError, AttestationError) as exc:
                network.failed(route.entry)
                tried.append(route.entry.tee_id)
                paid = isinstance(exc, NetworkError) and watched.may_have_paid(exc)
                if paid or len(tried) >= FAILOVER_LIMIT:
                    raise
                failure = exc

    def _end(self, seconds: float, stream: bool) -> float | None:
        """The ``time.monotonic`` instant the call must be over by, or None (no bound
        beyond ``timeout`` per try)."""
        if self.deadline is None and not stream:
            return None
        return stream_end(time.monotonic(), seconds, self.max_retries, self.deadline)

    def _check(
        self, prepared: protocol.PreparedRequest, delivery: Delivery, fields: Any, output_hash: str
    ) -> TeeProof | None:
        return check_proof(
            self.verification,
            fields,
            delivery.key,
            request_hash=prepared.request_hash,
            output_hash=output_hash,
            key_problem=delivery.key_problem,
            now=self._exchange.clock(),
            max_age_seconds=self.max_proof_age_seconds,
        )

    def _assembler(
        self, prepared: protocol.PreparedRequest, delivery: Delivery, origin: TeeOrigin | None
    ) -> StreamAssembler:
        return StreamAssembler(
            partial(self._check, prepared, delivery),
            delivery.receipt,
            delivery.payment_hash,
            mode=self.stream_verification,
            max_event_bytes=self.max_stream_event_bytes,
            origin=origin,
        )

    def _output(
        self, prepared: protocol.PreparedRequest, delivery: Delivery, origin: TeeOrigin | None
    ) -> TextGenerationOutput:
        body = delivery.response.body
        try:
            answer = (
                protocol.parse_completion(body)
                if prepared.completion
                else protocol.parse_chat(body)
            )
            proof = self._check(prepared, delivery, answer.data, answer.output_hash)
        except OpenGradientError:
            raise
        except Exception as exc:  # the funnel: anything else is a bug, reported as such
            raise ServerError(
                f"the server's answer could not be read ({type(exc).__name__}: "
                f"{excerpt(str(exc), 200)})"
            ) from exc
        return TextGenerationOutput(
            transaction_hash="external",
            finish_reason=answer.finish_reason,
            chat_output=None if prepared.completion else answer.chat_output,
            completion_output=answer.content if prepared.completion else None,
            payment_hash=delivery.payment_hash,
            usage=answer.usage,
            tee_proof=proof,
            payment=delivery.receipt,
            model=answer.model,
            id=answer.id,
            tee_origin=origin,
        )
