"""Turns a streamed answer's bytes into :class:`StreamChunk` objects (pure, no I/O).

Each event is read once (:class:`~.protocol.StreamAccumulator`) and that one reading is both
hashed and delivered. What is delivered before the proof is checked:

- ``"incremental"`` (default): text chunks as they arrive. Tool-call chunks are held: from
  the first tool-call piece on, every chunk waits for the proof, so an agent never acts on an
  unverified call. Text beside tool calls is not covered by the proof (it covers only the
  calls): text after the first tool-call piece is dropped, and text already delivered before
  it makes the proof check fail (the content received is not what was signed).
- ``"buffer"``: nothing until the proof verified; then all chunks (text dropped when the
  answer has tool calls).

The final chunk (with ``finish_reason`` and the TEE fields) always waits for ``[DONE]`` and
the proof check; it then comes out carrying the proof, the payment receipt and
``payment_hash``. A failed proof (under the "raise" policy), an error event, a malformed
event, or a stream that ends before ``[DONE]`` raises instead, and held chunks are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .errors import OpenGradientError, ServerError, StreamInterruptedError, excerpt
from .protocol import StreamAccumulator, bounded_arguments, stream_chunk
from .sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from .types import PaymentReceipt, StreamChunk, TeeOrigin, TeeProof

ProofCheck = Callable[[Mapping[str, Any], str], TeeProof | None]
"""Verifies the ``tee_*`` fields against an output hash (see ``verification.check_proof``)."""

STREAM_VERIFICATION_MODES = ("incremental", "buffer")
UNCOVERED = "text-delivered-beside-tool-calls"
"""The output hash checked when text went out before tool calls: no proof can match it."""


class StreamAssembler:
    """Bytes in, chunks out, for one streamed chat answer."""

    def __init__(
        self,
        check: ProofCheck,
        receipt: PaymentReceipt | None,
        payment_hash: str,
        *,
        mode: str = "incremental",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        origin: TeeOrigin | None = None,
    ) -> None:
        if mode not in STREAM_VERIFICATION_MODES:
            raise ValueError(f"unknown stream verification mode {mode!r}")
        self._check = check
        self._origin = origin
        self._receipt = receipt
        self._payment_hash = payment_hash
        self._decoder = SSEDecoder(max_event_bytes)
        self._received = StreamAccumulator()
        self._holding = mode == "buffer"
        self._held: list[StreamChunk] = []
        self._final: tuple[StreamChunk, dict[str, Any]] | None = None
        self._tools = False
        self._text_sent = False
        self._finished = False

    def feed(self, data: bytes) -> list[StreamChunk]:
        """The chunks completed by ``data`` (the verified final one once ``[DONE]`` came)."""
        return self._guarded(lambda: self._take(self._decoder.feed(data)))

    def end(self) -> list[StreamChunk]:
        """The connection closed: raises StreamInterruptedError unless ``[DONE]`` was read."""
        return self._guarded(lambda: self._take(self._decoder.end()))

    def _guarded(self, step: Callable[[], list[StreamChunk]]) -> list[StreamChunk]:
        try:
            return step()
        except StreamInterruptedError:
            raise
        except ServerError as exc:  # a malformed event
            raise StreamInterruptedError(f"the stream broke off: {exc}") from None
        except OpenGradientError:
            raise
        except Exception as exc:  # the funnel: anything else is a bug, reported as such
            raise StreamInterruptedError(
                f"the stream could not be read ({type(exc).__name__}: {excerpt(str(exc), 200)})"
            ) from exc

    def _take(self, events: list[dict[str, Any]]) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for raw in events:
            event = self._received.add(raw)
            if event.tool_calls:
                self._tools = self._holding = True
            chunk = stream_chunk(event)
            if chunk.is_final:
                if self._final is not None:  # an earlier "final" was not the last
                    self._emit(replace(self._final[0], is_final=False), out)
                self._final = (chunk, event.data)
            else:
                self._emit(chunk, out)
        if self._decoder.done and not self._finished:
            self._finished = True
            out.extend(self._finish())
        return out

    def _emit(self, chunk: StreamChunk, out: list[StreamChunk]) -> None:
        if self._holding:
            self._held.append(chunk)
            return
        if any(choice.delta.content for choice in chunk.choices):
            self._text_sent = True
        out.append(chunk)

    def _finish(self) -> list[StreamChunk]:
        chunk, fields = self._final if self._final is not None else (None, {})
        for index, call in enumerate(self._received.tool_calls or []):  # whole, before release
            bounded_arguments(call["function"]["arguments"], f"tool call {index}'s arguments")
        covered = self._received.output_hash
        proof = self._check(fields, UNCOVERED if self._tools and self._text_sent else covered)
        released = [c for c in map(self._without_text, self._held) if c is not None]
        self._held = []
        if chunk is None:
            return released
        final = self._without_text(chunk) or replace(chunk, choices=[])
        final.tee_proof = proof
        final.payment = self._receipt
        final.payment_hash = self._payment_hash
        final.tee_origin = self._origin
        return [*released, final]

    def _without_text(self, chunk: StreamChunk) -> StreamChunk | None:
        """``chunk`` without text when the answer has tool calls (the proof covers only them);
        None when nothing else was in it."""
        if not self._tools or not any(c.delta.content for c in chunk.choices):
            return chunk
        choices = [
            replace(c, delta=replace(c.delta, content=None))
            for c in chunk.choices
            if c.delta.tool_calls or c.finish_reason
        ]
        if not choices and not chunk.is_final:
            return None
        return replace(chunk, choices=choices)
