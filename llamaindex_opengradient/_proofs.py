"""Where a query's TEE proofs are: a query engine, chat engine or agent hides the LLM's
responses, but LlamaIndex reports each LLM call as an instrumentation event carrying the
response; :class:`ProofCollector` keeps the proof and receipt of each OpenGradient answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
from pydantic import PrivateAttr


class ProofCollector(BaseEventHandler):
    """An instrumentation event handler that keeps the ``additional_kwargs`` (``tee_proof``,
    ``payment``, ``payment_hash``, ``usage``, ``finish_reason``, ``model``) of every
    OpenGradient answer, streamed or not, in the order the calls ended.

    Attach it to the root dispatcher for the whole process
    (``get_dispatcher().add_event_handler(collector)``), or use :func:`collect_proofs` for one
    block. It sees every OpenGradient call made while attached, in any thread.
    """

    _answers: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "OpenGradientProofCollector"

    def handle(self, event: Any, **kwargs: Any) -> None:
        """Keep the metadata of an LLM call's final response when it is an OpenGradient one."""
        if not isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent):
            return
        extra = getattr(event.response, "additional_kwargs", None) or {}
        if "tee_proof" in extra:
            with self._lock:
                self._answers.append(dict(extra))

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Each answer's ``additional_kwargs`` (a copy of the list)."""
        with self._lock:
            return list(self._answers)

    @property
    def proofs(self) -> list[dict[str, Any]]:
        """Each answer's ``tee_proof`` (``verified``, ``tee_id``, hashes, signature)."""
        return [answer["tee_proof"] for answer in self.answers]

    @property
    def payments(self) -> list[dict[str, Any] | None]:
        """Each answer's payment receipt (None where the server reported none)."""
        return [answer.get("payment") for answer in self.answers]

    @property
    def all_verified(self) -> bool:
        """True when there was at least one answer and every proof was verified."""
        proofs = self.proofs
        return bool(proofs) and all(proof and proof.get("verified") for proof in proofs)


@contextmanager
def collect_proofs() -> Iterator[ProofCollector]:
    """A :class:`ProofCollector` attached for the block: the proofs of the OpenGradient
    answers made inside it, e.g. of a query engine's answer.

    ```python
    with collect_proofs() as proofs:
        response = query_engine.query("...")
    proofs.all_verified, proofs.proofs, proofs.payments
    ```
    """
    dispatcher, collector = get_dispatcher(), ProofCollector()
    dispatcher.add_event_handler(collector)
    try:
        yield collector
    finally:
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not collector]
