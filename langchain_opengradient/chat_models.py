"""``ChatOpenGradient``: OpenGradient's TEE-verified, x402-paid chat models for LangChain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable
from opengradient_shared.errors import InvalidRequestError
from opengradient_shared.openai_schema import EXTRA_CHAT_FIELDS, extra_chat_fields
from opengradient_shared.types import TextGenerationOutput
from pydantic import BaseModel, Field, model_validator

from ._config import OpenGradientSettings
from ._convert import (
    ai_message,
    first_tool_call_only,
    generation_chunk,
    to_openai_messages,
    tool_choice_of,
)
from ._structured import json_schema_format, structured_runnable

_CALL_OPTIONS = frozenset(
    {
        "model",
        "tools",
        "tool_choice",
        "response_format",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "settlement_mode",
        "parallel_tool_calls",
        "stream_usage",
        *EXTRA_CHAT_FIELDS,
    }
)
# `invoke(..., stream=False)` reaches _generate: LangChain has already acted on it.
_IGNORED_OPTIONS = frozenset({"stream"})


class ChatOpenGradient(OpenGradientSettings, BaseChatModel):
    """Chat with OpenGradient's TEE-hosted LLMs, paying per call with x402.

    Every answer's TEE proof is verified by the transport; the proof, the payment receipt and
    the payment hash are in ``response_metadata`` of each ``AIMessage`` (and of the last
    streamed chunk).

    ```python
    from langchain_opengradient import ChatOpenGradient

    chat = ChatOpenGradient(model="openai/gpt-4.1-2025-04-14")  # key and URL from the environment
    chat.invoke("Hello").response_metadata["tee_proof"]["verified"]  # True
    ```

    Configuration by argument first, then environment: ``private_key``
    (``OPENGRADIENT_PRIVATE_KEY``; alias ``api_key``), ``base_url`` (``OPENGRADIENT_LLM_URL``),
    ``streaming_url`` (``OPENGRADIENT_LLM_STREAMING_URL``, defaults to ``base_url``),
    ``max_payment`` (``OPENGRADIENT_MAX_PAYMENT``, token base units per call). Or pass an
    existing transport as ``client`` (then no key or URL is needed). Missing or malformed
    settings raise ``ValueError`` at construction.
    """

    model_config = OpenGradientSettings.model_config

    streaming: bool = False
    """Use the streaming endpoint for ``invoke`` too."""
    stream_usage: bool = True
    """Token usage on the last streamed chunk (False: none)."""
    top_p: float | None = None
    """Nucleus sampling, 0 to 1 (sent as ``top_p``)."""
    n: int | None = None
    """Choices per call: only 1 (the gateway answers with one choice)."""
    seed: int | None = None
    presence_penalty: float | None = None
    """-2 to 2."""
    frequency_penalty: float | None = None
    """-2 to 2."""
    logit_bias: dict[str, float] | None = None
    """Token id (as text) to a bias from -100 to 100."""
    user: str | None = None
    """An end-user id for the provider's abuse monitoring."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More fields of the gateway's OpenAI schema (the ones above; anything else is refused
    at construction)."""

    @model_validator(mode="after")
    def _check_extra_body(self) -> ChatOpenGradient:
        for key in self.model_kwargs:
            if key in type(self).model_fields and key not in EXTRA_CHAT_FIELDS:
                raise ValueError(f"model_kwargs: give {key} as its own setting")
            if key in EXTRA_CHAT_FIELDS and getattr(self, key) is not None:
                raise ValueError(f"{key} is given twice: as a setting and in model_kwargs")
        try:
            extra_chat_fields(self.model_kwargs)
        except InvalidRequestError as exc:
            raise ValueError(f"model_kwargs: {exc}") from None
        extra_chat_fields(self._extra_body())
        return self

    def _extra_body(self) -> dict[str, Any]:
        """The gateway fields beyond the seed's arguments this model sends on every call."""
        fields = {name: getattr(self, name) for name in EXTRA_CHAT_FIELDS}
        fields.update(self.model_kwargs)
        return {name: value for name, value in fields.items() if value is not None}

    # -- LangChain identity --------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "opengradient-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Not serializable: a model holds a live transport (and a key)."""
        return False

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {**super()._identifying_params, **self._extra_body()}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "opengradient"
        if stop is None and self.stop:
            params["ls_stop"] = self.stop
        return params

    # -- calls ---------------------------------------------------------------------------------

    def _convert_input(self, model_input: LanguageModelInput) -> PromptValue:
        """LangChain's input conversion, with an error that names the value given."""
        try:
            return super()._convert_input(model_input)
        except ValueError:
            raise InvalidRequestError(
                f"input {model_input!r:.80} is not a string, a list of messages or a PromptValue"
            ) from None

    def _call(
        self, messages: list[BaseMessage], stop: list[str] | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """The transport's ``chat`` arguments for one call (refuses unknown options)."""
        unknown = set(options) - _CALL_OPTIONS - _IGNORED_OPTIONS
        if unknown:
            raise InvalidRequestError(
                f"unsupported call option(s) {', '.join(sorted(unknown))}; ChatOpenGradient "
                f"takes {', '.join(sorted(_CALL_OPTIONS))} and stop"
            )
        args: dict[str, Any] = {
            "model": options.get("model", self.model),
            "messages": to_openai_messages(messages),
            "stop_sequence": self.stop if stop is None else stop,
            "temperature": options.get("temperature", self.temperature),
            "tools": options.get("tools") or (),
            "tool_choice": options.get("tool_choice"),
            "x402_settlement_mode": options.get("settlement_mode", self.settlement_mode),
            "response_format": options.get("response_format"),
            "timeout": self.timeout,
        }
        max_tokens = options.get("max_tokens", options.get("max_completion_tokens"))
        args["max_tokens"] = self.max_tokens if max_tokens is None else max_tokens
        extra = self._extra_body()
        extra.update({name: options[name] for name in EXTRA_CHAT_FIELDS if name in options})
        if extra:
            args["extra_body"] = extra
        return args

    def _result(
        self, output: TextGenerationOutput | Any, model: str, options: dict[str, Any]
    ) -> ChatResult:
        self._note_finish(output.finish_reason)
        message = ai_message(output, model)
        if options.get("parallel_tool_calls") is False:
            message = first_tool_call_only(message)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"model_name": message.response_metadata["model_name"]},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._call(messages, stop, kwargs)
        return self._result(self._llm.chat(**args), args["model"], kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._call(messages, stop, kwargs)
        return self._result(await self._llm.achat(**args), args["model"], kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        args = self._call(messages, stop, kwargs)
        stream = self._llm.chat(**args, stream=True)
        shape = self._chunk_shaper(kwargs)
        try:
            for piece in stream:
                chunk = shape(generation_chunk(piece, args["model"]))
                if run_manager is not None:  # LangChain passes it only when it will not fire
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            stream.close()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        args = self._call(messages, stop, kwargs)
        stream = await self._llm.achat(**args, stream=True)
        shape = self._chunk_shaper(kwargs)
        try:
            async for piece in stream:
                chunk = shape(generation_chunk(piece, args["model"]))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            await stream.aclose()

    def _chunk_shaper(
        self, options: dict[str, Any]
    ) -> Callable[[ChatGenerationChunk], ChatGenerationChunk]:
        """What a call's options change on each streamed chunk: usage dropped when
        ``stream_usage`` is False, tool calls after the first dropped when
        ``parallel_tool_calls`` is False; and the cut-answer warning on the last chunk."""
        with_usage = options.get("stream_usage", self.stream_usage)
        single = options.get("parallel_tool_calls") is False
        first: list[int | None] = []

        def shape(chunk: ChatGenerationChunk) -> ChatGenerationChunk:
            message = chunk.message
            if not isinstance(message, AIMessageChunk):
                return chunk
            update: dict[str, Any] = {}
            if single and message.tool_call_chunks:
                if not first:
                    first.append(message.tool_call_chunks[0].get("index"))
                kept = [c for c in message.tool_call_chunks if c.get("index") == first[0]]
                if len(kept) != len(message.tool_call_chunks):
                    update["tool_call_chunks"] = kept
            if not with_usage and message.usage_metadata is not None:
                update["usage_metadata"] = None
            if message.chunk_position == "last":
                self._note_finish(message.response_metadata.get("finish_reason"))
            if not update:
                return chunk
            fields = {
                "content": message.content,
                "tool_call_chunks": message.tool_call_chunks,
                "usage_metadata": message.usage_metadata,
                "response_metadata": message.response_metadata,
                "chunk_position": message.chunk_position,
                "id": message.id,
                **update,
            }
            return ChatGenerationChunk(message=AIMessageChunk(**fields))

        return shape

    # -- tools and structured output -----------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, pydantic models, functions or OpenAI dicts).

        ``tool_choice``: "auto", "none", "any"/"required"/True, a tool's name, or an OpenAI
        dict. ``response_format`` (a schema or an OpenAI ``response_format`` dict, as
        ``langchain.agents.create_agent`` passes it) is sent along. OpenGradient's gateway has
        no switch for parallel calls, so ``parallel_tool_calls=False`` is kept here: an answer
        keeps its first tool call only (``response_metadata["dropped_tool_calls"]`` counts the
        others; the TEE proof covers the answer as sent).
        """
        from langchain_core.utils.function_calling import convert_to_openai_tool

        if parallel_tool_calls is False:
            kwargs["parallel_tool_calls"] = False
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        choice = tool_choice_of(tool_choice, formatted)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if response_format is not None:
            kwargs["response_format"] = json_schema_format(response_format, strict)
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers parsed to ``schema`` (a pydantic class, TypedDict or JSON schema).

        ``method``: "function_calling" (the schema as a forced tool), "json_schema" (the
        schema as ``response_format``) or "json_mode" (``{"type": "json_object"}``; the schema,
        if any, only parses). ``include_raw=True`` returns ``{"raw", "parsed",
        "parsing_error"}``.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {', '.join(sorted(kwargs))}")
        return structured_runnable(self, schema, method, include_raw, strict)
