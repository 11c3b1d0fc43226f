"""``OpenGradientLLM``: text completion on OpenGradient's TEE-hosted models, for LangChain."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, LLMResult
from opengradient_shared.errors import InvalidRequestError
from opengradient_shared.types import TextGenerationOutput

from ._config import OpenGradientSettings
from ._convert import metadata

UNSET_COMPLETION_MAX_TOKENS = 4096
"""What ``max_tokens=None`` sends on completions: the cap OpenGradient's gateway applies to a
chat call without one. Sending none would get the completions schema's default, 16 tokens."""


class OpenGradientLLM(OpenGradientSettings, BaseLLM):
    """Text completion on OpenGradient's TEE-hosted models, paid per call with x402.

    Takes the same settings as :class:`~langchain_opengradient.ChatOpenGradient`. Each
    ``Generation``'s ``generation_info`` holds ``model_name``, ``finish_reason``,
    ``payment_hash``, the ``payment`` receipt and the verified ``tee_proof``; ``llm_output``
    has the summed ``token_usage``. ``max_tokens=None`` sends 4096
    (:data:`UNSET_COMPLETION_MAX_TOKENS`), not the completions endpoint's default of 16.
    """

    model_config = OpenGradientSettings.model_config

    @property
    def _llm_type(self) -> str:
        return "opengradient-completion"

    def _args(self, prompt: str, stop: list[str] | None, options: dict[str, Any]) -> dict[str, Any]:
        if options:
            raise InvalidRequestError(
                f"unsupported call option(s) {', '.join(sorted(options))}; OpenGradientLLM "
                "takes stop only"
            )
        args: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "stop_sequence": self.stop if stop is None else stop,
            "temperature": self.temperature,
            "x402_settlement_mode": self.settlement_mode,
            "timeout": self.timeout,
            "max_tokens": self.max_tokens or UNSET_COMPLETION_MAX_TOKENS,
        }
        return args

    def _result(self, outputs: list[TextGenerationOutput]) -> LLMResult:
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        generations = []
        for output in outputs:
            self._note_finish(output.finish_reason)
            info = metadata(output, output.finish_reason, self.model)
            generations.append(
                [Generation(text=output.completion_output or "", generation_info=info)]
            )
            if output.usage is not None:
                usage["prompt_tokens"] += output.usage.prompt_tokens
                usage["completion_tokens"] += output.usage.completion_tokens
                usage["total_tokens"] += output.usage.total_tokens
        return LLMResult(
            generations=generations, llm_output={"token_usage": usage, "model_name": self.model}
        )

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return self._result(
            [self._llm.completion(**self._args(prompt, stop, kwargs)) for prompt in prompts]
        )

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return self._result(
            [await self._llm.acompletion(**self._args(prompt, stop, kwargs)) for prompt in prompts]
        )
