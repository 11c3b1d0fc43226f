"""``ChatOpenGradient``: OpenGradient's TEE-verified, x402-paid chat models for LangChain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable
from opengradient_shared.errors import InvalidRequestError
from opengradient_shared.types import TextGenerationOutput
from pydantic import BaseModel

from ._config import OpenGradientSettings
from ._convert import ai_message, generation_chunk, to_openai_messages, tool_choice_of
from ._structured import json_schema_format, structured_runnable

_CALL_OPTIONS = frozenset(
    {
        "model",
        "tools",
        "tool_choice",
        "response_format",
        "temperature",
        "max_tokens",
        "settlement_mode",
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

    # -- LangChain identity --------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "opengradient-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Not serializable: a model holds a live transport (and a key)."""
        return False

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
        max_tokens = options.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            args["max_tokens"] = max_tokens
        return args

    def _result(self, output: TextGenerationOutput | Any, model: str) -> ChatResult:
        message = ai_message(output, model)
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
        return self._result(self._llm.chat(**args), args["model"])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._call(messages, stop, kwargs)
        return self._result(await self._llm.achat(**args), args["model"])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        args = self._call(messages, stop, kwargs)
        stream = self._llm.chat(**args, stream=True)
        try:
            for piece in stream:
                chunk = generation_chunk(piece, args["model"])
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
        try:
            async for piece in stream:
                chunk = generation_chunk(piece, args["model"])
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            await stream.aclose()

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
        ``langchain.agents.create_agent`` passes it) is sent along. The gateway decides on
        parallel calls itself: ``parallel_tool_calls=False`` cannot be honoured and raises.
        """
        from langchain_core.utils.function_calling import convert_to_openai_tool

        if parallel_tool_calls is False:
            raise InvalidRequestError(
                "parallel_tool_calls=False is not supported: the OpenGradient API has no switch "
                "for it"
            )
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
