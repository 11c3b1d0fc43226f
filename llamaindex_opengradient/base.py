"""``OpenGradient``: OpenGradient's TEE-verified, x402-paid LLMs as a LlamaIndex
``FunctionCallingLLM``."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from opengradient_shared.errors import InvalidRequestError
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
from opengradient_shared.types import x402SettlementMode as _Mode
from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic import model_validator as _model_validator

from ._convert import ChatStream, chat_response, completion_response, to_openai_messages
from ._models import context_window_of
from ._tools import first_call_only, selections, tool_choice_of, tool_spec

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool
    from opengradient_shared.client import LLM

# Options a call (``chat(messages, **options)``) may carry; ``additional_kwargs`` may set the
# request options among them that have no field of their own.
_CHAT_OPTIONS = frozenset(
    {"tools", "tool_choice", "response_format", "stop", "temperature", "max_tokens"}
)
_COMPLETION_OPTIONS = frozenset({"stop", "temperature", "max_tokens"})
_EXTRA_OPTIONS = frozenset({"stop", "response_format"})
_Response = TypeVar("_Response", ChatResponse, CompletionResponse)
_NO_LIMIT = -1  # metadata.num_output without max_tokens, as LlamaIndex's OpenAI LLM says it
# What max_tokens=None sends on the completion endpoint: the cap OpenGradient's gateway applies
# to a chat call without one (sending none gets the completions schema's default, 16 tokens);
# the same as langchain_opengradient's OpenGradientLLM.
UNSET_COMPLETION_MAX_TOKENS = 4096


def _from_env(name: str) -> Any:
    return lambda: os.environ.get(name) or None


def _secret_from_env() -> SecretStr | None:
    value = os.environ.get(KEY_ENV)
    return SecretStr(value) if value else None


def _conceal_key_arguments(options: dict[str, Any]) -> None:
    """Wrap a key given as text or bytes (``private_key``/``api_key``) in a ``SecretStr``, in
    ``options`` itself, so that the constructors below (LlamaIndex's, pydantic's) only ever hold
    the wrapper: a traceback captured with locals of a refused setting shows ``**********``."""
    for name in ("private_key", "api_key"):
        value = options.get(name)
        if isinstance(value, bytes | bytearray):
            options[name] = SecretStr("0x" + bytes(value).hex())
        elif isinstance(value, str):
            options[name] = SecretStr(value)


def _unknown(options: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise InvalidRequestError(
            f"unsupported option(s) {', '.join(sorted(map(str, unknown)))} for {what}; "
            f"OpenGradient takes {', '.join(sorted(allowed))}"
        )


class OpenGradient(FunctionCallingLLM):
    """OpenGradient's TEE-hosted LLMs for LlamaIndex, paying per call with x402.

    Every answer's TEE proof is verified by the transport (``opengradient_shared.LLM``). Each
    ``ChatResponse`` / ``CompletionResponse`` (and the last response of a stream) carries in
    ``additional_kwargs``: ``tee_proof`` and ``payment`` (dicts), ``payment_hash``, ``usage``,
    ``finish_reason`` and ``model``; ``raw`` is the transport's output as a dict (so that
    LlamaIndex's ``TokenCountingHandler`` reads the usage, and a ``FunctionAgent`` step's proof
    is at ``AgentOutput.raw["tee_proof"]``).

    ```python
    from llama_index.core.llms import ChatMessage
    from llamaindex_opengradient import OpenGradient

    llm = OpenGradient(model="openai/gpt-4.1-2025-04-14")  # key and URL from the environment
    response = llm.chat([ChatMessage(role="user", content="Hello")])
    response.additional_kwargs["tee_proof"]["verified"]  # True
    ```

    Configuration by argument first, then environment: ``private_key``
    (``OPENGRADIENT_PRIVATE_KEY``; alias ``api_key``; hex text or bytes), ``base_url``
    (``OPENGRADIENT_LLM_URL``), ``streaming_url`` (``OPENGRADIENT_LLM_STREAMING_URL``, default
    ``base_url``), ``max_payment`` (``OPENGRADIENT_MAX_PAYMENT``, base units per call, or per
    session in generation 2), ``budget`` (``OPENGRADIENT_BUDGET``, base units over all calls);
    the transport's limits ``deadline``, ``max_response_bytes``, ``retry_session_requests``,
    ``max_proof_age_seconds`` and ``max_stream_event_bytes`` (None: its defaults). Or pass
    an existing transport as ``client`` (it then supplies key, URLs, retries and payment and
    verification policy). The transport is built once, at construction: missing or bad
    settings raise ``ValueError`` there, naming the setting and never the key.

    ``max_tokens`` is None by default: chat sends no cap (``metadata.num_output`` is then -1, as
    for LlamaIndex's ``OpenAI``); ``complete`` sends 4096 (:data:`UNSET_COMPLETION_MAX_TOKENS`),
    not the completion endpoint's default of 16. An answer cut at ``max_tokens`` has
    ``finish_reason`` "length" in ``additional_kwargs`` and warns once per model. The proofs of
    the answers behind a query engine, chat engine or agent: ``collect_proofs()`` (see
    :class:`ProofCollector`).

    ``complete``/``acomplete`` use OpenGradient's completion endpoint. That endpoint does not
    stream, so ``stream_complete``/``astream_complete`` stream a chat of one user message (the
    prompt). Streams send their request (and pay) when iteration starts. Retries are the
    transport's alone (``max_retries``); this class never retries.

    Tool calls: the message of a response carries them as ``ToolCallBlock``s and as OpenAI
    dicts in ``additional_kwargs["tool_calls"]``. ``get_tool_calls_from_response`` reads
    partial JSON arguments while a stream is in progress; on a complete answer, arguments
    that are not a JSON object raise ``ValueError`` (rather than calling the tool with ``{}``).
    OpenGradient has no switch for parallel calls: with ``allow_parallel_tool_calls=False``
    only the first call of a non-streamed answer is kept.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        populate_by_name=True,
        extra="forbid",
        hide_input_in_errors=True,
    )

    model: str = Field(description="A TEE_LLM member or a 'provider/model' string.")
    temperature: float = Field(default=0.0, description="Sampling temperature, 0 to 2.")
    max_tokens: int | None = Field(
        default=None, description="Most tokens to generate (None: no cap, the model's own)."
    )
    context_window: int | None = Field(
        default=None, description="Context window in tokens (None: known per model)."
    )
    timeout: float | None = Field(
        default=None, description="Seconds per try (None: the transport's 60)."
    )
    max_retries: int = Field(
        default=2, description="Retries of failed connections and 429/5xx, by the transport."
    )
    private_key: SecretStr | None = Field(
        default_factory=_secret_from_env,
        validation_alias=AliasChoices("private_key", "api_key"),
        exclude=True,
        description="The paying wallet's key (OPENGRADIENT_PRIVATE_KEY); never shown.",
    )
    base_url: str | None = Field(
        default_factory=_from_env(URL_ENV), description="The LLM server (OPENGRADIENT_LLM_URL)."
    )
    streaming_url: str | None = Field(
        default_factory=_from_env(STREAMING_URL_ENV),
        description="The streaming server (OPENGRADIENT_LLM_STREAMING_URL; default base_url).",
    )
    settlement_mode: _Mode = Field(
        default=_Mode.SETTLE_BATCH, description="How each inference is settled on-chain."
    )
    max_payment: int | None = Field(
        default_factory=_from_env(MAX_PAYMENT_ENV),
        validate_default=True,
        description="Most base units one call (generation 1) or one session (generation 2) "
        "may draw (OPENGRADIENT_MAX_PAYMENT; None: one whole token).",
    )
    allowed_networks: list[str] | None = None
    allowed_assets: list[str] | None = None
    allowed_payees: list[str] | None = None
    verification: Literal["raise", "warn", "off"] = Field(
        default="raise", description="What a failed TEE proof does."
    )
    tee_public_key: str | None = Field(
        default=None, description="The trusted TEE's PEM key (None: fetched once)."
    )
    rpc_url: str | None = Field(
        default=None,
        description="Without base_url: the chain RPC of the TEE registry (OPENGRADIENT_RPC_URL).",
    )
    registry_address: str | None = Field(
        default=None,
        description="Without base_url: the registry contract (OPENGRADIENT_REGISTRY_ADDRESS).",
    )
    tee_id: str | None = Field(default=None, description="Use only this TEE.")
    tls_certificate: str | None = Field(
        default=None, description="With an https base_url: trust only this certificate (PEM)."
    )
    attestation: Literal["verify", "off"] | None = Field(
        default=None, description="Registry TEEs: verify their Nitro attestation (default)."
    )
    allowed_measurements: list[str] | None = Field(
        default=None, description="Registry TEEs: the PCR hashes you accept."
    )
    attestation_root_sha256: str | None = Field(
        default=None, description="Registry TEEs: an attestation root to pin instead of AWS's."
    )
    stream_verification: Literal["incremental", "buffer"] = Field(
        default="incremental",
        description="Streams: text as it arrives, verified at the end ('incremental'), or "
        "nothing until the proof verified ('buffer'). Tool-call chunks always wait.",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Request options of every call: 'stop' (a list of strings) and "
        "'response_format' (chat calls only: the completion endpoint takes no format).",
    )
    allow_unknown_models: bool = Field(
        default=False,
        description="Let a model the gateway does not list through (else refused before paying).",
    )
    budget: int | None = Field(
        default_factory=_from_env(BUDGET_ENV),
        validate_default=True,
        ge=0,
        description="Most base units (per asset) the transport may ever authorize, over all "
        "calls (OPENGRADIENT_BUDGET; None: no limit). Models sharing a transport share it.",
    )
    deadline: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds for a whole call, every try and a stream to its end included "
        "(None: the transport's: none for plain calls, timeout x (max_retries + 1) for a stream).",
    )
    max_response_bytes: int | None = Field(
        default=None, gt=0, description="The largest answer read (None: the transport's 8 MiB)."
    )
    retry_session_requests: bool = Field(
        default=False,
        description="Resend a generation-2 session request that may have reached the server "
        "(billed per try); by default it is not resent.",
    )
    max_proof_age_seconds: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Proofs older than this fail verification (None: the transport's 300 s).",
    )
    max_stream_event_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="The largest stream event; a larger one ends the stream (None: 1 MiB).",
    )
    client: ClientOption = Field(
        default=None, exclude=True, description="An existing opengradient_shared.LLM to use."
    )

    _llm: Any = PrivateAttr(default=None)
    _warned_cut: bool = PrivateAttr(default=False)

    def __init__(self, **options: Any) -> None:
        _conceal_key_arguments(options)  # before any frame below holds the key as text
        super().__init__(**options)

    # -- validation ----------------------------------------------------------------------------

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> str:
        from opengradient_shared.protocol import wire_model

        wire_model(value)  # InvalidRequestError (a ValueError) naming the value, with a hint
        return str(value)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float) -> float:
        if math.isnan(value) or not 0.0 <= value <= 2.0:
            raise ValueError(f"temperature must be from 0 to 2, got {value!r}")
        return value

    @field_validator("max_tokens", "context_window", "timeout")
    @classmethod
    def _positive(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"{info.field_name} must be positive, got {value!r}")
        return value

    @field_validator("max_retries", "max_payment")
    @classmethod
    def _not_negative(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"{info.field_name} must be 0 or more, got {value!r}")
        return value

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
    def _settlement(cls, value: Any) -> _Mode:
        return _Mode.parse(value)  # ValueError naming the value

    @field_validator("additional_kwargs")
    @classmethod
    def _extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - _EXTRA_OPTIONS
        if unknown:
            raise ValueError(
                f"additional_kwargs has unsupported option(s) {', '.join(sorted(unknown))}; "
                f"OpenGradient takes {', '.join(sorted(_EXTRA_OPTIONS))} (the others are fields)"
            )
        return value

    @_model_validator(mode="after")
    def _connect(self) -> Self:
        from opengradient_shared import protocol

        try:  # the options of every call, checked as the transport will check them
            protocol.prepare_chat(
                self.model,
                [{"role": "user", "content": "-"}],
                self.max_tokens,
                self.additional_kwargs.get("stop"),
                self.temperature,
                response_format=self.additional_kwargs.get("response_format"),
            )
        except InvalidRequestError as exc:
            raise ValueError(f"additional_kwargs: {exc}") from None
        self._llm = build_client(self)
        return self

    # -- identity ------------------------------------------------------------------------------

    @classmethod
    def class_name(cls) -> str:
        return "OpenGradient"

    @property
    def metadata(self) -> LLMMetadata:
        """Context window, output tokens (``max_tokens``, -1 when not set: no cap), and that
        this is a function-calling chat model."""
        return LLMMetadata(
            context_window=self.context_window or context_window_of(self.model),
            num_output=_NO_LIMIT if self.max_tokens is None else self.max_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
        )

    def __reduce__(self) -> Any:
        raise TypeError(
            "OpenGradient holds a wallet key and a live transport and cannot be pickled; "
            "build a new one from its settings where you need it (copy.deepcopy shares the "
            "transport)"
        )

    @property
    def transport(self) -> LLM:
        """The ``opengradient_shared.LLM`` this model calls."""
        llm: LLM = self._llm
        return llm

    # -- request arguments ---------------------------------------------------------------------

    def _chat_args(
        self, messages: Sequence[ChatMessage], options: dict[str, Any]
    ) -> dict[str, Any]:
        """The transport's ``chat`` arguments (refuses unknown options and bad messages)."""
        _unknown(options, _CHAT_OPTIONS, "chat")
        merged = {**self.additional_kwargs, **options}
        tools = [tool_spec(tool) for tool in merged.get("tools") or ()]
        args: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            "stop_sequence": merged.get("stop"),
            "temperature": merged.get("temperature", self.temperature),
            "tools": tools,
            "tool_choice": tool_choice_of(merged.get("tool_choice"), tools),
            "x402_settlement_mode": self.settlement_mode,
            "response_format": merged.get("response_format"),
            "timeout": self.timeout,
            "max_tokens": merged.get("max_tokens", self.max_tokens),  # None: no cap
        }
        return args

    def _completion_args(
        self, prompt: str, formatted: bool, options: dict[str, Any]
    ) -> dict[str, Any]:
        """The transport's ``completion`` arguments."""
        _unknown(options, _COMPLETION_OPTIONS, "complete")
        args: dict[str, Any] = {
            "model": self.model,
            "prompt": self._formatted(prompt, formatted),
            "stop_sequence": options.get("stop", self.additional_kwargs.get("stop")),
            "temperature": options.get("temperature", self.temperature),
            "x402_settlement_mode": self.settlement_mode,
            "timeout": self.timeout,
        }
        max_tokens = options.get("max_tokens", self.max_tokens)
        args["max_tokens"] = UNSET_COMPLETION_MAX_TOKENS if max_tokens is None else max_tokens
        return args

    def _formatted(self, prompt: str, formatted: bool) -> str:
        """``prompt`` through ``completion_to_prompt`` unless already ``formatted``."""
        if not isinstance(prompt, str):
            raise InvalidRequestError(f"prompt must be a string, got {type(prompt).__name__}")
        if formatted or self.completion_to_prompt is None:
            return prompt
        return str(self.completion_to_prompt(prompt))

    def _prompt_as_chat(self, prompt: str, formatted: bool) -> list[ChatMessage]:
        return [ChatMessage(role=MessageRole.USER, content=self._formatted(prompt, formatted))]

    def _seen(self, response: _Response) -> _Response:
        """``response``, after a warning (once per model) when it was cut at ``max_tokens``."""
        extra = response.additional_kwargs
        if extra.get("finish_reason") == "length" and not self._warned_cut:
            self._warned_cut = True
            warnings.warn(
                f"OpenGradient({self.model!r}): an answer was cut at max_tokens "
                "(finish_reason='length', in the response's additional_kwargs); raise "
                "max_tokens, or leave it None for no cap. Warned once per model.",
                UserWarning,
                stacklevel=4,
            )
        return response

    # -- blocking ------------------------------------------------------------------------------

    @staticmethod
    def _check_stream(args: dict[str, Any]) -> dict[str, Any]:
        """Validate a stream's arguments now, as the transport will when iteration starts, so
        that bad input fails at the call."""
        from opengradient_shared import protocol

        protocol.prepare_chat(**{k: v for k, v in args.items() if k != "timeout"}, stream=True)
        return args

    def _stream(self, args: dict[str, Any]) -> Iterator[tuple[ChatStream, Any]]:
        """Send a streaming chat (when iteration starts) and yield the fold with each chunk."""
        stream = self.transport.chat(**args, stream=True)
        fold = ChatStream(self.model)
        try:
            for chunk in stream:
                yield fold, chunk
        finally:
            stream.close()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat; ``kwargs``: tools (OpenAI dicts or LlamaIndex tools), tool_choice,
        response_format, stop, temperature, max_tokens."""
        output = self.transport.chat(**self._chat_args(messages, kwargs))
        return self._seen(chat_response(output, self.model))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat: each response has ``delta`` and the message so far."""
        args = self._check_stream(self._chat_args(messages, kwargs))
        return (self._seen(fold.response(chunk)) for fold, chunk in self._stream(args))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt`` on the completion endpoint; ``kwargs``: stop, temperature,
        max_tokens."""
        output = self.transport.completion(**self._completion_args(prompt, formatted, kwargs))
        return self._seen(completion_response(output, self.model))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream the answer to ``prompt``, sent as one user message of a chat (the completion
        endpoint does not stream)."""
        args = self._check_stream(self._chat_args(self._prompt_as_chat(prompt, formatted), kwargs))
        return (self._seen(fold.completion(chunk)) for fold, chunk in self._stream(args))

    # -- async ---------------------------------------------------------------------------------

    async def _astream(self, args: dict[str, Any]) -> AsyncIterator[tuple[ChatStream, Any]]:
        stream = await self.transport.achat(**args, stream=True)
        fold = ChatStream(self.model)
        try:
            async for chunk in stream:
                yield fold, chunk
        finally:
            await stream.aclose()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        output = await self.transport.achat(**self._chat_args(messages, kwargs))
        return self._seen(chat_response(output, self.model))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        args = self._check_stream(self._chat_args(messages, kwargs))

        async def responses() -> ChatResponseAsyncGen:
            async for fold, chunk in self._astream(args):
                yield self._seen(fold.response(chunk))

        return responses()

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete`."""
        args = self._completion_args(prompt, formatted, kwargs)
        output = await self.transport.acompletion(**args)
        return self._seen(completion_response(output, self.model))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        args = self._check_stream(self._chat_args(self._prompt_as_chat(prompt, formatted), kwargs))

        async def responses() -> CompletionResponseAsyncGen:
            async for fold, chunk in self._astream(args):
                yield self._seen(fold.completion(chunk))

        return responses()

    # -- function calling ----------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments offering ``tools``: messages (history plus ``user_msg``),
        OpenAI function tools, and ``tool_choice`` ("required" when ``tool_required``, a tool's
        name forces that tool; default "auto")."""
        specs = [tool_spec(tool, strict) for tool in tools]
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": specs,
            "tool_choice": tool_choice_of(tool_choice, specs, tool_required),
            **kwargs,
        }

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call unless ``allow_parallel_tool_calls``."""
        return response if allow_parallel_tool_calls else first_call_only(response)

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of ``response`` as ``ToolSelection``s (``ValueError`` when there are
        none and ``error_on_no_tool_call``, or when a complete answer's arguments are not a
        JSON object)."""
        return selections(response, error_on_no_tool_call)
